import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Ref, Stream } from "effect"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { makeEventLog } from "../../src/conversation/EventLog.ts"
import type { EventLog } from "../../src/conversation/EventLog.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { makeFakeConversation } from "./harness.ts"

const frame = (id: number, json: string) => `id: ${id}\ndata: ${json}\n\n`
const decoder = new TextDecoder()
/** What a viewer following from `after` receives, as text. */
const followText = (log: EventLog, after: number): Stream.Stream<string> => log.follow(after).pipe(Stream.map((bytes) => decoder.decode(bytes)))

describe("EventLog", () => {
  it.effect("numbers events from 1 and replays everything after the given number (one string per release), then follows", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      assert.deepStrictEqual(
        yield* Effect.forEach(["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"], log.append),
        [1, 2, 3]
      )
      assert.strictEqual(yield* log.size, 3)
      const replay = yield* Stream.runCollect(Stream.take(followText(log, 1), 1))
      assert.deepStrictEqual(replay, [frame(2, "{\"a\":2}") + frame(3, "{\"a\":3}")], "released together, sent together")
      const tail = yield* followText(log, 1).pipe(
        Stream.takeUntil((text) => text.includes(frame(4, "{\"a\":4}"))),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* log.append("{\"a\":4}")
      assert.strictEqual((yield* Fiber.join(tail)).join(""), frame(2, "{\"a\":2}") + frame(3, "{\"a\":3}") + frame(4, "{\"a\":4}"))
      assert.deepStrictEqual(
        yield* Stream.runCollect(Stream.take(followText(log, 0), 1)),
        [frame(1, "{\"a\":1}") + frame(2, "{\"a\":2}") + frame(3, "{\"a\":3}") + frame(4, "{\"a\":4}")]
      )
    }))

  it.live("a hold delays delivery of later events until every hold is released", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      yield* log.append("1")
      const first = yield* log.hold
      const second = yield* log.hold
      yield* log.append("2")
      const follower = yield* followText(log, 0).pipe(
        Stream.take(2),
        Stream.runForEach((f) => Ref.update(seen, (all) => [...all, f])),
        Effect.forkChild
      )
      yield* first
      yield* first
      yield* waitUntil("the event before the holds arrived", Effect.map(Ref.get(seen), (all) => all.length > 0 ? all : undefined))
      assert.deepStrictEqual(yield* Ref.get(seen), [frame(1, "1")], "event 2 is still held by the second hold")
      yield* second
      yield* Fiber.join(follower)
      assert.deepStrictEqual(yield* Ref.get(seen), [frame(1, "1"), frame(2, "2")])
    }))
})

describe("EventLog sharing and keep-alive", () => {
  it.effect("followers at the same point get the very same bytes for a release", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const first = yield* log.follow(0).pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
      const second = yield* log.follow(0).pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
      yield* Effect.yieldNow
      const hold = yield* log.hold
      yield* log.append("1")
      yield* log.append("2")
      yield* hold
      const [a] = yield* Fiber.join(first)
      const [b] = yield* Fiber.join(second)
      assert.strictEqual(decoder.decode(a), frame(1, "1") + frame(2, "2"))
      assert.strictEqual(a, b, "one chunk built once, sent to both")
    }))

  it.effect("a ping reaches a quiet follower once, not one that has events to send", () =>
    Effect.gen(function*() {
      const log = yield* makeEventLog
      const quiet = yield* followText(log, 0).pipe(Stream.take(2), Stream.runCollect, Effect.forkChild)
      yield* Effect.yieldNow
      yield* log.ping
      yield* Effect.yieldNow
      yield* log.append("1")
      assert.deepStrictEqual(yield* Fiber.join(quiet), [": ping\n\n", frame(1, "1")])
      yield* log.ping
      yield* log.append("2")
      assert.deepStrictEqual(
        yield* Stream.runCollect(Stream.take(followText(log, 1), 1)),
        [frame(2, "2")],
        "a new follower with events pending starts with them, not with an older ping"
      )
    }))
})

describe("ConversationListener.layerTest", () => {
  it.effect("serves nothing and returns the given endpoint", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation()
      const listener = yield* ConversationListener
      const endpoint = yield* listener.serve(fake.handle)
      assert.strictEqual(endpoint.url, "http://127.0.0.1:0")
      assert.strictEqual(endpoint.innerAuth.username, "optio")
    }).pipe(Effect.provide(ConversationListener.layerTest())))
})
