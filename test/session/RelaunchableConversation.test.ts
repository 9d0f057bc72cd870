/**
 * RelaunchableConversation over two scripted app-servers: one conversation for its viewers and
 * senders across a relaunch.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { makeScriptedAppServer } from "../../src/appserver/AppServerClient.ts"
import type { ConversationOptions } from "../../src/appserver/CodexConversation.ts"
import { makeRelaunchable } from "../../src/session/RelaunchableConversation.ts"

const startOptions = (resumeThreadId?: string): ConversationOptions => ({
  launchPath: "/nonexistent/codex",
  cwd: "/nonexistent",
  sandbox: "workspace-write",
  permissionGate: false,
  ...(resumeThreadId === undefined ? {} : { resumeThreadId })
})

describe("RelaunchableConversation", () => {
  it.live("events, sends and the exit follow the relaunch; the stopped incarnation's close is not the conversation's", () =>
    Effect.gen(function*() {
      const first = yield* makeScriptedAppServer({ threadId: "thread-r" })
      const second = yield* makeScriptedAppServer()
      const conversation = yield* makeRelaunchable(yield* first.client.start(startOptions()))
      const events = yield* conversation.subscribe
      const seen = yield* events.pipe(
        Stream.filter((event) => typeof event["method"] === "string" || event["type"] === "x-optio-closed"),
        Stream.take(3),
        Stream.runCollect,
        Effect.forkChild
      )
      const exited = yield* Effect.forkChild(conversation.exited)
      yield* conversation.sendTurn("before")

      // A send that meets the stopped incarnation waits for the next one.
      const gate = yield* Deferred.make<void>()
      const relaunch = yield* conversation.relaunch(
        Deferred.await(gate).pipe(Effect.andThen(second.client.start(startOptions(conversation.threadId))))
      ).pipe(Effect.forkChild)
      yield* first.closed.pipe(Effect.repeat({ until: (closed) => closed }), Effect.timeout("5 seconds"))
      assert.isTrue(yield* first.closed, "the old incarnation is stopped first")
      const late = yield* conversation.sendTurn("during").pipe(Effect.forkChild)
      yield* Effect.yieldNow
      assert.isUndefined(late.pollUnsafe(), "the send waits for the new incarnation")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(relaunch).pipe(Effect.timeout("5 seconds"))
      yield* Fiber.join(late).pipe(Effect.timeout("5 seconds"))

      assert.deepStrictEqual(yield* first.turns, ["before"])
      assert.deepStrictEqual(yield* second.turns, ["during"])
      assert.strictEqual((yield* second.starts)[0]?.resumeThreadId, "thread-r", "the same thread is resumed")
      assert.strictEqual(conversation.threadId, "thread-r")
      assert.strictEqual(yield* conversation.relaunches, 1)
      const collected = yield* Fiber.join(seen).pipe(Effect.timeout("5 seconds"))
      assert.deepStrictEqual(collected.map((e) => e["method"] ?? e["type"]), ["turn/started", "turn/completed", "turn/started"])
      assert.isUndefined(exited.pollUnsafe(), "stopping the first incarnation did not end the conversation")

      yield* second.codex.exit(3)
      assert.strictEqual(yield* Fiber.join(exited), 3)
      const after = yield* conversation.sendTurn("after").pipe(Effect.flip)
      assert.strictEqual(after._tag, "ConversationClosed", "a real exit is not waited out")
    }))
})
