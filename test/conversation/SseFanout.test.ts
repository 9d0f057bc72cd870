import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { EventEmitter } from "node:events"
import { makeEventLog } from "../../src/conversation/EventLog.ts"
import { makeSseFanout } from "../../src/conversation/SseFanout.ts"
import { waitUntil } from "../support/waitUntil.ts"

const frame = (id: number, json: string) => `id: ${id}\ndata: ${json}\n\n`
const PING = ": ping\n\n"
const decoder = new TextDecoder()

/**
 * A stand-in for a Node response: it takes `capacity` bytes, then says it is full (`write`
 * returns false and `writableNeedDrain` is set) until `drain()` empties it, as Node's do.
 */
const makeSink = (capacity = Number.POSITIVE_INFINITY) => {
  const events = new EventEmitter()
  const chunks: Array<Uint8Array> = []
  let buffered = 0
  const sink = {
    chunks,
    destroyed: false,
    writableEnded: false,
    writableNeedDrain: false,
    /** Bytes written while the sink already said it was full (a well-behaved writer writes none). */
    writtenWhileFull: 0,
    write(chunk: Uint8Array): boolean {
      if (sink.writableNeedDrain) sink.writtenWhileFull += chunk.byteLength
      chunks.push(chunk)
      buffered += chunk.byteLength
      if (buffered > capacity) sink.writableNeedDrain = true
      return !sink.writableNeedDrain
    },
    on(event: "drain", listener: () => void) {
      events.on(event, listener)
    },
    off(event: "drain", listener: () => void) {
      events.off(event, listener)
    },
    listeners: () => events.listenerCount("drain"),
    drain() {
      buffered = 0
      sink.writableNeedDrain = false
      events.emit("drain")
    },
    text: () => chunks.map((chunk) => decoder.decode(chunk)).join("")
  }
  return sink
}

const jsonOf = (n: number) => `{"n":${n}}`
const framesUpTo = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => frame(from + i, jsonOf(from + i))).join("")

