/**
 * SeedQuota: what a seed's ChatGPT plan allows — the plan and each usage window's used percent,
 * length and reset — as last observed while a task held the seed, and how a pool ranks its seeds
 * by it. Stored in the seed's metadata under `quota` (plain numbers, so every backend and the
 * Python reference keep it as is).
 *
 * **What codex 0.171.0 reports** (verified against the pinned binary; see the e2e quota test):
 * - Every Responses API answer may carry `x-codex-primary-used-percent`, `x-codex-primary-window-minutes`,
 *   `x-codex-primary-reset-at` (unix seconds), the same three for `secondary`, plus
 *   `x-codex-credits-{has-credits,unlimited,balance}`, `x-codex-active-limit` and
 *   `x-codex-rate-limit-reached-type`. The primary window is the 5-hour one (300 min), the
 *   secondary the weekly one (10080 min).
 * - codex writes them into the rollout as an `event_msg` `token_count` whose `rate_limits` is
 *   `{limit_id, primary: {used_percent, window_minutes, resets_at}, secondary, plan_type, ...}`,
 *   and app-server sends `account/rateLimits/updated` `{rateLimits: {limitId, primary:
 *   {usedPercent, windowDurationMins, resetsAt}, secondary, planType, ...}}` — a SPARSE update:
 *   absent members do not clear earlier values. `planType` is null there (no header carries it).
 * - `account/rateLimits/read` (no params) answers `{rateLimits: <same snapshot, planType set>,
 *   rateLimitsByLimitId}` from the ChatGPT backend: `GET {chatgpt_base_url}/wham/usage` answering
 *   `{plan_type, rate_limit: {allowed, limit_reached, primary_window: {used_percent,
 *   limit_window_seconds, reset_after_seconds, reset_at}, secondary_window}}` (the scripted model
 *   server serves that shape, and codex 0.171 accepts it). `account/read` answers `{account:
 *   {type: "chatgpt", email, planType}}` but needs `wham/accounts/check`, which a stand-in backend
 *   lacks. Either failing means "unknown", never fatal; the id token's `chatgpt_plan_type` claim
 *   names the plan too.
 * - The usage limit is HTTP 429 `{"error": {"type": "usage_limit_reached", "plan_type", "resets_at"}}`;
 *   app-server fails the turn with `error.codexErrorInfo = "usageLimitExceeded"`.
 *
 * **Ranking** (`rankPool`, on the store's clock): free live seeds that are not exhausted, those
 * with a known quota first by their highest used percent (a window whose reset has passed counts
 * as 0 %), then those never observed (unknown ranks after known headroom: a known 90 % still
 * leaves room, an unknown seed might be a spent one whose reads failed), each group round-robin by
 * last lease. A seed is exhausted while a window is at 100 % or a usage-limit failure was seen,
 * until that window's reset (a failure without a reset time: one primary window from when it was
 * seen, five hours when that is unknown too).
 *
 * @since 0.1.0
 */
import { Option, Schema } from "effect"
import type { SeedDoc } from "../seeds/SeedStore.ts"

/**
 * The metadata key the quota record lives under.
 * @category constants
 * @since 0.1.0
 */
export const QUOTA_METADATA_KEY = "quota"

const FALLBACK_LIMIT_MS = 5 * 60 * 60 * 1000

/**
 * One usage window as observed.
 * @category models
 * @since 0.1.0
 */
export const QuotaWindow = Schema.Struct({
  usedPercent: Schema.Number,
  windowMinutes: Schema.NullOr(Schema.Number),
  /** Unix milliseconds; null when codex did not say. */
  resetsAtMs: Schema.NullOr(Schema.Number)
})
export type QuotaWindow = typeof QuotaWindow.Type

/**
 * A seed's quota record.
 * @category models
 * @since 0.1.0
 */
export const SeedQuotaRecord = Schema.Struct({
  plan: Schema.NullOr(Schema.String),
  primary: Schema.NullOr(QuotaWindow),
  secondary: Schema.NullOr(QuotaWindow),
  /** A usage-limit failure was seen: exhausted until then (unix ms). */
  limitedUntilMs: Schema.NullOr(Schema.Number),
  /** When it was last observed (unix ms, the observing worker's clock). */
  observedAtMs: Schema.Number,
  /** Where the last observation came from: `app-server`, `rollout` or `usage-limit`. */
  source: Schema.String
})
export type SeedQuotaRecord = typeof SeedQuotaRecord.Type

const decodeRecord = Schema.decodeUnknownOption(SeedQuotaRecord)

/**
 * The quota recorded on a seed; none when never observed (or unreadable).
 * @category accessors
 * @since 0.1.0
 */
