/**
 * HostFacts: what a shell on a host says about it that a task start needs — its PATH, the default
 * task root its environment names, whether zstd is installed, what its `lsb_release -a` prints —
 * asked in one round trip (an exec
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
  /**
   * The host's `lsb_release` and what its `-a` printed, when it has one that answered: codex asks
   * it at every start (see `LsbReleaseShim`).
   */
  readonly lsbRelease?: { readonly path: string; readonly all: string }
}

/** The PATH a task gets when the host's shell could not say. */
export const FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"

// NUL-separated: neither a PATH, a path nor lsb_release's text can contain one.
const PROBE = "printf '%s\\0%s\\0' \"$PATH\" \"${OPTIO_CODEX_TASK_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/optio-codex}\"; " +
  "if command -v zstd >/dev/null 2>&1; then printf zstd; fi; printf '\\0'; " +
  "if lsb=$(command -v lsb_release); then printf '%s\\0' \"$lsb\"; " +
  // Bounded where coreutils' timeout exists (a start must not wait on a stuck OS probe), and
  // kept only when it answered in full; its one trailing newline is put back.
  "bound=; if command -v timeout >/dev/null 2>&1; then bound='timeout 5'; fi; " +
  "if all=$($bound \"$lsb\" -a 2>/dev/null); then printf '%s\\n' \"$all\"; fi; fi"

const ABSOLUTE_PLAIN = /^\/[A-Za-z0-9._+\/-]+$/

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
      const [path = "", taskRoot = "", zstd = "", lsbPath = "", lsbAll = ""] = printed.stdout.split("\0")
      const lsbRelease = ABSOLUTE_PLAIN.test(lsbPath) && lsbAll.trim() !== "" ? { lsbRelease: { path: lsbPath, all: lsbAll } } : {}
      const facts: HostFacts = { path: path === "" ? FALLBACK_PATH : path, taskRoot, zstd: zstd.trim() === "zstd", ...lsbRelease }
      if (printed.exitCode === 0 && path !== "") known = facts
      return facts
    })
  )
  return Effect.suspend(() => known === undefined ? probe : Effect.succeed(known))
}
