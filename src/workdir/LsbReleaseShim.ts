/**
 * LsbReleaseShim: the `lsb_release` a task's codex finds first on its PATH. codex runs
 * `lsb_release -a` twice while it answers `initialize` and again at `thread/start` (to name the OS
 * in its user agent); on Debian that is a shell script spawning a dozen tools, ~45 ms a run, about
 * a quarter of a task's start. The shim prints, for exactly that question, what the host's own
 * `lsb_release -a` printed when the worker first asked (a host fact), and hands any other
 * question to the real one, so the agent's own calls behave as on the host.
 *
 * @since 0.1.0
 */
import { shellQuote } from "../config/ShellQuote.ts"
import type { HostFacts } from "../host/HostFacts.ts"

/**
 * The shim's file name, in the task's worker-owned shim directory.
 * @category constants
 */
export const LSB_RELEASE_SHIM_NAME = "lsb_release"

/**
 * The POSIX `sh` script for a host whose `lsb_release` answered, or `undefined` when it has none
 * (codex then reads `/etc/os-release` itself, which costs nothing). Both the path and the text
 * are the host's, quoted whole.
 * @category constructors
 */
export const lsbReleaseShimScript = (facts: HostFacts): string | undefined => {
  if (facts.lsbRelease === undefined) return undefined
  const { path, all } = facts.lsbRelease
  return `#!/bin/sh
# optio-codex: answers codex's OS probe from the host's own answer; anything else goes to ${path}.
if [ "$#" -eq 1 ] && [ "$1" = -a ]; then
  printf '%s' ${shellQuote(all)}
  exit 0
fi
exec ${shellQuote(path)} "$@"
`
}