export const quotaOf = (seed: SeedDoc): Option.Option<SeedQuotaRecord> => decodeRecord(seed.metadata[QUOTA_METADATA_KEY])

/**
 * A sparse observation: what one report said (absent members keep their earlier value).
 * @category models
 * @since 0.1.0
 */
export interface QuotaObservation {
  readonly plan?: string | null | undefined
  readonly primary?: QuotaWindow | null | undefined
  readonly secondary?: QuotaWindow | null | undefined
  readonly limitedUntilMs?: number | null | undefined
  readonly source: string
}

/**
 * Merges an observation into the previous record (codex's updates are sparse).
 * @category combinators
 * @since 0.1.0
 */
export const mergeObservation = (
  previous: SeedQuotaRecord | undefined,
  observation: QuotaObservation,
  observedAtMs: number
): SeedQuotaRecord => ({
  plan: observation.plan ?? previous?.plan ?? null,
  primary: observation.primary ?? previous?.primary ?? null,
  secondary: observation.secondary ?? previous?.secondary ?? null,
  limitedUntilMs: observation.limitedUntilMs !== undefined ? observation.limitedUntilMs : previous?.limitedUntilMs ?? null,
  observedAtMs,
  source: observation.source
})

const windows = (record: SeedQuotaRecord): ReadonlyArray<QuotaWindow> =>
  [record.primary, record.secondary].filter((w): w is QuotaWindow => w !== null)

/**
 * Until when a seed is exhausted at `nowMs`; none when it has headroom.
 * @category accessors
 * @since 0.1.0
 */
export const exhaustedUntil = (record: SeedQuotaRecord, nowMs: number): Option.Option<number> => {
  const ends: Array<number> = []
  if (record.limitedUntilMs !== null && record.limitedUntilMs > nowMs) ends.push(record.limitedUntilMs)
  for (const window of windows(record)) {
    if (window.usedPercent < 100) continue
    const end = window.resetsAtMs ??
      record.observedAtMs + (window.windowMinutes === null ? FALLBACK_LIMIT_MS : window.windowMinutes * 60_000)
    if (end > nowMs) ends.push(end)
  }
  return ends.length === 0 ? Option.none() : Option.some(Math.max(...ends))
}

/**
 * The highest used percent of a seed's windows at `nowMs`; a window past its reset counts as 0.
 * None when no window was ever observed.
 * @category accessors
 * @since 0.1.0
 */
export const usedPercentAt = (record: SeedQuotaRecord, nowMs: number): Option.Option<number> => {
  const observed = windows(record)
  if (observed.length === 0) return Option.none()
  return Option.some(Math.max(...observed.map((w) => w.resetsAtMs !== null && w.resetsAtMs <= nowMs ? 0 : w.usedPercent)))
}

/**
 * How a pool stands at one moment (store clock).
 * @category models
 * @since 0.1.0
 */
export interface PoolHeadroom {
  readonly poolKey: string
  readonly at: Date
  /** Free, live, not exhausted: the order a lease tries them in. */
  readonly candidates: ReadonlyArray<{ readonly seed: SeedDoc; readonly usedPercent: number | null }>
  /** Free and live but exhausted, with the end of the exhaustion. */
  readonly exhausted: ReadonlyArray<{ readonly seed: SeedDoc; readonly untilMs: number }>
  readonly leased: number
  readonly dead: number
}

const lastLeased = (seed: SeedDoc) => seed.lastLeasedAt?.getTime() ?? -Infinity

/**
 * Ranks a pool's seeds for leasing at store time `now` (see the module docs).
 * @category constructors
 * @since 0.1.0
 */
export const rankPool = (poolKey: string, members: ReadonlyArray<SeedDoc>, now: Date): PoolHeadroom => {
  const nowMs = now.getTime()
  const known: Array<{ readonly seed: SeedDoc; readonly usedPercent: number }> = []
  const unknown: Array<SeedDoc> = []
  const exhausted: Array<{ readonly seed: SeedDoc; readonly untilMs: number }> = []
  let leased = 0
  let dead = 0
  for (const seed of members) {
    if (seed.status === "dead") {
      dead += 1
      continue
    }
    if (seed.lease !== undefined && seed.lease.expiresAt > now) {
      leased += 1
      continue
    }
    const record = quotaOf(seed)
    if (Option.isNone(record)) {
      unknown.push(seed)
      continue
    }
    const until = exhaustedUntil(record.value, nowMs)
    if (Option.isSome(until)) {
      exhausted.push({ seed, untilMs: until.value })
      continue
    }
    const used = usedPercentAt(record.value, nowMs)
    if (Option.isNone(used)) unknown.push(seed)
    else known.push({ seed, usedPercent: used.value })
  }
  const byLease = (a: SeedDoc, b: SeedDoc) => lastLeased(a) - lastLeased(b) || (a.seedId < b.seedId ? -1 : a.seedId > b.seedId ? 1 : 0)
  known.sort((a, b) => a.usedPercent - b.usedPercent || byLease(a.seed, b.seed))
  unknown.sort(byLease)
  exhausted.sort((a, b) => a.untilMs - b.untilMs)
  return {
    poolKey,
    at: now,
    candidates: [...known, ...unknown.map((seed) => ({ seed, usedPercent: null }))],
    exhausted,
    leased,
    dead
  }
}

