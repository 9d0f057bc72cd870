/**
 * The AppServerClient's scripted layer: a conversation whose bootstrap, turns, approvals, hang
 * and exit a session test controls (the live layer runs in the conversation e2e and fault tests).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { AppServerClient, makeScriptedAppServer } from "../../src/appserver/AppServerClient.ts"
import type { ScriptedAppServer } from "../../src/appserver/AppServerClient.ts"
import { turnEvents } from "../../src/appserver/TurnEvents.ts"

/** Lets the turn's fiber run until it parks an approval (bounded; no clock involved). */
const untilPending = (pending: Effect.Effect<ReadonlyArray<string>>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && (yield* pending).length === 0; i++) yield* Effect.yieldNow
  })

const start = (scripted: ScriptedAppServer, resumeThreadId?: string) =>
  Effect.gen(function*() {
    const client = yield* AppServerClient
    return yield* client.start({
      launchPath: "/opt/codex/bin/codex",
      cwd: "/work",
      sandbox: "workspace-write",
      permissionGate: true,
      ...(resumeThreadId === undefined ? {} : { resumeThreadId })
    })
  }).pipe(Effect.provide(AppServerClient.layerTest(scripted)))

describe("AppServerClient.layerTest", () => {
  it.effect("turns run their script between turn/started and turn/completed; approvals wait for an answer", () =>
    Effect.gen(function*() {
      const scripted = yield* makeScriptedAppServer({
        onTurn: (text, codex) =>
          Effect.gen(function*() {
            const answer = yield* codex.askPermission("1")
            yield* codex.emit({ method: "item/completed", params: { threadId: "thread-1", turnId: "turn-1", item: { type: "agentMessage", id: "m1", text: `${text}: ${answer}` } } })
          })
      })
      const conversation = yield* start(scripted)
      // Subscribed before the turn is sent, so no event can be missed.
      const events = yield* conversation.subscribe
      const turns = yield* events.pipe(turnEvents(conversation.threadId), Stream.take(2), Stream.runCollect, Effect.forkChild)
      assert.strictEqual(yield* conversation.sendTurn("hi"), "turn-1")
      yield* untilPending(conversation.pendingPermissions)
      assert.deepStrictEqual(yield* conversation.pendingPermissions, ["1"])
      assert.isTrue(yield* conversation.answerPermission("1", "deny"))
      assert.isFalse(yield* conversation.answerPermission("1", "allow"), "answered once")
      const [started, completed] = yield* Fiber.join(turns)
      assert.deepStrictEqual(started, { _tag: "TurnStarted", turnId: "turn-1" })
      assert.strictEqual(completed?._tag === "TurnCompleted" ? completed.answer : undefined, "hi: deny")
      assert.deepStrictEqual(yield* scripted.turns, ["hi"])
    }).pipe(Effect.scoped))

  it.effect("a hung codex times pings out on the clock; an exit closes the conversation", () =>
    Effect.gen(function*() {
      const scripted = yield* makeScriptedAppServer()
      const conversation = yield* start(scripted, "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
      assert.strictEqual(conversation.threadId, "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
      yield* conversation.ping("1 second")
      yield* scripted.codex.hang
      const ping = yield* Effect.forkChild(Effect.flip(conversation.ping("1 second")))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(ping))._tag, "AppServerRequestTimedOut")
      yield* scripted.codex.exit(1)
      assert.strictEqual(yield* conversation.exited, 1)
      assert.isTrue(yield* scripted.closed)
      assert.strictEqual((yield* Effect.flip(conversation.sendTurn("late")))._tag, "ConversationClosed")
    }).pipe(Effect.scoped))

  it.effect("codex dying at launch fails the start with its exit code and stderr", () =>
    Effect.gen(function*() {
      const scripted = yield* makeScriptedAppServer({ dieAtLaunch: { exitCode: 2, stderr: "bad config" } })
      const error = yield* Effect.flip(start(scripted))
      assert.strictEqual(error._tag, "AppServerExited")
      assert.strictEqual(error._tag === "AppServerExited" ? error.exitCode : undefined, 2)
    }).pipe(Effect.scoped))
})
