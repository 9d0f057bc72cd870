/**
 * VerifySeed: checking that a stored seed still authenticates, and refreshing its single-use
 * token before it goes stale (spec §7, with the fixes of §9). Host-free by default: one
 * refresh-token grant at most, no codex process, nothing billable. Owns the verification decision,
 * the refresh request, its classification and the stamping of the result on the seed; the optional
 * probe fallback runs `codex exec` on a Host. Nothing here schedules verification (the app does).
 *
 * **Algorithm.** Lease the seed itself (holder `verify-<random>`, P25): if someone holds it, the
 * outcome is `Busy` and nothing is touched. Read its `auth.json` member: unusable ⇒ `Dead`; an
 * API-key seed ⇒ `ApiKey` (alive, no network); ChatGPT tokens without a refresh token ⇒ `Dead`;
 * `last_refresh` younger than `freshFor` (8 days) ⇒ `Fresh` with no network at all (P28);
 * otherwise one refresh grant, sent as codex sends it (JSON body with `scope`, P30):
 *
 * | answer | outcome |
 * |---|---|
 * | 2xx with an `access_token` | tokens written back fenced under the verify lease ⇒ `Refreshed` |
 * | 400/401 with `invalid_grant` or a `refresh_token_expired/_reused/_invalidated` code | `Dead` |
 * | any other status (5xx, 429, …), a non-JSON body, a transport error or timeout | `Transient` (P29) |
 *
 * A refresh that succeeded but could not be saved (after retries) is `RefreshedNotSaved` — never
 * alive: the old token is already spent (P27). The new credentials are in the outcome (redacted)
 * so the caller can still persist them.
 *
 * **Stamping.** Every outcome but `Busy` stamps `metadata.verify = {alive, checkedAt, outcome}`
 * (best effort); `status` becomes `alive` on an alive outcome and `dead` only on `Dead`.
 *
 * **Probe fallback** ({@link verifySeedWithProbe}, needs a Host): runs
 * `codex exec --json -s read-only --skip-git-repo-check "<question>"` in a scratch HOME under
 * `workRoot` with the seed planted and only an allowlisted environment (no inherited
 * `OPENAI_API_KEY` / `CODEX_API_KEY`, P31), bounded by a timeout that kills the process tree. It
 * runs only when asked: `when: "unreachable"` (default) when the refresh endpoint could not be
 * reached at all, `when: "always"` instead of the refresh for every usable seed. Alive iff stdout
 * names the answer; a failed probe is `Transient` unless its output shows an authentication error
 * (then `Dead`, P32). A rotated `auth.json` is written back fenced.
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Option, Redacted, Schedule, Stream } from "effect"
import type { HttpClient } from "effect/http"
import { randomBytes } from "node:crypto"
import { posix } from "node:path"
import { Host } from "../host/Host.ts"
import { Lease } from "../lease/Lease.ts"
import type { LeaseGrant } from "../lease/Lease.ts"
import { SeedStore, UnknownSeed } from "../seeds/SeedStore.ts"
import type { BlobDecryptFailed } from "../persistence/StoreError.ts"
import type { BlobMissing, StoreUnavailable } from "../persistence/StoreError.ts"
import { authShape, encodeAuthJson, parseAuthJson } from "./AuthJson.ts"
import { AUTH_MEMBER, findMember, unpackSeedArchive } from "./SeedArchive.ts"
import { refreshFenced } from "./SeedRefresh.ts"
import { plantSeed, readCredentials, saveCredentials } from "./SeedEngine.ts"

/**
 * OpenAI's issuer (spec §2.4).
 * @category constants
 */
export const OPENAI_ISSUER = "https://auth.openai.com"

/**
 * Codex's public OAuth client id (spec §2.4).
 * @category constants
 */
export const CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"

/**
 * The question the probe asks; its answer word is deliberately absent from it (spec §7.7).
 * @category constants
 */
export const PROBE_PROMPT = "What is the capital of France? Answer with the city name."