const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 16) + " UTC"

/**
 * A one-line account of why nothing in the pool can be leased, e.g.
 * `pool p: 2 seeds exhausted until 18:05 UTC, 1 leased`.
 * @category formatting
 * @since 0.1.0
 */
export const describeHeadroom = (headroom: PoolHeadroom): string => {
  const parts: Array<string> = []
  if (headroom.candidates.length > 0) parts.push(`${headroom.candidates.length} available`)
  if (headroom.exhausted.length > 0) {
    const first = headroom.exhausted[0]!.untilMs
    parts.push(`${headroom.exhausted.length} seed${headroom.exhausted.length === 1 ? "" : "s"} exhausted until ${clock(first)}` +
      (headroom.exhausted.length > 1 ? " (earliest)" : ""))
  }
  if (headroom.leased > 0) parts.push(`${headroom.leased} leased`)
  if (headroom.dead > 0) parts.push(`${headroom.dead} dead`)
  return `pool ${headroom.poolKey}: ${parts.length === 0 ? "no seeds" : parts.join(", ")}`
}

/**
 * Every seed of the pool that could be leased is exhausted; `earliestReset` is when the first
 * one has headroom again (store clock).
 * @category errors
 * @since 0.1.0
 */
export class QuotaExhausted extends Schema.TaggedError<QuotaExhausted>()("QuotaExhausted", {
  poolKey: Schema.String,
  earliestReset: Schema.Date,
  exhaustedSeeds: Schema.Number,
  detail: Schema.String
}) {
  override get message(): string {
    return `every seed of pool ${this.poolKey} has hit its usage limit; the earliest reset is ${this.earliestReset.toISOString()} (${this.detail})`
  }
}

/**
 * The quota error for a pool that has no candidate, when exhaustion is the reason (some seed is
 * exhausted and none is merely leased); none otherwise.
 * @category constructors
 * @since 0.1.0
 */
export const exhaustionOf = (headroom: PoolHeadroom): Option.Option<QuotaExhausted> => {
  const first = headroom.exhausted[0]
  if (headroom.candidates.length > 0 || first === undefined || headroom.leased > 0) return Option.none()
  return Option.some(
    new QuotaExhausted({
      poolKey: headroom.poolKey,
      earliestReset: new Date(first.untilMs),
      exhaustedSeeds: headroom.exhausted.length,
      detail: describeHeadroom(headroom)
    })
  )
}

/**
 * Reads a rate-limit snapshot in either of codex's spellings (app-server camelCase, rollout
 * snake_case) into an observation; none when it holds no window.
 * @category decoding
 * @since 0.1.0
 */
export const observationOfSnapshot = (snapshot: unknown, source: string): Option.Option<QuotaObservation> => {
  if (typeof snapshot !== "object" || snapshot === null) return Option.none()
  const s = snapshot as Record<string, unknown>
  const windowOf = (value: unknown): QuotaWindow | undefined => {
    if (typeof value !== "object" || value === null) return undefined
    const w = value as Record<string, unknown>
    const used = w["usedPercent"] ?? w["used_percent"]
    if (typeof used !== "number" || !Number.isFinite(used)) return undefined
    const minutes = w["windowDurationMins"] ?? w["window_minutes"]
    const resets = w["resetsAt"] ?? w["resets_at"]
    return {
      usedPercent: used,
      windowMinutes: typeof minutes === "number" && Number.isFinite(minutes) ? minutes : null,
      resetsAtMs: typeof resets === "number" && Number.isFinite(resets) ? resets * 1000 : null
    }
  }
  const primary = windowOf(s["primary"])
  const secondary = windowOf(s["secondary"])
  const plan = s["planType"] ?? s["plan_type"]
  if (primary === undefined && secondary === undefined && typeof plan !== "string") return Option.none()
  return Option.some({
    ...(primary === undefined ? {} : { primary }),
    ...(secondary === undefined ? {} : { secondary }),
    ...(typeof plan === "string" ? { plan } : {}),
    source
  })
}

export * as SeedQuota from "./SeedQuota.ts"
