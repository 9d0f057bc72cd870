/**
 * TurnEvents: turn lifecycle and answers folded from raw events, keyed by turn and item.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { turnEvents } from "../../src/appserver/TurnEvents.ts"
import type { ConversationEvent } from "../../src/appserver/ConversationHandle.ts"

const T = "thread-1"
const started = (turnId: string, threadId = T): ConversationEvent => ({
  method: "turn/started",
  params: { threadId, turn: { id: turnId, status: "inProgress", items: [] } }
})
const completed = (turnId: string, status: string, error: unknown = null): ConversationEvent => ({
  method: "turn/completed",
  params: { threadId: T, turn: { id: turnId, status, error, items: [] } }
})
const delta = (turnId: string, itemId: string, text: string): ConversationEvent => ({
  method: "item/agentMessage/delta",
  params: { threadId: T, turnId, itemId, delta: text }
})
const message = (turnId: string, itemId: string, text: string): ConversationEvent => ({
  method: "item/completed",
  params: { threadId: T, turnId, item: { type: "agentMessage", id: itemId, text } }
})

const fold = (events: ReadonlyArray<ConversationEvent>) =>
  Stream.runCollect(Stream.fromIterable(events).pipe(turnEvents(T)))

describe("turnEvents", () => {
  it.effect("keys answers by turn and item; completed text wins over deltas; reasoning is left out", () =>
    Effect.gen(function*() {
      const events = yield* fold([
        started("a"),
        delta("a", "m1", "PO"),
        { method: "item/reasoning/summaryTextDelta", params: { threadId: T, turnId: "a", itemId: "r", delta: "hmm" } },
        delta("b", "stray", "LEAK"),
        message("a", "m1", "PONG"),
        delta("a", "m2", "part"),
        delta("a", "m2", "2"),
        completed("a", "completed")
      ])
      assert.deepStrictEqual(events, [
        { _tag: "TurnStarted", turnId: "a" },
        { _tag: "TurnCompleted", turnId: "a", status: "completed", answer: "PONGpart2" }
      ])
    }))

  it.effect("reports failed and interrupted turns, unknown statuses and other threads' turns not at all", () =>
    Effect.gen(function*() {
      const events = yield* fold([
        started("x", "another-thread"),
        completed("f", "failed", { message: "boom" }),
        completed("i", "interrupted"),
        completed("n", "someFutureStatus"),
        { method: "turn/completed", params: { threadId: T } }
      ])
      assert.deepStrictEqual(events, [
        { _tag: "TurnCompleted", turnId: "f", status: "failed", answer: "", errorMessage: "boom" },
        { _tag: "TurnCompleted", turnId: "i", status: "interrupted", answer: "" },
        { _tag: "TurnCompleted", turnId: "n", status: "unknown", answer: "" }
      ])
    }))
})
