/**
 * QuotaHandoff: conversation mode's quota watch. It records what codex reports of the seed's
 * quota (the plan from `account/read`, the windows from `account/rateLimits/read` at start and
 * each `account/rateLimits/updated`) on the current seed,
 * and when a turn fails with the usage limit (`codexErrorInfo: "usageLimitExceeded"`) it hands
 * the task off at that turn boundary: the exhausted seed is marked exhausted until its reset,
 * another seed of the same pool is leased (none left: the session ends with `QuotaExhausted`
 * naming the earliest reset), codex app-server is stopped, the old seed's credentials are saved
 * back and its lease released, the new seed is planted, app-server is started again on the same
 * thread (`thread/resume`), and the failed turn's input is sent again. Each step is reported in
 * the task's progress.
 *
 * A task that names its seed (no pool) has nothing to hand off to: the failed turn stays failed
 * and the agent sees codex's usage-limit message, as before.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option, Stream } from "effect"
import type { CodexConversation } from "../appserver/CodexConversation.ts"
import { ServerNotificationMethod } from "../appserver/AppServerSchema.ts"
import type { ConversationEvent } from "../appserver/ConversationHandle.ts"
import { observationOfSnapshot } from "../quota/SeedQuota.ts"
import type { QuotaObservation } from "../quota/SeedQuota.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { RelaunchableConversation } from "./RelaunchableConversation.ts"
import type { SeedSlot } from "./SeedHandoff.ts"

/** Without a reset time from codex, a usage-limited seed rests for one 5-hour window. */
const FALLBACK_REST_MS = 5 * 60 * 60 * 1000

const record = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined

/** The user text of a `userMessage` item, if the event carries one. */
const userInput = (event: ConversationEvent): { readonly turnId: string; readonly text: string } | undefined => {
  if (event["method"] !== ServerNotificationMethod.itemCompleted) return undefined
  const params = record(event["params"])
  const item = record(params?.["item"])
  const turnId = params?.["turnId"]
  if (item?.["type"] !== "userMessage" || typeof turnId !== "string" || !Array.isArray(item["content"])) return undefined
  const text = item["content"].map((part) => {
    const piece = record(part)
    return piece?.["type"] === "text" && typeof piece["text"] === "string" ? piece["text"] : ""
  }).join("")
  return { turnId, text }
}

/** The id of a turn that failed on the usage limit, if the event says so. */
const usageLimitedTurn = (event: ConversationEvent): string | undefined => {
  if (event["method"] !== ServerNotificationMethod.turnCompleted) return undefined
  const turn = record(record(event["params"])?.["turn"])
  const error = record(turn?.["error"])
  return turn?.["status"] === "failed" && error?.["codexErrorInfo"] === "usageLimitExceeded" && typeof turn["id"] === "string"
    ? turn["id"]
    : undefined
}

const rateLimits = (event: ConversationEvent): Option.Option<QuotaObservation> =>
  event["method"] === ServerNotificationMethod.accountRateLimitsUpdated
    ? observationOfSnapshot(record(event["params"])?.["rateLimits"], "app-server")
    : Option.none()

/** When the exhausted seed can be used again, from the last snapshot codex reported. */
const restUntil = (last: QuotaObservation | undefined, nowMs: number): number => {
  const windows = [last?.primary, last?.secondary].filter((w) => w !== undefined && w !== null)
  const full = windows.filter((w) => w.usedPercent >= 100 && w.resetsAtMs !== null).map((w) => w.resetsAtMs!)
  const upcoming = windows.filter((w) => w.resetsAtMs !== null && w.resetsAtMs > nowMs).map((w) => w.resetsAtMs!)
  return full.length > 0 ? Math.max(...full) : upcoming.length > 0 ? Math.min(...upcoming) : nowMs + FALLBACK_REST_MS
}

const clock = (ms: number) => new Date(ms).toISOString().slice(11, 16) + " UTC"

/**
 * Runs the watch until the conversation's events end; fails when a hand-off cannot be made.
 * `launch` starts app-server on the given thread (with the credentials now in CODEX_HOME);
 * `relaunched` is told about each new incarnation (to record its process).
 * @category constructors
 * @since 0.1.0
 */
export const watchQuotaAndHandOff = <E, R1, R2>(options: {
  readonly conversation: RelaunchableConversation
  readonly slot: SeedSlot
  readonly launch: (threadId: string) => Effect.Effect<CodexConversation, E, R1>
  readonly relaunched: (conversation: CodexConversation) => Effect.Effect<void, never, R2>
}) =>
  Effect.gen(function*() {
    const { conversation, slot } = options
    const task = yield* TaskContext
    // What app-server read at start: the plan (`account/read`) and the windows (`account/rateLimits/read`).
    const planOf = (incarnation: CodexConversation) =>
      Effect.gen(function*() {
        const plan = incarnation.account?.planType
        if (plan !== undefined && plan !== null) yield* slot.record({ plan, source: "app-server" })
        const windows = observationOfSnapshot(incarnation.rateLimits, "app-server")
        if (Option.isSome(windows)) yield* slot.record(windows.value)
      })
    yield* planOf(conversation)
    const inputs = new Map<string, string>()
    let last: QuotaObservation | undefined

    const handOff = (turnId: string) =>
      Effect.gen(function*() {
        const from = yield* slot.seedId
        const nowMs = yield* Clock.currentTimeMillis
        const until = restUntil(last, nowMs)
        yield* slot.record({ limitedUntilMs: until, source: "usage-limit" })
        const pool = Option.getOrUndefined(slot.poolKey)
        if (pool === undefined) {
          yield* task.reportProgress(null, `Seed ${from} hit its usage limit (resets ${clock(until)}); the task names its seed, so there is no hand-off`)
          return
        }
        yield* task.reportProgress(null, `Seed ${from} hit its usage limit (resets ${clock(until)}): handing off to another seed of pool ${pool}`)
        const next = yield* slot.leaseNext(until).pipe(
          Effect.tapError((error) => task.reportProgress(null, `No hand-off: ${error.message}`))
        )
        yield* task.reportProgress(null, `Leased seed ${next.seedId} of pool ${pool} for the hand-off`)
        const incarnation = yield* conversation.relaunch(
          slot.switchTo(next).pipe(
            Effect.andThen(options.launch(conversation.threadId))
          )
        )
        last = undefined
        yield* options.relaunched(incarnation)
        yield* planOf(incarnation)
        yield* task.reportProgress(null, `Handed off from seed ${from} to seed ${next.seedId} (pool ${pool}); codex continues thread ${conversation.threadId}`)
        const input = inputs.get(turnId)
        if (input !== undefined && input !== "") {
          yield* task.reportProgress(null, "Re-sent the input of the turn that hit the usage limit")
          yield* incarnation.sendTurn(input)
        }
      })

    const events = yield* conversation.subscribe
    yield* events.pipe(
      Stream.runForEach((event) =>
        Effect.gen(function*() {
          const said = userInput(event)
          if (said !== undefined) {
            inputs.set(said.turnId, said.text)
            // Only the latest turns can still fail: keep the map small.
            if (inputs.size > 16) inputs.delete(inputs.keys().next().value!)
          }
          const seen = rateLimits(event)
          if (Option.isSome(seen)) {
            last = { ...last, ...seen.value }
            yield* slot.record(seen.value)
          }
          const limited = usageLimitedTurn(event)
          if (limited !== undefined) yield* handOff(limited)
        })
      )
    )
    return yield* Effect.never
  }).pipe(Effect.withSpan("CodexSession.quotaHandOff"))
