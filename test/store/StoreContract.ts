/**
 * The store contract: every backend (memory, embedded, MongoDB through CongoDB, a real MongoDB)
 * must pass it unchanged. Each test gets a fresh, empty namespace from the backend's harness and
 * opens it with the encryption layer it needs (sometimes twice, with different keys).
 *
 * Tests named `P<n>: …` pin a fix for the reference pitfall of that number (spec §9): each would
 * fail against the reference's behavior.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, Redacted, Schedule, Stream } from "effect"
import type { Scope } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { Lease } from "../../src/lease/Lease.ts"
import type { LeaseGrant } from "../../src/lease/Lease.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import type { StoreServices } from "../../src/store/Store.ts"
import { waitUntil } from "../support/waitUntil.ts"

/** A fresh, empty store namespace of one backend. */
export interface StoreNamespace {
  /** Opens the namespace with the given encryption; may be called more than once. */
  readonly open: (crypto: Layer.Layer<BlobCrypto, unknown>) => Layer.Layer<StoreServices, unknown>
  /** The stored (possibly encrypted) bytes of a blob; none when it does not exist. */
  readonly rawBlob: (blobId: string) => Effect.Effect<Option.Option<Uint8Array>, unknown>
  /** How many blobs the namespace holds (to catch orphans). */
  readonly blobCount: Effect.Effect<number, unknown>
}

/** What a backend's test file provides to the contract. */
export class StoreHarness extends Context.Service<StoreHarness, {
  /** Whether blobs are held whole in memory by design (the memory backend: no memory bound). */
  readonly blobsInMemory: boolean
  /** Size of the streaming round-trip blob, in MiB (the bound asserted is half of it). */
  readonly bigBlobMiB: number
  readonly fresh: Effect.Effect<StoreNamespace, unknown, Scope.Scope>
}>()("test/StoreHarness") {}

const SEED_KEY = Redacted.make("seed-key-0123456789abcdef0123456789")
const SNAPSHOT_KEY = Redacted.make("snapshot-key-0123456789abcdef012345")
const OTHER_KEY = Redacted.make("another-key-0123456789abcdef0123456")
const encrypted = BlobCrypto.layerAesGcm({ seedKey: SEED_KEY, snapshotKey: SNAPSHOT_KEY })

const bytes = (text: string) => Stream.succeed(new TextEncoder().encode(text))
const readAll = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) =>
  Stream.runCollect(stream).pipe(Effect.map((chunks) => Buffer.concat(chunks)))
const readText = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) => Effect.map(readAll(stream), (buffer) => buffer.toString("utf8"))
const seedText = (seedId: string) =>
  Effect.gen(function*() {
    const seeds = yield* SeedStore
    const blob = yield* seeds.readBlob(seedId)
    return yield* readText(blob.bytes)
  })
const seedDoc = (seedId: string) =>
  Effect.gen(function*() {
    const seeds = yield* SeedStore
    const found = yield* seeds.get(seedId)
    if (Option.isNone(found)) return assert.fail(`seed ${seedId} is gone`)
    return found.value
  })
const someGrant = (grant: Option.Option<LeaseGrant>): LeaseGrant =>
  Option.isSome(grant) ? grant.value : assert.fail("expected a lease grant")
/** The `reason` of a failure that must be a LeaseLost (else the tag of what it was). */
const lostReason = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (error): string => "reason" in error && error._tag === "LeaseLost" ? String(error.reason) : error._tag)
const pooledSeed = (poolKey: string, content: string) =>
  Effect.gen(function*() {
    const seeds = yield* SeedStore
    return yield* seeds.create({ blob: bytes(content), poolKey })
  })

/**
 * Registers the contract for one backend.
 */
