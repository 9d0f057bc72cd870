/**
 * HostFacts: what a shell on a host says about it that a task start needs — its PATH, the default
 * task root its environment names, whether zstd is installed — asked in one round trip (an exec
 * over SSH) and remembered by the Host that asked, once an answer came. Kept on the Host itself, so
 * nothing is cached beside it in a module and a new Host asks afresh.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { HostError, HostShape } from "./Host.ts"

/**
 * The host's answers. `taskRoot` is as printed (checked by `taskRootOn`); empty when the shell failed.
 * @category models
 * @since 0.1.0
 */
export interface HostFacts {
  readonly path: string
  readonly taskRoot: string
  readonly zstd: boolean
}

/** The PATH a task gets when the host's shell could not say. */
export const FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"

// NUL-separated: neither a PATH nor a path can contain one.
const PROBE = "printf '%s\\0%s\\0' \"$PATH\" \"${OPTIO_CODEX_TASK_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/optio-codex}\"; " +
  "if command -v zstd >/dev/null 2>&1; then printf zstd; fi"

/**
 * The facts of the host whose `run` this is, asked at most once successfully; a failed or
 * non-zero probe answers the fallbacks and is asked again next time.
 * @category constructors
 */
export const makeHostFacts = (run: HostShape["run"]): Effect.Effect<HostFacts, HostError> => {
  // One host's memory, like its other per-instance state; concurrent first asks may both probe.
  let known: HostFacts | undefined
  const probe = run({ argv: ["sh", "-c", PROBE] }).pipe(
    Effect.map((printed) => {
      const [path = "", taskRoot = "", rest = ""] = printed.stdout.split("\0")
      const facts: HostFacts = { path: path === "" ? FALLBACK_PATH : path, taskRoot, zstd: rest.trim() === "zstd" }
      if (printed.exitCode === 0 && path !== "") known = facts
      return facts
    })
  )
  return Effect.suspend(() => known === undefined ? probe : Effect.succeed(known))
}
