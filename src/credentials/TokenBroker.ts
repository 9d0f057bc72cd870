/**
 * TokenBroker: keeps a seed's real refresh token inside the worker. A brokered task's `auth.json`
 * holds the current access and id token and, in place of the refresh token, an opaque per-task
 * handle; codex is pointed at the broker's loopback token endpoint
 * (`CODEX_REFRESH_TOKEN_URL_OVERRIDE`, set in its allowlisted environment by the worker), so when it
 * refreshes it presents the handle here. The broker maps handle → seed, refreshes once per seed
 * against the seed's own issuer through {@link refreshFenced} (single flight in this process under
 * a per-seed lock; across processes by the store claim) and answers with the new access/id token
 * and the same handle. It also refreshes proactively, before the access token expires.
 *
 * **Leases.** Every task of every broker shares one lease per seed, held under the well-known
 * holder {@link BROKER_HOLDER}: a broker that finds the seed leased by that holder joins the grant
 * (renews it with the same holder and epoch) instead of being refused; one that finds it released
 * or expired (a sibling broker let go) takes it again. The lease is lost only when a non-broker
 * holder (a file-mode task, a Python worker, an operator) holds the seed: then every handle of the
 * seed is refused at once and each task's `lost` fails. The broker releases the lease when its last
 * task of the seed detaches.
 *
 * **Refusals.** An unknown, revoked (task ended) or post-loss handle gets 401
 * `{"error":{"code":"refresh_token_expired"}}`, codex's "log in again" answer; an issuer that
 * cannot be reached gets 503 (codex fails that request and tries again later).
 *
 * Handles are 32 random bytes, `Redacted` in every value that leaves this module, never logged.
 *
 * @since 0.1.0
 */
import { ByteSize, Clock, Context, Deferred, Duration, Effect, Exit, Layer, Option, Redacted, Schedule, Scope, Semaphore } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import type { HttpClient } from "effect/http"
import { randomBytes } from "node:crypto"
import { serveLoopback } from "../http/LoopbackServer.ts"
import { Lease, LeaseLost } from "../lease/Lease.ts"
import type { LeaseGrant } from "../lease/Lease.ts"
import { SeedStore } from "../seeds/SeedStore.ts"
import type { UnknownSeed } from "../seeds/SeedStore.ts"
import type { BlobDecryptFailed } from "../store/BlobCrypto.ts"
import type { BlobMissing, StoreUnavailable } from "../persistence/StoreError.ts"
import type { SeedArchiveInvalid } from "./SeedArchive.ts"
import type { AuthObject } from "./AuthJson.ts"
import { encodeAuthJson } from "./AuthJson.ts"
import { saveCredentials } from "./SeedEngine.ts"
import { readStoredCredentials, refreshFenced } from "./SeedRefresh.ts"
import { HANDLE_PREFIX } from "./TokenHandle.ts"
import type { FencedRefresh, StoredCredentials } from "./SeedRefresh.ts"

/**
 * The lease holder every broker uses, so brokers of several workers share one seed.
 * @category constants
 * @since 0.1.0
 */
export const BROKER_HOLDER = "optio-codex-token-broker"

export { HANDLE_PREFIX } from "./TokenHandle.ts"

/**
 * The path of the broker's token endpoint.
 * @category constants
 */
export const BROKER_TOKEN_PATH = "/oauth/token"

const OPENAI_TOKEN_URL = "https://auth.openai.com/oauth/token"
const CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
const USER_AGENT = "optio-codex-token-broker/1"
/** codex refreshes by itself when its access token has less than ~300 s left; stay ahead of it. */
const CODEX_EXPIRY_MARGIN_MS = 6 * 60 * 1000
const MAX_REQUEST_BYTES = 64 * 1024

/**
 * Cadences of the broker.
 * @category models
 * @since 0.1.0
 */
