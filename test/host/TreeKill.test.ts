/**
 * The kill escalation's timing on TestClock against a scripted process table: no wall-clock wait,
 * every instant exact. The real-process proof is the Host contract suite (LocalHost.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import type { ProcessEntry } from "../../src/host/ProcessTree.ts"
import { terminateTree } from "../../src/host/TreeKill.ts"
import type { ProcessControl } from "../../src/host/TreeKill.ts"

/** How a scripted process answers SIGTERM: ignore it, or exit that many millis later. */
type OnTerm = "ignore" | number

interface Scripted {
  entry: ProcessEntry
  readonly onTerm: OnTerm
  diesAt: number | undefined
}

/**
 * A process table whose processes die on the Clock. Signals are logged with the Clock time; a
 * dead process's children are re-parented to 1, as the kernel does.
 */
const scriptedTable = () => {
  const processes = new Map<number, Scripted>()
  const log: Array<{ readonly at: number; readonly signal: string; readonly pids: ReadonlyArray<number> }> = []
  const settle = (now: number) => {
    for (const process of processes.values()) {
      if (process.diesAt === undefined || process.diesAt > now) continue
      processes.delete(process.entry.pid)
      for (const child of processes.values()) {
        if (child.entry.ppid === process.entry.pid) child.entry = { ...child.entry, ppid: 1 }
      }
    }
  }
  const now = Effect.map(Clock.currentTimeMillis, (millis) => {
    settle(millis)
    return millis
  })
  const control: ProcessControl<never> = {
    table: Effect.map(now, () => [...processes.values()].map((process) => process.entry)),
    alive: (pids) => Effect.map(now, () => pids.filter((pid) => processes.has(pid))),
    signal: (pids, signal) =>
      Effect.map(now, (at) => {
        log.push({ at, signal, pids: [...pids].sort((a, b) => a - b) })
        for (const pid of pids) {
          const process = processes.get(pid)
          if (process === undefined) continue
          if (signal === "SIGKILL") process.diesAt = at
          else if (process.onTerm !== "ignore") process.diesAt = Math.min(process.diesAt ?? Infinity, at + process.onTerm)
        }
        settle(at)
      })
  }
  const add = (entry: ProcessEntry, onTerm: OnTerm) => {
    processes.set(entry.pid, { entry, onTerm, diesAt: undefined })
  }
  return { control, log, add, alive: () => [...processes.keys()].sort((a, b) => a - b) }
}

/** A process in its own group and session, child of `ppid`. */
const leader = (pid: number, ppid: number): ProcessEntry => ({ pid, ppid, pgid: pid, sid: pid })
/** A process in `root`'s group and session. */
const member = (pid: number, ppid: number, root: number): ProcessEntry => ({ pid, ppid, pgid: root, sid: root })

const GRACE = Duration.seconds(5)

/** The kill's result once the clock has been moved: it must be done by then, not later. */
const finished = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Effect.gen(function*() {
    yield* Effect.yieldNow
    assert.isDefined(fiber.pollUnsafe(), "the kill is not finished at this clock time")
    return yield* Fiber.join(fiber)
  })

describe("terminateTree on TestClock", () => {
  it.effect("a tree that ignores SIGTERM is SIGKILLed after exactly the grace, escaped helpers included", () =>
    Effect.gen(function*() {
      const table = scriptedTable()
      table.add(leader(100, 1), "ignore")
      table.add(member(101, 100, 100), "ignore")
      // A codex helper that called setsid: another group and session, still a descendant.
      table.add(leader(102, 101), "ignore")
      table.add(leader(200, 1), "ignore") // not part of the tree
      const fiber = yield* Effect.forkChild(terminateTree(table.control, 100, GRACE))
      yield* TestClock.adjust(Duration.subtract(GRACE, Duration.millis(1)))
      assert.deepStrictEqual(table.log, [{ at: 0, signal: "SIGTERM", pids: [100, 101, 102] }])
      assert.isUndefined(fiber.pollUnsafe(), "still within the grace")
      yield* TestClock.adjust(Duration.millis(1))
      yield* finished(fiber)
      assert.deepStrictEqual(table.log, [
        { at: 0, signal: "SIGTERM", pids: [100, 101, 102] },
        { at: 5000, signal: "SIGKILL", pids: [100, 101, 102] }
      ])
      assert.deepStrictEqual(table.alive(), [200])
    }))

  it.effect("a tree that exits on SIGTERM is never SIGKILLed; the wait ends at the next poll", () =>
    Effect.gen(function*() {
      const table = scriptedTable()
      table.add(leader(100, 1), 300)
      table.add(member(101, 100, 100), 250)
      const fiber = yield* Effect.forkChild(terminateTree(table.control, 100, GRACE))
      yield* TestClock.adjust("299 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      yield* finished(fiber)
      assert.deepStrictEqual(table.log, [{ at: 0, signal: "SIGTERM", pids: [100, 101] }])
      assert.deepStrictEqual(table.alive(), [])
    }))

  it.effect("survivors' re-parented children and processes started during the grace are SIGKILLed too", () =>
    Effect.gen(function*() {
      const table = scriptedTable()
      table.add(leader(100, 1), 100) // the root exits; its stubborn child is re-parented to 1
      table.add(leader(101, 100), "ignore")
      const fiber = yield* Effect.forkChild(terminateTree(table.control, 100, GRACE))
      yield* TestClock.adjust("1 second")
      // The survivor starts a helper of its own after the SIGTERM.
      table.add(leader(103, 101), "ignore")
      yield* TestClock.adjust("4 seconds")
      yield* finished(fiber)
      assert.deepStrictEqual(table.log, [
        { at: 0, signal: "SIGTERM", pids: [100, 101] },
        { at: 5000, signal: "SIGKILL", pids: [101, 103] }
      ])
      assert.deepStrictEqual(table.alive(), [])
    }))

  it.effect("interrupting the grace wait SIGKILLs the survivors at once", () =>
    Effect.gen(function*() {
      const table = scriptedTable()
      table.add(leader(100, 1), "ignore")
      const fiber = yield* Effect.forkChild(terminateTree(table.control, 100, GRACE))
      yield* TestClock.adjust("1200 millis")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(table.log, [
        { at: 0, signal: "SIGTERM", pids: [100] },
        { at: 1200, signal: "SIGKILL", pids: [100] }
      ])
      assert.deepStrictEqual(table.alive(), [])
    }))

  it.effect("a root that is already gone sends no signal", () =>
    Effect.gen(function*() {
      const table = scriptedTable()
      table.add(leader(200, 1), "ignore")
      yield* terminateTree(table.control, 100, GRACE)
      assert.deepStrictEqual(table.log, [])
    }))
})
