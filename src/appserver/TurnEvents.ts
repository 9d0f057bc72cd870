/**
 * TurnEvents: a conversation's raw event stream folded into turn lifecycle events, each
 * completion carrying the turn's answer (the text of its assistant messages).
 *
 * Owns the fold only; the events come from `CodexConversation`. Answers are keyed by turn id and
 * item id (spec §11 P3): a delta of another turn never leaks into this one, and a completed item's
 * text replaces its deltas (healing lost or duplicated ones). Reasoning is never part of an answer.
 *
 * Gotchas: the fold starts when the stream starts; a turn already under way then has only the
 * items completed from that moment on. An interrupted or failed turn completes too, possibly with
 * an empty answer; branch on `status`.
 *
 * @since 0.1.0
 */
import { Schema, Stream } from "effect"
import type { ConversationEvent } from "./ConversationHandle.ts"
import {
  AgentMessageDeltaNotification,
  AgentMessageThreadItem,
  ServerNotificationMethod,
  TurnCompletedNotification,
  TurnStartedNotification
} from "./AppServerSchema.ts"
import type { TurnStatus } from "./AppServerSchema.ts"

/**
 * A turn's lifecycle as codex reported it.
 * @category models
 */
export type TurnEvent =
  | { readonly _tag: "TurnStarted"; readonly turnId: string }
  | {
    readonly _tag: "TurnCompleted"
    readonly turnId: string
    readonly status: TurnStatus
    /** The assistant messages' text, concatenated in the order they first appeared. */
    readonly answer: string
    readonly errorMessage?: string
  }

const decodeStarted = Schema.decodeUnknownOption(TurnStartedNotification)
const decodeCompleted = Schema.decodeUnknownOption(TurnCompletedNotification)
const decodeDelta = Schema.decodeUnknownOption(AgentMessageDeltaNotification)
const decodeMessage = Schema.decodeUnknownOption(
  Schema.Struct({ threadId: Schema.String, turnId: Schema.String, item: AgentMessageThreadItem })
)

/** Text per item id, per turn id; Map keeps first-seen order. */
type Answers = Map<string, Map<string, string>>

/**
 * Folds raw conversation events into {@link TurnEvent}s of the thread `threadId`.
 * @category combinators
 */
export const turnEvents = (threadId: string) => <E, R>(events: Stream.Stream<ConversationEvent, E, R>): Stream.Stream<TurnEvent, E, R> =>
  events.pipe(Stream.mapAccum((): Answers => new Map(), (answers, event) => [answers, step(threadId, answers, event)] as const))

const step = (threadId: string, answers: Answers, event: ConversationEvent): ReadonlyArray<TurnEvent> => {
  const params = event["params"]
  switch (event["method"]) {
    case ServerNotificationMethod.agentMessageDelta: {
      const delta = decodeDelta(params)
      if (delta._tag === "Some" && delta.value.threadId === threadId && delta.value.delta !== "") {
        const texts = textsOf(answers, delta.value.turnId)
        texts.set(delta.value.itemId, (texts.get(delta.value.itemId) ?? "") + delta.value.delta)
      }
      return []
    }
    case ServerNotificationMethod.itemCompleted: {
      const message = decodeMessage(params)
      if (message._tag === "Some" && message.value.threadId === threadId && message.value.item.text !== "") {
        textsOf(answers, message.value.turnId).set(message.value.item.id, message.value.item.text)
      }
      return []
    }
    case ServerNotificationMethod.turnStarted: {
      const started = decodeStarted(params)
      return started._tag === "Some" && started.value.threadId === threadId
        ? [{ _tag: "TurnStarted", turnId: started.value.turn.id }]
        : []
    }
    case ServerNotificationMethod.turnCompleted: {
      const completed = decodeCompleted(params)
      if (completed._tag === "None" || completed.value.threadId !== threadId) return []
      const { turn } = completed.value
      const answer = [...(answers.get(turn.id)?.values() ?? [])].join("")
      answers.delete(turn.id)
      const errorMessage = turn.error?.message
      return [
        errorMessage === undefined
          ? { _tag: "TurnCompleted", turnId: turn.id, status: turn.status, answer }
          : { _tag: "TurnCompleted", turnId: turn.id, status: turn.status, answer, errorMessage }
      ]
    }
    default:
      return []
  }
}

const textsOf = (answers: Answers, turnId: string) => {
  const existing = answers.get(turnId)
  if (existing !== undefined) return existing
  const created = new Map<string, string>()
  answers.set(turnId, created)
  return created
}