const USER_AGENT = "optio-codex-seed-verify/1"

/**
 * Options of verification.
 * @category models
 * @since 0.1.0
 */
export interface VerifyOptions {
  /** Issuer base; default {@link OPENAI_ISSUER}. */
  readonly issuer?: string | undefined
  /** Refresh endpoint; default `${issuer}/oauth/token`. */
  readonly refreshUrl?: string | undefined
  /** Default {@link CODEX_CLIENT_ID}. */
  readonly clientId?: string | undefined
  /** Bound on the refresh request (connect + answer). Default 20 seconds. */
  readonly requestTimeout?: Duration.Input | undefined
  /** A seed refreshed less than this long ago is fresh (no network). Default 8 days. */
  readonly freshFor?: Duration.Input | undefined
  /** TTL of the verify lease (extended by the probe timeout when probing). Default 60 seconds. */
  readonly leaseTtl?: Duration.Input | undefined
}

/**
 * Options of the `codex exec` probe.
 * @category models
 * @since 0.1.0
 */
export interface ProbeOptions {
  /** The codex binary on the Host. */
  readonly codexPath: string
  /** Scratch directories are created (and removed) under it on the Host; never `/tmp`. */
  readonly workRoot: string
  /** `unreachable` (default): only when the refresh endpoint cannot be reached; `always`: instead of refreshing. */
  readonly when?: "always" | "unreachable" | undefined
  /** Bound on the probe; the process tree is killed when it runs out. Default 180 seconds. */
  readonly timeout?: Duration.Input | undefined
  /**
   * Extra variables for codex (e.g. a proxy or `CODEX_REFRESH_TOKEN_URL_OVERRIDE`); nothing else
   * is inherited. `OPENAI_API_KEY` and `CODEX_API_KEY` are dropped even from here.
   */
  readonly env?: Readonly<Record<string, string>> | undefined
}

/**
 * The verdict on a seed; every variant says whether the seed is usable (`alive`).
 * @category models
 * @since 0.1.0
 */
export type VerifyOutcome =
  | { readonly _tag: "Fresh"; readonly alive: true; readonly lastRefresh: Date }
  | { readonly _tag: "Refreshed"; readonly alive: true; readonly generation: number }
  | { readonly _tag: "ApiKey"; readonly alive: true }
  | { readonly _tag: "Dead"; readonly alive: false; readonly reason: string }
  | { readonly _tag: "Transient"; readonly alive: false; readonly reason: string }
  | { readonly _tag: "Busy"; readonly alive: false; readonly holder: string }
  | {
    readonly _tag: "RefreshedNotSaved"
    readonly alive: false
    readonly reason: string
    /** The refreshed `auth.json` that could not be stored: the only live copy of the lineage. */
    readonly credentials: Redacted.Redacted<Uint8Array>
  }
  | { readonly _tag: "Probed"; readonly alive: boolean; readonly detail: string }

/**
 * The failures of verification; dead or unreachable credentials are outcomes, not failures.
 * @category models
 * @since 0.1.0
 */
export type VerifyError = UnknownSeed | StoreUnavailable | BlobMissing | BlobDecryptFailed

const dead = (reason: string): VerifyOutcome => ({ _tag: "Dead", alive: false, reason })
const transient = (reason: string): VerifyOutcome => ({ _tag: "Transient", alive: false, reason })

/** How the probe is run; `R` is what running it needs (the Host). */
interface ProbePlan<R> {
  readonly when: "always" | "unreachable"
  readonly timeout: Duration.Duration
  readonly run: (seedId: string, grant: LeaseGrant) => Effect.Effect<VerifyOutcome, never, R | SeedStore>
}

const saveRefreshed = (seedId: string, grant: LeaseGrant, generation: number, bytes: Uint8Array) =>
  saveCredentials({ seedId, fence: { generation, lease: { holder: grant.holder, epoch: grant.epoch } }, authBytes: bytes }).pipe(
    Effect.retry({
      schedule: Schedule.exponential("100 millis"),
      times: 2,
      while: (error) => error._tag !== "SeedWriteRejected"
    })
  )

