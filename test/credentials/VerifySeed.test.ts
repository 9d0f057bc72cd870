/**
 * verifyAndRefreshSeed against the stand-in issuer (real HTTP on loopback) and the memory store:
 * the refresh path and its write-back, freshness without network (P28), the request codex sends
 * (P30), classification (P29), the verify lease (P25), RefreshedNotSaved (P27) and stamping.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { parseAuthJson } from "../../src/credentials/AuthJson.ts"
import { AUTH_MEMBER, CONFIG_MEMBER, packSeedArchive, unpackSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { verifyAndRefreshSeed } from "../../src/credentials/VerifySeed.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { StoreUnavailable } from "../../src/persistence/StoreError.ts"
import { closedPort } from "../support/closedPort.ts"

const DAY = 24 * 3600 * 1000
const storeLayer = () => Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext))
const env = () => Layer.mergeAll(storeLayer(), FetchHttpClient.layer)
const text = (value: string) => new TextEncoder().encode(value)

const seedWith = (auth: Uint8Array | string | undefined, config = "model = \"m\"\n") =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const members = [
      ...(auth === undefined ? [] : [{ name: AUTH_MEMBER, bytes: typeof auth === "string" ? text(auth) : auth, mode: 0o600 }]),
      { name: CONFIG_MEMBER, bytes: text(config), mode: 0o600 }
    ]
    return yield* store.create({ blob: Stream.succeed(packSeedArchive(members)) })
  })

const storedAuth = (seedId: string) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const blob = yield* store.readBlob(seedId)
    const members = yield* unpackSeedArchive(Buffer.concat(yield* Stream.runCollect(blob.bytes)))
    const auth = members.find((m) => m.name === AUTH_MEMBER)
    return {
      doc: blob.seed,
      auth: auth === undefined ? undefined : Option.getOrUndefined(parseAuthJson(auth.bytes)) as Record<string, any> | undefined,
      mode: auth?.mode,
      config: members.find((m) => m.name === CONFIG_MEMBER)
    }
  })


describe("verifyAndRefreshSeed", () => {
  it.live("a stale ChatGPT seed is refreshed the way codex does it and written back fenced, keeping unknown fields", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY) })
      const original = Option.getOrThrow(parseAuthJson(minted.bytes)) as Record<string, any>
      const withExtras = { ...original, extra: 1, tokens: { ...original["tokens"], oauth_provenance: { issuer: issuer.url } } }
      const seed = yield* seedWith(JSON.stringify(withExtras))
      const outcome = yield* verifyAndRefreshSeed(seed.seedId, { issuer: issuer.url })
      assert.deepStrictEqual(outcome, { _tag: "Refreshed", alive: true, generation: 1 })
      const requests = yield* issuer.tokenRequests
      assert.strictEqual(requests.length, 1)
      assert.strictEqual(requests[0]?.grantType, "refresh_token")
      assert.strictEqual(requests[0]?.refreshToken, minted.refreshToken)
      assert.strictEqual(requests[0]?.clientId, "app_EMoamEEZ73f0CkXaXp7hrann")
      assert.match(requests[0]?.contentType ?? "", /application\/json/)
      const live = yield* issuer.liveRefreshTokens
      const stored = yield* storedAuth(seed.seedId)
      assert.deepStrictEqual([stored.auth?.["tokens"]?.["refresh_token"]], live, "the seed holds the one live token")
      assert.notStrictEqual(stored.auth?.["tokens"]?.["access_token"], minted.accessToken)
      assert.strictEqual(stored.auth?.["tokens"]?.["account_id"], original["tokens"]["account_id"])
      assert.deepStrictEqual(stored.auth?.["tokens"]?.["oauth_provenance"], { issuer: issuer.url })
      assert.strictEqual(stored.auth?.["extra"], 1)
      assert.strictEqual(stored.auth?.["auth_mode"], "chatgpt")
      assert.isAbove(Date.parse(stored.auth?.["last_refresh"]), Date.now() - 60_000)
      assert.strictEqual(stored.mode, 0o600, "P23: auth.json stays 0600")
      assert.strictEqual(new TextDecoder().decode(stored.config?.bytes), "model = \"m\"\n")
      assert.strictEqual(stored.doc.status, "alive")
      assert.include(stored.doc.metadata["verify"] as object, { alive: true, outcome: "Refreshed" })
      assert.isUndefined(stored.doc.lease?.expiresAt && stored.doc.lease.expiresAt > new Date() ? "live" : undefined, "verify lease released")
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("P28: a fresh seed is alive with no network at all", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 1 * DAY) })
      const seed = yield* seedWith(minted.bytes)
      const port = yield* closedPort
      const outcome = yield* verifyAndRefreshSeed(seed.seedId, { refreshUrl: `http://127.0.0.1:${port}/oauth/token` })
      assert.strictEqual(outcome._tag, "Fresh")
      assert.isTrue(outcome.alive)
      assert.deepStrictEqual(yield* issuer.tokenRequests, [])
      const stored = yield* storedAuth(seed.seedId)
      assert.strictEqual(stored.doc.generation, 0)
      assert.include(stored.doc.metadata["verify"] as object, { alive: true, outcome: "Fresh" })
      // freshFor is an option: with 12 hours the same seed is stale and refreshed.
      const stale = yield* verifyAndRefreshSeed(seed.seedId, { issuer: issuer.url, freshFor: "12 hours" })
      assert.strictEqual(stale._tag, "Refreshed")
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("API-key seeds are alive without network; unusable, missing and refresh-less seeds are dead without network", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const options = { refreshUrl: `http://127.0.0.1:${port}/oauth/token` }
      const apiKey = yield* seedWith(JSON.stringify({ OPENAI_API_KEY: "sk-abc", tokens: null }))
      assert.deepStrictEqual(yield* verifyAndRefreshSeed(apiKey.seedId, options), { _tag: "ApiKey", alive: true })
      assert.strictEqual((yield* storedAuth(apiKey.seedId)).doc.status, "alive")
      const cases = [
        ["tokens {}", JSON.stringify({ tokens: {}, OPENAI_API_KEY: "" })],
        ["no refresh token", JSON.stringify({ tokens: { access_token: "a" }, last_refresh: new Date(0).toISOString() })],
        ["not json", "{"],
        ["no auth.json", undefined]
      ] as const
      for (const [label, auth] of cases) {
        const seed = yield* seedWith(auth)
        const outcome = yield* verifyAndRefreshSeed(seed.seedId, options)
        assert.strictEqual(outcome._tag, "Dead", label)
        const doc = (yield* storedAuth(seed.seedId)).doc
        assert.strictEqual(doc.status, "dead", label)
        assert.include(doc.metadata["verify"] as object, { alive: false, outcome: "Dead" }, label)
      }
      const garbage = yield* (yield* SeedStore).create({ blob: Stream.succeed(text("not an archive")) })
      assert.strictEqual((yield* verifyAndRefreshSeed(garbage.seedId, options))._tag, "Dead")
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("a spent refresh token (a forked lineage) is Dead; the live copy is not", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY) })
      const first = yield* seedWith(minted.bytes)
      const copy = yield* seedWith(minted.bytes)
      assert.strictEqual((yield* verifyAndRefreshSeed(first.seedId, { issuer: issuer.url }))._tag, "Refreshed")
      const outcome = yield* verifyAndRefreshSeed(copy.seedId, { issuer: issuer.url })
      assert.strictEqual(outcome._tag, "Dead")
      assert.match(outcome._tag === "Dead" ? outcome.reason : "", /400 invalid_grant/)
      assert.strictEqual((yield* storedAuth(copy.seedId)).doc.status, "dead")
      assert.strictEqual((yield* storedAuth(first.seedId)).doc.status, "alive")
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("P29: 5xx, 429, other 4xx, dropped connections, non-JSON and refused connections are Transient, never dead", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const port = yield* closedPort
      const scripted = [
        [{ _tag: "Status", status: 503 }, /503/],
        [{ _tag: "Status", status: 429, body: { error: "rate_limited" } }, /429/],
        [{ _tag: "Status", status: 401, body: { error: "invalid_client" } }, /401 invalid_client/],
        [{ _tag: "Status", status: 500, body: "<html>oops</html>" }, /500/],
        [{ _tag: "Status", status: 200, body: { token_type: "bearer" } }, /without an access_token/],
        [{ _tag: "Drop" }, /unreachable/]
      ] as const
      for (const [step, pattern] of scripted) {
        const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY) })
        const seed = yield* seedWith(minted.bytes)
        yield* issuer.scriptRefresh([step])
        const outcome = yield* verifyAndRefreshSeed(seed.seedId, { issuer: issuer.url })
        assert.strictEqual(outcome._tag, "Transient", JSON.stringify(step))
        assert.match(outcome._tag === "Transient" ? outcome.reason : "", pattern)
        const stored = yield* storedAuth(seed.seedId)
        assert.strictEqual(stored.doc.status, "alive", "status untouched")
        assert.strictEqual(stored.doc.generation, 0, "nothing written")
        assert.include(stored.doc.metadata["verify"] as object, { alive: false, outcome: "Transient" })
      }
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY) })
      const refused = yield* seedWith(minted.bytes)
      const outcome = yield* verifyAndRefreshSeed(refused.seedId, { refreshUrl: `http://127.0.0.1:${port}/oauth/token` })
      assert.strictEqual(outcome._tag, "Transient")
      assert.match(outcome._tag === "Transient" ? outcome.reason : "", /unreachable/)
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("400 with a refresh_token_expired code is Dead", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY) })
      const seed = yield* seedWith(minted.bytes)
      yield* issuer.scriptRefresh([{ _tag: "Status", status: 401, body: { error: { code: "refresh_token_expired", message: "expired" } } }])
      const outcome = yield* verifyAndRefreshSeed(seed.seedId, { issuer: issuer.url })
      assert.strictEqual(outcome._tag, "Dead")
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("P25: a seed leased by someone else is Busy and untouched; verify's own lease is released afterwards", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY) })
      const seed = yield* seedWith(minted.bytes)
      const lease = yield* Lease
      const held = Option.getOrThrow(yield* lease.acquireSeed(seed.seedId, "session-17"))
      const before = yield* storedAuth(seed.seedId)
      const outcome = yield* verifyAndRefreshSeed(seed.seedId, { issuer: issuer.url })
      assert.deepStrictEqual(outcome, { _tag: "Busy", alive: false, holder: "session-17" })
      assert.deepStrictEqual(yield* issuer.tokenRequests, [])
      const after = yield* storedAuth(seed.seedId)
      assert.deepStrictEqual(after.doc, before.doc, "nothing stamped or written")
      yield* lease.release(held)
      assert.strictEqual((yield* verifyAndRefreshSeed(seed.seedId, { issuer: issuer.url }))._tag, "Refreshed")
      const next = yield* lease.acquireSeed(seed.seedId, "session-18")
      assert.isTrue(Option.isSome(next), "verify released its lease")
      const unknown = yield* Effect.flip(verifyAndRefreshSeed("0123456789abcdef01234567"))
      assert.strictEqual(unknown._tag, "UnknownSeed")
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("P27: a refresh whose write-back keeps failing is RefreshedNotSaved (not alive) and carries the new credentials", () => {
    const writes = { n: 0 }
    const broken = Layer.effect(SeedStore, Effect.map(SeedStore, (real) => SeedStore.of({
      ...real,
      writeBlob: () => Effect.suspend(() => {
        writes.n++
        return Effect.fail(new StoreUnavailable({ backend: "test", operation: "swap seed blob", detail: "injected outage" }))
      })
    })))
    const layers = Layer.mergeAll(Layer.provideMerge(broken, storeLayer()), FetchHttpClient.layer)
    return Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY) })
      const seed = yield* seedWith(minted.bytes)
      const outcome = yield* verifyAndRefreshSeed(seed.seedId, { issuer: issuer.url })
      assert.strictEqual(outcome._tag, "RefreshedNotSaved")
      assert.isFalse(outcome.alive)
      assert.strictEqual(writes.n, 3, "retried")
      if (outcome._tag !== "RefreshedNotSaved") return
      assert.match(outcome.reason, /injected outage/)
      assert.notInclude(String(outcome.credentials), "refresh_token")
      const rescued = Option.getOrThrow(parseAuthJson(Redacted.value(outcome.credentials))) as Record<string, any>
      assert.deepStrictEqual([rescued["tokens"]["refresh_token"]], yield* issuer.liveRefreshTokens)
      const stored = yield* storedAuth(seed.seedId)
      assert.notStrictEqual(stored.doc.status, "dead")
      assert.include(stored.doc.metadata["verify"] as object, { alive: false, outcome: "RefreshedNotSaved" })
    }).pipe(Effect.scoped, Effect.provide(layers))
  })
})
