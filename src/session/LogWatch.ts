/**
 * LogWatch: follows a task's optio.log until the agent writes `DONE` or `ERROR`, or until codex
 * is gone — whichever comes first — and maps that to the session's outcome. Shared by both modes.
 * Because the log is drained one last time after codex exits, a `DONE` written just before the
 * exit still counts as success (no body-versus-tail race).
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Option, Stream } from "effect"
import { Host } from "../host/Host.ts"
import type { CodexTaskHooks, HookContext } from "./Hooks.ts"
import { isTerminal } from "../protocol/OptioLogEvent.ts"
import { followOptioLog } from "../protocol/OptioLogMonitor.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"
import type { ReplyWording } from "../protocol/Deliverables.ts"
import { handleLogEvent } from "./LogEvents.ts"
import { AgentReportedError, CodexExitedEarly } from "./SessionErrors.ts"

/**
 * How a session that completed ended.
 * @category models
 * @since 0.1.0
 */
export interface SessionResult {
  readonly outcome: "done"
  /**
   * Who ended the task: the agent (`DONE` in optio.log), the operator (quit the codex TUI, which
   * then exited 0) or the worker (closed the published conversation).
   */
  readonly endedBy: "agent" | "operator" | "worker"
  readonly summary: string | null
  readonly workdir: string
}

/**
 * Watches optio.log until the outcome is known. `codexExit` waits for codex to exit and yields its
 * status (a failure means the status is unknown: codex or its terminal is gone); `screenTail`
 * describes what codex showed last.
 * @category constructors
 */
export const watchUntilOutcome = <E>(options: {
  readonly paths: TaskPaths
  readonly hooks: CodexTaskHooks
  readonly hookContext: HookContext
  readonly send: (message: string) => Effect.Effect<void, E>
  readonly replyWording?: ReplyWording
  readonly codexExit: Effect.Effect<number, unknown>
  /**
   * TUI mode: codex exiting 0 before any outcome means the operator quit it — the task ends as
   * done; any other status writes `ERROR: codex exited <status>` to optio.log and fails.
   */
  readonly operatorCanQuit?: boolean
  /** Names codex's process in a {@link CodexExitedEarly} (`codex app-server`, `codex TUI`). */
  readonly codexProcess: string
  readonly screenTail: Effect.Effect<string>
}) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    const gone = yield* Deferred.make<number | null>()
    yield* options.codexExit.pipe(
      Effect.map((code): number | null => code),
      Effect.orElseSucceed(() => null),
      Effect.flatMap((code) => Deferred.succeed(gone, code)),
      Effect.forkScoped
    )
    const last = yield* followOptioLog(options.paths.optioLog, { until: Effect.asVoid(Deferred.await(gone)) }).pipe(
      Stream.tap((event) =>
        handleLogEvent(event, options).pipe(
          // A failed acknowledgement must not end the session: the agent may still finish.
          Effect.catch((error) => task.reportProgress(null, `could not answer the agent: ${String(error)}`))
        )
      ),
      Stream.filter(isTerminal),
      Stream.runHead
    )
    if (Option.isNone(last)) {
      const exitCode = yield* Deferred.await(gone)
      if (options.operatorCanQuit === true && exitCode === 0) {
        // The operator quit the TUI (/quit, Ctrl-C twice): an ending, not a crash (as the reference did).
        yield* task.reportProgress(null, "codex exited normally: the operator ended the session")
        const ended: SessionResult = { outcome: "done", endedBy: "operator", summary: null, workdir: options.paths.workdir }
        return ended
      }
      const paneTail = yield* options.screenTail
      const error = new CodexExitedEarly({ exitCode, paneTail, process: options.codexProcess })
      if (options.operatorCanQuit === true && exitCode !== null) yield* recordCodexError(options.paths, exitCode)
      return yield* error
    }
    const event = last.value
    if (event._tag === "Failed") return yield* new AgentReportedError({ agentMessage: event.message })
    const summary = event._tag === "Done" ? event.summary : null
    if (summary !== null) yield* task.reportProgress(null, summary)
    const result: SessionResult = { outcome: "done", endedBy: "agent", summary, workdir: options.paths.workdir }
    return result
  })

// The reference's record of a crashed TUI, so the log (and a snapshot of it) says how the run
// ended. optio.log is the agent's: appended without following a planted symlink or FIFO.
const recordCodexError = (paths: TaskPaths, exitCode: number) =>
  Effect.gen(function*() {
    const host = yield* Host
    const task = yield* TaskContext
    const line = `ERROR: codex exited ${exitCode}`
    yield* task.reportProgress(null, line)
    yield* host.appendRegularFile(paths.optioLog, `${line}\n`, { timeout: "5 seconds" }).pipe(
      Effect.catch((error) => Effect.logWarning(`could not record the exit in optio.log: ${error.message}`))
    )
  })
