/**
 * RelaunchableConversation: one codex conversation as the session and its viewers see it, across
 * restarts of `codex app-server` on the same thread (a seed hand-off gives codex new credentials
 * by restarting it with `thread/resume`: app-server cannot switch accounts in place without its
 * unstable external-auth mode). Every member acts on the incarnation running now; `events` and
 * `subscribe` carry all incarnations' events in order, without the closing event of one that
 * was stopped for a relaunch; `exited` resolves only when an incarnation exits that was not
 * stopped for a relaunch; a send, interrupt, control change or liveness probe that meets a
 * stopped incarnation waits for the next one and goes there.
 *
 * Not carried over: `turns` follows the incarnation current when it is subscribed; `pid`,
 * `serverInfo`, `account`, `models` and `history` read the current one at each access.
 *
 * @since 0.1.0
 */
import { Effect, Option, PubSub, Scope, Stream, SubscriptionRef } from "effect"
import type { CodexConversation } from "../appserver/CodexConversation.ts"
import type { ConversationEvent } from "../appserver/ConversationHandle.ts"

const isClosedEvent = (event: ConversationEvent) => event["type"] === "x-optio-closed"

/**
 * A conversation that can be relaunched.
 * @category models
 * @since 0.1.0
 */
export interface RelaunchableConversation extends CodexConversation {
  /**
   * Stops the running incarnation and makes `start`'s conversation the current one. Viewers and
   * senders move over; a failed start leaves the conversation ended (its exit is reported).
   */
  readonly relaunch: <E, R>(
    start: Effect.Effect<CodexConversation, E, R>
  ) => Effect.Effect<CodexConversation, E, Exclude<R, Scope.Scope>>
  /** How many relaunches happened. */
  readonly relaunches: Effect.Effect<number>
}

/**
 * Wraps the first incarnation; forwarding lives as long as the enclosing scope.
 * @category constructors
 * @since 0.1.0
 */
export const makeRelaunchable = (first: CodexConversation) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<ConversationEvent>(), PubSub.shutdown)
    const current = yield* SubscriptionRef.make(first)
    const replaced = new Set<CodexConversation>()
    let count = 0

    const forward = (incarnation: CodexConversation) =>
      Effect.gen(function*() {
        const events = yield* incarnation.subscribe
        yield* events.pipe(
          Stream.runForEach((event) =>
            isClosedEvent(event) && replaced.has(incarnation) ? Effect.void : PubSub.publish(hub, event).pipe(Effect.asVoid)
          ),
          Effect.forkIn(scope)
        )
      }).pipe(Scope.provide(scope))
    yield* forward(first)

    const now = SubscriptionRef.get(current)
    // A call that lands on an incarnation stopped for a relaunch waits for the next one and goes
    // there instead of failing with ConversationClosed (a message sent mid-hand-off is not lost).
    const onCurrent = <A, E>(call: (incarnation: CodexConversation) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.gen(function*() {
        const incarnation = yield* now
        return yield* call(incarnation).pipe(
          Effect.catchIf(
            (error) => replaced.has(incarnation) && typeof error === "object" && error !== null && "_tag" in error && error._tag === "ConversationClosed",
            () =>
              replacedBy(incarnation).pipe(Effect.andThen(onCurrent(call)))
          )
        )
      })
    const subscribe = PubSub.subscribe(hub).pipe(
      Effect.map((subscription) => Stream.fromSubscription(subscription).pipe(Stream.takeUntil(isClosedEvent)))
    )
    const replacedBy = (incarnation: CodexConversation) =>
      SubscriptionRef.changes(current).pipe(Stream.filter((next) => next !== incarnation), Stream.runHead, Effect.asVoid)
    // Follows the current incarnation: one that was replaced (exited or not) hands over to the next.
    const exited: CodexConversation["exited"] = Effect.gen(function*() {
      while (true) {
        const incarnation = yield* now
        const ended = yield* Effect.raceFirst(
          incarnation.exited.pipe(Effect.map(Option.some)),
          replacedBy(incarnation).pipe(Effect.as(Option.none<number>()))
        )
        if (Option.isSome(ended) && !replaced.has(incarnation)) return ended.value
        if (Option.isSome(ended)) yield* replacedBy(incarnation)
      }
    })

    const relaunch = <E, R>(start: Effect.Effect<CodexConversation, E, R>) =>
      Effect.gen(function*() {
        const old = yield* now
        replaced.add(old)
        yield* old.close
        const next = yield* start.pipe(Scope.provide(scope))
        yield* forward(next)
        count += 1
        yield* SubscriptionRef.set(current, next)
        return next
      })

    const wrapped: RelaunchableConversation = {
      get threadId() {
        return first.threadId
      },
      get pid() {
        return SubscriptionRef.getUnsafe(current).pid
      },
      get serverInfo() {
        return SubscriptionRef.getUnsafe(current).serverInfo
      },
      get account() {
        return SubscriptionRef.getUnsafe(current).account
      },
      get rateLimits() {
        return SubscriptionRef.getUnsafe(current).rateLimits
      },
      get models() {
        return SubscriptionRef.getUnsafe(current).models
      },
      get history() {
        return SubscriptionRef.getUnsafe(current).history
      },
      currentModel: Effect.flatMap(now, (c) => c.currentModel),
      currentEffort: Effect.flatMap(now, (c) => c.currentEffort),
      events: Stream.unwrap(subscribe),
      subscribe,
      turns: Stream.unwrap(Effect.map(now, (c) => c.turns)),
      send: (text) => onCurrent((c) => c.send(text)),
      sendTurn: (text) => onCurrent((c) => c.sendTurn(text)),
      interrupt: onCurrent((c) => c.interrupt),
      setControl: (id, value) => onCurrent((c) => c.setControl(id, value)),
      controls: Effect.flatMap(now, (c) => c.controls),
      answerPermission: (requestId, behavior) => Effect.flatMap(now, (c) => c.answerPermission(requestId, behavior)),
      pendingPermissions: Effect.flatMap(now, (c) => c.pendingPermissions),
      activeTurn: Effect.flatMap(now, (c) => c.activeTurn),
      awaitIdle: Effect.flatMap(now, (c) => c.awaitIdle),
      ping: (timeout) => onCurrent((c) => c.ping(timeout)),
      exited,
      close: Effect.flatMap(now, (c) => c.close),
      relaunch,
      relaunches: Effect.sync(() => count)
    }
    return wrapped
  })
