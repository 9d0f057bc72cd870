/**
 * The fan-out benchmark's SSE viewers, run in a worker thread so that parsing 10 streams does not
 * share an event loop with the listener under test. Each viewer follows `/events`, measures every
 * event's delivery latency (the wall-clock stamp in the event vs its arrival), checks ids for gaps
 * and repeats, and drops its connection periodically to reconnect with `Last-Event-ID`.
 */
import type { ClientRequest } from "node:http"
import { request } from "node:http"
import { monitorEventLoopDelay, performance } from "node:perf_hooks"
import { parentPort, workerData } from "node:worker_threads"
import type { FanoutSettings, ViewerReport } from "./fanout.ts"

const settings: FanoutSettings = workerData
const wall = () => performance.timeOrigin + performance.now()

interface Viewer {
  readonly index: number
  last: number
  lost: number
  duplicates: number
  reconnects: number
  generation: number
  request: ClientRequest | undefined
  /** When the current stream's response arrived: events stamped before it waited for a reconnect. */
  openedAt: number
  /** When this viewer last dropped its connection to reconnect. */
  droppedAt: number
}

/**
 * Samples kept in fixed blocks: a plain array of 2,000,000 numbers is copied whole each time it
 * grows, and those copies (and the collections they cause) stalled this thread mid-run, which
 * showed up as latency of the listener.
 */
const BLOCK = 65536
class Samples {
  private readonly blocks: Array<Float64Array> = []
  private used = BLOCK
  length = 0
  push(value: number) {
    if (this.used === BLOCK) {
      this.blocks.push(new Float64Array(BLOCK))
      this.used = 0
    }
    const block = this.blocks[this.blocks.length - 1]
    if (block !== undefined) block[this.used++] = value
    this.length += 1
  }
  toArray(): Float64Array {
    const all = new Float64Array(this.length)
    this.blocks.forEach((block, index) => all.set(block.subarray(0, Math.min(BLOCK, this.length - index * BLOCK)), index * BLOCK))
    return all
  }
}

const latencies = new Samples()
// Diagnostics beside the row's figure (which counts every delivery): deliveries of events emitted
// while the viewer had no open stream, and how long reconnecting took (drop → response).
const resumedLatencies = new Samples()
const reconnectGaps: Array<number> = []
const loopDelay = monitorEventLoopDelay({ resolution: 1 })
loopDelay.enable()
const utilizationAtStart = performance.eventLoopUtilization()
const cpuAtStart = process.threadCpuUsage()
const startedAt = performance.now()
const viewers: Array<Viewer> = Array.from({ length: settings.viewers }, (_, index) => ({
  index, last: 0, lost: 0, duplicates: 0, reconnects: 0, generation: 0, request: undefined, openedAt: 0, droppedAt: 0
}))

// Only the id and the stamp are read, by position: with 100 viewers this thread parses 200,000
// frames a second, and a full JSON.parse of each made the viewers, not the listener, the limit.
const onFrame = (viewer: Viewer, frame: string, arrived: number) => {
  if (!frame.startsWith("id: ")) return
  const idEnd = frame.indexOf("\n")
  const id = Number(frame.slice(4, idEnd))
  const dataAt = frame.indexOf("data: ", idEnd)
  if (!Number.isInteger(id) || dataAt < 0) return
  const stampAt = frame.indexOf("\"t\":", dataAt)
  const stamp = stampAt < 0 ? Number.NaN : Number.parseFloat(frame.slice(stampAt + 4))
  if (Number.isFinite(stamp)) {
    latencies.push(arrived - stamp)
    if (stamp < viewer.openedAt) resumedLatencies.push(arrived - stamp)
  }
  if (id <= viewer.last) {
    viewer.duplicates += 1
    return
  }
  viewer.lost += id - viewer.last - 1
  viewer.last = id
}

const connect = (viewer: Viewer, onOpen: () => void) => {
  const generation = ++viewer.generation
  const headers: Record<string, string> = { authorization: settings.authorization, accept: "text/event-stream" }
  if (viewer.last > 0) headers["last-event-id"] = String(viewer.last)
  const req = request(`${settings.url}/events`, { headers, agent: false }, (response) => {
    response.setEncoding("utf8")
    viewer.openedAt = wall()
    if (viewer.droppedAt > 0) reconnectGaps.push(viewer.openedAt - viewer.droppedAt)
    let buffer = ""
    onOpen()
    response.on("data", (chunk: string) => {
      if (generation !== viewer.generation) return
      buffer += chunk
      const arrived = wall()
      let start = 0
      let end = buffer.indexOf("\n\n")
      while (end >= 0) {
        onFrame(viewer, buffer.slice(start, end), arrived)
        start = end + 2
        end = buffer.indexOf("\n\n", start)
      }
      buffer = buffer.slice(start)
    })
    response.on("error", () => {})
  })
  req.on("error", () => {})
  req.end()
  viewer.request = req
}

const reconnect = (viewer: Viewer) => {
  viewer.droppedAt = wall()
  viewer.request?.destroy()
  viewer.reconnects += 1
  connect(viewer, () => {})
}

let opened = 0
const timers: Array<NodeJS.Timeout> = []
for (const viewer of viewers) {
  connect(viewer, () => {
    opened += 1
    if (opened === viewers.length) parentPort?.postMessage({ type: "ready" })
  })
  // Staggered, so the viewers do not all reconnect at the same moment.
  const offset = (settings.reconnectEveryMs * viewer.index) / viewers.length
  timers.push(setTimeout(() => {
    reconnect(viewer)
    timers.push(setInterval(() => reconnect(viewer), settings.reconnectEveryMs))
  }, settings.reconnectEveryMs / 2 + offset))
}

const cpuCores = () => {
  const used = process.threadCpuUsage(cpuAtStart)
  return (used.user + used.system) / 1000 / (performance.now() - startedAt)
}

parentPort?.on("message", (message: unknown) => {
  if (typeof message !== "object" || message === null || !("total" in message) || typeof message.total !== "number") return
  const total = message.total
  for (const timer of timers) clearTimeout(timer)
  const deadline = Date.now() + 5000
  const finish = () => {
    if (viewers.some((viewer) => viewer.last < total) && Date.now() < deadline) {
      setTimeout(finish, 10)
      return
    }
    for (const viewer of viewers) viewer.request?.destroy()
    const report: ViewerReport = {
      type: "result",
      latencies: latencies.toArray(),
      resumedLatencies: resumedLatencies.toArray(),
      reconnectGaps: Float64Array.from(reconnectGaps),
      lost: viewers.reduce((sum, viewer) => sum + viewer.lost + Math.max(0, total - viewer.last), 0),
      duplicates: viewers.reduce((sum, viewer) => sum + viewer.duplicates, 0),
      reconnects: viewers.reduce((sum, viewer) => sum + viewer.reconnects, 0),
      delivered: latencies.length,
      loopDelayP99: loopDelay.percentile(99) / 1e6,
      utilization: performance.eventLoopUtilization(utilizationAtStart).utilization,
      cpu: cpuCores()
    }
    parentPort?.postMessage(report)
  }
  finish()
})