export const storeContract = (name: string, harness: Layer.Layer<StoreHarness, unknown>) =>
  layer(harness, { excludeTestServices: true, timeout: "120 seconds" })(`Store contract: ${name}`, (it) => {
    /** A test on a fresh namespace opened in plaintext. */
    const test = <A, E>(
      title: string,
      body: (ns: StoreNamespace) => Effect.Effect<A, E, StoreServices | Scope.Scope>,
      timeout = 30_000
    ) =>
      it.effect(title, () =>
        Effect.gen(function*() {
          const h = yield* StoreHarness
          const ns = yield* h.fresh
          return yield* body(ns).pipe(Effect.provide(ns.open(BlobCrypto.layerPlaintext)))
        }), timeout)

    // --- seeds ---------------------------------------------------------------------------------

    test("create, get, list and read back a seed; unknown and malformed ids are absent", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const created = yield* seeds.create({ blob: bytes("seed-one"), processId: "proc-1" })
        assert.match(created.seedId, /^[0-9a-f]{24}$/)
        assert.strictEqual(created.generation, 0)
        assert.strictEqual(created.manifestVersion, 1)
        assert.strictEqual(created.status, "alive")
        assert.isUndefined(created.poolKey)
        assert.isUndefined(created.lease)
        const found = yield* seedDoc(created.seedId)
        assert.strictEqual(found.blobId, created.blobId)
        assert.strictEqual(found.createdAt.getTime(), created.createdAt.getTime())
        assert.strictEqual(yield* seedText(created.seedId), "seed-one")
        const second = yield* seeds.create({ blob: bytes("seed-two"), manifestVersion: 2 })
        assert.deepStrictEqual((yield* seeds.list()).map((seed) => seed.seedId), [created.seedId, second.seedId])
        assert.isTrue(Option.isNone(yield* seeds.get("0123456789abcdef01234567")))
        assert.isTrue(Option.isNone(yield* seeds.get("not-an-id")))
        const unknown = yield* Effect.flip(seeds.readBlob("not-an-id"))
        assert.strictEqual(unknown._tag, "UnknownSeed")
      }))

    test("delete keeps the blob and returns the document; purge removes both; purging an unknown seed fails", (ns) =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const kept = yield* seeds.create({ blob: bytes("kept") })
        const deleted = yield* seeds.create({ blob: bytes("deleted") })
        const purged = yield* seeds.create({ blob: bytes("purged") })
        assert.strictEqual(yield* ns.blobCount, 3)
        const removed = yield* seeds.delete(deleted.seedId)
        assert.strictEqual(Option.getOrUndefined(removed)?.blobId, deleted.blobId)
        assert.isTrue(Option.isNone(yield* seeds.delete(deleted.seedId)))
        assert.isTrue(Option.isNone(yield* seeds.delete("garbage")))
        assert.strictEqual(yield* ns.blobCount, 3)
        yield* seeds.purge(purged.seedId)
        assert.strictEqual(yield* ns.blobCount, 2)
        assert.isTrue(Option.isNone(yield* ns.rawBlob(purged.blobId)))
        const unknown = yield* Effect.flip(seeds.purge(purged.seedId))
        assert.strictEqual(unknown._tag, "UnknownSeed")
        assert.deepStrictEqual((yield* seeds.list()).map((seed) => seed.seedId), [kept.seedId])
      }))

    test("pool, status and metadata updates; unknown seeds fail typed", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const seed = yield* seeds.create({ blob: bytes("x") })
        yield* seeds.assignToPool(seed.seedId, "pool-a")
        yield* seeds.setStatus(seed.seedId, "limited")
        const checkedAt = new Date("2026-07-03T10:11:12.345Z")
        yield* seeds.declareMetadata(seed.seedId, { verify: { alive: false, checkedAt }, note: "first" })
        yield* seeds.declareMetadata(seed.seedId, { verify: { alive: true, checkedAt } })
        const updated = yield* seedDoc(seed.seedId)
        assert.strictEqual(updated.poolKey, "pool-a")
        assert.strictEqual(updated.status, "limited")
        assert.deepStrictEqual(updated.metadata, { verify: { alive: true, checkedAt }, note: "first" })
        assert.isDefined(updated.updatedAt)
        assert.deepStrictEqual((yield* seeds.list({ poolKey: "pool-a" })).map((s) => s.seedId), [seed.seedId])
        yield* seeds.assignToPool(seed.seedId, null)
        assert.isUndefined((yield* seedDoc(seed.seedId)).poolKey)
        assert.deepStrictEqual(yield* seeds.list({ poolKey: "pool-a" }), [])
        const badKey = yield* Effect.flip(seeds.declareMetadata(seed.seedId, { "a.b": 1 }))
        assert.strictEqual(badKey._tag, "StoreUnavailable")
        for (const failing of [
          seeds.assignToPool("0123456789abcdef01234567", "p"),
          seeds.setStatus("bad id", "dead"),
          seeds.declareMetadata("0123456789abcdef01234567", { a: 1 })
        ]) {
          const error = yield* Effect.flip(failing)
          assert.strictEqual(error._tag, "UnknownSeed")
        }
      }))

    // --- leases --------------------------------------------------------------------------------

    test("quota: acquire picks the most headroom, skips exhausted and dead seeds, ranks unknown quota last", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const lease = yield* Lease
        const now = Date.now()
        const window = (usedPercent: number, resetsAtMs: number) => ({ usedPercent, windowMinutes: 300, resetsAtMs })
        const quota = (primary: ReturnType<typeof window>, limitedUntilMs: number | null = null) => ({
          quota: { plan: "plus", primary, secondary: null, limitedUntilMs, observedAtMs: now, source: "test" }
        })
        const unknown = yield* pooledSeed("q", "unknown")
        const busy = yield* pooledSeed("q", "busy")
        const roomy = yield* pooledSeed("q", "roomy")
        const full = yield* pooledSeed("q", "full")
        const limited = yield* pooledSeed("q", "limited")
        const reset = yield* pooledSeed("q", "reset")
        const dead = yield* pooledSeed("q", "dead")
        yield* seeds.declareMetadata(busy.seedId, quota(window(80, now + 3_600_000)))
        yield* seeds.declareMetadata(roomy.seedId, quota(window(30, now + 3_600_000)))
        yield* seeds.declareMetadata(full.seedId, quota(window(100, now + 3_600_000)))
        yield* seeds.declareMetadata(limited.seedId, quota(window(10, now + 3_600_000), now + 7_200_000))
        // A 95 % window whose reset has passed is a fresh window: 0 %.
        yield* seeds.declareMetadata(reset.seedId, quota(window(95, now - 1000)))
        yield* seeds.declareMetadata(dead.seedId, quota(window(0, now + 3_600_000)))
        yield* seeds.setStatus(dead.seedId, "dead")
        const order: Array<string> = []
        for (let i = 0; i < 4; i++) order.push(someGrant(yield* lease.acquire("q", `h${i}`)).seedId)
        assert.deepStrictEqual(order, [reset.seedId, roomy.seedId, busy.seedId, unknown.seedId])
        assert.isTrue(Option.isNone(yield* lease.acquire("q", "h5")), "only exhausted seeds are left")
        const headroom = yield* lease.headroom("q")
        assert.deepStrictEqual(headroom.exhausted.map((e) => e.seed.seedId), [full.seedId, limited.seedId])
        assert.strictEqual(headroom.exhausted[0]?.untilMs, now + 3_600_000)
        assert.strictEqual(headroom.leased, 4)
        assert.strictEqual(headroom.dead, 1)
      }))

    test("acquire is round-robin by last lease time and skips dead seeds, other pools and unpooled seeds", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const lease = yield* Lease
        const a = yield* pooledSeed("pool", "a")
        const b = yield* pooledSeed("pool", "b")
        const c = yield* pooledSeed("pool", "c")
        const dead = yield* pooledSeed("pool", "dead")
        yield* seeds.setStatus(dead.seedId, "dead")
        yield* pooledSeed("elsewhere", "other")
        yield* seeds.create({ blob: bytes("unpooled") })
        const order: Array<string> = []
        for (let round = 0; round < 4; round++) {
          const grant = someGrant(yield* lease.acquire("pool", `holder-${round}`))
          order.push(grant.seedId)
          assert.isTrue(yield* lease.release(grant))
        }
        assert.deepStrictEqual(order, [a.seedId, b.seedId, c.seedId, a.seedId])
        const held = [
          someGrant(yield* lease.acquire("pool", "h1")),
          someGrant(yield* lease.acquire("pool", "h2")),
          someGrant(yield* lease.acquire("pool", "h3"))
        ]
        assert.sameMembers(held.map((grant) => grant.seedId), [a.seedId, b.seedId, c.seedId])
        assert.isTrue(Option.isNone(yield* lease.acquire("pool", "h4")), "the dead seed is never acquired")
        assert.isTrue(Option.isNone(yield* lease.acquire("empty-pool", "h4")))
        yield* seeds.setStatus(dead.seedId, "alive")
        assert.strictEqual(someGrant(yield* lease.acquire("pool", "h4")).seedId, dead.seedId, "alive again is acquirable")
      }))

    test("renew extends a live grant; release frees it once; a released or taken grant cannot renew", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        const seed = yield* pooledSeed("pool", "x")
        const grant = someGrant(yield* lease.acquire("pool", "holder", { ttl: "10 seconds" }))
        assert.strictEqual(grant.seedId, seed.seedId)
        assert.strictEqual(grant.holder, "holder")
        const renewed = yield* lease.renew(grant, { ttl: "1 hour" })
        assert.isAbove(renewed.expiresAt.getTime(), grant.expiresAt.getTime())
        assert.strictEqual(renewed.epoch, grant.epoch)
        const seeds = yield* SeedStore
        const listed = yield* seeds.listPool("pool")
        assert.deepStrictEqual(listed.map((entry) => entry.leased), [true])
        assert.strictEqual(listed[0]?.lease?.holder, "holder")
        assert.isTrue(yield* lease.release(renewed))
        assert.isFalse(yield* lease.release(renewed))
        assert.strictEqual(yield* lostReason(lease.renew(renewed)), "released")
        const taker = someGrant(yield* lease.acquire("pool", "taker"))
        assert.strictEqual(yield* lostReason(lease.renew(renewed)), "taken")
        assert.isFalse(yield* lease.release(grant), "an old grant cannot release the new holder's lease")
        assert.strictEqual((yield* seedDoc(seed.seedId)).lease?.holder, "taker")
        yield* lease.renew(taker)
      }))

    test("expiry runs on the store's clock: an expired lease is acquirable by another and the old grant is dead", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        const seeds = yield* SeedStore
        const seed = yield* pooledSeed("pool", "original")
        const old = someGrant(yield* lease.acquire("pool", "old-holder", { ttl: "300 millis" }))
        assert.isTrue(Option.isNone(yield* lease.acquire("pool", "new-holder")), "live lease is exclusive")
        const fresh = yield* waitUntil(
          "the expired lease is acquirable",
          Effect.map(lease.acquire("pool", "new-holder"), Option.getOrUndefined),
          "10 seconds"
        )
        assert.strictEqual(fresh.seedId, seed.seedId)
        assert.isAbove(fresh.epoch, old.epoch)
        assert.strictEqual(yield* lostReason(lease.renew(old)), "taken")
        const write = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: 0, lease: old }, bytes("stale")))
        assert.strictEqual(write._tag, "SeedWriteRejected")
        assert.strictEqual(write._tag === "SeedWriteRejected" ? write.reason : "", "lease-lost")
        assert.strictEqual(yield* seedText(seed.seedId), "original")
      }))

    test("an expired grant nobody took cannot renew or write (lease-expired)", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        const seeds = yield* SeedStore
        const seed = yield* pooledSeed("pool", "original")
        const grant = someGrant(yield* lease.acquire("pool", "holder", { ttl: "250 millis" }))
        yield* waitUntil(
          "the lease has expired",
          Effect.map(seeds.listPool("pool"), (entries) => entries.every((entry) => !entry.leased) ? true : undefined),
          "10 seconds"
        )
        assert.strictEqual(yield* lostReason(lease.renew(grant)), "expired")
        const write = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: 0, lease: grant }, bytes("late")))
        assert.strictEqual(write._tag === "SeedWriteRejected" ? write.reason : write._tag, "lease-expired")
        assert.strictEqual(yield* seedText(seed.seedId), "original")
      }))

    test("acquireScoped releases the lease when its scope closes", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        yield* pooledSeed("pool", "x")
        const held = yield* Effect.scoped(Effect.gen(function*() {
          const grant = someGrant(yield* lease.acquireScoped("pool", "scoped-holder"))
          assert.isTrue(Option.isNone(yield* lease.acquire("pool", "other")))
          return grant
        }))
        const next = someGrant(yield* lease.acquire("pool", "other"))
        assert.strictEqual(next.seedId, held.seedId)
        assert.isAbove(next.epoch, held.epoch)
      }))

    test("every grant carries a strictly increasing epoch", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        yield* pooledSeed("pool", "x")
        const epochs: Array<number> = []
        for (let round = 0; round < 4; round++) {
          const grant = someGrant(yield* lease.acquire("pool", "same-holder"))
          epochs.push(grant.epoch)
          yield* lease.release(grant)
        }
        for (let i = 1; i < epochs.length; i++) assert.isAbove(epochs[i] ?? 0, epochs[i - 1] ?? 0)
      }))

    test("10 concurrent acquirers on one pooled seed: exactly one holder", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        const seed = yield* pooledSeed("contended", "x")
        const results = yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => `racer-${i}`),
          (holder) => lease.acquire("contended", holder),
          { concurrency: "unbounded" }
        )
        const winners = results.filter(Option.isSome).map((grant) => grant.value)
        assert.strictEqual(winners.length, 1)
        assert.strictEqual(winners[0]?.seedId, seed.seedId)
        assert.strictEqual((yield* seedDoc(seed.seedId)).lease?.holder, winners[0]?.holder)
      }))

    test("10 concurrent acquirers on a pool of 3: three holders of three different seeds", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        for (const name of ["a", "b", "c"]) yield* pooledSeed("trio", name)
        const results = yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => `racer-${i}`),
          (holder) => lease.acquire("trio", holder),
          { concurrency: "unbounded" }
        )
        const winners = results.filter(Option.isSome).map((grant) => grant.value.seedId)
        assert.strictEqual(winners.length, 3)
        assert.strictEqual(new Set(winners).size, 3)
      }))

    test("acquireSeed leases one seed by id — unpooled, pooled or dead — exclusively, with epochs", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        const seeds = yield* SeedStore
        const plain = yield* seeds.create({ blob: bytes("plain") })
        const pooled = yield* pooledSeed("pool", "pooled")
        const dead = yield* pooledSeed("pool", "dead")
        yield* seeds.setStatus(dead.seedId, "dead")
        const first = someGrant(yield* lease.acquireSeed(plain.seedId, "task-a", { ttl: "10 seconds" }))
        assert.strictEqual(first.seedId, plain.seedId)
        assert.strictEqual(first.holder, "task-a")
        assert.isTrue(Option.isNone(yield* lease.acquireSeed(plain.seedId, "task-b")), "a live lease is exclusive")
        assert.isTrue(Option.isNone(yield* lease.acquireSeed(plain.seedId, "task-a")), "even for the same holder string")
        const doc = yield* seedDoc(plain.seedId)
        assert.strictEqual(doc.lease?.holder, "task-a")
        assert.strictEqual(doc.lease?.epoch, first.epoch)
        assert.isDefined(doc.lastLeasedAt)
        assert.isUndefined(doc.poolKey, "leasing by id does not put the seed in a pool")
        // The grant behaves like any other: renew, fence a write, release.
        const renewed = yield* lease.renew(first)
        const written = yield* seeds.writeBlob(plain.seedId, { generation: 0, lease: renewed }, bytes("written"))
        assert.strictEqual(written.generation, 1)
        const noGrant = yield* Effect.flip(seeds.writeBlob(plain.seedId, { generation: 1 }, bytes("intruder")))
        assert.strictEqual(noGrant._tag === "SeedWriteRejected" ? noGrant.reason : noGrant._tag, "leased-by-other")
        assert.isTrue(yield* lease.release(renewed))
        const second = someGrant(yield* lease.acquireSeed(plain.seedId, "task-b"))
        assert.isAbove(second.epoch, first.epoch)
        assert.strictEqual(yield* lostReason(lease.renew(first)), "taken")
        // Pooled seeds: acquireSeed and acquire exclude each other; dead seeds can still be leased by id.
        const byId = someGrant(yield* lease.acquireSeed(pooled.seedId, "verify-1"))
        assert.isTrue(Option.isNone(yield* lease.acquire("pool", "session")), "the pool's only live seed is taken")
        assert.isTrue(yield* lease.release(byId))
        const pooledGrant = someGrant(yield* lease.acquire("pool", "session"))
        assert.strictEqual(pooledGrant.seedId, pooled.seedId)
        assert.isTrue(Option.isNone(yield* lease.acquireSeed(pooled.seedId, "verify-2")))
        assert.strictEqual(someGrant(yield* lease.acquireSeed(dead.seedId, "verify-3")).seedId, dead.seedId)
        assert.isTrue(Option.isNone(yield* lease.acquireSeed("0123456789abcdef01234567", "x")), "unknown seed")
        assert.isTrue(Option.isNone(yield* lease.acquireSeed("not-an-id", "x")), "malformed id")
      }))

    test("acquireSeed takes over an expired lease (store clock) and the old grant is dead", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        const seeds = yield* SeedStore
        const seed = yield* seeds.create({ blob: bytes("x") })
        const old = someGrant(yield* lease.acquireSeed(seed.seedId, "old", { ttl: "250 millis" }))
        const fresh = yield* waitUntil(
          "the expired lease is acquirable by id",
          Effect.map(lease.acquireSeed(seed.seedId, "new"), Option.getOrUndefined),
          "10 seconds"
        )
        assert.isAbove(fresh.epoch, old.epoch)
        assert.strictEqual(yield* lostReason(lease.renew(old)), "taken")
      }))

    test("10 concurrent acquireSeed calls on one seed: exactly one holder", () =>
      Effect.gen(function*() {
        const lease = yield* Lease
        const seeds = yield* SeedStore
        const seed = yield* seeds.create({ blob: bytes("x") })
        const results = yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => `racer-${i}`),
          (holder) => lease.acquireSeed(seed.seedId, holder),
          { concurrency: "unbounded" }
        )
        const winners = results.filter(Option.isSome).map((grant) => grant.value)
        assert.strictEqual(winners.length, 1)
        assert.strictEqual((yield* seedDoc(seed.seedId)).lease?.holder, winners[0]?.holder)
      }))

    // --- fenced writes -------------------------------------------------------------------------

    test("a fenced write bumps the generation, replaces the blob and deletes the old one", (ns) =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const seed = yield* seeds.create({ blob: bytes("v0") })
        const written = yield* seeds.writeBlob(seed.seedId, { generation: 0 }, bytes("v1"))
        assert.strictEqual(written.generation, 1)
        assert.notStrictEqual(written.blobId, seed.blobId)
        assert.isDefined(written.lastRefreshedAt)
        assert.strictEqual((yield* seedDoc(seed.seedId)).generation, 1)
        assert.strictEqual(yield* seedText(seed.seedId), "v1")
        assert.strictEqual(yield* ns.blobCount, 1)
        assert.isTrue(Option.isNone(yield* ns.rawBlob(seed.blobId)))
        const again = yield* seeds.writeBlob(seed.seedId, { generation: 1 }, bytes("v2"))
        assert.strictEqual(again.generation, 2)
        const unknown = yield* Effect.flip(seeds.writeBlob("0123456789abcdef01234567", { generation: 0 }, bytes("x")))
        assert.strictEqual(unknown._tag, "UnknownSeed")
      }))

    test("P13: two writers based on one generation — one wins, the other is refused, nothing is orphaned", (ns) =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const seed = yield* seeds.create({ blob: bytes("base") })
        yield* seeds.writeBlob(seed.seedId, { generation: 0 }, bytes("first"))
        const stale = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: 0 }, bytes("second")))
        assert.strictEqual(stale._tag, "SeedWriteRejected")
        if (stale._tag === "SeedWriteRejected") {
          assert.strictEqual(stale.reason, "stale-generation")
          assert.strictEqual(stale.actualGeneration, 1)
        }
        assert.strictEqual(yield* seedText(seed.seedId), "first")
        const raced = yield* Effect.forEach(
          ["left", "right"],
          (text) => Effect.result(seeds.writeBlob(seed.seedId, { generation: 1 }, bytes(text))),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(raced.filter((result) => result._tag === "Success").length, 1)
        assert.include(["left", "right"], yield* seedText(seed.seedId))
        assert.strictEqual((yield* seedDoc(seed.seedId)).generation, 2)
        assert.strictEqual(yield* ns.blobCount, 1, "refused uploads and replaced blobs are deleted")
      }))

    test("a reader whose blob was replaced before it streamed fails typed (BlobMissing)", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const seed = yield* seeds.create({ blob: bytes("v0") })
        const opened = yield* seeds.readBlob(seed.seedId)
        yield* seeds.writeBlob(seed.seedId, { generation: opened.seed.generation }, bytes("v1"))
        const error = yield* Effect.flip(readAll(opened.bytes))
        assert.strictEqual(error._tag, "BlobMissing")
        assert.strictEqual(yield* seedText(seed.seedId), "v1")
      }))

    test("a write based on an older generation is refused even under a valid lease", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const lease = yield* Lease
        const seed = yield* pooledSeed("pool", "v0")
        const grant = someGrant(yield* lease.acquire("pool", "holder"))
        const written = yield* seeds.writeBlob(seed.seedId, { generation: 0, lease: grant }, bytes("v1"))
        assert.strictEqual(written.generation, 1)
        const stale = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: 0, lease: grant }, bytes("v0-again")))
        assert.strictEqual(stale._tag === "SeedWriteRejected" ? stale.reason : stale._tag, "stale-generation")
        assert.strictEqual(yield* seedText(seed.seedId), "v1")
      }))

    test("P4: after its lease was taken, the old holder cannot write the seed (no backstop clobber)", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const lease = yield* Lease
        const seed = yield* pooledSeed("pool", "original")
        const loser = someGrant(yield* lease.acquire("pool", "loser", { ttl: "200 millis" }))
        const winner = yield* waitUntil(
          "the loser's lease is taken",
          Effect.map(lease.acquire("pool", "winner"), Option.getOrUndefined),
          "10 seconds"
        )
        yield* seeds.writeBlob(seed.seedId, { generation: 0, lease: winner }, bytes("rotated-by-winner"))
        for (const generation of [0, 1]) {
          const refused = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation, lease: loser }, bytes("loser-backstop")))
          assert.strictEqual(refused._tag === "SeedWriteRejected" ? refused.reason : refused._tag, "lease-lost")
        }
        assert.strictEqual(yield* seedText(seed.seedId), "rotated-by-winner")
      }))

    test("P9: a second grant to the same holder string fences the first (zombie incarnation)", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const lease = yield* Lease
        const seed = yield* pooledSeed("pool", "original")
        const zombie = someGrant(yield* lease.acquire("pool", "process-17", { ttl: "200 millis" }))
        const current = yield* waitUntil(
          "the same holder string is granted again",
          Effect.map(lease.acquire("pool", "process-17"), Option.getOrUndefined),
          "10 seconds"
        )
        assert.isAbove(current.epoch, zombie.epoch)
        assert.strictEqual(yield* lostReason(lease.renew(zombie)), "taken")
        const write = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: 0, lease: zombie }, bytes("zombie")))
        assert.strictEqual(write._tag === "SeedWriteRejected" ? write.reason : write._tag, "lease-lost")
        yield* seeds.writeBlob(seed.seedId, { generation: 0, lease: current }, bytes("current"))
        assert.strictEqual(yield* seedText(seed.seedId), "current")
      }))

    test("P25: without a grant, a pooled seed or one leased by someone else cannot be written", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const lease = yield* Lease
        const seed = yield* pooledSeed("pool", "original")
        const pooled = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: 0 }, bytes("unleased")))
        assert.strictEqual(pooled._tag === "SeedWriteRejected" ? pooled.reason : pooled._tag, "lease-required")
        const grant = someGrant(yield* lease.acquire("pool", "session"))
        yield* seeds.assignToPool(seed.seedId, null)
        const leased = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: 0 }, bytes("verify-rotation")))
        assert.strictEqual(leased._tag === "SeedWriteRejected" ? leased.reason : leased._tag, "leased-by-other")
        assert.strictEqual(yield* seedText(seed.seedId), "original")
        yield* lease.release(grant)
        yield* seeds.writeBlob(seed.seedId, { generation: 0 }, bytes("after-release"))
        assert.strictEqual(yield* seedText(seed.seedId), "after-release")
      }))

    test("P14: deleting or purging a seed under a live lease is refused unless forced", (ns) =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const lease = yield* Lease
        const seed = yield* pooledSeed("pool", "in-use")
        const grant = someGrant(yield* lease.acquire("pool", "session"))
        const deleting = yield* Effect.flip(seeds.delete(seed.seedId))
        assert.strictEqual(deleting._tag, "SeedInUse")
        const purging = yield* Effect.flip(seeds.purge(seed.seedId))
        assert.strictEqual(purging._tag, "SeedInUse")
        assert.strictEqual(purging._tag === "SeedInUse" ? purging.holder : "", "session")
        assert.strictEqual(yield* seedText(seed.seedId), "in-use")
        yield* lease.renew(grant)
        yield* seeds.purge(seed.seedId, { force: true })
        assert.isTrue(Option.isNone(yield* seeds.get(seed.seedId)))
        assert.strictEqual(yield* ns.blobCount, 0)
        assert.strictEqual(yield* lostReason(lease.renew(grant)), "seed-missing")
      }))

    test("P19: lastRefreshedAt moves with blob writes only, not with status or metadata changes", () =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const seed = yield* seeds.create({ blob: bytes("v0") })
        yield* seeds.setStatus(seed.seedId, "alive")
        yield* seeds.declareMetadata(seed.seedId, { verify: { alive: true } })
        assert.isUndefined((yield* seedDoc(seed.seedId)).lastRefreshedAt)
        const written = yield* seeds.writeBlob(seed.seedId, { generation: 0 }, bytes("v1"))
        const refreshedAt = written.lastRefreshedAt?.getTime()
        assert.isDefined(refreshedAt)
        yield* seeds.setStatus(seed.seedId, "limited")
        assert.strictEqual((yield* seedDoc(seed.seedId)).lastRefreshedAt?.getTime(), refreshedAt)
      }))

    test("a blob stream that fails midway leaves no seed, no snapshot, no blob and no rewrite behind", (ns) =>
      Effect.gen(function*() {
        const seeds = yield* SeedStore
        const snapshots = yield* SnapshotStore
        const failing = Stream.concat(
          Stream.succeed(randomBytes(300 * 1024)),
          Stream.fail(new Error("archiver crashed"))
        )
        const seedError = yield* Effect.flip(seeds.create({ blob: failing }))
        assert.strictEqual(seedError instanceof Error ? seedError.message : "", "archiver crashed")
        assert.deepStrictEqual(yield* seeds.list(), [])
        const snapshotError = yield* Effect.flip(
          snapshots.insert({ processId: "p", endState: "done", sessionId: null, codec: "zstd", blob: failing })
        )
        assert.strictEqual(snapshotError instanceof Error ? snapshotError.message : "", "archiver crashed")
        assert.deepStrictEqual(yield* snapshots.list("p"), [])
        const seed = yield* seeds.create({ blob: bytes("intact") })
        yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: 0 }, failing))
        assert.strictEqual((yield* seedDoc(seed.seedId)).generation, 0)
        assert.strictEqual(yield* seedText(seed.seedId), "intact")
        assert.strictEqual(yield* ns.blobCount, 1)
      }))

    // --- snapshots -----------------------------------------------------------------------------

    test("snapshots: insert, latest, newest-first listing, null session id and the codec recorded", () =>
      Effect.gen(function*() {
        const snapshots = yield* SnapshotStore
        assert.isTrue(Option.isNone(yield* snapshots.latest("proc")))
        const first = yield* snapshots.insert({ processId: "proc", endState: "done", sessionId: null, codec: "gzip", blob: bytes("one") })
        const second = yield* snapshots.insert({
          processId: "proc",
          endState: "cancelled",
          sessionId: "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
          codec: "zstd",
          blob: bytes("two")
        })
        yield* snapshots.insert({ processId: "other", endState: "done", sessionId: null, codec: "zstd", blob: bytes("else") })
        const latest = yield* snapshots.latest("proc")
        assert.isTrue(Option.isSome(latest))
        if (Option.isNone(latest)) return
        assert.strictEqual(latest.value.snapshotId, second.snapshotId)
        assert.strictEqual(latest.value.endState, "cancelled")
        assert.strictEqual(latest.value.codec, "zstd")
        assert.strictEqual(latest.value.sessionId, "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        const listed = yield* snapshots.list("proc")
        assert.deepStrictEqual(listed.map((doc) => doc.snapshotId), [second.snapshotId, first.snapshotId])
        assert.strictEqual(listed[1]?.sessionId, null)
        assert.strictEqual(listed[1]?.codec, "gzip")
        assert.strictEqual(yield* readText(snapshots.readBlob(latest.value)), "two")
        assert.strictEqual(yield* readText(snapshots.readBlob(first)), "one")
      }))

    test("P34: back-to-back snapshots get strictly increasing capture times; the last inserted is latest", () =>
      Effect.gen(function*() {
        const snapshots = yield* SnapshotStore
        const inserted = yield* Effect.forEach([1, 2, 3, 4], (n) =>
          snapshots.insert({ processId: "proc", endState: "done", sessionId: `s${n}`, codec: "zstd", blob: bytes(`${n}`) }))
        for (let i = 1; i < inserted.length; i++) {
          assert.isAbove(inserted[i]?.capturedAt.getTime() ?? 0, inserted[i - 1]?.capturedAt.getTime() ?? 0)
        }
        assert.strictEqual(Option.getOrUndefined(yield* snapshots.latest("proc"))?.sessionId, "s4")
      }))

    test("P24: a failed run is recorded as failed, not done", () =>
      Effect.gen(function*() {
        const snapshots = yield* SnapshotStore
        yield* snapshots.insert({ processId: "proc", endState: "failed", sessionId: null, codec: "gzip", blob: bytes("x") })
        assert.strictEqual(Option.getOrUndefined(yield* snapshots.latest("proc"))?.endState, "failed")
      }))

    test("retention keeps the newest five and deletes the others' documents and blobs", (ns) =>
      Effect.gen(function*() {
        const snapshots = yield* SnapshotStore
        const inserted = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7], (n) =>
          snapshots.insert({ processId: "proc", endState: "done", sessionId: `s${n}`, codec: "zstd", blob: bytes(`${n}`) }))
        yield* snapshots.insert({ processId: "other", endState: "done", sessionId: null, codec: "zstd", blob: bytes("o") })
        const pruned = yield* snapshots.prune("proc")
        assert.deepStrictEqual(pruned.map((doc) => doc.sessionId).sort(), ["s1", "s2"])
        assert.deepStrictEqual((yield* snapshots.list("proc")).map((doc) => doc.sessionId), ["s7", "s6", "s5", "s4", "s3"])
        assert.strictEqual(yield* ns.blobCount, 6)
        for (const doc of inserted.slice(0, 2)) assert.isTrue(Option.isNone(yield* ns.rawBlob(doc.workdirBlobId)))
        assert.deepStrictEqual(yield* snapshots.prune("proc"), [])
        assert.strictEqual((yield* snapshots.prune("proc", 1)).length, 4)
        assert.strictEqual((yield* snapshots.list("other")).length, 1)
      }))

    it.effect("a multi-MB snapshot streams in and out, encrypted, with bounded memory", () =>
      Effect.gen(function*() {
        const h = yield* StoreHarness
        const ns = yield* h.fresh
        const size = h.bigBlobMiB * MiB
        const body = Effect.gen(function*() {
          const snapshots = yield* SnapshotStore
          const written = createHash("sha256")
          const source = Stream.range(1, size / CHUNK).pipe(
            Stream.rechunk(1),
            Stream.map(() => randomBytes(CHUNK)),
            Stream.tap((chunk) => Effect.sync(() => written.update(chunk)))
          )
          const doc = yield* snapshots.insert({ processId: "big", endState: "done", sessionId: null, codec: "zstd", blob: source })
          const read = createHash("sha256")
          let total = 0
          yield* Stream.runForEach(snapshots.readBlob(doc), (chunk) =>
            Effect.sync(() => {
              read.update(chunk)
              total += chunk.length
            }))
          assert.strictEqual(total, size)
          assert.strictEqual(read.digest("hex"), written.digest("hex"))
        }).pipe(Effect.provide(ns.open(encrypted)))
        const growth = yield* peakLiveGrowth(body)
        if (!h.blobsInMemory) assert.isBelow(growth, size / 2, `peak live memory grew by ${Math.round(growth / MiB)} MiB`)
      }), 60_000)

    // --- encryption ----------------------------------------------------------------------------

    it.effect("P20: seed and snapshot blobs are encrypted at rest and read back as plaintext", () =>
      Effect.gen(function*() {
        const h = yield* StoreHarness
        const ns = yield* h.fresh
        const secret = `{"tokens":{"refresh_token":"rt-SECRET-${"x".repeat(200)}"}}`
        const { seed, snapshot } = yield* Effect.gen(function*() {
          const seeds = yield* SeedStore
          const snapshots = yield* SnapshotStore
          const seed = yield* seeds.create({ blob: bytes(secret) })
          const snapshot = yield* snapshots.insert({ processId: "p", endState: "done", sessionId: null, codec: "gzip", blob: bytes(secret) })
          assert.strictEqual(yield* seedText(seed.seedId), secret)
          assert.strictEqual(yield* readText(snapshots.readBlob(snapshot)), secret)
          const rewritten = yield* seeds.writeBlob(seed.seedId, { generation: 0 }, bytes(`${secret}!`))
          assert.strictEqual(yield* seedText(seed.seedId), `${secret}!`)
          return { seed: rewritten, snapshot }
        }).pipe(Effect.provide(ns.open(encrypted)))
        for (const blobId of [seed.blobId, snapshot.workdirBlobId]) {
          const raw = Option.getOrUndefined(yield* ns.rawBlob(blobId))
          assert.isDefined(raw)
          const text = Buffer.from(raw ?? new Uint8Array(0)).toString("latin1")
          assert.notInclude(text, "rt-SECRET")
          assert.isTrue(text.startsWith("OCXENC"))
        }
      }))

    it.effect("a wrong key fails typed (BlobDecryptFailed) and never overwrites the stored blob", () =>
      Effect.gen(function*() {
        const h = yield* StoreHarness
        const ns = yield* h.fresh
        const { seed, snapshot } = yield* Effect.gen(function*() {
          const seeds = yield* SeedStore
          const snapshots = yield* SnapshotStore
          const seed = yield* seeds.create({ blob: bytes("auth-json-v1") })
          const snapshot = yield* snapshots.insert({ processId: "p", endState: "done", sessionId: null, codec: "gzip", blob: bytes("tree") })
          return { seed, snapshot }
        }).pipe(Effect.provide(ns.open(encrypted)))
        const rawBefore = Option.getOrUndefined(yield* ns.rawBlob(seed.blobId))
        const blobsBefore = yield* ns.blobCount

        const wrongKey = BlobCrypto.layerAesGcm({ seedKey: OTHER_KEY, snapshotKey: OTHER_KEY })
        yield* Effect.gen(function*() {
          const seeds = yield* SeedStore
          const snapshots = yield* SnapshotStore
          const read = yield* Effect.flip(seedText(seed.seedId))
          assert.strictEqual(read._tag, "BlobDecryptFailed")
          assert.strictEqual(read._tag === "BlobDecryptFailed" ? read.reason : "", "authentication-failed")
          const snapshotRead = yield* Effect.flip(readAll(snapshots.readBlob(snapshot)))
          assert.strictEqual(snapshotRead._tag === "BlobDecryptFailed" ? snapshotRead.reason : snapshotRead._tag, "authentication-failed")
          // A save-back that rewrites the seed from its current contents fails before swapping anything.
          const current = yield* seeds.readBlob(seed.seedId)
          const saveBack = yield* Effect.flip(seeds.writeBlob(seed.seedId, { generation: current.seed.generation }, current.bytes))
          assert.strictEqual(saveBack._tag, "BlobDecryptFailed")
        }).pipe(Effect.provide(ns.open(wrongKey)))

        yield* Effect.gen(function*() {
          const read = yield* Effect.flip(seedText(seed.seedId))
          assert.strictEqual(read._tag === "BlobDecryptFailed" ? read.reason : read._tag, "encrypted-without-key")
        }).pipe(Effect.provide(ns.open(BlobCrypto.layerPlaintext)))

        assert.deepStrictEqual(Option.getOrUndefined(yield* ns.rawBlob(seed.blobId)), rawBefore)
        assert.strictEqual(yield* ns.blobCount, blobsBefore, "the refused upload left no blob behind")
        yield* Effect.gen(function*() {
          assert.strictEqual((yield* seedDoc(seed.seedId)).generation, 0)
          assert.strictEqual(yield* seedText(seed.seedId), "auth-json-v1")
        }).pipe(Effect.provide(ns.open(encrypted)))
      }))
  })

const MiB = 1024 * 1024
const CHUNK = 256 * 1024

setFlagsFromString("--expose-gc")
const collectGarbage: unknown = runInNewContext("gc")
const gc = () => {
  if (typeof collectGarbage !== "function") return
  collectGarbage({ type: "major", execution: "sync", flavor: "last-resort" })
}
const liveBytes = () => {
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}

/** Runs `effect` while sampling live memory (after full collections); returns the peak growth. */
const peakLiveGrowth = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    gc()
    const baseline = liveBytes()
    let peak = baseline
    const sample = Effect.sync(() => {
      gc()
      peak = Math.max(peak, liveBytes())
    })
    const sampler = yield* Effect.forkChild(Effect.repeat(sample, Schedule.spaced("400 millis")))
    yield* effect
    yield* sample
    yield* Fiber.interrupt(sampler)
    return peak - baseline
  })
