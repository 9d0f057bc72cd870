/**
 * The store contract on the in-memory backend, plus what only an injectable clock can show:
 * lease expiry and snapshot ordering driven by `TestClock`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Lease } from "../../src/lease/Lease.ts"
import { SeedQuota as QuotaExhaustion } from "../../src/quota/SeedQuota.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { MemoryStoreState, Store } from "../../src/store/Store.ts"
import { StoreHarness, storeContract } from "./StoreContract.ts"

const harness = Layer.succeed(StoreHarness, StoreHarness.of({
  blobsInMemory: true,
  bigBlobMiB: 8,
  fresh: Effect.sync(() => {
    const state = new MemoryStoreState()
    return {
      open: (crypto) => Store.layerMemory({ state }).pipe(Layer.provide(crypto)),
      rawBlob: (blobId) => Effect.sync(() => Option.fromNullishOr(state.rawBlob(blobId))),
      blobCount: Effect.sync(() => state.blobs.size)
    }
  })
}))

storeContract("memory", harness)

const Memory = Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext))
const bytes = (text: string) => Stream.succeed(new TextEncoder().encode(text))

describe("memory store on the TestClock", () => {
  it.effect("a lease expires exactly at its TTL on the store's clock", () =>
    Effect.gen(function*() {
      const seeds = yield* SeedStore
      const lease = yield* Lease
      yield* seeds.create({ blob: bytes("x"), poolKey: "pool" })
      const first = yield* lease.acquire("pool", "first")
      assert.isTrue(Option.isSome(first))
      yield* TestClock.adjust("59999 millis")
      assert.isTrue(Option.isNone(yield* lease.acquire("pool", "second")))
      yield* TestClock.adjust("1 millis")
      const second = yield* lease.acquire("pool", "second")
      assert.isTrue(Option.isSome(second))
      if (Option.isSome(first) && Option.isSome(second)) assert.strictEqual(second.value.epoch, first.value.epoch + 1)
    }).pipe(Effect.provide(Memory)))

  it.effect("quota: an exhausted seed is skipped until its reset on the store's clock, then ranked by headroom again", () =>
    Effect.gen(function*() {
      const seeds = yield* SeedStore
      const lease = yield* Lease
      yield* TestClock.setTime(Date.parse("2026-07-03T10:00:00Z"))
      const resetsAtMs = Date.parse("2026-07-03T12:00:00Z")
      const record = (usedPercent: number) => ({
        quota: {
          plan: "plus",
          primary: { usedPercent, windowMinutes: 300, resetsAtMs },
          secondary: null,
          limitedUntilMs: null,
          observedAtMs: Date.parse("2026-07-03T10:00:00Z"),
          source: "test"
        }
      })
      const spent = yield* seeds.create({ blob: bytes("spent"), poolKey: "p" })
      const half = yield* seeds.create({ blob: bytes("half"), poolKey: "p" })
      yield* seeds.declareMetadata(spent.seedId, record(100))
      yield* seeds.declareMetadata(half.seedId, record(50))
      const first = yield* lease.acquire("p", "a")
      assert.strictEqual(Option.getOrThrow(first).seedId, half.seedId)
      yield* lease.release(Option.getOrThrow(first))
      const exhausted = QuotaExhaustion.exhaustionOf(yield* lease.headroom("p"))
      assert.isTrue(Option.isNone(exhausted), "a seed with headroom is free: not exhausted")
      const held = Option.getOrThrow(yield* lease.acquire("p", "b"))
      assert.strictEqual(held.seedId, half.seedId)
      assert.isTrue(Option.isNone(yield* lease.acquire("p", "c")), "the spent seed is skipped")
      yield* lease.release(held)
      yield* seeds.declareMetadata(half.seedId, record(100))
      const error = Option.getOrThrow(QuotaExhaustion.exhaustionOf(yield* lease.headroom("p")))
      assert.strictEqual(error.poolKey, "p")
      assert.strictEqual(error.earliestReset.getTime(), resetsAtMs)
      assert.strictEqual(error.exhaustedSeeds, 2)
      assert.include(error.message, "pool p: 2 seeds exhausted until 12:00 UTC")
      yield* TestClock.setTime(resetsAtMs - 1)
      assert.isTrue(Option.isNone(yield* lease.acquire("p", "d")), "one millisecond before the reset")
      yield* TestClock.setTime(resetsAtMs)
      // At the reset both windows are fresh (0 %): round-robin by last lease, the never-held spent seed first.
      assert.strictEqual(Option.getOrThrow(yield* lease.acquire("p", "e")).seedId, spent.seedId)
    }).pipe(Effect.provide(Memory)))

  it.effect("P34: the last inserted snapshot is latest even when the clock goes backwards", () =>
    Effect.gen(function*() {
      const snapshots = yield* SnapshotStore
      yield* TestClock.setTime(Date.parse("2026-07-03T10:00:00Z"))
      const first = yield* snapshots.insert({ processId: "p", endState: "done", sessionId: "a", codec: "zstd", blob: bytes("1") })
      yield* TestClock.setTime(Date.parse("2026-07-03T09:00:00Z"))
      const second = yield* snapshots.insert({ processId: "p", endState: "done", sessionId: "b", codec: "zstd", blob: bytes("2") })
      assert.isAbove(second.capturedAt.getTime(), first.capturedAt.getTime())
      assert.strictEqual(Option.getOrUndefined(yield* snapshots.latest("p"))?.sessionId, "b")
    }).pipe(Effect.provide(Memory)))
})
