/**
 * cancel: start a task, wait until it is live (upstream published), then interrupt the session
 * fiber, and time until no process mentions the task (its workdir, and for the TUI its tmux
 * socket) in /proc. Conversation and TUI cycles alternate. A process still there 3 s after the
 * interrupt returned is an orphan: counted, reported and killed.
 */
import { Effect, Fiber } from "effect"
import { ScriptedModelServer } from "../src/modelserver/ScriptedModelServer.ts"
import { taskPaths } from "../src/workdir/TaskPaths.ts"
import type { BenchContext, BenchResult } from "./context.ts"
import { now, quantile } from "./harness.ts"
import type { Row } from "./harness.ts"
import { awaitPublished, benchTaskRoot, startSession } from "./library.ts"
import { killAll, processesMentioning } from "./system.ts"
import type { ProcessSeen } from "./system.ts"

const ORPHAN_AFTER_MS = 3000
const MODES = ["conversation", "tui"] as const
type Mode = typeof MODES[number]

interface Cycle {
  /** Interrupt → every task process gone (or the orphan deadline). */
  readonly gone: number
  /** Interrupt → the session fiber finished its finalizers. */
  readonly interrupted: number
  /** How long stopping codex took inside that (conversation close, or tmux teardown). */
  readonly stopCodex: number
  /** Task processes alive when the interrupt returned. */
  readonly leftAtReturn: number
  readonly orphans: ReadonlyArray<ProcessSeen>
}

export const runCancel = (ctx: BenchContext) =>
  Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([], { exhaustedText: "pong" })
    const cycles: Record<Mode, Array<Cycle>> = { conversation: [], tui: [] }
    const total = ctx.counts.warmup + ctx.counts.cancelCycles
    for (let index = 0; index < total; index++) {
      for (const mode of MODES) {
        const cycle = yield* cancelCycle(ctx, mode, server.baseUrl, index)
        if (index >= ctx.counts.warmup) cycles[mode].push(cycle)
      }
      if ((index + 1) % 10 === 0 || index + 1 === total) ctx.log(`cancel cycle ${index + 1}/${total}`)
    }
    const result: BenchResult = {
      rows: MODES.map((mode) => rowOf(mode, cycles[mode])),
      data: {
        conversation: cycles.conversation.map(({ orphans, ...rest }) => ({ ...rest, orphans: orphans.map((o) => o.cmdline) })),
        tui: cycles.tui.map(({ orphans, ...rest }) => ({ ...rest, orphans: orphans.map((o) => o.cmdline) }))
      }
    }
    return result
  }).pipe(Effect.scoped)

const rowOf = (mode: Mode, cycles: ReadonlyArray<Cycle>): Row => {
  const gone = cycles.map((cycle) => cycle.gone)
  const orphans = cycles.reduce((sum, cycle) => sum + cycle.orphans.length, 0)
  const lingering = cycles.filter((cycle) => cycle.leftAtReturn > 0).length
  const p95 = quantile(gone, 0.95)
  const names = [...new Set(cycles.flatMap((cycle) => cycle.orphans.map((o) => o.cmdline.split(" ")[0] ?? "?")))]
  return {
    name: mode === "tui" ? "cancel/tui" : "cancel/conversation",
    what: `${mode === "tui" ? "TUI" : "conversation"} task: interrupt → every task process gone`,
    unit: "ms",
    samples: gone,
    goal: "p95 ≤ 150 ms, 0 orphans",
    met: p95 <= 150 && orphans === 0,
    notes: `orphans ${orphans}${names.length === 0 ? "" : ` (${names.join(", ")})`}; interrupt returns after ` +
      `${quantile(cycles.map((cycle) => cycle.interrupted), 0.5).toFixed(0)} ms (median), of which stopping codex ` +
      `(${mode === "tui" ? "tmux teardown" : "conversation close"}) ${quantile(cycles.map((cycle) => cycle.stopCodex), 0.5).toFixed(0)} ms; ` +
      `processes left then in ${lingering}/${cycles.length} cycles`
  }
}

const cancelCycle = (ctx: BenchContext, mode: Mode, baseUrl: string, index: number) =>
  Effect.gen(function*() {
    const workdir = ctx.space.fresh(`cancel-${mode}`)
    const processId = `bench-cancel-${mode}-${index}`
    // The session's own task root, so the tmux socket needle is its own.
    const paths = yield* taskPaths({ processId, taskRoot: benchTaskRoot(workdir), workdir })
    const needles = mode === "tui" ? [workdir, paths.tmuxSocket] : [workdir]
    const session = yield* startSession({ mode, processId, workdir, baseUrl })
    yield* awaitPublished(session)
    const t0 = now()
    yield* Fiber.interrupt(session.fiber)
    const interrupted = now() - t0
    let seen = processesMentioning(needles)
    const leftAtReturn = seen.length
    while (seen.length > 0 && now() - t0 - interrupted < ORPHAN_AFTER_MS) {
      yield* Effect.sleep("2 millis")
      seen = processesMentioning(needles)
    }
    const gone = now() - t0
    killAll(seen.map((process) => process.pid))
    const stopSpan = session.spans.find((span) => span.name === (mode === "tui" ? "TmuxSession.teardown" : "CodexConversation.close"))
    const stopCodex = stopSpan === undefined ? Number.NaN : stopSpan.end - stopSpan.start
    const cycle: Cycle = { gone, interrupted, stopCodex, leftAtReturn, orphans: seen }
    return cycle
  }).pipe(Effect.scoped)