export interface TokenBrokerSettings {
  /** Token endpoint for seeds whose task names none and whose auth.json names no issuer. Default OpenAI's. */
  readonly upstreamTokenUrl?: string | undefined
  readonly clientId?: string | undefined
  /** How often each seed's lease is renewed. Default 10 seconds. */
  readonly renewInterval?: Duration.Input | undefined
  /** TTL asked for on each renewal. Default 60 seconds. */
  readonly leaseTtl?: Duration.Input | undefined
  /** Refresh ahead when the access token has less than this left. Default 10 minutes. */
  readonly refreshAhead?: Duration.Input | undefined
  /** How often access-token expiry is checked. Default 30 seconds. */
  readonly expiryCheckInterval?: Duration.Input | undefined
  /** Bound on an upstream grant. Default 20 seconds. */
  readonly requestTimeout?: Duration.Input | undefined
  /** How long another process's refresh claim is waited on. Default 30 seconds. */
  readonly claimTimeout?: Duration.Input | undefined
}

/**
 * What a task asks the broker for.
 * @category models
 * @since 0.1.0
 */
export interface AttachRequest {
  readonly seedId: string
  /** A grant the task's lease source already took under {@link BROKER_HOLDER} (a pool lease). */
  readonly grant?: LeaseGrant | undefined
  /** The task's own token endpoint (its `CODEX_REFRESH_TOKEN_URL_OVERRIDE`), used upstream. */
  readonly upstreamTokenUrl?: string | undefined
}

/**
 * A task attached to the broker.
 * @category models
 * @since 0.1.0
 */
export interface BrokeredTask {
  readonly seedId: string
  /** The handle in the task's auth.json in place of the refresh token. */
  readonly handle: Redacted.Redacted<string>
  /** The auth.json to plant: current tokens, the handle as refresh token. */
  readonly authJson: Redacted.Redacted<Uint8Array>
  /** Fails with LeaseLost once the seed's lease is lost (never succeeds). */
  readonly lost: Effect.Effect<never, LeaseLost>
}

/**
 * Why attaching failed: the store could not be used or the seed's blob could not be read.
 * @category errors
 * @since 0.1.0
 */
export type AttachError = StoreUnavailable | UnknownSeed | BlobMissing | BlobDecryptFailed | SeedArchiveInvalid

/**
 * Counters, for progress and tests.
 * @category models
 * @since 0.1.0
 */
export interface BrokerStats {
  /** Refresh grants this broker presented upstream. */
  readonly upstreamRefreshes: number
  /** Refresh requests codex made here. */
  readonly served: number
  /** Requests refused (unknown, revoked or post-loss handle). */
  readonly refused: number
}

interface TaskEntry {
  readonly seed: SeedEntry
  readonly lost: Deferred.Deferred<never, LeaseLost>
  /** The seed's `tokens` serial this task was last handed. */
  servedTokens: number
  revoked: boolean
}

interface SeedEntry {
  readonly seedId: string
  readonly lock: Semaphore.Semaphore
  readonly tasks: Set<TaskEntry>
  readonly scope: Scope.Closeable
  grant: LeaseGrant
  current: StoredCredentials
  upstreamTokenUrl: string
  lost: Option.Option<LeaseLost>
  /** The current credentials were refreshed but not stored yet (the store failed): store them first. */
  unsaved: boolean
  /** Bumped whenever `current` holds new tokens (a store write alone does not count). */
  tokens: number
}

type Answer =
  | { readonly _tag: "Tokens"; readonly auth: AuthObject; readonly handle: string }
  | { readonly _tag: "Refused"; readonly why: string }
  | { readonly _tag: "Unavailable"; readonly why: string }

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const tokensOf = (auth: AuthObject): Record<string, unknown> => isRecord(auth["tokens"]) ? auth["tokens"] : {}

const jwtClaims = (jwt: unknown): Record<string, unknown> => {
  if (typeof jwt !== "string") return {}
  const payload = jwt.split(".")[1]
  if (payload === undefined) return {}
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"))
    return isRecord(claims) ? claims : {}
  } catch {
    return {}
  }
}

