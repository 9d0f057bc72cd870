/**
 * The token broker and the fenced refresh path against the stand-in issuer (real HTTP on loopback)
 * and the memory store: one upstream refresh for concurrent requests of two tasks, and of two
 * brokers sharing one store (the store claim); the claim protocol under TestClock (adopt a sibling's
 * save, take over a dead claim); refusals (unknown, revoked, post-loss handle); refresh ahead of
 * expiry on the Clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import { FetchHttpClient } from "effect/http"

import { AUTH_MEMBER, packSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { saveCredentials } from "../../src/credentials/SeedEngine.ts"
import { readStoredCredentials, refreshFenced } from "../../src/credentials/SeedRefresh.ts"
import { BROKER_HOLDER, HANDLE_PREFIX, TokenBroker } from "../../src/credentials/TokenBroker.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import type { StandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { MemoryStoreState, Store } from "../../src/store/Store.ts"
import { BlobMissing, StoreUnavailable } from "../../src/persistence/StoreError.ts"
import { waitUntil } from "../support/waitUntil.ts"

const stores = (state: MemoryStoreState) => Store.layerMemory({ state }).pipe(Layer.provide(BlobCrypto.layerPlaintext))

const seedFrom = (issuer: StandInIssuer, options: { readonly accessTokenTtlSeconds?: number } = {}) =>
  Effect.gen(function*() {
    const minted = yield* issuer.mintAuthJson(options)
    const store = yield* SeedStore
    const seed = yield* store.create({ blob: Stream.succeed(packSeedArchive([{ name: AUTH_MEMBER, bytes: minted.bytes, mode: 0o600 }])) })
    return { seed, minted }
  })

const storedRefreshToken = (seedId: string) =>
  Effect.map(readStoredCredentials(seedId), (stored) => Option.getOrThrow(stored))

interface TokenAnswer {
  readonly status: number
  readonly body: Record<string, unknown>
  readonly text: string
}

/** What codex sends on a refresh. */
const askBroker = (url: string, handle: string) =>
  Effect.promise(async (): Promise<TokenAnswer> => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client_id: "app_EMoamEEZ73f0CkXaXp7hrann", grant_type: "refresh_token", refresh_reason: "unauthorized_recovery", refresh_token: handle })
    })
    const text = await response.text()
    return { status: response.status, body: JSON.parse(text) as Record<string, unknown>, text }
  })

const refreshGrants = (issuer: StandInIssuer) =>
  Effect.map(issuer.tokenRequests, (requests) => requests.filter((request) => request.grantType === "refresh_token"))

const brokerLayer = (issuer: StandInIssuer, state: MemoryStoreState, settings: Parameters<typeof TokenBroker.layer>[0] = {}) =>
  TokenBroker.layer({ upstreamTokenUrl: issuer.tokenUrl, ...settings }).pipe(Layer.provideMerge(Layer.mergeAll(stores(state), FetchHttpClient.layer)))

