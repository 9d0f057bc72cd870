/**
 * Fault: the app-server writes garbage — malformed lines, JSON that is no message, unknown
 * notifications and server requests, a stray response, invalid UTF-8 and one 64 MiB line — in the
 * middle of a turn, before acknowledging it. The session runs the fake (fixtures/
 * malformed-app-server.ts) through the real LocalHost spawn. Each bad line must be skipped or
 * surfaced as a typed event, the worker's memory must stay far below the line's size, and the
 * conversation must go on: the acknowledgement written after the garbage is still correlated to
 * its `turn/start`, and the session ends with the fake's `DONE`.
 *
 * What would break without the handling:
 * - without the byte-counting framer (AppServerProtocol.splitFrames: an oversized line is counted,
 *   never held whole), the 64 MiB line is buffered and then decoded (≥ 64 MiB, ~192 MiB with
 *   the string), and the memory bound below fails;
 * - without the classification of unparseable / unknown input, one bad line ends the reader: the
 *   acknowledgement is never correlated and `sendTurn` times out;
 * - without the "method not found" answer, the unknown server request is never answered.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import type { ConversationEvent } from "../../src/appserver/ConversationHandle.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { faultRoot, launchLinkOf, noProcessMentions, services } from "./harness.ts"
import { recordOutcome } from "./summary.ts"

const dirs = faultRoot("fake-app-server")
afterAll(dirs.remove)

const fixture = fileURLToPath(new URL("./fixtures/malformed-app-server.ts", import.meta.url))
const HUGE = 64 * 1024 * 1024
const MiB = 1024 * 1024

// A full GC on demand, so a measurement sees what the worker *holds*, not the pipe chunks V8 has
// not collected yet (external memory is collected lazily, tens of MiB late).
setFlagsFromString("--expose-gc")
const exposed: unknown = runInNewContext("gc")
const collectGarbage = () => {
  if (typeof exposed === "function") exposed()
}

/**
 * What the worker holds (JS heap + ArrayBuffers) while nothing arrives: the least of a few
 * samples, each after a full GC and a short pause, because V8 frees dead ArrayBuffers on a
 * background sweeper that lags behind under load (one sample right after `gc()` counted 39 MiB
 * of already dead pipe chunks in a loaded full-suite run).
 */
const heldWhileQuiet = Effect.gen(function*() {
  let least = Number.POSITIVE_INFINITY
  for (let sample = 0; sample < 8; sample++) {
    collectGarbage()
    yield* Effect.sleep("25 millis")
    const now = process.memoryUsage()
    least = Math.min(least, now.heapUsed + now.arrayBuffers)
  }
  return least
})

/** Samples RSS every few milliseconds without forcing GC: the raw peak, garbage included. */
const sampleRss = () => {
  const base = process.memoryUsage().rss
  let peak = base
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 2)
  return {
    stop: () => {
      clearInterval(timer)
      return peak - base
    }
  }
}

const eventType = (event: ConversationEvent) => String(event["type"] ?? event["method"] ?? (("result" in event || "error" in event) ? "response" : "?"))

