/**
 * ScriptedQuota: the ChatGPT-plan usage windows the scripted model server reports, per account, in
 * the shapes codex 0.171.0 parses — so quota tracking and entitlement-aware leasing are tested
 * against real codex with no account.
 *
 * - Every `/v1/responses` answer for an account with a quota carries the rate-limit headers
 *   (`x-codex-primary-used-percent`, `x-codex-primary-window-minutes`, `x-codex-primary-reset-at`
 *   in unix seconds; the same with `secondary`); codex turns them into a `token_count` event's
 *   `rate_limits` in the rollout and an `account/rateLimits/updated` notification in app-server.
 * - An account whose quota is `exhausted` is answered HTTP 429 with
 *   `{"error":{"type":"usage_limit_reached","plan_type","resets_at"}}` (and the headers) without
 *   consuming a script step: the turn fails with codexErrorInfo `usageLimitExceeded`, and the same
 *   input re-sent under another account plays the step it would have played.
 *
 * Accounts are told apart by the `ChatGPT-Account-Id` header codex sends in ChatGPT mode.
 *
 * @since 0.1.0
 */
import { Effect, Ref } from "effect"
import type { ModelRequest } from "./ModelRequest.ts"

/**
 * One usage window as the server reports it.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedWindow {
  readonly usedPercent: number
  readonly windowMinutes: number
  readonly resetsAt: Date
}

/**
 * An account's scripted quota.
 * @category models
 * @since 0.1.0
 */
export interface AccountQuota {
  readonly planType?: string | undefined
  readonly primary?: ScriptedWindow | undefined
  readonly secondary?: ScriptedWindow | undefined
  /** Answer every model request with the usage-limit failure. */
  readonly exhausted?: boolean | undefined
}

/**
 * The quotas of a scripted server, changeable while it runs.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedQuotas {
  readonly set: (accountId: string, quota: AccountQuota | undefined) => Effect.Effect<void>
  /** The quota of the account a request was made for; undefined when none is scripted. */
  readonly forRequest: (request: ModelRequest) => Effect.Effect<AccountQuota | undefined>
}

/**
 * A fresh, empty quota table.
 * @category constructors
 * @since 0.1.0
 */
export const make: Effect.Effect<ScriptedQuotas> = Effect.gen(function*() {
  const table = yield* Ref.make<ReadonlyMap<string, AccountQuota>>(new Map())
  return {
    set: (accountId, quota) =>
      Ref.update(table, (current) => {
        const next = new Map(current)
        if (quota === undefined) next.delete(accountId)
        else next.set(accountId, quota)
        return next
      }),
    forRequest: (request) =>
      Ref.get(table).pipe(Effect.map((current) => {
        const account = request.headers["chatgpt-account-id"]
        return account === undefined ? undefined : current.get(account)
      }))
  }
})

const seconds = (date: Date): string => String(Math.floor(date.getTime() / 1000))

const windowHeaders = (name: "primary" | "secondary", window: ScriptedWindow | undefined): Record<string, string> =>
  window === undefined ? {} : {
    [`x-codex-${name}-used-percent`]: String(window.usedPercent),
    [`x-codex-${name}-window-minutes`]: String(window.windowMinutes),
    [`x-codex-${name}-reset-at`]: seconds(window.resetsAt)
  }

/**
 * The response headers codex parses into a rate-limit snapshot.
 * @category encoding
 * @since 0.1.0
 */
export const rateLimitHeaders = (quota: AccountQuota): Record<string, string> => ({
  ...windowHeaders("primary", quota.primary),
  ...windowHeaders("secondary", quota.secondary)
})

/**
 * When the exhausted account's usage resets: the latest reset of a window at 100 %, else the
 * earliest reset scripted.
 * @category encoding
 * @since 0.1.0
 */
export const exhaustedUntil = (quota: AccountQuota): Date | undefined => {
  const windows = [quota.primary, quota.secondary].filter((w): w is ScriptedWindow => w !== undefined)
  const full = windows.filter((w) => w.usedPercent >= 100).map((w) => w.resetsAt.getTime())
  const upcoming = windows.map((w) => w.resetsAt.getTime())
  const chosen = full.length > 0 ? Math.max(...full) : upcoming.length > 0 ? Math.min(...upcoming) : undefined
  return chosen === undefined ? undefined : new Date(chosen)
}

/**
 * The 429 body of a usage-limit failure (codex: `UsageLimitReached`, shown as "You've hit your
 * usage limit").
 * @category encoding
 * @since 0.1.0
 */
export const usageLimitBody = (quota: AccountQuota): unknown => {
  const until = exhaustedUntil(quota)
  return {
    error: {
      type: "usage_limit_reached",
      message: "The usage limit has been reached",
      ...(quota.planType === undefined ? {} : { plan_type: quota.planType }),
      ...(until === undefined ? {} : { resets_at: Math.floor(until.getTime() / 1000) })
    }
  }
}

/**
 * Where codex's app-server reads an account's usage (`account/rateLimits/read`) under the
 * `chatgpt_base_url` the offline configuration points at the scripted server.
 * @category constants
 * @since 0.1.0
 */
export const USAGE_PATH = "/backend-api/wham/usage"

const backendWindow = (window: ScriptedWindow | undefined, nowMs: number) =>
  window === undefined ? null : {
    used_percent: window.usedPercent,
    limit_window_seconds: window.windowMinutes * 60,
    reset_after_seconds: Math.max(0, Math.round((window.resetsAt.getTime() - nowMs) / 1000)),
    reset_at: Math.floor(window.resetsAt.getTime() / 1000)
  }

/**
 * The ChatGPT backend's usage answer for an account.
 * @category encoding
 * @since 0.1.0
 */
export const usagePayload = (quota: AccountQuota, nowMs: number = 0): unknown => ({
  ...(quota.planType === undefined ? {} : { plan_type: quota.planType }),
  rate_limit: {
    allowed: quota.exhausted !== true,
    limit_reached: quota.exhausted === true,
    primary_window: backendWindow(quota.primary, nowMs),
    secondary_window: backendWindow(quota.secondary, nowMs)
  }
})

export * as ScriptedQuota from "./ScriptedQuota.ts"
