/**
 * A watched tail: before each look it arms a one-shot watch on the file's directory; between looks
 * it waits the poll interval, then for that watch or the slow poll (1 s), on the clock; a watch
 * that cannot be set up leaves it polling at the interval. A flood of changes costs at most one
 * watch and one look per interval. And on the local host a write wakes a real tail.
 */
import { assert, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import type { FileInfo, TailChunk } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { Host } from "../../src/host/Host.ts"
import { makeTail } from "../../src/host/Tail.ts"
import type { WatchDirectory } from "../../src/host/Tail.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(process.cwd(), ".cache", "test", `tail-watch-${process.pid}`)
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** One file in memory: its bytes, and how often the tail looked at it. */
const memoryFile = Effect.gen(function*() {
  const content = yield* Ref.make("")
  const looks = yield* Ref.make(0)
  const stat = (_path: string) =>
    Effect.gen(function*() {
      yield* Ref.update(looks, (n) => n + 1)
      const size = Buffer.byteLength(yield* Ref.get(content))
      const info: FileInfo = { type: "File", size, mode: 0o600, identity: "1:1" }
      return info
    })
  const readRange = (_path: string, offset: number, length: number) =>
    Ref.get(content).pipe(Effect.map((text) => new Uint8Array(Buffer.from(text).subarray(offset, offset + length))))
  return { content, looks, stat, readRange }
})

const collect = (stream: Stream.Stream<TailChunk, unknown>) =>
  Effect.gen(function*() {
    const seen = yield* Ref.make("")
    const fiber = yield* stream.pipe(
      Stream.runForEach((chunk) => chunk._tag === "Data" ? Ref.update(seen, (text) => text + Buffer.from(chunk.bytes).toString()) : Effect.void),
      Effect.forkScoped
    )
    return { seen: Ref.get(seen), fiber }
  })

it.effect("with a watch: a change is looked at one poll interval after the last look, and without one only at the slow poll", () =>
  Effect.gen(function*() {
    const file = yield* memoryFile
    // The scripted watch: armed watches wait for the next `change`.
    const change = yield* Ref.make(yield* Deferred.make<void>())
    const armed = yield* Ref.make(0)
    const watch: WatchDirectory = () =>
      Effect.gen(function*() {
        yield* Ref.update(armed, (n) => n + 1)
        return Deferred.await(yield* Ref.get(change))
      })
    const fire = Effect.gen(function*() {
      yield* Deferred.succeed(yield* Ref.get(change), undefined)
      yield* Ref.set(change, yield* Deferred.make<void>())
    })
    const tail = makeTail({ stat: file.stat, readRange: file.readRange, watchDirectory: watch }, "50 millis")
    const { seen } = yield* collect(tail("/w/optio.log"))
    yield* TestClock.adjust("1 millis")
    assert.strictEqual(yield* Ref.get(file.looks), 1, "the first look is at once")

    // No change: nothing but the slow poll looks again.
    yield* Ref.set(file.content, "STATUS: a\n")
    yield* TestClock.adjust("999 millis")
    assert.strictEqual(yield* Ref.get(file.looks), 1)
    assert.strictEqual(yield* seen, "")
    yield* TestClock.adjust("51 millis")
    assert.strictEqual(yield* Ref.get(file.looks), 2)
    assert.strictEqual(yield* seen, "STATUS: a\n")

    // A change: looked at once the poll interval since the last look has passed.
    yield* TestClock.adjust("100 millis")
    yield* Ref.update(file.content, (text) => text + "DONE: b\n")
    yield* fire
    yield* TestClock.adjust("1 millis")
    assert.strictEqual(yield* Ref.get(file.looks), 3)
    assert.strictEqual(yield* seen, "STATUS: a\nDONE: b\n")

    // A flood of changes: one look per poll interval, one watch armed per look.
    const before = { looks: yield* Ref.get(file.looks), armed: yield* Ref.get(armed) }
    for (let step = 0; step < 100; step++) {
      yield* fire
      yield* TestClock.adjust("5 millis")
    }
    assert.strictEqual((yield* Ref.get(file.looks)) - before.looks, 10, "500 ms of changes: 10 looks")
    assert.strictEqual((yield* Ref.get(armed)) - before.armed, 10)
  }).pipe(Effect.scoped))

it.effect("a watch that cannot be set up leaves the tail polling at its interval", () =>
  Effect.gen(function*() {
    for (const watch of [(() => Effect.fail("no inotify")) satisfies WatchDirectory]) {
      const file = yield* memoryFile
      const tail = makeTail({ stat: file.stat, readRange: file.readRange, watchDirectory: watch }, "50 millis")
      const { seen, fiber } = yield* collect(tail("/w/optio.log"))
      yield* TestClock.adjust("1 millis")
      yield* Ref.set(file.content, "DONE: x\n")
      yield* TestClock.adjust("50 millis")
      yield* TestClock.adjust("50 millis")
      assert.strictEqual(yield* seen, "DONE: x\n")
      yield* Fiber.interrupt(fiber)
    }
  }).pipe(Effect.scoped))

it.live("the local host's tail is woken by a write to its file (and follows it to the final drain)", () =>
  Effect.gen(function*() {
    const dir = join(root, "live")
    mkdirSync(dir, { recursive: true })
    const log = join(dir, "optio.log")
    writeFileSync(log, "")
    const host = yield* Host
    const stop = yield* Deferred.make<void>()
    const { seen, fiber } = yield* collect(host.tail(log, { until: Deferred.await(stop) }))
    appendFileSync(log, "STATUS: one\n")
    yield* waitUntil("the first line", Effect.map(seen, (text) => text.includes("one") ? true : undefined), "10 seconds")
    appendFileSync(log, "DONE: two\n")
    yield* Deferred.succeed(stop, undefined)
    yield* Fiber.join(fiber)
    assert.strictEqual(yield* seen, "STATUS: one\nDONE: two\n")
  }).pipe(Effect.scoped, Effect.provide(LocalHost.layer())))