const notSaved = (seedId: string, bytes: Uint8Array, why: string) =>
  Effect.gen(function*() {
    const reason = `the refreshed credentials could not be saved into seed ${seedId}: ${why}; the stored token is spent`
    yield* Effect.logError(reason)
    return { _tag: "RefreshedNotSaved", alive: false, reason, credentials: Redacted.make(bytes) } satisfies VerifyOutcome
  })

const stamp = (seedId: string, outcome: VerifyOutcome) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const checkedAt = new Date(yield* Clock.currentTimeMillis)
    yield* store.declareMetadata(seedId, { verify: { alive: outcome.alive, checkedAt, outcome: outcome._tag } })
    if (outcome.alive) yield* store.setStatus(seedId, "alive")
    else if (outcome._tag === "Dead") yield* store.setStatus(seedId, "dead")
  }).pipe(Effect.catch((error) => Effect.logWarning(`could not stamp the verify result on seed ${seedId}: ${error.message}`)))

const verifyCore = <R>(seedId: string, options: VerifyOptions, probe: Option.Option<ProbePlan<R>>) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const leases = yield* Lease
    const found = yield* store.get(seedId)
    if (Option.isNone(found)) return yield* new UnknownSeed({ seedId })
    const baseTtl = Duration.fromInputUnsafe(options.leaseTtl ?? "60 seconds")
    const ttl = Option.match(probe, { onNone: () => baseTtl, onSome: (plan) => Duration.sum(baseTtl, plan.timeout) })
    const holder = `verify-${randomBytes(6).toString("hex")}`
    const granted = yield* Effect.acquireRelease(
      leases.acquireSeed(seedId, holder, { ttl }),
      (grant) =>
        Option.isSome(grant)
          ? leases.release(grant.value).pipe(Effect.catch((error) => Effect.logWarning(`verify lease release failed: ${error.message}`)))
          : Effect.void
    )
    if (Option.isNone(granted)) {
      const current = yield* store.get(seedId)
      const busyWith = Option.getOrUndefined(Option.flatMap(current, (doc) => Option.fromNullishOr(doc.lease?.holder)))
      if (Option.isNone(current)) return yield* new UnknownSeed({ seedId })
      return { _tag: "Busy", alive: false, holder: busyWith ?? "unknown" } satisfies VerifyOutcome
    }
    const grant = granted.value
    const outcome = yield* decide(seedId, grant, options, probe)
    yield* stamp(seedId, outcome)
    yield* Effect.logInfo(`seed ${seedId} verified: ${outcome._tag}${"reason" in outcome ? ` (${outcome.reason})` : ""}`)
    return outcome
  }).pipe(Effect.scoped, Effect.withSpan("VerifySeed.verify", { attributes: { seedId } }))

