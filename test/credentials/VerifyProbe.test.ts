/**
 * The verify probe with the REAL codex binary, offline: a ChatGPT-mode seed planted in a scratch
 * HOME, codex answering through the scripted model server with the seed's access token, refreshes
 * going to the stand-in issuer. Covers the alive verdict, the fallback when the refresh endpoint is
 * unreachable, the rotation write-back, an auth failure (Dead) vs an inconclusive failure (P32),
 * the scrubbed environment (P31) and the timeout that kills codex.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { randomUUID } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { parseAuthJson } from "../../src/credentials/AuthJson.ts"
import { AUTH_MEMBER, CONFIG_MEMBER, packSeedArchive, unpackSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { verifySeedWithProbe } from "../../src/credentials/VerifySeed.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { tokenFingerprint } from "../../src/modelserver/ModelRequest.ts"
import { httpError, text } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfigToml } from "../../src/modelserver/OfflineCodexConfig.ts"
import { start as startModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { codexBinary, repoRoot } from "../support/offlineCodex.ts"
import { closedPort } from "../support/closedPort.ts"

const DAY = 24 * 3600 * 1000
const encode = (value: string) => new TextEncoder().encode(value)

const env = (hostEnv?: Record<string, string | undefined>) =>
  Layer.mergeAll(
    Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)),
    FetchHttpClient.layer,
    LocalHost.layer(hostEnv === undefined ? {} : { env: hostEnv })
  )

const workRoot = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = join(repoRoot, ".cache", "test-runs", `verify-probe-${randomUUID().slice(0, 8)}`)
    mkdirSync(dir, { recursive: true })
    return dir
  }),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)


const seedOf = (auth: Uint8Array, baseUrl: string) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    return yield* store.create({
      blob: Stream.succeed(packSeedArchive([
        { name: AUTH_MEMBER, bytes: auth, mode: 0o600 },
        { name: CONFIG_MEMBER, bytes: encode(chatgptCodexConfigToml({ baseUrl })), mode: 0o600 }
      ]))
    })
  })

const storedTokens = (seedId: string) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const blob = yield* store.readBlob(seedId)
    const members = yield* unpackSeedArchive(Buffer.concat(yield* Stream.runCollect(blob.bytes)))
    const auth = members.find((m) => m.name === AUTH_MEMBER)
    const parsed = auth === undefined ? undefined : Option.getOrUndefined(parseAuthJson(auth.bytes)) as Record<string, any> | undefined
    return { doc: blob.seed, tokens: parsed?.["tokens"] as Record<string, string> | undefined }
  })

describe("verify probe (real codex)", () => {
  it.live("alive: codex answers with the seed's access token; an ambient API key is not passed (P31); scratch removed", () =>
    Effect.gen(function*() {
      const root = yield* workRoot
      const issuer = yield* startStandInIssuer()
      const server = yield* startModelServer([text("Paris.")])
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 1 * DAY) })
      const seed = yield* seedOf(minted.bytes, server.baseUrl)
      const outcome = yield* verifySeedWithProbe(seed.seedId, {
        codexPath: codexBinary,
        workRoot: root,
        when: "always",
        env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl, OPENAI_API_KEY: "sk-explicit-is-dropped-too" },
        timeout: "90 seconds"
      })
      assert.strictEqual(outcome._tag, "Probed", JSON.stringify(outcome))
      assert.isTrue(outcome.alive)
      const requests = (yield* server.requests).filter((r) => r.path.endsWith("/responses"))
      assert.isAbove(requests.length, 0)
      for (const request of requests) assert.strictEqual(request.bearerFingerprint, tokenFingerprint(minted.accessToken))
      const stored = yield* storedTokens(seed.seedId)
      assert.strictEqual(stored.doc.status, "alive")
      assert.include(stored.doc.metadata["verify"] as object, { alive: true, outcome: "Probed" })
      assert.strictEqual(stored.doc.generation, 0, "no rotation, nothing written")
      assert.deepStrictEqual(readdirSync(root), [], "scratch HOME removed")
    }).pipe(Effect.scoped, Effect.provide(env({ ...process.env, OPENAI_API_KEY: "sk-ambient", CODEX_API_KEY: "sk-ambient" }))), 120_000)

  it.live("unreachable refresh endpoint falls back to the probe; a rotation during the probe is written back fenced", () =>
    Effect.gen(function*() {
      const root = yield* workRoot
      const issuer = yield* startStandInIssuer()
      const server = yield* startModelServer([text("The capital is Paris.")])
      // Stale, and the access token expires within codex's proactive-refresh window: codex rotates.
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY), accessTokenTtlSeconds: 60 })
      const seed = yield* seedOf(minted.bytes, server.baseUrl)
      const port = yield* closedPort
      const outcome = yield* verifySeedWithProbe(
        seed.seedId,
        { codexPath: codexBinary, workRoot: root, env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl }, timeout: "90 seconds" },
        { refreshUrl: `http://127.0.0.1:${port}/oauth/token`, requestTimeout: "5 seconds" }
      )
      assert.strictEqual(outcome._tag, "Probed", JSON.stringify(outcome))
      const requests = yield* issuer.tokenRequests
      assert.isAbove(requests.length, 0, "codex refreshed during the probe")
      const stored = yield* storedTokens(seed.seedId)
      assert.strictEqual(stored.doc.generation, 1)
      assert.deepStrictEqual([stored.tokens?.["refresh_token"] ?? "none"], yield* issuer.liveRefreshTokens, "the seed holds the live token")
      assert.notStrictEqual(stored.tokens?.["refresh_token"], minted.refreshToken)
    }).pipe(Effect.scoped, Effect.provide(env())), 120_000)

  it.live("P32: an authentication failure is Dead, a model-server failure is only Transient", () =>
    Effect.gen(function*() {
      const root = yield* workRoot
      const issuer = yield* startStandInIssuer()
      const probe = { codexPath: codexBinary, workRoot: root, when: "always" as const, env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl }, timeout: "90 seconds" } as const

      const rejecting = yield* startModelServer([httpError(401), httpError(401), httpError(401), httpError(401)])
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 1 * DAY) })
      yield* issuer.scriptRefresh([
        { _tag: "Status", status: 401, body: { error: { code: "refresh_token_expired", message: "Your refresh token has expired." } } },
        { _tag: "Status", status: 401, body: { error: { code: "refresh_token_expired", message: "Your refresh token has expired." } } }
      ])
      const deadSeed = yield* seedOf(minted.bytes, rejecting.baseUrl)
      const dead = yield* verifySeedWithProbe(deadSeed.seedId, probe)
      assert.strictEqual(dead._tag, "Dead", JSON.stringify(dead))
      assert.match(dead._tag === "Dead" ? dead.reason : "", /authentication error/)
      assert.strictEqual((yield* storedTokens(deadSeed.seedId)).doc.status, "dead")

      const failing = yield* startModelServer([httpError(500), httpError(500), httpError(500), httpError(500)])
      const other = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 1 * DAY) })
      const flakySeed = yield* seedOf(other.bytes, failing.baseUrl)
      const flaky = yield* verifySeedWithProbe(flakySeed.seedId, probe)
      assert.strictEqual(flaky._tag, "Transient", JSON.stringify(flaky))
      assert.strictEqual((yield* storedTokens(flakySeed.seedId)).doc.status, "alive")
    }).pipe(Effect.scoped, Effect.provide(env())), 180_000)

  it.live("a probe that outlives its timeout is killed and Transient", () =>
    Effect.gen(function*() {
      const root = yield* workRoot
      const issuer = yield* startStandInIssuer()
      const server = yield* startModelServer([text("Still thinking", { holdOpen: true })])
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 1 * DAY) })
      const seed = yield* seedOf(minted.bytes, server.baseUrl)
      const started = Date.now()
      const outcome = yield* verifySeedWithProbe(seed.seedId, { codexPath: codexBinary, workRoot: root, when: "always", timeout: "3 seconds" })
      assert.strictEqual(outcome._tag, "Transient", JSON.stringify(outcome))
      assert.match(outcome._tag === "Transient" ? outcome.reason : "", /timed out/)
      assert.isBelow(Date.now() - started, 20_000)
      assert.isFalse(existsSync(join(root, readdirSync(root)[0] ?? "none")), "scratch removed")
    }).pipe(Effect.scoped, Effect.provide(env())), 60_000)
})