/** The `exp` claim of a JWT in epoch millis; none when it has no readable one. */
export const jwtExpiry = (jwt: unknown): Option.Option<number> => {
  const exp = jwtClaims(jwt)["exp"]
  return typeof exp === "number" ? Option.some(exp * 1000) : Option.none()
}

/**
 * How long before expiry to refresh: `ahead`, but at most half the token's lifetime (`exp - iat`),
 * so an issuer handing out short-lived tokens is not asked again on every check.
 */
const refreshMargin = (jwt: unknown, ahead: number): number => {
  const claims = jwtClaims(jwt)
  const exp = claims["exp"]
  const iat = claims["iat"]
  return typeof exp === "number" && typeof iat === "number" && exp > iat ? Math.min(ahead, ((exp - iat) * 1000) / 2) : ahead
}

/** The seed's own issuer: the task's override, else `tokens.oauth_provenance.issuer`, else the default. */
const upstreamFor = (auth: AuthObject, request: AttachRequest, fallback: string): string => {
  if (request.upstreamTokenUrl !== undefined && request.upstreamTokenUrl !== "") return request.upstreamTokenUrl
  const provenance = tokensOf(auth)["oauth_provenance"]
  if (isRecord(provenance) && typeof provenance["issuer"] === "string" && /^https?:\/\//.test(provenance["issuer"])) {
    return `${provenance["issuer"].replace(/\/+$/, "")}/oauth/token`
  }
  return fallback
}

/** The task's view of the credentials: the real refresh token replaced by its handle. */
const withHandle = (auth: AuthObject, handle: string): AuthObject => ({
  ...auth,
  tokens: { ...tokensOf(auth), refresh_token: handle }
})

const refusedBody = (why: string) => ({ error: { code: "refresh_token_expired", message: `log in again: ${why}` } })

