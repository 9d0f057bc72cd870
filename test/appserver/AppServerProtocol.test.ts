/**
 * AppServerProtocol over an in-memory transport: framing, classification, correlation,
 * timeouts, the end of input, malformed and oversized lines, write serialization.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Queue, Stream } from "effect"
import type { Scope } from "effect"
import * as AppServerProtocol from "../../src/appserver/AppServerProtocol.ts"
import type { Incoming, Transport } from "../../src/appserver/AppServerProtocol.ts"
import { waitUntil } from "../support/waitUntil.ts"

const encoder = new TextEncoder()

/** A peer whose output we feed by hand and whose input we read back. */
const memoryPeer = (write?: (line: string, written: Array<string>) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const input = yield* Queue.unbounded<Uint8Array, Cause.Done>()
    const written: Array<string> = []
    let exitInfoCalls = 0
    const transport: Transport<never> = {
      input: Stream.fromQueue(input),
      write: (line) => write === undefined ? Effect.sync(() => void written.push(line)) : write(line, written),
      exitInfo: Effect.sync(() => {
        exitInfoCalls++
        return { exitCode: 3, stderrTail: "codex: fatal" }
      })
    }
    return {
      transport,
      feed: (text: string | Uint8Array) => Queue.offer(input, typeof text === "string" ? encoder.encode(text) : text),
      end: Queue.end(input),
      written: () => written.join("").split("\n").filter((line) => line !== "").map((line): unknown => JSON.parse(line)),
      exitInfoCalls: () => exitInfoCalls
    }
  })

/** Subscribes, starts the reader and collects everything that arrives. */
const collect = Effect.fnUntraced(function*(protocol: AppServerProtocol.AppServerProtocol) {
  const seen: Array<Incoming> = []
  const stream = yield* protocol.subscribe
  yield* stream.pipe(Stream.runForEach((item) => Effect.sync(() => void seen.push(item))), Effect.forkScoped)
  yield* protocol.start
  return seen
})

const connect = (options?: AppServerProtocol.ProtocolOptions, write?: (line: string, written: Array<string>) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const peer = yield* memoryPeer(write)
    const protocol = yield* AppServerProtocol.make(peer.transport, options)
    const seen = yield* collect(protocol)
    return { peer, protocol, seen }
  })

const live = <A, E>(name: string, body: () => Effect.Effect<A, E, Scope.Scope>) => it.live(name, () => Effect.scoped(body()))

