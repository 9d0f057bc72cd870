import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import type { OptioLogEvent } from "../../src/protocol/OptioLogEvent.ts"
import { followOptioLog, MAX_LINE_CHARS } from "../../src/protocol/OptioLogMonitor.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(process.cwd(), ".cache", "test", `optio-log-monitor-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))
let counter = 0

const follow = Effect.gen(function*() {
  const host = yield* Host
  const log = join(root, `optio-${++counter}.log`)
  const stop = yield* Deferred.make<void>()
  const events: Array<OptioLogEvent> = []
  const fiber = yield* followOptioLog(log, { until: Deferred.await(stop), pollInterval: "10 millis" }).pipe(
    Stream.runForEach((event) => Effect.sync(() => events.push(event))),
    Effect.forkChild
  )
  const sawCount = (n: number) => waitUntil(`${n} events`, Effect.sync(() => events.length >= n ? true : undefined))
  const finish = Deferred.succeed(stop, undefined).pipe(Effect.andThen(Fiber.join(fiber)), Effect.as(events))
  return { host, log, events, sawCount, finish }
})

describe("followOptioLog", () => {
  it.live("parses lines written in pieces, split inside a UTF-8 sequence", () =>
    Effect.gen(function*() {
      const { host, log, events, sawCount, finish } = yield* follow
      const bytes = new TextEncoder().encode("STATUS: 40% naïve ✓ step\n")
      yield* host.appendFile(log, bytes.subarray(0, 17)) // cuts "ï" in half
      yield* host.appendFile(log, bytes.subarray(17))
      yield* sawCount(1)
      yield* host.appendFile(log, "DELIVERABLE: ./deliverables/a.md\nATTENTION: look\n")
      yield* sawCount(3)
      const all = yield* finish
      assert.deepStrictEqual(all.map((event) => event._tag), ["Status", "Deliverable", "Attention"])
      const status = events[0]
      assert.isTrue(status?._tag === "Status" && status.percent === 40 && status.message === "naïve ✓ step")
    }).pipe(Effect.provide(LocalHost.layer())))

  it.live("a DONE written just before the end is caught by the final drain, even without a newline", () =>
    Effect.gen(function*() {
      const { host, log, finish } = yield* follow
      yield* host.appendFile(log, "STATUS: working\nDONE: all good")
      const all = yield* finish
      assert.deepStrictEqual(all.map((event) => event._tag), ["Status", "Done"])
      const done = all[1]
      assert.isTrue(done?._tag === "Done" && done.summary === "all good")
    }).pipe(Effect.provide(LocalHost.layer())))

  it.live("rotation on restore: a replaced log is read from its start, the old partial line dropped", () =>
    Effect.gen(function*() {
      const { host, log, sawCount, finish } = yield* follow
      yield* host.appendFile(log, "STATUS: old\nERROR: half of an old li")
      yield* sawCount(1)
      yield* host.writeFile(`${log}.tmp`, "STATUS: new\n")
      yield* host.rename(`${log}.tmp`, log)
      yield* sawCount(2)
      const all = yield* finish
      assert.deepStrictEqual(all.map((event) => event._tag === "Status" ? event.message : event._tag), ["old", "new"])
    }).pipe(Effect.provide(LocalHost.layer())))

  it.live("a runaway line is cut at MAX_LINE_CHARS instead of growing memory", () =>
    Effect.gen(function*() {
      const { host, log, finish } = yield* follow
      yield* host.appendFile(log, "x".repeat(MAX_LINE_CHARS * 2 + 5))
      const all = yield* finish
      assert.deepStrictEqual(all.map((event) => event._tag === "Unknown" ? event.text.length : -1), [MAX_LINE_CHARS, MAX_LINE_CHARS, 5])
    }).pipe(Effect.provide(LocalHost.layer())))
})