const make = (settings: TokenBrokerSettings) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const leases = yield* Lease
    const layerScope = yield* Effect.scope
    const services = yield* Effect.context<SeedStore | HttpClient.HttpClient>()
    const renewInterval = Duration.fromInputUnsafe(settings.renewInterval ?? "10 seconds")
    const leaseTtl = settings.leaseTtl ?? "60 seconds"
    const refreshAheadMs = Duration.toMillis(Duration.fromInputUnsafe(settings.refreshAhead ?? "10 minutes"))
    const expiryCheck = Duration.fromInputUnsafe(settings.expiryCheckInterval ?? "30 seconds")
    const fallbackUpstream = settings.upstreamTokenUrl ?? OPENAI_TOKEN_URL
    const clientId = settings.clientId ?? CODEX_CLIENT_ID

    const seeds = new Map<string, SeedEntry>()
    const handles = new Map<string, TaskEntry>()
    const stats = { upstreamRefreshes: 0, served: 0, refused: 0 }
    const attachLock = yield* Semaphore.make(1)

    const markLost = (seed: SeedEntry, error: LeaseLost) =>
      Effect.gen(function*() {
        if (Option.isSome(seed.lost)) return
        seed.lost = Option.some(error)
        yield* Effect.logWarning(`lease on seed ${seed.seedId} lost (${error.reason}); its task handles are refused from now on`)
        for (const task of seed.tasks) yield* Deferred.fail(task.lost, error)
      })

    /** Takes the seed's broker lease, or joins it when another broker holds it; none when someone else does. */
    const takeOrJoin = (seedId: string) =>
      Effect.gen(function*() {
        const taken = yield* leases.acquireSeed(seedId, BROKER_HOLDER, { ttl: leaseTtl })
        if (Option.isSome(taken)) return taken
        const doc = yield* store.get(seedId)
        const lease = Option.getOrUndefined(doc)?.lease
        if (lease === undefined || lease.holder !== BROKER_HOLDER) return Option.none<LeaseGrant>()
        const shared: LeaseGrant = { seedId, holder: lease.holder, epoch: lease.epoch, expiresAt: lease.expiresAt }
        return yield* leases.renew(shared, { ttl: leaseTtl }).pipe(
          Effect.map(Option.some),
          Effect.catchTag("LeaseLost", () => Effect.succeed(Option.none<LeaseGrant>()))
        )
      })

    /** Renews the seed's lease; a lapsed broker lease is taken again, a foreign one means loss. */
    const renewSeed = (seed: SeedEntry) =>
      Effect.gen(function*() {
        if (Option.isSome(seed.lost)) return false
        const renewed = yield* leases.renew(seed.grant, { ttl: leaseTtl }).pipe(Effect.map(Option.some), Effect.catchTag("LeaseLost", (lost) =>
          Effect.gen(function*() {
            if (seed.grant.holder !== BROKER_HOLDER || lost.reason === "seed-missing") {
              yield* markLost(seed, lost)
              return Option.none<LeaseGrant>()
            }
            const again = yield* takeOrJoin(seed.seedId)
            if (Option.isNone(again)) yield* markLost(seed, lost)
            return again
          })))
        if (Option.isSome(renewed)) seed.grant = renewed.value
        return Option.isSome(renewed)
      }).pipe(Effect.catchTag("StoreUnavailable", (error) =>
        Effect.as(Effect.logWarning(`renewing the lease on seed ${seed.seedId} failed (retried next tick): ${error.message}`), Option.isNone(seed.lost))))

    /** Stores credentials a refresh could not save; the caller holds `seed.lock`. */
    const saveUnsaved = (seed: SeedEntry) =>
      Effect.gen(function*() {
        if (!seed.unsaved) return true
        const saved = yield* saveCredentials({
          seedId: seed.seedId,
          fence: { generation: seed.current.generation, lease: { holder: seed.grant.holder, epoch: seed.grant.epoch } },
          authBytes: encodeAuthJson(seed.current.auth)
        }).pipe(Effect.result)
        if (saved._tag === "Failure") {
          yield* Effect.logError(`seed ${seed.seedId}: the refreshed credentials are still not stored: ${saved.failure.message}`)
          return false
        }
        seed.current = { ...seed.current, generation: saved.success.generation }
        seed.unsaved = false
        yield* Effect.logInfo(`seed ${seed.seedId}: the refreshed credentials are stored now (generation ${saved.success.generation})`)
        return true
      }).pipe(Effect.provide(services))

    /** One fenced refresh of the seed; the caller holds `seed.lock`. */
    const refreshUpstream = (seed: SeedEntry, why: string) =>
      Effect.gen(function*() {
        if (!(yield* saveUnsaved(seed))) return false
        const before = seed.current
        const result: FencedRefresh = yield* refreshFenced({
          seedId: seed.seedId,
          lease: { holder: seed.grant.holder, epoch: seed.grant.epoch },
          known: { generation: before.generation, refreshToken: before.refreshToken },
          tokenUrl: () => seed.upstreamTokenUrl,
          clientId,
          userAgent: USER_AGENT,
          requestTimeout: settings.requestTimeout,
          claimTimeout: settings.claimTimeout
        }).pipe(
          // A store blip (another process holding the database) is retried before codex hears of it.
          Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 3, while: (error) => error._tag === "StoreUnavailable" }),
          Effect.catchTag("SeedWriteRejected", (rejected) =>
            Effect.gen(function*() {
              if (rejected.reason.startsWith("lease")) {
                yield* markLost(seed, new LeaseLost({ seedId: seed.seedId, holder: seed.grant.holder, epoch: seed.grant.epoch, reason: "taken" }))
              }
              return { _tag: "Failed", reason: rejected.message, unreachable: false } as const
            })),
          Effect.catch((error) => Effect.succeed({ _tag: "Failed", reason: error.message, unreachable: false } as const))
        )
        switch (result._tag) {
          case "Rotated":
          case "NotSaved":
            stats.upstreamRefreshes++
            seed.current = result.credentials
            seed.tokens++
            seed.unsaved = result._tag === "NotSaved"
            yield* Effect.logInfo(`refreshed seed ${seed.seedId} (${why}); generation ${result.credentials.generation}`)
            return true
          case "Adopted":
            seed.current = result.credentials
            seed.tokens++
            yield* Effect.logInfo(`seed ${seed.seedId} was refreshed by another worker; adopted generation ${result.credentials.generation}`)
            return true
          case "Rejected":
            yield* Effect.logError(`the issuer refused seed ${seed.seedId}'s refresh token: ${result.reason}`)
            yield* store.setStatus(seed.seedId, "dead").pipe(Effect.ignore)
            return false
          case "Failed":
            yield* Effect.logWarning(`refreshing seed ${seed.seedId} failed: ${result.reason}`)
            return false
        }
      }).pipe(Effect.provide(services))

    const answer = (presented: string): Effect.Effect<Answer> =>
      Effect.gen(function*() {
        const task = handles.get(presented)
        if (task === undefined) return { _tag: "Refused", why: "unknown handle" } satisfies Answer
        const seed = task.seed
        if (task.revoked || Option.isSome(seed.lost)) return { _tag: "Refused", why: "the task's credentials were revoked" } satisfies Answer
        return yield* seed.lock.withPermits(1)(Effect.gen(function*() {
          // A stolen lease is noticed here, not at the next renewal tick.
          if (!(yield* renewSeed(seed)) || task.revoked) return { _tag: "Refused", why: "the seed's lease is lost" } satisfies Answer
          const now = yield* Clock.currentTimeMillis
          const expiry = jwtExpiry(tokensOf(seed.current.auth)["access_token"])
          const stale = Option.match(expiry, { onNone: () => false, onSome: (exp) => exp - now < CODEX_EXPIRY_MARGIN_MS })
          // Newer tokens than this task has (another task's refresh): hand them out, no upstream.
          if (task.servedTokens >= seed.tokens || stale) {
            const refreshed = yield* refreshUpstream(seed, "codex asked")
            if (!refreshed) {
              return Option.isSome(seed.lost)
                ? { _tag: "Refused", why: "the seed's lease is lost" } satisfies Answer
                : { _tag: "Unavailable", why: "the issuer could not refresh the seed" } satisfies Answer
            }
          }
          task.servedTokens = seed.tokens
          yield* Effect.logDebug(`answered a refresh for seed ${seed.seedId} with generation ${seed.current.generation}`)
          return { _tag: "Tokens", auth: seed.current.auth, handle: presented } satisfies Answer
        }))
      })

    const handler = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const path = request.url.split("?")[0] ?? request.url
      if (request.method !== "POST" || path !== BROKER_TOKEN_PATH) {
        return HttpServerResponse.jsonUnsafe({ error: "not_found" }, { status: 404 })
      }
      const length = Number(request.headers["content-length"] ?? "0")
      if (!Number.isFinite(length) || length > MAX_REQUEST_BYTES) {
        return HttpServerResponse.jsonUnsafe({ error: "request_too_large" }, { status: 413 })
      }
      // A body without a content-length is capped while it is read (the agent can reach this port).
      const text = yield* request.text.pipe(
        Effect.provideService(HttpServerRequest.MaxBodySize, ByteSize.kibibytes(MAX_REQUEST_BYTES / 1024)),
        Effect.orElseSucceed(() => "")
      )
      const presented = presentedToken(text, request.headers["content-type"] ?? "")
      const result = presented === undefined ? { _tag: "Refused", why: "no refresh token" } satisfies Answer : yield* answer(presented)
      switch (result._tag) {
        case "Refused":
          stats.refused++
          yield* Effect.logWarning(`refused a token refresh: ${result.why}`)
          return HttpServerResponse.jsonUnsafe(refusedBody(result.why), { status: 401 })
        case "Unavailable":
          return HttpServerResponse.jsonUnsafe({ error: { code: "temporarily_unavailable", message: result.why } }, { status: 503 })
        case "Tokens": {
          stats.served++
          const tokens = tokensOf(result.auth)
          return HttpServerResponse.jsonUnsafe({
            access_token: tokens["access_token"],
            ...(typeof tokens["id_token"] === "string" ? { id_token: tokens["id_token"] } : {}),
            refresh_token: result.handle
          })
        }
      }
    }).pipe(Effect.catchCause(() => Effect.succeed(HttpServerResponse.jsonUnsafe({ error: "internal" }, { status: 500 }))))

    const port = yield* serveLoopback(handler)

    const startSeed = (request: AttachRequest) =>
      Effect.gen(function*() {
        const grant = request.grant ?? Option.getOrUndefined(yield* takeOrJoin(request.seedId))
        if (grant === undefined) return Option.none<SeedEntry>()
        const stored = yield* readStoredCredentials(request.seedId)
        if (Option.isNone(stored)) {
          yield* leases.release(grant).pipe(Effect.ignore)
          return yield* Effect.die(new Error(`seed ${request.seedId} holds no ChatGPT refresh token to broker`))
        }
        const scope = yield* Scope.fork(layerScope, "sequential")
        const seed: SeedEntry = {
          seedId: request.seedId,
          lock: yield* Semaphore.make(1),
          tasks: new Set(),
          scope,
          grant,
          current: stored.value,
          upstreamTokenUrl: upstreamFor(stored.value.auth, request, fallbackUpstream),
          lost: Option.none(),
          unsaved: false,
          tokens: 0
        }
        // Each tick also stores credentials a failed save left only in memory.
        const tick = Effect.andThen(renewSeed(seed), Effect.suspend(() => seed.unsaved ? seed.lock.withPermits(1)(saveUnsaved(seed)) : Effect.void))
        yield* tick.pipe(Effect.repeat(Schedule.spaced(renewInterval)), Effect.delay(renewInterval), Effect.forkIn(scope))
        const ahead = Effect.gen(function*() {
          if (Option.isSome(seed.lost)) return
          const now = yield* Clock.currentTimeMillis
          const access = tokensOf(seed.current.auth)["access_token"]
          const expiry = jwtExpiry(access)
          if (Option.isSome(expiry) && expiry.value - now < refreshMargin(access, refreshAheadMs)) {
            yield* seed.lock.withPermits(1)(refreshUpstream(seed, "ahead of expiry"))
          }
        })
        yield* ahead.pipe(Effect.repeat(Schedule.spaced(expiryCheck)), Effect.delay(expiryCheck), Effect.forkIn(scope))
        seeds.set(request.seedId, seed)
        return Option.some(seed)
      })

    const detach = (task: TaskEntry, handle: string) =>
      attachLock.withPermits(1)(Effect.gen(function*() {
        task.revoked = true
        handles.delete(handle)
        const seed = task.seed
        seed.tasks.delete(task)
        if (seed.tasks.size > 0) return
        seeds.delete(seed.seedId)
        yield* Scope.close(seed.scope, Exit.void)
        if (seed.unsaved && Option.isNone(seed.lost)) yield* seed.lock.withPermits(1)(saveUnsaved(seed))
        if (Option.isNone(seed.lost)) {
          yield* leases.release(seed.grant).pipe(
            Effect.catch((error) => Effect.logWarning(`releasing the broker lease on seed ${seed.seedId} failed (its TTL will reclaim it): ${error.message}`))
          )
        }
      }))

    const attach = (request: AttachRequest) =>
      Effect.gen(function*() {
        const entry = yield* attachLock.withPermits(1)(Effect.gen(function*() {
          const existing = seeds.get(request.seedId)
          const seed = existing !== undefined && Option.isNone(existing.lost)
            ? Option.some(existing)
            : yield* startSeed(request).pipe(Effect.provide(services))
          if (Option.isNone(seed)) return Option.none<{ readonly task: TaskEntry; readonly handle: string }>()
          const handle = `${HANDLE_PREFIX}${randomBytes(32).toString("base64url")}`
          const task: TaskEntry = { seed: seed.value, lost: yield* Deferred.make<never, LeaseLost>(), servedTokens: seed.value.tokens, revoked: false }
          seed.value.tasks.add(task)
          handles.set(handle, task)
          return Option.some({ task, handle })
        }))
        if (Option.isNone(entry)) return Option.none<BrokeredTask>()
        const { task, handle } = entry.value
        yield* Effect.addFinalizer(() => detach(task, handle))
        const brokered: BrokeredTask = {
          seedId: request.seedId,
          handle: Redacted.make(handle),
          authJson: Redacted.make(encodeAuthJson(withHandle(task.seed.current.auth, handle))),
          lost: Deferred.await(task.lost)
        }
        return Option.some(brokered)
      })

    return {
      enabled: true,
      port,
      tokenUrl: `http://127.0.0.1:${port}${BROKER_TOKEN_PATH}`,
      attach,
      stats: Effect.sync((): BrokerStats => ({ ...stats }))
    }
  })

