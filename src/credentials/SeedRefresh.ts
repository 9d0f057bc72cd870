/**
 * SeedRefresh: the one path that spends a seed's stored refresh token. The token broker (for every
 * task of a worker) and `verifyAndRefreshSeed` both refresh through {@link refreshFenced}, so a
 * seed's single-use token is presented once even when several worker processes share a store.
 *
 * **Claim, then refresh.** Reading the seed and refreshing is not enough: two processes that read
 * the same generation would both present the same token. So the refresher first *claims* the
 * refresh with a compare-and-set write of the unchanged blob (generation G → G+1, fenced by the
 * lease); only the winner goes upstream and saves the rotated tokens (G+1 → G+2). A loser sees the
 * generation move while the stored token is still the one it knows: a claim in progress. It polls
 * (on Clock) until the stored token changes — then it adopts the new tokens without going upstream —
 * or until `claimTimeout` passes (the claimant died between claim and save), then claims itself.
 *
 * Owns the claim protocol, the refresh-token grant (sent as codex sends it) and its
 * classification. Does not own leases (the caller's grant is the fence), nor when to refresh.
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Option, Schedule } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import type { AuthObject, RefreshedTokens } from "./AuthJson.ts"
import { applyTokenRefresh, authShape, encodeAuthJson, parseAuthJson, refreshedTokens } from "./AuthJson.ts"
import { AUTH_MEMBER, findMember } from "./SeedArchive.ts"
import { readSeedMembers, saveCredentials } from "./SeedEngine.ts"

const DEAD_CODES = new Set(["invalid_grant", "refresh_token_expired", "refresh_token_reused", "refresh_token_invalidated"])

/**
 * The classified answer of a refresh-token grant.
 * @category models
 */
export type RefreshResult =
  | { readonly _tag: "Ok"; readonly tokens: RefreshedTokens }
  | { readonly _tag: "Rejected"; readonly reason: string }
  | { readonly _tag: "Failed"; readonly reason: string; readonly unreachable: boolean }

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The OAuth error code of an error body: `error` (string), `error.code`, or `code`. */
const errorCode = (body: unknown): string | undefined => {
  if (!isRecord(body)) return undefined
  const error = body["error"]
  if (typeof error === "string") return error
  if (isRecord(error) && typeof error["code"] === "string") return error["code"]
  return typeof body["code"] === "string" ? body["code"] : undefined
}

/**
 * One refresh-token grant against `url` (JSON body, as codex sends it): 2xx with an access token
 * is `Ok`; 400/401 with a dead-token code is `Rejected`; anything else is `Failed`.
 * @category constructors
 */
export const requestRefresh = (
  url: string,
  refreshToken: string,
  clientId: string,
  timeout: Duration.Input,
  userAgent: string
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const request = HttpClientRequest.post(url).pipe(
      HttpClientRequest.bodyJsonUnsafe({ client_id: clientId, grant_type: "refresh_token", refresh_token: refreshToken, scope: "openid profile email" }),
      HttpClientRequest.acceptJson,
      HttpClientRequest.setHeader("user-agent", userAgent)
    )
    const exchanged = yield* client.execute(request).pipe(
      Effect.flatMap((response) => Effect.map(Effect.result(response.json), (body) => ({ status: response.status, body }))),
      Effect.timeout(timeout),
      Effect.result
    )
    if (exchanged._tag === "Failure") {
      const error = exchanged.failure
      const reason = error._tag === "TimeoutError" ? `no answer within ${Duration.format(Duration.fromInputUnsafe(timeout))}` : error.message
      return { _tag: "Failed", reason: `refresh endpoint unreachable: ${reason}`, unreachable: true } satisfies RefreshResult
    }
    const { status, body } = exchanged.success
    const json = body._tag === "Success" ? Option.some<unknown>(body.success) : Option.none<unknown>()
    if (status >= 200 && status < 300) {
      const tokens = Option.flatMap(json, refreshedTokens)
      return Option.isSome(tokens)
        ? { _tag: "Ok", tokens: tokens.value } satisfies RefreshResult
        : { _tag: "Failed", reason: `refresh answered ${status} without an access_token`, unreachable: false } satisfies RefreshResult
    }
    const code = Option.getOrUndefined(Option.map(json, errorCode))
    if ((status === 400 || status === 401) && code !== undefined && DEAD_CODES.has(code)) {
      return { _tag: "Rejected", reason: `refresh token refused (${status} ${code})` } satisfies RefreshResult
    }
    return {
      _tag: "Failed",
      reason: `refresh answered ${status}${code === undefined ? "" : ` ${code}`}`,
      unreachable: false
    } satisfies RefreshResult
  })

