/**
 * TreeKill: stops a process tree — SIGTERM to everything that belongs to the root, up to a grace
 * period for it to go, then SIGKILL to whatever is left (survivors' own descendants included) —
 * as Effect code on `Clock`, so the timing is testable under `TestClock` against a scripted
 * process table.
 *
 * Owns the escalation and its timing only; how the table is read and signals are sent is the
 * caller's {@link ProcessControl} (`/proc` and `kill(2)` on the local host).
 *
 * @since 0.1.0
 */
import { Duration, Effect } from "effect"
import { treeOf } from "./ProcessTree.ts"
import type { ProcessEntry } from "./ProcessTree.ts"

/**
 * What the escalation needs from an operating system.
 * @category models
 * @since 0.1.0
 */
export interface ProcessControl<E> {
  /** The whole process table (a read with holes would hide processes: fail instead). */
  readonly table: Effect.Effect<ReadonlyArray<ProcessEntry>, E>
  /** The pids of `pids` still alive (zombies are gone). */
  readonly alive: (pids: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<number>, E>
  /** Sends `signal` to each pid; pids already gone are skipped. */
  readonly signal: (pids: ReadonlyArray<number>, signal: "SIGTERM" | "SIGKILL") => Effect.Effect<void>
}

/**
 * How often liveness is polled while waiting, and how long a SIGKILLed tree is waited for.
 * @category models
 */
export interface TreeKillTiming {
  readonly poll: Duration.Duration
  readonly killWait: Duration.Duration
}

const DEFAULT_TIMING: TreeKillTiming = { poll: Duration.millis(10), killWait: Duration.seconds(1) }

/**
 * Stops the tree rooted at `root`. The tree is read before signalling because a child whose
 * parent dies is re-parented and can no longer be found through it. Interrupting the grace wait
 * skips the rest of the grace: the survivors are SIGKILLed at once, never left half-stopped.
 * @category combinators
 * @since 0.1.0
 */
export const terminateTree = <E>(
  control: ProcessControl<E>,
  root: number,
  grace: Duration.Input,
  timing: TreeKillTiming = DEFAULT_TIMING
): Effect.Effect<void, E> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const tree = treeOf(yield* control.table, root)
      if (tree.length === 0) return
      yield* control.signal(tree, "SIGTERM")
      const goneInTime = yield* restore(untilGone(control, tree, timing.poll).pipe(
        Effect.as(true),
        Effect.timeoutOrElse({ duration: grace, orElse: () => Effect.succeed(false) })
      )).pipe(
        Effect.onInterrupt(() => killSurvivors(control, tree).pipe(Effect.ignore({ log: "Warn", message: "could not SIGKILL an interrupted tree kill" })))
      )
      if (goneInTime) return
      const survivors = yield* killSurvivors(control, tree)
      yield* Effect.annotateCurrentSpan("optio.killed", survivors.length)
      // A SIGKILLed process cannot refuse; the bounded wait only lets the kernel reap it.
      yield* restore(untilGone(control, survivors, timing.poll).pipe(
        Effect.timeoutOrElse({ duration: timing.killWait, orElse: () => Effect.void })
      ))
    })
  ).pipe(Effect.withSpan("Host.terminateTree", { attributes: { root, grace: Duration.format(Duration.fromInputUnsafe(grace)) } }))

/** SIGKILLs what is left of `tree` and everything those survivors started meanwhile. */
const killSurvivors = <E>(control: ProcessControl<E>, tree: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const alive = yield* control.alive(tree)
    if (alive.length === 0) return alive
    const table = yield* control.table
    const survivors = [...new Set([...alive, ...alive.flatMap((pid) => treeOf(table, pid))])]
    yield* control.signal(survivors, "SIGKILL")
    return survivors
  })

/** Completes when none of `pids` is alive, polling on the Clock. */
const untilGone = <E>(control: ProcessControl<E>, pids: ReadonlyArray<number>, poll: Duration.Duration): Effect.Effect<void, E> =>
  control.alive(pids).pipe(
    Effect.flatMap((alive) => alive.length === 0 ? Effect.void : Effect.sleep(poll).pipe(Effect.andThen(untilGone(control, pids, poll))))
  )
