/**
 * Teardown: the record of what went wrong while a session was torn down. Finalizers cannot fail
 * the effect they close, yet a credential that could not be saved or a snapshot that was not
 * stored must not pass silently: each failing step is reported in progress at once and recorded
 * here, and the session then ends with {@link TeardownFailed} (beside its own outcome).
 *
 * @since 0.1.0
 */
import { Cause, Effect, Exit, Ref, Schema } from "effect"
import { TaskContext } from "../task/TaskContext.ts"

/**
 * One teardown step that failed.
 * @category models
 */
export interface TeardownFailure {
  readonly step: string
  readonly message: string
}

/**
 * Steps of the teardown failed (the credential save-back, seed capture or the snapshot). Carries
 * each step's message; when the session had succeeded, also what it had produced.
 * @category errors
 * @since 0.1.0
 */
export class TeardownFailed extends Schema.TaggedError<TeardownFailed>()("TeardownFailed", {
  failures: Schema.Array(Schema.Struct({ step: Schema.String, message: Schema.String })),
  /** Whether the session's own work had succeeded (DONE) before teardown failed. */
  sessionSucceeded: Schema.Boolean
}) {
  override get message(): string {
    const steps = this.failures.map((failure) => `${failure.step}: ${failure.message}`).join("; ")
    return `teardown failed${this.sessionSucceeded ? " after the task succeeded" : ""}: ${steps}`
  }
}

/**
 * The failures recorded during one session's teardown.
 * @category models
 */
export interface TeardownLog {
  /** Runs a teardown step; its failure is reported in progress, logged and recorded, never raised. */
  readonly step: <E, R>(name: string, effect: Effect.Effect<void, E, R>) => Effect.Effect<void, never, TaskContext | R>
  /** Records a failure found outside a step. */
  readonly record: (name: string, message: string) => Effect.Effect<void, never, TaskContext>
  readonly failures: Effect.Effect<ReadonlyArray<TeardownFailure>>
}

/**
 * A fresh, empty teardown log.
 * @category constructors
 */
export const makeTeardownLog: Effect.Effect<TeardownLog> = Effect.gen(function*() {
  const failures = yield* Ref.make<ReadonlyArray<TeardownFailure>>([])
  const record = (name: string, message: string) =>
    Effect.gen(function*() {
      yield* Ref.update(failures, (list) => [...list, { step: name, message }])
      yield* Effect.logError(`teardown step failed: ${name}`, { message })
      const task = yield* TaskContext
      yield* task.reportProgress(null, `Teardown: ${name} failed: ${message}`)
    })
  return {
    step: (name, effect) =>
      effect.pipe(
        Effect.catchCause((cause) => record(name, causeMessage(cause))),
        Effect.withSpan(`CodexSession.teardown.${name}`)
      ),
    record,
    failures: Ref.get(failures)
  }
})

/**
 * The session's outcome once its scope has closed: its own exit, joined by the teardown failures.
 * An interrupted (cancelled) session stays interrupted — its failures were already reported.
 * @category constructors
 */
export const concludeSession = <A, E>(exit: Exit.Exit<A, E>, log: TeardownLog): Effect.Effect<A, E | TeardownFailed> =>
  Effect.gen(function*() {
    const failures = yield* log.failures
    if (failures.length === 0) return yield* exit
    if (Exit.isSuccess(exit)) return yield* new TeardownFailed({ failures, sessionSucceeded: true })
    if (Cause.hasInterruptsOnly(exit.cause)) return yield* exit
    return yield* Effect.failCause(Cause.combine(exit.cause, Cause.fail(new TeardownFailed({ failures, sessionSucceeded: false }))))
  })

const causeMessage = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}