/**
 * A seed's stored ChatGPT credentials at one generation.
 * @category models
 * @since 0.1.0
 */
export interface StoredCredentials {
  readonly generation: number
  readonly auth: AuthObject
  /** The real refresh token (never leaves the worker). */
  readonly refreshToken: string
}

/**
 * Reads the seed's stored credentials; none when its auth.json holds no refresh token.
 * @category constructors
 */
export const readStoredCredentials = (seedId: string) =>
  Effect.gen(function*() {
    // Another worker's rotation can replace (and delete) the blob between reading the seed's
    // document and its blob: read both again, the document then names the new blob.
    const { seed, members } = yield* readSeedMembers(seedId).pipe(
      Effect.retry({ times: 3, while: (error) => error._tag === "BlobMissing" })
    )
    const member = findMember(members, AUTH_MEMBER)
    const auth = member === undefined ? Option.none<AuthObject>() : parseAuthJson(member.bytes)
    return Option.flatMap(auth, (parsed) => {
      const shape = authShape(parsed)
      return shape._tag === "ChatGpt" && Option.isSome(shape.refreshToken)
        ? Option.some<StoredCredentials>({ generation: seed.generation, auth: parsed, refreshToken: shape.refreshToken.value })
        : Option.none()
    })
  })

/**
 * Options of {@link refreshFenced}.
 * @category models
 * @since 0.1.0
 */
export interface RefreshFencedOptions {
  readonly seedId: string
  /** The caller's lease: the fence of the claim and of the save. */
  readonly lease: { readonly holder: string; readonly epoch: number }
  /** What the caller last knew: a stored token different from this one is adopted, not refreshed. */
  readonly known: { readonly generation: number; readonly refreshToken: string }
  /** The token endpoint for these credentials (the seed's own issuer). */
  readonly tokenUrl: (auth: AuthObject) => string
  readonly clientId: string
  readonly userAgent: string
  /** Bound on the grant. Default 20 seconds. */
  readonly requestTimeout?: Duration.Input | undefined
  /** How long a claim by someone else is waited on before it is taken over. Default 30 seconds. */
  readonly claimTimeout?: Duration.Input | undefined
  /** How often a claim in progress is polled. Default 100 millis. */
  readonly pollInterval?: Duration.Input | undefined
  /**
   * Whether to claim before refreshing. Default true; a caller whose lease is exclusive (nobody
   * else may write the seed meanwhile) skips it and writes once.
   */
  readonly claim?: boolean | undefined
}

/**
 * What {@link refreshFenced} did.
 * - `Rotated`: this caller refreshed upstream and saved the successor.
 * - `Adopted`: someone else had rotated; their stored tokens are returned, nothing was presented.
 * - `Rejected`: the issuer refused the stored token (the seed is dead).
 * - `Failed`: the issuer could not be used; the token was not spent (as far as we know).
 * - `NotSaved`: refreshed, but the save failed: `credentials` is the only live copy.
 * @category models
 * @since 0.1.0
 */
export type FencedRefresh =
  | { readonly _tag: "Rotated"; readonly credentials: StoredCredentials }
  | { readonly _tag: "Adopted"; readonly credentials: StoredCredentials }
  | { readonly _tag: "Rejected"; readonly reason: string }
  | { readonly _tag: "Failed"; readonly reason: string; readonly unreachable: boolean }
  | { readonly _tag: "NotSaved"; readonly reason: string; readonly credentials: StoredCredentials }

