/**
 * Approvals: the permission gate between codex's approval requests
 * (`item/commandExecution/requestApproval`, `item/fileChange/requestApproval`) and the operator.
 *
 * Owns pending approvals, their answers, their timeout and the `x-optio-permission-answered`
 * event. Does not own the wire (it is handed `respond`) nor the event fan-out (`publish`).
 *
 * Gotchas (spec §11 P5, P6):
 * - A request is registered BEFORE it is published, so a viewer that answers at once (or one that
 *   subscribes later) always finds it.
 * - Every request ends answered exactly once: by the operator, by the timeout (decline), by
 *   {@link Approvals.declineAll} on close, or at once (decline) when the gate is off. Each answer
 *   is followed by an `x-optio-permission-answered` event, so no approval card stays open.
 * - The decision is `accept` or `decline`, never `cancel` (which would also interrupt the turn).
 *
 * @since 0.1.0
 */
import { Deferred, Effect } from "effect"
import type { Duration, Scope } from "effect"
import type { ConversationEvent, PermissionBehavior } from "./ConversationHandle.ts"
import type { JsonObject, RequestId } from "./AppServerProtocol.ts"
import type { ApprovalDecision } from "./AppServerSchema.ts"

/**
 * An approval request as it came from codex.
 * @category models
 */
export interface ApprovalRequest {
  readonly id: RequestId
  readonly method: string
  readonly raw: JsonObject
}

/**
 * The gate.
 * @category models
 */
export interface Approvals {
  /** Registers, publishes and (in the background) answers one request. */
  readonly handle: (request: ApprovalRequest) => Effect.Effect<void>
  /** Answers a pending request by its stringified id; false when none is pending under it. */
  readonly answer: (requestId: string, behavior: PermissionBehavior) => Effect.Effect<boolean>
  /** Declines every pending request and every later one, and waits until they are answered. */
  readonly declineAll: Effect.Effect<void>
  /** The ids of the pending requests. */
  readonly pending: Effect.Effect<ReadonlyArray<string>>
}

/**
 * Options of {@link make}.
 * @category models
 */
export interface ApprovalsOptions {
  /** Whether an operator decides; when false every request is declined at once. */
  readonly gate: boolean
  /** How long an operator has before the request is declined. */
  readonly timeout: Duration.Input
  /** Writes the decision to codex (failures are the caller's to log and swallow). */
  readonly respond: (id: RequestId, decision: ApprovalDecision) => Effect.Effect<void>
  /** Sends an event to viewers. */
  readonly publish: (event: ConversationEvent) => Effect.Effect<void>
}

/**
 * Builds the gate; waiters run in the caller's scope.
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: ApprovalsOptions) {
  const scope: Scope.Scope = yield* Effect.scope
  const entries = new Map<string, Deferred.Deferred<PermissionBehavior>>()
  // One per request still being answered, so `declineAll` can wait until every answer is written.
  const inFlight = new Set<Deferred.Deferred<void>>()
  let declining = !options.gate

  /** Removes the entry under `key`: whoever claims it first (answer, timeout, close) decides. */
  const claim = (key: string) => {
    const entry = entries.get(key)
    entries.delete(key)
    return entry
  }

  const conclude = (request: ApprovalRequest, behavior: PermissionBehavior) =>
    options.respond(request.id, behavior === "allow" ? "accept" : "decline").pipe(
      Effect.andThen(options.publish({
        type: "x-optio-permission-answered",
        request_id: String(request.id),
        behavior
      }))
    )

  const handle = (request: ApprovalRequest) =>
    Effect.gen(function*() {
      const key = String(request.id)
      if (declining || entries.has(key)) {
        yield* options.publish(request.raw)
        return yield* conclude(request, "deny")
      }
      const decided = yield* Deferred.make<PermissionBehavior>()
      const answered = yield* Deferred.make<void>()
      entries.set(key, decided)
      inFlight.add(answered)
      yield* options.publish(request.raw)
      yield* Deferred.await(decided).pipe(
        Effect.timeoutOrElse({
          duration: options.timeout,
          // Lost the race to an answer that claimed the entry first: that answer stands.
          orElse: () => claim(key) === undefined ? Deferred.await(decided) : Effect.succeed<PermissionBehavior>("deny")
        }),
        Effect.flatMap((behavior) => conclude(request, behavior)),
        Effect.ensuring(Effect.suspend(() => {
          inFlight.delete(answered)
          return Deferred.succeed(answered, undefined)
        })),
        Effect.forkIn(scope)
      )
    })

  const answer = (requestId: string, behavior: PermissionBehavior) =>
    Effect.suspend(() => {
      const entry = claim(requestId)
      return entry === undefined ? Effect.succeed(false) : Deferred.succeed(entry, behavior).pipe(Effect.as(true))
    })

  const declineAll = Effect.gen(function*() {
    declining = true
    const all = [...entries.keys()].flatMap((key) => {
      const entry = claim(key)
      return entry === undefined ? [] : [entry]
    })
    for (const entry of all) yield* Deferred.succeed(entry, "deny")
    for (const answered of [...inFlight]) yield* Deferred.await(answered)
  })

  const approvals: Approvals = {
    handle,
    answer,
    declineAll,
    pending: Effect.sync(() => [...entries.keys()])
  }
  return approvals
})