const decide = <R>(seedId: string, grant: LeaseGrant, options: VerifyOptions, probe: Option.Option<ProbePlan<R>>) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const blob = yield* store.readBlob(seedId)
    const bytes = new Uint8Array(Buffer.concat(yield* Stream.runCollect(blob.bytes)))
    const unpacked = yield* Effect.result(unpackSeedArchive(bytes))
    if (unpacked._tag === "Failure") return dead(unpacked.failure.message)
    const member = findMember(unpacked.success, AUTH_MEMBER)
    if (member === undefined) return dead(`the seed has no ${AUTH_MEMBER}`)
    const auth = parseAuthJson(member.bytes)
    const shape = Option.match(auth, { onNone: () => ({ _tag: "Unusable" as const }), onSome: authShape })
    if (shape._tag === "Unusable" || Option.isNone(auth)) return dead(`${AUTH_MEMBER} holds no usable credentials`)
    const probeAlways = Option.filter(probe, (plan) => plan.when === "always")
    if (Option.isSome(probeAlways)) return yield* probeAlways.value.run(seedId, grant)
    if (shape._tag === "ApiKey") return { _tag: "ApiKey", alive: true } satisfies VerifyOutcome
    if (Option.isNone(shape.refreshToken)) return dead("ChatGPT tokens without a refresh token")
    const now = yield* Clock.currentTimeMillis
    const freshFor = Duration.toMillis(options.freshFor ?? "8 days")
    if (Option.isSome(shape.lastRefresh) && now - shape.lastRefresh.value.getTime() < freshFor) {
      return { _tag: "Fresh", alive: true, lastRefresh: shape.lastRefresh.value } satisfies VerifyOutcome
    }
    const url = options.refreshUrl ?? `${options.issuer ?? OPENAI_ISSUER}/oauth/token`
    // The same path the token broker refreshes through; verify's lease is exclusive, so no claim.
    const refreshed = yield* refreshFenced({
      seedId,
      lease: { holder: grant.holder, epoch: grant.epoch },
      known: { generation: blob.seed.generation, refreshToken: shape.refreshToken.value },
      tokenUrl: () => url,
      clientId: options.clientId ?? CODEX_CLIENT_ID,
      userAgent: USER_AGENT,
      requestTimeout: options.requestTimeout ?? "20 seconds",
      claim: false
    }).pipe(
      Effect.catchTag("SeedWriteRejected", (rejected) =>
        Effect.succeed({ _tag: "Failed", reason: `the verify lease no longer holds: ${rejected.message}`, unreachable: false } as const)),
      Effect.catchTag("SeedArchiveInvalid", (invalid) => Effect.succeed({ _tag: "Rejected", reason: invalid.message } as const))
    )
    switch (refreshed._tag) {
      case "Rejected":
        return dead(refreshed.reason)
      case "Failed": {
        const fallback = Option.filter(probe, () => refreshed.unreachable)
        if (Option.isSome(fallback)) {
          yield* Effect.logWarning(`${refreshed.reason}; falling back to the codex probe`)
          return yield* fallback.value.run(seedId, grant)
        }
        return transient(refreshed.reason)
      }
      case "NotSaved":
        return yield* notSaved(seedId, encodeAuthJson(refreshed.credentials.auth), refreshed.reason)
      case "Rotated":
      case "Adopted":
        return { _tag: "Refreshed", alive: true, generation: refreshed.credentials.generation } satisfies VerifyOutcome
    }
  })

/**
 * Verifies a seed host-free and refreshes its token when stale (see the module docs). Fails only
 * when the seed is unknown or the store cannot be used; everything about the credentials is an
 * outcome.
 * @category constructors
 * @since 0.1.0
 */
export const verifyAndRefreshSeed = (
  seedId: string,
  options: VerifyOptions = {}
): Effect.Effect<VerifyOutcome, VerifyError, SeedStore | Lease | HttpClient.HttpClient> =>
  verifyCore<never>(seedId, options, Option.none())

const AUTH_ERROR =
  /\b401\b|unauthori[sz]ed|invalid_grant|refresh token (?:was already used|has expired|was revoked)|refresh_token_(?:expired|reused|invalidated)|log ?in again|not logged in|please (?:re-?)?authenticate/i

/**
 * {@link verifyAndRefreshSeed} with the `codex exec` probe on the Host in context (see the module
 * docs for when it runs).
 * @category constructors
 * @since 0.1.0
 */
export const verifySeedWithProbe = (
  seedId: string,
  probe: ProbeOptions,
  options: VerifyOptions = {}
): Effect.Effect<VerifyOutcome, VerifyError, SeedStore | Lease | HttpClient.HttpClient | Host> =>
  Effect.suspend(() => {
    const plan: ProbePlan<Host> = {
      when: probe.when ?? "unreachable",
      timeout: Duration.fromInputUnsafe(probe.timeout ?? "180 seconds"),
      run: (id, grant) => runProbe(id, grant, probe, Duration.fromInputUnsafe(probe.timeout ?? "180 seconds"))
    }
    return verifyCore(seedId, options, Option.some(plan))
  })

