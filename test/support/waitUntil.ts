/**
 * Waits on a condition with a deadline: the test-side replacement for sleep-then-assert.
 */
import { Effect, Schedule } from "effect"
import type { Duration } from "effect"

/** Polls `probe` until it yields a value other than `undefined`; fails after `timeout`. */
export const waitUntil = <A, E, R>(
  what: string,
  probe: Effect.Effect<A | undefined, E, R>,
  timeout: Duration.Input = "20 seconds"
): Effect.Effect<A, E | Error, R> =>
  probe.pipe(
    Effect.flatMap((value) => value === undefined ? Effect.fail(new NotYet()) : Effect.succeed(value)),
    Effect.retry({ while: (error) => error instanceof NotYet, schedule: Schedule.spaced("20 millis") }),
    Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(new Error(`timed out waiting until ${what}`)) }),
    Effect.catchIf((error): error is NotYet => error instanceof NotYet, () => Effect.fail(new Error(`gave up waiting until ${what}`)))
  )

class NotYet {
  readonly _tag = "NotYet"
}