describe("TokenBroker", () => {
  it.live("two tasks on one seed asking at once: one upstream refresh, both get the new access token, neither sees a real refresh token", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const state = new MemoryStoreState()
      const { seed, minted } = yield* seedFrom(issuer).pipe(Effect.provide(stores(state)))
      yield* Effect.gen(function*() {
        const broker = yield* TokenBroker
        const first = Option.getOrThrow(yield* broker.attach({ seedId: seed.seedId }))
        const second = Option.getOrThrow(yield* broker.attach({ seedId: seed.seedId }))
        for (const task of [first, second]) {
          const planted = new TextDecoder().decode(Redacted.value(task.authJson))
          assert.isFalse(planted.includes(minted.refreshToken), "the planted auth.json holds no real refresh token")
          assert.isTrue(Redacted.value(task.handle).startsWith(HANDLE_PREFIX))
          assert.isTrue(planted.includes(Redacted.value(task.handle)))
        }
        const [a, b] = yield* Effect.all([
          askBroker(broker.tokenUrl, Redacted.value(first.handle)),
          askBroker(broker.tokenUrl, Redacted.value(second.handle))
        ], { concurrency: "unbounded" })
        assert.strictEqual(a.status, 200)
        assert.strictEqual(b.status, 200)
        const grants = yield* refreshGrants(issuer)
        assert.strictEqual(grants.length, 1, "exactly one upstream refresh")
        assert.strictEqual(grants[0]?.refreshToken, minted.refreshToken)
        assert.strictEqual(a.body["access_token"], b.body["access_token"])
        assert.notStrictEqual(a.body["access_token"], minted.accessToken)
        assert.strictEqual(a.body["refresh_token"], Redacted.value(first.handle))
        assert.strictEqual(b.body["refresh_token"], Redacted.value(second.handle))
        const stored = yield* storedRefreshToken(seed.seedId)
        assert.strictEqual(stored.refreshToken, grants[0]?.issuedRefreshToken, "the store holds the rotated token")
        assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [stored.refreshToken])
        for (const answer of [a, b]) {
          assert.isFalse(answer.text.includes(minted.refreshToken))
          assert.isFalse(answer.text.includes(stored.refreshToken))
        }
        // The same task asking again (its new token is refused too): a second refresh now.
        const again = yield* askBroker(broker.tokenUrl, Redacted.value(first.handle))
        assert.strictEqual(again.status, 200)
        assert.strictEqual((yield* refreshGrants(issuer)).length, 2)
        assert.strictEqual((yield* broker.stats).upstreamRefreshes, 2)
      }).pipe(Effect.scoped, Effect.provide(brokerLayer(issuer, state)))
    }))

  it.live("two brokers (two workers) on one store: both join the broker lease, concurrent refreshes reach the issuer once", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const state = new MemoryStoreState()
      const { seed, minted } = yield* seedFrom(issuer).pipe(Effect.provide(stores(state)))
      const worker = (tokenUrl: (url: string) => void) =>
        Effect.gen(function*() {
          const broker = yield* TokenBroker
          const task = Option.getOrThrow(yield* broker.attach({ seedId: seed.seedId }))
          tokenUrl(broker.tokenUrl)
          return { broker, task }
        })
      yield* Effect.gen(function*() {
        // Each broker lives in the test's scope, as a worker's does for the worker's life.
        const one = yield* worker(() => undefined).pipe(Effect.provideContext(yield* Layer.build(brokerLayer(issuer, state))))
        const two = yield* worker(() => undefined).pipe(Effect.provideContext(yield* Layer.build(brokerLayer(issuer, state))))
        assert.notStrictEqual(one.broker.tokenUrl, two.broker.tokenUrl)
        const doc = Option.getOrThrow(yield* Effect.gen(function*() {
          const store = yield* SeedStore
          return yield* store.get(seed.seedId)
        }).pipe(Effect.provide(stores(state))))
        assert.strictEqual(doc.lease?.holder, BROKER_HOLDER)
        const [a, b] = yield* Effect.all([
          askBroker(one.broker.tokenUrl, Redacted.value(one.task.handle)),
          askBroker(two.broker.tokenUrl, Redacted.value(two.task.handle))
        ], { concurrency: "unbounded" })
        assert.deepStrictEqual([a.status, b.status], [200, 200])
        const grants = yield* refreshGrants(issuer)
        assert.strictEqual(grants.length, 1, "exactly one upstream refresh across both workers")
        assert.strictEqual(grants[0]?.refreshToken, minted.refreshToken)
        assert.strictEqual(a.body["access_token"], b.body["access_token"])
        const stats = [yield* one.broker.stats, yield* two.broker.stats]
        assert.strictEqual(stats[0]!.upstreamRefreshes + stats[1]!.upstreamRefreshes, 1)
      }).pipe(Effect.scoped)
    }))

  it.live("unknown, revoked and post-loss handles get codex's log-in-again answer; a lost lease fails the task's lost at once, nothing is written", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const state = new MemoryStoreState()
      const { seed } = yield* seedFrom(issuer).pipe(Effect.provide(stores(state)))
      yield* Effect.gen(function*() {
        const broker = yield* TokenBroker
        const unknown = yield* askBroker(broker.tokenUrl, `${HANDLE_PREFIX}not-a-handle`)
        assert.strictEqual(unknown.status, 401)
        assert.deepStrictEqual((unknown.body["error"] as Record<string, unknown>)["code"], "refresh_token_expired")

        // A huge chunked body (no content-length) is cut off, not buffered.
        const huge = yield* Effect.promise(async () => {
          const chunk = new TextEncoder().encode("x".repeat(64 * 1024))
          let sent = 0
          const body = new ReadableStream<Uint8Array>({
            pull(controller) {
              if (sent++ < 64) controller.enqueue(chunk)
              else controller.close()
            }
          })
          const response = await fetch(broker.tokenUrl, { method: "POST", body, duplex: "half" } as RequestInit)
          return response.status
        })
        assert.strictEqual(huge, 401)
        const ended = yield* Effect.scoped(Effect.map(broker.attach({ seedId: seed.seedId }), Option.getOrThrow))
        assert.strictEqual((yield* askBroker(broker.tokenUrl, Redacted.value(ended.handle))).status, 401, "revoked when its task ended")

        const task = Option.getOrThrow(yield* broker.attach({ seedId: seed.seedId }))
        const lost = yield* Effect.forkChild(task.lost)
        // Someone else (a file-mode task, an operator) takes the seed.
        const leases = yield* Lease
        const store = yield* SeedStore
        const lease = Option.getOrThrow(yield* store.get(seed.seedId)).lease!
        yield* leases.release({ seedId: seed.seedId, holder: lease.holder, epoch: lease.epoch, expiresAt: lease.expiresAt })
        assert.isTrue(Option.isSome(yield* leases.acquireSeed(seed.seedId, "intruder")))
        const generation = Option.getOrThrow(yield* store.get(seed.seedId)).generation
        const refused = yield* askBroker(broker.tokenUrl, Redacted.value(task.handle))
        assert.strictEqual(refused.status, 401)
        const exit = yield* Fiber.await(lost)
        assert.isTrue(exit._tag === "Failure")
        assert.strictEqual((yield* refreshGrants(issuer)).length, 0, "nothing presented upstream")
        assert.strictEqual(Option.getOrThrow(yield* store.get(seed.seedId)).generation, generation, "nothing written")
        assert.strictEqual((yield* askBroker(broker.tokenUrl, Redacted.value(task.handle))).status, 401)
      }).pipe(Effect.scoped, Effect.provide(brokerLayer(issuer, state)))
    }))

  it.live("a refresh whose save fails is still answered, and the rotated token reaches the store on the next tick (never the spent one back)", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const state = new MemoryStoreState()
      const { seed, minted } = yield* seedFrom(issuer).pipe(Effect.provide(stores(state)))
      // The claim write goes through; the three attempts at saving the rotated tokens fail.
      const writes = { n: 0 }
      const flaky = Layer.effect(SeedStore, Effect.map(SeedStore.use(Effect.succeed), (real) => SeedStore.of({
        ...real,
        writeBlob: (seedId, fence, blob) => Effect.suspend(() => {
          writes.n++
          return writes.n >= 2 && writes.n <= 4
            ? Effect.fail(new StoreUnavailable({ backend: "test", operation: "swap seed blob", detail: "injected outage" }))
            : real.writeBlob(seedId, fence, blob)
        })
      }))).pipe(Layer.provideMerge(stores(state)))
      const layer = TokenBroker.layer({ upstreamTokenUrl: issuer.tokenUrl, renewInterval: "100 millis" }).pipe(
        Layer.provideMerge(Layer.mergeAll(flaky, FetchHttpClient.layer))
      )
      yield* Effect.gen(function*() {
        const broker = yield* TokenBroker
        const task = Option.getOrThrow(yield* broker.attach({ seedId: seed.seedId }))
        const answer = yield* askBroker(broker.tokenUrl, Redacted.value(task.handle))
        assert.strictEqual(answer.status, 200)
        const grants = yield* refreshGrants(issuer)
        assert.strictEqual(grants.length, 1)
        assert.strictEqual(answer.body["access_token"], (yield* issuer.accessTokens).at(-1))
        const stored = yield* waitUntil("the rotated token is stored", Effect.map(storedRefreshToken(seed.seedId), (s) => s.refreshToken !== minted.refreshToken ? s : undefined), "10 seconds")
        assert.strictEqual(stored.refreshToken, grants[0]?.issuedRefreshToken)
        // The next refresh presents the rotated token, not the spent one.
        yield* askBroker(broker.tokenUrl, Redacted.value(task.handle))
        const next = yield* refreshGrants(issuer)
        assert.strictEqual(next.length, 2)
        assert.strictEqual(next[1]?.refreshToken, grants[0]?.issuedRefreshToken)
        assert.strictEqual(next[1]?.status, 200)
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))

  it.effect("refreshes ahead of the access token's expiry on the Clock, before codex asks", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const issuer = yield* startStandInIssuer()
      const state = new MemoryStoreState()
      const { seed, minted } = yield* seedFrom(issuer, { accessTokenTtlSeconds: 15 * 60 }).pipe(Effect.provide(stores(state)))
      yield* Effect.gen(function*() {
        const broker = yield* TokenBroker
        yield* broker.attach({ seedId: seed.seedId })
        yield* TestClock.adjust("7 minutes")
        assert.strictEqual((yield* refreshGrants(issuer)).length, 0, "8 of 15 min left: not yet (ahead = min(10 min, half the lifetime))")
        yield* TestClock.adjust("1 minute")
        const grants = yield* liveWait(Effect.map(refreshGrants(issuer), (grants) => grants.length > 0 ? grants : undefined))
        assert.strictEqual(grants[0]?.refreshToken, minted.refreshToken)
        const stored = yield* liveWait(Effect.map(storedRefreshToken(seed.seedId), (s) => s.refreshToken !== minted.refreshToken ? s : undefined))
        assert.strictEqual(stored.refreshToken, grants[0]?.issuedRefreshToken)
      }).pipe(Effect.scoped, Effect.provide(brokerLayer(issuer, state, { expiryCheckInterval: "1 minute", refreshAhead: "10 minutes" })))
    }))
})

