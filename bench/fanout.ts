/**
 * fan-out: one ConversationListener fed by a fake ConversationHandle at a steady event rate,
 * followed by 10 and then 100 SSE viewers in a worker thread (see fanoutViewers.ts) that reconnect with
 * `Last-Event-ID` about once a second. Reports delivery latency and events lost or repeated.
 *
 * What the latency includes: each event is stamped (wall clock) when the fake conversation
 * emits it on the listener's thread, and read back when the viewers' thread parses the frame.
 * So it is the listener's work, the loopback socket, and the viewers' own event loop. The viewers
 * run in a worker thread: their parsing never runs on the listener's event loop, but it shares
 * the process and the machine's cores. The notes give both threads' loop delay, utilization and
 * CPU time, so a row can be read as the listener's share or the viewers'.
 */
import { Effect, Redacted } from "effect"
import type { Scope } from "effect"
import { monitorEventLoopDelay, performance } from "node:perf_hooks"
import { Worker } from "node:worker_threads"
import type { ConversationHandle } from "../src/appserver/ConversationHandle.ts"
import { ConversationListener } from "../src/conversation/ConversationListener.ts"
import type { ListenerEndpoint } from "../src/conversation/ConversationListener.ts"
import { makeFakeConversation } from "../test/conversation/harness.ts"
import type { BenchContext, BenchResult } from "./context.ts"
import type { Row } from "./harness.ts"
import { now, quantile } from "./harness.ts"

/** What the viewer worker is started with. */
export interface FanoutSettings {
  readonly url: string
  readonly authorization: string
  readonly viewers: number
  readonly reconnectEveryMs: number
}

/** What the viewer worker reports at the end. */
export interface ViewerReport {
  readonly type: "result"
  /** Milliseconds from the stamp in each event to its arrival, over every viewer. */
  readonly latencies: Float64Array
  /** The latencies of events emitted while their viewer was reconnecting (a subset of `latencies`). */
  readonly resumedLatencies: Float64Array
  /** Milliseconds from dropping a connection to the new response's arrival, per reconnect. */
  readonly reconnectGaps: Float64Array
  readonly lost: number
  readonly duplicates: number
  readonly reconnects: number
  readonly delivered: number
  /** The viewers' own event loop: p99 delay (ms) and utilization (0..1) over the run. */
  readonly loopDelayP99: number
  readonly utilization: number
  /** CPU time of the viewers' thread over the run, in cores (0..1); unlike utilization, not inflated by waiting for a core. */
  readonly cpu: number
}

const RECONNECT_EVERY_MS = 1000

/** The two rows: the usual 10 viewers, and 100 (a crowd, where per-viewer costs show). */
export const runFanout = (ctx: BenchContext) =>
  Effect.gen(function*() {
    const listener = yield* ConversationListener
    const serve: ServeListener = (handle) => listener.serve(handle)
    const few = yield* measureFanout(ctx, ctx.counts.fanoutViewers, serve)
    const many = yield* measureFanout(ctx, ctx.counts.fanoutManyViewers, serve)
    const result: BenchResult = {
      rows: [
        fanoutRow("fanout", few, ctx, 3),
        fanoutRow("fanout/100", many, ctx, 10)
      ],
      // The runs without their millions of latencies: the table has their summary.
      data: { few: { ...few, latencies: undefined }, many: { ...many, latencies: undefined } }
    }
    return result
  })

/** Starts the listener under test (bench/fanoutAB.ts passes an older build's). */
export type ServeListener = (handle: ConversationHandle) => Effect.Effect<ListenerEndpoint, unknown, Scope.Scope>

export interface FanoutRun {
  readonly viewers: number
  readonly total: number
  readonly emitSeconds: number
  /** Every delivery's latency (ms), kept out of the heap (see harness.Samples). */
  readonly latencies: Float64Array
  readonly p99: number
  /** Diagnostics: p99 over the events delivered on a live stream only, how many deliveries waited for a reconnect, and the reconnects' duration. */
  readonly liveP99: number
  readonly resumed: number
  readonly reconnectGap: { readonly p50: number; readonly p99: number }
  readonly lost: number
  readonly duplicates: number
  readonly reconnects: number
  readonly delivered: number
  /** `cpu`: the thread's CPU time over the emission, in cores; the loop's utilization also counts time spent waiting for a core. */
  readonly listenerLoop: { readonly delayP99: number; readonly utilization: number; readonly cpu: number }
  readonly viewerLoop: { readonly delayP99: number; readonly utilization: number; readonly cpu: number }
}

const fanoutRow = (name: "fanout" | "fanout/100", run: FanoutRun, ctx: BenchContext, goalMs: number): Row => ({
  name,
  what: `listener → ${run.viewers} SSE viewers, ${ctx.counts.fanoutRate} events/s for ${ctx.counts.fanoutSeconds} s, reconnects with Last-Event-ID`,
  unit: "ms",
  samples: run.latencies,
  goal: `p99 ≤ ${goalMs} ms, 0 lost, 0 dup`,
  met: run.p99 <= goalMs && run.lost === 0 && run.duplicates === 0,
  notes: `p99 ${run.p99.toFixed(2)} ms; lost ${run.lost}, dup ${run.duplicates}, ` +
    `${run.reconnects} reconnects, ${run.delivered} deliveries of ${run.total * run.viewers} expected; ` +
    `${run.resumed} deliveries waited for a reconnect (reconnect p50 ${run.reconnectGap.p50.toFixed(1)} ms, p99 ${run.reconnectGap.p99.toFixed(1)} ms), ` +
    `p99 of the others ${run.liveP99.toFixed(2)} ms; ` +
    `event loop p99 delay / utilization / thread CPU: listener ${run.listenerLoop.delayP99.toFixed(1)} ms / ${(run.listenerLoop.utilization * 100).toFixed(0)}% / ${(run.listenerLoop.cpu * 100).toFixed(0)}%, ` +
    `viewers (a worker thread) ${run.viewerLoop.delayP99.toFixed(1)} ms / ${(run.viewerLoop.utilization * 100).toFixed(0)}% / ${(run.viewerLoop.cpu * 100).toFixed(0)}%`
})