describe("fault: a fake app-server writes garbage", () => {
  it.live("bad lines are skipped or typed events, memory stays bounded, the acknowledgement is still correlated", () =>
    Effect.gen(function*() {
      const workdir = dirs.workdir()
      const recordFile = join(dirs.root, "received.jsonl")
      const pauseDir = join(dirs.root, "pause")
      rmSync(recordFile, { force: true })
      rmSync(pauseDir, { recursive: true, force: true })
      mkdirSync(pauseDir)
      const live = yield* Deferred.make<CodexConversation>()
      const session = yield* runCodexSession(
        { consumerInstructions: "survive the garbage", mode: "conversation", env: { FAKE_RECORD: recordFile, FAKE_HUGE_BYTES: String(HUGE), FAKE_PAUSE_DIR: pauseDir, FAKE_PAUSE_AT: String(48 * MiB) } },
        {
          workdir,
          stopGracePeriod: "2 seconds",
          onConversation: (conversation) => Deferred.succeed(live, conversation),
          hooks: {
            // The task's launch link now starts the fake instead of codex.
            beforeExecute: (context) =>
              Effect.sync(() => {
                const link = launchLinkOf(context.workdir)
                rmSync(link)
                writeFileSync(link, `#!/bin/sh\nexec '${process.execPath}' '${fixture}' "$@"\n`, { mode: 0o755 })
              })
          }
        }
      ).pipe(Effect.forkChild)
      const conversation = yield* Deferred.await(live)
      const events: Array<ConversationEvent> = []
      const stream = yield* conversation.subscribe
      yield* stream.pipe(Stream.runForEach((event) => Effect.sync(() => events.push(event))), Effect.forkChild)

      const before = yield* heldWhileQuiet
      const rss = sampleRss()
      const turn = yield* conversation.sendTurn("write garbage, then go on").pipe(Effect.forkChild)
      // In the middle of the 64 MiB line (48 MiB of it written and read), measure what is held.
      yield* waitUntil("the fake paused inside the huge line", Effect.sync(() => existsSync(join(pauseDir, "paused")) ? true : undefined))
      const middle = yield* heldWhileQuiet
      writeFileSync(join(pauseDir, "continue"), "")
      const turnId = yield* Fiber.join(turn)
      const result = yield* Fiber.join(session).pipe(Effect.timeout("30 seconds"))
      const rssGrowth = rss.stop()
      const heldGrowth = middle - before

      // The worker does not hold the line: 48 MiB into it, it holds a few MiB more at most (a
      // framer that buffers the line holds ≥ 48 MiB here). The raw RSS peak is mostly pipe
      // chunks V8 has not collected yet (it collects external memory lazily, with a 64 MB soft
      // limit), so it is only checked against what buffering and decoding the line would cost.
      assert.isBelow(heldGrowth, 8 * MiB, `48 MiB into the line the worker holds ${(heldGrowth / MiB).toFixed(1)} MiB more`)
      assert.isBelow(rssGrowth, 96 * MiB, `RSS peaked ${(rssGrowth / MiB).toFixed(1)} MiB above the start`)
      // The conversation went on: the ack after the garbage was correlated, DONE ended the session.
      assert.strictEqual(turnId, "turn-1")
      assert.strictEqual(result.summary, "survived the garbage")

      // Each bad line became a typed event or was passed on as what it is.
      const unparseable = events.filter((event) => event["type"] === "x-optio-unparseable")
      const huge = unparseable.find((event) => event["oversized"] === true)
      assert.strictEqual(huge?.["bytes"], HUGE)
      assert.isBelow(String(huge?.["line"]).length, 300, "only an excerpt of the huge line reaches viewers")
      assert.strictEqual(unparseable.filter((event) => event["oversized"] === false).length, 4)
      const methods = events.map((event) => event["method"])
      assert.include(methods, "x-future/somethingHappened")
      assert.include(methods, "x-future/askTheClient")
      assert.isTrue(events.some((event) => event["neither"] === "request"), "a JSON object that is no message is passed on")
      assert.isTrue(events.some((event) => event["id"] === 987654), "a stray response is passed on")
      assert.include(methods, "turn/completed")
      // The unknown server request was refused with "method not found", not left hanging.
      const received: ReadonlyArray<{ readonly id?: unknown; readonly error?: { readonly code?: unknown } }> = readFileSync(recordFile, "utf8")
        .split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
      assert.isTrue(received.some((message) => message.id === "srv-1" && message.error?.code === -32601))

      yield* noProcessMentions(workdir, "2 seconds")
      recordOutcome(
        "fake app-server: malformed / 64 MiB line / unknown messages",
        `5 bad lines → x-optio-unparseable events (64 MiB one: oversized, ${String(huge?.["bytes"])} bytes counted, 200-char excerpt); ` +
          `unknown notification/request/object/stray response passed on, request refused -32601; ack after the garbage correlated (${turnId}); ` +
          `DONE reached; worker memory 48 MiB into the line: +${(heldGrowth / MiB).toFixed(1)} MiB held (after GC), raw RSS peak +${(rssGrowth / MiB).toFixed(1)} MiB (uncollected pipe chunks); ` +
          `event types: ${[...new Set(events.map(eventType))].length}`
      )
    }).pipe(Effect.scoped, Effect.provide(services("fault-fake-app-server"))), 60_000)
})
