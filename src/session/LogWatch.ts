/**
 * LogWatch: follows a task's optio.log until the agent writes `DONE` or `ERROR`, or until codex
 * is gone — whichever comes first — and maps that to the session's outcome. Shared by both modes.
 * Because the log is drained one last time after codex exits, a `DONE` written just before the
 * exit still counts as success (no body-versus-tail race).
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Option, Stream } from "effect"
import type { CodexTaskHooks, HookContext } from "../config/Hooks.ts"
import { isTerminal } from "../protocol/OptioLogEvent.ts"
import { followOptioLog } from "../protocol/OptioLogMonitor.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"
import { handleLogEvent } from "./LogEvents.ts"
import { AgentReportedError, CodexExitedEarly } from "./SessionErrors.ts"

/**
 * How a session that completed ended.
 * @category models
 * @since 0.1.0
 */
export interface SessionResult {
  readonly outcome: "done"
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
  readonly codexExit: Effect.Effect<number, unknown>
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
      const paneTail = yield* options.screenTail
      return yield* new CodexExitedEarly({ exitCode, paneTail, process: options.codexProcess })
    }
    const event = last.value
    if (event._tag === "Failed") return yield* new AgentReportedError({ agentMessage: event.message })
    const summary = event._tag === "Done" ? event.summary : null
    if (summary !== null) yield* task.reportProgress(null, summary)
    const result: SessionResult = { outcome: "done", summary, workdir: options.paths.workdir }
    return result
  })