/** One listener, `viewers` SSE viewers, the configured rate and duration. */
export const measureFanout = (ctx: BenchContext, viewers: number, serve: ServeListener) =>
  Effect.gen(function*() {
    const { fanoutRate: rate, fanoutSeconds: seconds } = ctx.counts
    const fake = yield* makeFakeConversation()
    const endpoint = yield* serve(fake.handle)
    const settings: FanoutSettings = {
      url: endpoint.url,
      authorization: `Basic ${Buffer.from(`optio:${Redacted.value(endpoint.password)}`).toString("base64")}`,
      viewers,
      reconnectEveryMs: RECONNECT_EVERY_MS
    }
    const worker = yield* Effect.acquireRelease(
      Effect.sync(() => new Worker(new URL("./fanoutViewers.ts", import.meta.url), { workerData: settings })),
      (started) => Effect.promise(() => started.terminate())
    )
    yield* Effect.promise(() => nextMessage(worker, (message) => hasType(message, "ready")))
    const total = Math.round(rate * seconds)
    const loopDelay = monitorEventLoopDelay({ resolution: 1 })
    loopDelay.enable()
    const utilizationAtStart = performance.eventLoopUtilization()
    const cpuAtStart = process.threadCpuUsage()
    const began = now()
    let emitted = 0
    while (emitted < total) {
      // Emit what is due by now, stamped at the moment of emission; then yield for about 1 ms.
      const due = Math.min(total, Math.floor(((now() - began) * rate) / 1000) + 1)
      while (emitted < due) {
        emitted += 1
        yield* fake.emit({ method: "item/agentMessage/delta", params: { delta: "x", n: emitted, t: performance.timeOrigin + performance.now() } })
      }
      yield* Effect.sleep("1 millis")
    }
    const emitSeconds = (now() - began) / 1000
    loopDelay.disable()
    const cpu = process.threadCpuUsage(cpuAtStart)
    const listenerLoop = {
      delayP99: loopDelay.percentile(99) / 1e6,
      utilization: performance.eventLoopUtilization(utilizationAtStart).utilization,
      cpu: (cpu.user + cpu.system) / 1e6 / emitSeconds
    }
    worker.postMessage({ total })
    const report = yield* Effect.promise(() => nextMessage(worker, isReport))
    if (!isReport(report)) return yield* Effect.die(new Error("the viewer worker sent no report"))
    ctx.log(`fan-out: ${total} events in ${emitSeconds.toFixed(1)} s to ${viewers} viewers, ${report.reconnects} reconnects`)
    const latencies = report.latencies
    const gaps = report.reconnectGaps
    const run: FanoutRun = {
      viewers, total, emitSeconds, latencies, p99: quantile(latencies, 0.99),
      liveP99: liveQuantile(latencies, report.resumedLatencies, 0.99),
      resumed: report.resumedLatencies.length,
      reconnectGap: { p50: quantile(gaps, 0.5), p99: quantile(gaps, 0.99) },
      lost: report.lost, duplicates: report.duplicates,
      reconnects: report.reconnects, delivered: report.delivered, listenerLoop,
      viewerLoop: { delayP99: report.loopDelayP99, utilization: report.utilization, cpu: report.cpu }
    }
    return run
  }).pipe(Effect.scoped)

/** The quantile of `all` once the samples in `excluded` (a sub-multiset of it) are taken out. */
const liveQuantile = (all: Float64Array, excluded: Float64Array, q: number): number => {
  const left = new Map<number, number>()
  for (const value of excluded) left.set(value, (left.get(value) ?? 0) + 1)
  const live = all.filter((value) => {
    const count = left.get(value) ?? 0
    if (count === 0) return true
    left.set(value, count - 1)
    return false
  })
  return quantile(live, q)
}

const hasType = (message: unknown, type: string): boolean =>
  typeof message === "object" && message !== null && "type" in message && message.type === type

const isReport = (message: unknown): message is ViewerReport =>
  hasType(message, "result") && typeof message === "object" && message !== null && "latencies" in message &&
  message.latencies instanceof Float64Array && "resumedLatencies" in message && message.resumedLatencies instanceof Float64Array &&
  "reconnectGaps" in message && message.reconnectGaps instanceof Float64Array

/** The worker's next message that `accept` takes; fails if the worker dies first. */
const nextMessage = (worker: Worker, accept: (message: unknown) => boolean) =>
  new Promise<unknown>((resolve, reject) => {
    const onMessage = (message: unknown) => {
      if (!accept(message)) return
      worker.off("message", onMessage)
      resolve(message)
    }
    worker.on("message", onMessage)
    worker.once("error", reject)
    worker.once("exit", (code) => reject(new Error(`the viewer worker exited with ${code}`)))
  })