describe("SseFanout", () => {
  it.live("a viewer gets a ping at once, then everything after its number, then each release, in one write per release", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      yield* Effect.forEach([1, 2, 3], (n) => log.append(jsonOf(n)), { discard: true })
      const sink = makeSink()
      yield* Effect.forkChild(fanout.serve(sink, 1))
      yield* waitUntil("the replay was written", Effect.sync(() => sink.chunks.length >= 2 ? true : undefined))
      assert.deepStrictEqual(sink.chunks.map((chunk) => decoder.decode(chunk)), [PING, frame(2, jsonOf(2)) + frame(3, jsonOf(3))])
      const hold = yield* log.hold
      yield* log.append(jsonOf(4))
      yield* log.append(jsonOf(5))
      yield* hold
      yield* waitUntil("the release was written", Effect.sync(() => sink.chunks.length >= 3 ? true : undefined))
      assert.strictEqual(decoder.decode(sink.chunks[2]), frame(4, jsonOf(4)) + frame(5, jsonOf(5)), "released together, written together")
    }))

  it.live("viewers at the same point are written the very same bytes", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      const sinks = [makeSink(), makeSink()]
      yield* Effect.forEach(sinks, (sink) => Effect.forkChild(fanout.serve(sink, 0)), { discard: true })
      yield* log.append(jsonOf(1))
      yield* waitUntil("both got the event", Effect.sync(() => sinks.every((sink) => sink.chunks.length === 2) ? true : undefined))
      assert.strictEqual(sinks[0]?.chunks[1], sinks[1]?.chunks[1])
    }))

  it.live("an HTTP/1.1 chunked response: the first ping goes through it (with the headers), then pre-framed chunks go to its connection, framed once for all viewers; backpressure is the connection's", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      yield* log.append(jsonOf(1))
      const chunked = (capacity?: number) => {
        const socket = makeSink(capacity)
        return { response: Object.assign(makeSink(), { chunkedEncoding: true, socket }), socket }
      }
      const viewers = [chunked(), chunked(), chunked(1)]
      yield* Effect.forEach(viewers, ({ response }) => Effect.forkChild(fanout.serve(response, 0)), { discard: true })
      const framedOne = frame(1, jsonOf(1))
      const asChunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`
      yield* waitUntil("the replay was written", Effect.sync(() => viewers.every(({ socket }) => socket.chunks.length >= 1) ? true : undefined))
      for (const { response, socket } of viewers) {
        assert.strictEqual(response.text(), PING, "only the first ping through the response")
        assert.strictEqual(socket.text(), asChunk(framedOne))
      }
      assert.strictEqual(viewers[0]?.socket.chunks[0], viewers[1]?.socket.chunks[0], "the very same framed bytes")

      yield* log.append(jsonOf(2))
      yield* waitUntil("the live viewers got event 2", Effect.sync(() =>
        viewers.slice(0, 2).every(({ socket }) => socket.chunks.length === 2) ? true : undefined))
      const full = viewers[2]!.socket
      assert.strictEqual(full.chunks.length, 1, "a full connection is written nothing more")
      full.drain()
      yield* waitUntil("the drained viewer caught up", Effect.sync(() => full.chunks.length === 2 ? true : undefined))
      assert.strictEqual(full.text(), asChunk(framedOne) + asChunk(frame(2, jsonOf(2))))
      assert.strictEqual(full.writtenWhileFull, 0)
    }))

  it.live("a ping reaches an idle viewer once; a viewer arriving after it starts with its events, not that ping", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      const sink = makeSink()
      yield* Effect.forkChild(fanout.serve(sink, 0))
      yield* waitUntil("the viewer is attached", Effect.sync(() => sink.chunks.length >= 1 ? true : undefined))
      yield* log.ping
      yield* waitUntil("the keep-alive", Effect.sync(() => sink.chunks.length >= 2 ? true : undefined))
      yield* log.append(jsonOf(1))
      yield* waitUntil("the event", Effect.sync(() => sink.text().includes(frame(1, jsonOf(1))) ? true : undefined))
      assert.strictEqual(sink.text(), PING + PING + frame(1, jsonOf(1)))
      yield* log.ping
      yield* log.append(jsonOf(2))
      const late = makeSink()
      yield* Effect.forkChild(fanout.serve(late, 1))
      yield* waitUntil("the late viewer got event 2", Effect.sync(() => late.text().includes(frame(2, jsonOf(2))) ? true : undefined))
      assert.strictEqual(late.text(), PING + frame(2, jsonOf(2)))
    }))

  it.live("a full viewer is written nothing more until it drains, then catches up exactly; the others are not held up", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      const slow = makeSink(64)
      const fast = makeSink()
      yield* Effect.forkChild(fanout.serve(slow, 0))
      yield* Effect.forkChild(fanout.serve(fast, 0))
      // 3,000 events one release each: the slow viewer fills at once and reads nothing meanwhile.
      for (let n = 1; n <= 3000; n++) yield* log.append(jsonOf(n))
      yield* waitUntil("the fast viewer has everything", Effect.sync(() => fast.text().endsWith(frame(3000, jsonOf(3000))) ? true : undefined))
      assert.strictEqual(fast.text(), PING + framesUpTo(1, 3000))
      assert.isTrue(slow.writableNeedDrain)
      assert.strictEqual(slow.writtenWhileFull, 0, "nothing is queued for a viewer that is full")
      const heldBack = slow.chunks.slice(0, -1).reduce((sum, chunk) => sum + chunk.byteLength, 0)
      assert.isAtMost(heldBack, 64, "what it took beyond its buffer is the one write that filled it")
      // It drains: the backlog goes out a page at a time, each once the previous one drained.
      while (!slow.text().endsWith(frame(3000, jsonOf(3000)))) {
        const before = slow.chunks.length
        slow.drain()
        assert.isAbove(slow.chunks.length, before, "each drain writes more")
      }
      assert.strictEqual(slow.writtenWhileFull, 0)
      assert.strictEqual(slow.text(), PING + framesUpTo(1, 3000), "no gap, no repeat")
    }))

  it.live("a viewer that leaves is written nothing more, and its drain listener is removed", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      const leaving = makeSink()
      const staying = makeSink()
      const fiber = yield* Effect.forkChild(fanout.serve(leaving, 0))
      yield* Effect.forkChild(fanout.serve(staying, 0))
      yield* log.append(jsonOf(1))
      yield* waitUntil("both got event 1", Effect.sync(() => leaving.chunks.length === 2 && staying.chunks.length === 2 ? true : undefined))
      assert.strictEqual(leaving.listeners(), 1)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(leaving.listeners(), 0)
      yield* log.append(jsonOf(2))
      yield* waitUntil("the other one got event 2", Effect.sync(() => staying.chunks.length === 3 ? true : undefined))
      assert.strictEqual(leaving.chunks.length, 2)
    }))

  it.live("closing the log ends every viewer, and one that comes after at once", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      const sinks = [makeSink(), makeSink()]
      const fibers = yield* Effect.forEach(sinks, (sink) => Effect.forkChild(fanout.serve(sink, 0)))
      yield* log.append(jsonOf(1))
      yield* log.close
      yield* Effect.forEach(fibers, Fiber.join).pipe(Effect.timeout("5 seconds"))
      const late = makeSink()
      yield* fanout.serve(late, 0).pipe(Effect.timeout("5 seconds"))
      for (const sink of [...sinks, late]) assert.strictEqual(sink.listeners(), 0)
    }))
})

describe("SseFanout with a crowd of viewers", () => {
  const crowd = 100

  it.live("every viewer gets every release once, when passes are spaced", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      const sinks = Array.from({ length: crowd }, () => makeSink())
      yield* Effect.forEach(sinks, (sink) => Effect.forkChild(fanout.serve(sink, 0)), { discard: true })
      for (let n = 1; n <= 50; n++) {
        yield* log.append(jsonOf(n))
        // Every 10 events, the next ones wait until a pass has written these to everyone.
        if (n % 10 === 0) {
          yield* waitUntil(`all viewers got event ${n}`, Effect.sync(() => sinks.every((sink) => sink.text().endsWith(frame(n, jsonOf(n)))) ? true : undefined), "5 seconds")
        }
      }
      yield* waitUntil("all viewers got the 50 events", Effect.sync(() => sinks.every((sink) => sink.text().endsWith(frame(50, jsonOf(50)))) ? true : undefined), "5 seconds")
      for (const sink of sinks) assert.strictEqual(sink.text(), PING + framesUpTo(1, 50))
    }))

  it.live("viewers leaving while a pass waits do not strand the others", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const fanout = yield* makeSseFanout(log.reader)
      const sinks = Array.from({ length: crowd }, () => makeSink())
      const fibers = yield* Effect.forEach(sinks, (sink) => Effect.forkChild(fanout.serve(sink, 0)))
      yield* log.append(jsonOf(1))
      yield* Effect.forEach(fibers.slice(0, crowd / 2), Fiber.interrupt, { discard: true })
      yield* log.append(jsonOf(2))
      const staying = sinks.slice(crowd / 2)
      yield* waitUntil("the others got both events", Effect.sync(() => staying.every((sink) => sink.text().endsWith(frame(2, jsonOf(2)))) ? true : undefined), "5 seconds")
      for (const sink of staying) assert.strictEqual(sink.text(), PING + framesUpTo(1, 2))
    }))
})