const runProbe = (seedId: string, grant: LeaseGrant, probe: ProbeOptions, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const host = yield* Host
    const scratch = posix.join(probe.workRoot, `seed-verify-${randomBytes(6).toString("hex")}`)
    yield* Effect.acquireRelease(
      host.makeDirectory(scratch, { mode: 0o700 }),
      () => host.remove(scratch).pipe(Effect.catch((error) => Effect.logWarning(`could not remove probe dir: ${error.message}`)))
    )
    const home = posix.join(scratch, "home")
    const codexHome = posix.join(home, ".codex")
    const work = posix.join(scratch, "work")
    const tmp = posix.join(scratch, "tmp")
    for (const dir of [work, tmp, posix.join(home, ".config"), posix.join(home, ".local", "share"), posix.join(home, ".cache")]) {
      yield* host.makeDirectory(dir)
    }
    const planted = yield* plantSeed(seedId, codexHome)
    const { CODEX_API_KEY: _codexKey, OPENAI_API_KEY: _openaiKey, ...extra } = probe.env ?? {}
    const env: Record<string, string> = {
      PATH: "/usr/local/bin:/usr/bin:/bin",
      LANG: "C.UTF-8",
      ...extra,
      HOME: home,
      CODEX_HOME: codexHome,
      TMPDIR: tmp,
      XDG_CONFIG_HOME: posix.join(home, ".config"),
      XDG_DATA_HOME: posix.join(home, ".local", "share"),
      XDG_CACHE_HOME: posix.join(home, ".cache")
    }
    const ran = yield* Effect.scoped(Effect.gen(function*() {
      const proc = yield* host.spawn(
        { argv: [probe.codexPath, "exec", "--json", "-s", "read-only", "--skip-git-repo-check", PROBE_PROMPT], cwd: work, env, envRemove: ["*"] },
        { gracePeriod: "2 seconds" }
      )
      const finished = yield* Effect.all([
        Stream.runCollect(proc.stdout).pipe(Effect.map((chunks) => Buffer.concat(chunks).toString("utf8"))),
        proc.exitCode
      ], { concurrency: "unbounded" }).pipe(Effect.timeoutOption(timeout))
      return { finished, stderr: yield* proc.stderrTail }
    }))
    // Whatever the verdict, a rotation during the probe must reach the seed.
    const after = yield* readCredentials(posix.join(codexHome, "auth.json")).pipe(Effect.orElseSucceed(() => Option.none()))
    const rotated = Option.filter(after, (credentials) => !Option.contains(planted.baseline, credentials.fingerprint))
    if (Option.isSome(rotated)) {
      const saved = yield* Effect.result(saveRefreshed(seedId, grant, planted.seed.generation, rotated.value.bytes))
      if (saved._tag === "Failure") return yield* notSaved(seedId, rotated.value.bytes, saved.failure.message)
      yield* Effect.logInfo(`the probe rotated seed ${seedId}'s credentials; saved back`)
    }
    if (Option.isNone(ran.finished)) return transient(`probe timed out after ${Duration.format(timeout)}`)
    const [stdout, exitCode] = ran.finished.value
    if (/paris/i.test(stdout)) {
      return { _tag: "Probed", alive: true, detail: `codex answered (exit ${exitCode})` } satisfies VerifyOutcome
    }
    const output = `${stdout}\n${ran.stderr}`
    const authError = AUTH_ERROR.exec(output)
    if (authError !== null) return dead(`probe hit an authentication error (${authError[0]}), exit ${exitCode}`)
    return transient(`probe inconclusive (exit ${exitCode}): ${stdout.slice(0, 200).trim() || ran.stderr.slice(-200).trim()}`)
  }).pipe(
    Effect.catch((error) => Effect.succeed(transient(`probe could not run: ${error.message}`))),
    Effect.scoped
  ) satisfies Effect.Effect<VerifyOutcome, never, Host | SeedStore>