describe("AppServerProtocol", () => {
  live("classifies a server request with id 0 and answers it by value", () =>
    Effect.gen(function*() {
      const { peer, protocol, seen } = yield* connect()
      yield* peer.feed(`{"id":0,"method":"item/commandExecution/requestApproval","params":{"itemId":"x"}}\n`)
      const request = yield* waitUntil("the request arrives", Effect.sync(() => seen.find((item) => item._tag === "ServerRequest")))
      assert.strictEqual(request._tag === "ServerRequest" ? request.id : undefined, 0)
      yield* protocol.respond(0, { decision: "accept" })
      assert.deepStrictEqual(peer.written(), [{ id: 0, result: { decision: "accept" } }])
    }))

  live("classifies notifications, responses and other objects; tolerates an incoming jsonrpc member", () =>
    Effect.gen(function*() {
      const { peer, seen } = yield* connect()
      yield* peer.feed(`{"jsonrpc":"2.0","method":"turn/started","params":{"threadId":"t"}}\n`)
      yield* peer.feed(`{"method":"warning","id":null}\n{"id":42,"result":{}}\n{"hello":1}\n\n   \n`)
      yield* waitUntil("four items", Effect.sync(() => seen.length === 4 ? true : undefined))
      assert.deepStrictEqual(seen.map((item) => item._tag), ["Notification", "Notification", "Response", "Other"])
      const response = seen[2]
      assert.strictEqual(response?._tag === "Response" ? response.method : "wrong", undefined)
    }))

  live("correlates responses that arrive out of order, and writes no jsonrpc member", () =>
    Effect.gen(function*() {
      const { peer, protocol, seen } = yield* connect()
      const first = yield* Effect.forkChild(protocol.request("model/list", {}))
      const second = yield* Effect.forkChild(protocol.request("account/read", { refreshToken: false }))
      yield* waitUntil("both requests are written", Effect.sync(() => peer.written().length === 2 ? true : undefined))
      assert.deepStrictEqual(peer.written(), [
        { id: 1, method: "model/list", params: {} },
        { id: 2, method: "account/read", params: { refreshToken: false } }
      ])
      yield* peer.feed(`{"id":2,"result":{"account":null}}\n{"id":1,"result":{"data":[]}}\n`)
      assert.deepStrictEqual(yield* Fiber.join(first), { data: [] })
      assert.deepStrictEqual(yield* Fiber.join(second), { account: null })
      const methods = () => seen.flatMap((item) => item._tag === "Response" ? [item.method] : [])
      yield* waitUntil("both responses are published", Effect.sync(() => methods().length === 2 ? true : undefined))
      assert.deepStrictEqual(methods(), ["account/read", "model/list"])
    }))

  live("writes a notification without params exactly", () =>
    Effect.gen(function*() {
      const { peer, protocol } = yield* connect()
      yield* protocol.notify("initialized")
      assert.deepStrictEqual(peer.written(), [{ method: "initialized" }])
    }))

  live("fails a silent request with a typed timeout and forgets it", () =>
    Effect.gen(function*() {
      const { peer, protocol, seen } = yield* connect({ requestTimeout: "5 seconds" })
      const error = yield* Effect.flip(protocol.request("turn/interrupt", { threadId: "t", turnId: "u" }, { timeout: "50 millis" }))
      assert.strictEqual(error._tag, "AppServerRequestTimedOut")
      if (error._tag === "AppServerRequestTimedOut") {
        assert.deepStrictEqual([error.method, error.requestId, error.timeoutMs], ["turn/interrupt", 1, 50])
        assert.include(error.message, "turn/interrupt")
      }
      yield* peer.feed(`{"id":1,"result":{}}\n`)
      const late = yield* waitUntil("the late response", Effect.sync(() => seen.find((item) => item._tag === "Response")))
      assert.strictEqual(late._tag === "Response" ? late.method : "wrong", undefined)
    }))

  live("fails on an error response with the code and message", () =>
    Effect.gen(function*() {
      const { peer, protocol } = yield* connect()
      const fiber = yield* Effect.forkChild(protocol.request("turn/interrupt", {}))
      yield* waitUntil("the request is written", Effect.sync(() => peer.written().length === 1 ? true : undefined))
      yield* peer.feed(`{"error":{"code":-32600,"message":"no active turn to interrupt"},"id":1}\n`)
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "AppServerRequestFailed")
      if (error._tag === "AppServerRequestFailed") {
        assert.deepStrictEqual([error.method, error.requestId, error.code, error.errorMessage], [
          "turn/interrupt",
          1,
          -32600,
          "no active turn to interrupt"
        ])
      }
    }))

  live("fails every pending request once with AppServerExited when input ends, and later calls at once", () =>
    Effect.gen(function*() {
      const { peer, protocol, seen } = yield* connect()
      const first = yield* Effect.forkChild(Effect.flip(protocol.request("initialize", {})))
      const second = yield* Effect.forkChild(Effect.flip(protocol.request("model/list", {})))
      yield* waitUntil("both requests are written", Effect.sync(() => peer.written().length === 2 ? true : undefined))
      yield* peer.end
      const errors = [yield* Fiber.join(first), yield* Fiber.join(second)]
      for (const [index, error] of errors.entries()) {
        assert.strictEqual(error._tag, "AppServerExited")
        if (error._tag === "AppServerExited") {
          assert.strictEqual(error.exitCode, 3)
          assert.strictEqual(error.stderrTail, "codex: fatal")
          assert.strictEqual(error.requestId, index + 1)
          assert.include(error.message, "exit code 3")
        }
      }
      const later = yield* Effect.flip(protocol.request("thread/start", {}))
      assert.strictEqual(later._tag, "AppServerExited")
      const notified = yield* Effect.flip(protocol.notify("initialized"))
      assert.strictEqual(notified._tag, "AppServerExited")
      assert.strictEqual(peer.exitInfoCalls(), 1)
      assert.strictEqual((yield* protocol.ended).exitCode, 3)
      yield* waitUntil("the end is published", Effect.sync(() => seen.find((item) => item._tag === "End")))
      assert.strictEqual(seen.filter((item) => item._tag === "End").length, 1)
    }))

  live("skips malformed lines, surfacing only a bounded excerpt", () =>
    Effect.gen(function*() {
      const { peer, seen } = yield* connect({ excerptChars: 40 })
      const secret = `not json ${"s".repeat(10_000)} sk-secret-token`
      yield* peer.feed(`${secret}\n[1,2]\n{"method":"turn/started","params":{}}\n`)
      yield* waitUntil("three items", Effect.sync(() => seen.length === 3 ? true : undefined))
      const [garbage, array, notification] = seen
      assert.strictEqual(garbage?._tag, "Unparseable")
      if (garbage?._tag === "Unparseable") {
        assert.isAtMost(garbage.excerpt.length, 41)
        assert.notInclude(garbage.excerpt, "sk-secret-token")
        assert.strictEqual(garbage.bytes, secret.length)
      }
      assert.strictEqual(array?._tag, "Unparseable")
      assert.strictEqual(notification?._tag, "Notification")
    }))

  live("decodes UTF-8 split across chunks and a final line without a newline", () =>
    Effect.gen(function*() {
      const { peer, seen } = yield* connect()
      const bytes = encoder.encode(`{"method":"note","params":{"text":"ünïcödé ✓"}}\n{"method":"last"}`)
      for (let offset = 0; offset < bytes.length; offset += 3) yield* peer.feed(bytes.subarray(offset, offset + 3))
      yield* peer.end
      yield* waitUntil("the end", Effect.sync(() => seen.find((item) => item._tag === "End")))
      const notes = seen.flatMap((item) => item._tag === "Notification" ? [item.raw] : [])
      assert.deepStrictEqual(notes, [{ method: "note", params: { text: "ünïcödé ✓" } }, { method: "last" }])
    }))

  live("drops an oversized line without holding it, then carries on", () =>
    Effect.gen(function*() {
      const { peer, seen } = yield* connect({ maxLineBytes: 1024 })
      const chunk = encoder.encode("y".repeat(1000))
      for (let index = 0; index < 50; index++) yield* peer.feed(chunk)
      yield* peer.feed(`\n{"method":"after"}\n`)
      yield* waitUntil("two items", Effect.sync(() => seen.length === 2 ? true : undefined))
      const [dropped, after] = seen
      assert.strictEqual(dropped?._tag, "Unparseable")
      if (dropped?._tag === "Unparseable") {
        assert.isTrue(dropped.oversized)
        assert.strictEqual(dropped.bytes, 50_000)
        assert.isAtMost(dropped.excerpt.length, 201)
      }
      assert.strictEqual(after?._tag, "Notification")
    }))

  live("keeps memory bounded while splitting a huge line", () =>
    Effect.gen(function*() {
      const mib = 1024 * 1024
      let peak = 0
      // 256 fresh 1 MiB chunks with no newline: a splitter that kept them would hold 256 MiB.
      const frames = yield* Stream.range(1, 256).pipe(
        Stream.rechunk(1),
        Stream.map((index) => {
          if (index % 16 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers)
          return new Uint8Array(mib).fill(0x61)
        }),
        AppServerProtocol.splitFrames(4 * mib),
        Stream.runCollect
      )
      assert.strictEqual(frames.length, 1)
      const [frame] = frames
      assert.strictEqual(frame?._tag, "Oversized")
      if (frame?._tag === "Oversized") {
        assert.strictEqual(frame.bytes, 256 * mib)
        assert.isAtMost(frame.prefix.length, 1024)
      }
      assert.isBelow(peak, 160 * mib)
    }))

  live("serializes writes so lines never interleave", () =>
    Effect.gen(function*() {
      // A transport that writes each line in two pieces with a yield between them.
      const slowWrite = (line: string, written: Array<string>) =>
        Effect.sync(() => void written.push(line.slice(0, 5))).pipe(
          Effect.andThen(Effect.yieldNow),
          Effect.andThen(Effect.sync(() => void written.push(line.slice(5))))
        )
      const { peer, protocol } = yield* connect({}, slowWrite)
      yield* Effect.forEach(
        Array.from({ length: 50 }, (_, index) => index),
        (index) => protocol.notify("note", { index, padding: "p".repeat(index) }),
        { concurrency: "unbounded" }
      )
      const messages = peer.written()
      assert.strictEqual(messages.length, 50)
    }))
})