/** Polls in real time (the TestClock does not move by itself) until `probe` yields a value. */
const liveWait = <A, E, R>(probe: Effect.Effect<A | undefined, E, R>) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const value = yield* probe
      if (value !== undefined) return value
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
    }
    return yield* Effect.die(new Error("condition not met within 10 s"))
  })

describe("refreshFenced (the claim)", () => {
  const setup = Effect.gen(function*() {
    const issuer = yield* startStandInIssuer()
    const { seed, minted } = yield* seedFrom(issuer)
    const leases = yield* Lease
    const grant = Option.getOrThrow(yield* leases.acquireSeed(seed.seedId, BROKER_HOLDER, { ttl: "1 hour" }))
    const options = {
      seedId: seed.seedId,
      lease: { holder: grant.holder, epoch: grant.epoch },
      known: { generation: seed.generation, refreshToken: minted.refreshToken },
      tokenUrl: () => issuer.tokenUrl,
      clientId: "app_EMoamEEZ73f0CkXaXp7hrann",
      userAgent: "test",
      claimTimeout: "30 seconds" as const,
      pollInterval: "1 second" as const
    }
    const claim = Effect.gen(function*() {
      const stored = yield* storedRefreshToken(seed.seedId)
      yield* saveCredentials({ seedId: seed.seedId, fence: { generation: stored.generation, lease: options.lease }, authBytes: new TextEncoder().encode(JSON.stringify(stored.auth)) })
    })
    return { issuer, seed, minted, options, claim }
  })
  const env = () => Layer.mergeAll(Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)), FetchHttpClient.layer)

  it.effect("a sibling's claim is waited on; its save is adopted without presenting the spent token", () =>
    Effect.gen(function*() {
      const { issuer, seed, minted, options, claim } = yield* setup
      yield* claim
      const waiting = yield* Effect.forkChild(refreshFenced(options))
      yield* TestClock.adjust("3 seconds")
      // The sibling finishes: it rotated upstream and saves the successor.
      const successor = { ...JSON.parse(new TextDecoder().decode(minted.bytes)), tokens: { refresh_token: "rt_sibling", access_token: "at_sibling" } }
      yield* saveCredentials({ seedId: seed.seedId, fence: { generation: 1, lease: options.lease }, authBytes: new TextEncoder().encode(JSON.stringify(successor)) })
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(waiting)
      assert.strictEqual(result._tag, "Adopted")
      assert.strictEqual(result._tag === "Adopted" ? result.credentials.refreshToken : "", "rt_sibling")
      assert.strictEqual((yield* refreshGrants(issuer)).length, 0)
    }).pipe(Effect.provide(env())))

  it.effect("a claim never followed by a save is taken over after the claim timeout: one refresh, saved fenced", () =>
    Effect.gen(function*() {
      const { issuer, seed, minted, options, claim } = yield* setup
      yield* claim
      const waiting = yield* Effect.forkChild(refreshFenced(options))
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual((yield* refreshGrants(issuer)).length, 0, "still waiting on the claim")
      yield* TestClock.adjust("2 seconds")
      const result = yield* Fiber.join(waiting)
      assert.strictEqual(result._tag, "Rotated")
      const grants = yield* refreshGrants(issuer)
      assert.strictEqual(grants.length, 1)
      assert.strictEqual(grants[0]?.refreshToken, minted.refreshToken)
      const stored = yield* storedRefreshToken(seed.seedId)
      assert.strictEqual(stored.refreshToken, grants[0]?.issuedRefreshToken)
      assert.strictEqual(stored.generation, 3, "claim by the dead sibling, our claim, our save")
    }).pipe(Effect.provide(env())))

  it.effect("two concurrent refreshers with the same knowledge: one claims and refreshes, the other adopts", () =>
    Effect.gen(function*() {
      const { issuer, options } = yield* setup
      const both = yield* Effect.forkChild(Effect.all([refreshFenced(options), refreshFenced(options)], { concurrency: "unbounded" }))
      const results = yield* liveWait(Effect.gen(function*() {
        yield* TestClock.adjust("1 second")
        return both.pollUnsafe()
      }))
      assert.isTrue(results._tag === "Success")
      const tags = results._tag === "Success" ? results.value.map((r) => r._tag).sort() : []
      assert.deepStrictEqual(tags, ["Adopted", "Rotated"])
      assert.strictEqual((yield* refreshGrants(issuer)).length, 1)
    }).pipe(Effect.provide(env())))
})


describe("readStoredCredentials", () => {
  it.live("a blob replaced (and deleted) by another worker between the document and the blob read is read again", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const state = new MemoryStoreState()
      const { seed, minted } = yield* seedFrom(issuer).pipe(Effect.provide(stores(state)))
      const vanished = { n: 1 }
      const racing = Layer.effect(SeedStore, Effect.map(SeedStore, (real) => SeedStore.of({
        ...real,
        readBlob: (seedId) =>
          real.readBlob(seedId).pipe(Effect.map((blob) =>
            vanished.n-- > 0
              ? { ...blob, bytes: Stream.fail(new BlobMissing({ backend: "memory", blobId: "replaced-by-a-sibling", kind: "seed" })) }
              : blob
          ))
      }))).pipe(Layer.provide(stores(state)))
      const stored = yield* storedRefreshToken(seed.seedId).pipe(Effect.provide(racing))
      assert.strictEqual(stored.refreshToken, minted.refreshToken)
      assert.strictEqual(vanished.n, -1, "read twice")
    }).pipe(Effect.scoped))
})