/**
 * Refreshes a seed's token once across every process sharing the store (see the module docs).
 * Fails with `SeedWriteRejected` when the fence's lease no longer holds.
 * @category constructors
 * @since 0.1.0
 */
export const refreshFenced = (options: RefreshFencedOptions) =>
  Effect.gen(function*() {
    const claimTimeout = Duration.toMillis(Duration.fromInputUnsafe(options.claimTimeout ?? "30 seconds"))
    const pollInterval = options.pollInterval ?? "100 millis"
    const fence = (generation: number) => ({ generation, lease: options.lease })
    let claimSeenAt: number | undefined
    while (true) {
      const stored = yield* readStoredCredentials(options.seedId)
      if (Option.isNone(stored)) return { _tag: "Rejected", reason: "the seed holds no refresh token" } satisfies FencedRefresh
      const current = stored.value
      if (current.refreshToken !== options.known.refreshToken) {
        // Only a newer write is someone else's rotation; at the caller's own generation the store
        // holds what the caller's refresh replaced (its save failed): never go back to that.
        if (current.generation > options.known.generation) return { _tag: "Adopted", credentials: current } satisfies FencedRefresh
        return { _tag: "Failed", reason: `seed ${options.seedId} holds older credentials than the caller's unsaved ones`, unreachable: false } satisfies FencedRefresh
      }
      const now = yield* Clock.currentTimeMillis
      if (current.generation > options.known.generation) {
        // Same token, newer generation: someone claimed the refresh. Wait for its save.
        claimSeenAt ??= now
        if (now - claimSeenAt < claimTimeout) {
          yield* Effect.sleep(pollInterval)
          continue
        }
        yield* Effect.logWarning(`a refresh claim on seed ${options.seedId} was not followed by a save within ${claimTimeout} ms; taking it over`)
      }
      const claimed = options.claim === false ? Option.some({ generation: current.generation }) : yield* saveCredentials({ seedId: options.seedId, fence: fence(current.generation), authBytes: encodeAuthJson(current.auth) }).pipe(
        Effect.map(Option.some),
        Effect.catchIf((error) => error._tag === "SeedWriteRejected" && (error.reason === "stale-generation" || error.reason === "conflict"), () =>
          Effect.succeed(Option.none()))
      )
      if (Option.isNone(claimed)) {
        // Someone else claimed first: from now on it is their claim we wait on.
        claimSeenAt = undefined
        yield* Effect.sleep(pollInterval)
        continue
      }
      const result = yield* requestRefresh(
        options.tokenUrl(current.auth),
        current.refreshToken,
        options.clientId,
        options.requestTimeout ?? "20 seconds",
        options.userAgent
      )
      if (result._tag !== "Ok") return result
      const refreshedAt = new Date(yield* Clock.currentTimeMillis)
      const auth = applyTokenRefresh(current.auth, result.tokens, refreshedAt)
      const refreshToken = Option.getOrElse(result.tokens.refreshToken, () => current.refreshToken)
      const saved = yield* saveCredentials({ seedId: options.seedId, fence: fence(claimed.value.generation), authBytes: encodeAuthJson(auth) }).pipe(
        Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 2, while: (error) => error._tag !== "SeedWriteRejected" }),
        Effect.result
      )
      if (saved._tag === "Failure") {
        const reason = `the refreshed credentials of seed ${options.seedId} could not be saved: ${saved.failure.message}`
        yield* Effect.logError(reason)
        return { _tag: "NotSaved", reason, credentials: { generation: claimed.value.generation, auth, refreshToken } } satisfies FencedRefresh
      }
      return { _tag: "Rotated", credentials: { generation: saved.success.generation, auth, refreshToken } } satisfies FencedRefresh
    }
  }).pipe(Effect.withSpan("SeedRefresh.refreshFenced", { attributes: { seedId: options.seedId } }))
