/**
 * ConversationHandle: the seam between a running codex conversation (the app-server client, in
 * `appserver/`) and the things that show it to people (the HTTP/SSE listener, the CLI chat). It
 * is a plain interface so each side is built and tested without the other.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { Effect, Stream } from "effect"

/**
 * A JSON object as it travels to viewers: every object codex wrote (notifications, server
 * requests, responses to our requests), forwarded unmodified, plus harness events whose `type`
 * starts with `x-optio-`.
 * @category models
 * @since 0.1.0
 */
export type ConversationEvent = { readonly [key: string]: unknown }

/**
 * An operator's answer to an approval request.
 * @category models
 */
export type PermissionBehavior = "allow" | "deny"

/**
 * A session control the UI renders (model picker, reasoning effort slider).
 * @category models
 */
export interface SessionControl {
  readonly id: string
  readonly kind: "select" | "slider"
  readonly label: string
  readonly value: string | null
  readonly disabled: boolean
  readonly category?: string
  readonly whyDisabled?: string
  readonly options?: ReadonlyArray<{ readonly value: string; readonly label: string; readonly disabled: boolean }>
  readonly levels?: ReadonlyArray<string>
}

/**
 * The conversation has ended; nothing more can be sent.
 * @category errors
 * @since 0.1.0
 */
export class ConversationClosed extends Schema.TaggedError<ConversationClosed>()("ConversationClosed", {
  reason: Schema.String
}) {
  override get message(): string {
    return `the conversation is closed: ${this.reason}`
  }
}

/**
 * A control id or value the conversation does not accept.
 * @category errors
 */
export class InvalidControl extends Schema.TaggedError<InvalidControl>()("InvalidControl", {
  id: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `control ${JSON.stringify(this.id)}: ${this.detail}`
  }
}

/**
 * What viewers can see of, and do with, one codex conversation.
 * @category models
 * @since 0.1.0
 */
export interface ConversationHandle {
  /**
   * Every event from the moment of subscription on (live only; history is the viewer side's
   * business). Subscribing is scoped; the stream ends after the `x-optio-closed` event.
   */
  readonly events: Stream.Stream<ConversationEvent>
  /**
   * Sends a user turn; resolves once it is written to codex — before codex acknowledges it, and
   * long before the turn ends. Codex refusing the turn reaches viewers as events.
   */
  readonly send: (text: string) => Effect.Effect<void, ConversationClosed>
  /** Interrupts the running turn, if any; a no-op when idle. */
  readonly interrupt: Effect.Effect<void, ConversationClosed>
  /** Sets a session control (`model`, `reasoning_effort`) for the next turns. */
  readonly setControl: (id: string, value: unknown) => Effect.Effect<void, ConversationClosed | InvalidControl>
  /** The controls as they stand now. */
  readonly controls: Effect.Effect<ReadonlyArray<SessionControl>>
  /**
   * Answers a pending approval request by its JSON-RPC id (stringified, so `0` is `"0"`).
   * Returns false when no such request is pending (unknown or already answered).
   */
  readonly answerPermission: (requestId: string, behavior: PermissionBehavior) => Effect.Effect<boolean>
}