/** The refresh token of a token request (JSON as codex sends it, or form-encoded). */
const presentedToken = (text: string, contentType: string): string | undefined => {
  if (text === "") return undefined
  if (contentType.includes("json") || text.trimStart().startsWith("{")) {
    try {
      const body: unknown = JSON.parse(text)
      return isRecord(body) && typeof body["refresh_token"] === "string" ? body["refresh_token"] : undefined
    } catch {
      return undefined
    }
  }
  return new URLSearchParams(text).get("refresh_token") ?? undefined
}

/**
 * The worker's token broker: a loopback token endpoint that lives as long as the layer.
 * @category services
 * @since 0.1.0
 */
export class TokenBroker extends Context.Service<TokenBroker, {
  /**
   * False only for `TokenBroker.layerNone` (a worker that keeps every seeded task in file mode):
   * a task asking for `credentialMode: "broker"` is then refused before it starts.
   */
  readonly enabled: boolean
  /** The endpoint codex refreshes against (`CODEX_REFRESH_TOKEN_URL_OVERRIDE` of brokered tasks). */
  readonly tokenUrl: string
  /** The loopback port of {@link tokenUrl} (forwarded to remote hosts). */
  readonly port: number
  /**
   * Attaches a task to a seed for the scope's lifetime: takes (or joins) the seed's broker lease
   * unless `grant` is given; none when someone other than a broker holds the seed. The handle is
   * revoked when the scope closes; the last task of a seed releases its lease.
   */
  readonly attach: (request: AttachRequest) => Effect.Effect<Option.Option<BrokeredTask>, AttachError, Scope.Scope>
  readonly stats: Effect.Effect<BrokerStats>
}>()("optio-codex/TokenBroker") {
  /** The broker with default cadences; needs the store and an HTTP client for the issuers. */
  static readonly layer = (settings: TokenBrokerSettings = {}): Layer.Layer<TokenBroker, never, SeedStore | Lease | HttpClient.HttpClient> =>
    Layer.effect(TokenBroker, make(settings))

  /**
   * No broker: seeded tasks keep their refresh token in their own auth.json (file mode), as
   * Python workers sharing the store need. Serves nothing.
   */
  static readonly layerNone: Layer.Layer<TokenBroker> = Layer.succeed(TokenBroker, TokenBroker.of({
    enabled: false,
    port: 0,
    tokenUrl: "",
    attach: () => Effect.succeed(Option.none()),
    stats: Effect.succeed({ upstreamRefreshes: 0, served: 0, refused: 0 })
  }))
}
