/**
 * SessionSeed's lease step on the memory store: which leases a run takes, adopts or refuses.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import { decodeCodexTaskConfig } from "../../src/config/CodexTaskConfig.ts"
import type { CodexTaskHooks } from "../../src/session/Hooks.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { leaseTaskSeed } from "../../src/session/SessionSeed.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"

const PROCESS_ID = "job-7"

const services = Layer.mergeAll(
  Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)),
  TaskContext.layerRecording({ processId: PROCESS_ID })
)

const newSeed = SeedStore.use((store) => store.create({ blob: Stream.succeed(new Uint8Array([1])) }))

const leaseWith = (hooks: CodexTaskHooks) =>
  Effect.gen(function*() {
    const config = yield* decodeCodexTaskConfig({ consumerInstructions: "x" })
    return yield* leaseTaskSeed(config, hooks)
  })

describe("leaseTaskSeed", () => {
  it.effect("item 9: a provider written for the Python reference leases the seed as the process id and returns its id: adopted, not busy", () =>
    Effect.gen(function*() {
      const seed = yield* newSeed
      const leases = yield* Lease
      const leased = yield* leaseWith({
        seedProvider: () =>
          leases.acquireSeed(seed.seedId, PROCESS_ID).pipe(
            Effect.flatMap((grant) => Option.isSome(grant) ? Effect.succeed(seed.seedId) : Effect.fail(new Error("could not lease")))
          )
      })
      const grant = Option.getOrThrow(leased).grant
      assert.strictEqual(grant.seedId, seed.seedId)
      assert.strictEqual(grant.holder, PROCESS_ID)
      const stored = Option.getOrThrow(yield* SeedStore.use((store) => store.get(seed.seedId)))
      assert.strictEqual(stored.lease?.holder, PROCESS_ID)
      assert.strictEqual(stored.lease?.epoch, grant.epoch, "the adopted lease keeps its epoch, so the fence still holds")
    }).pipe(Effect.scoped, Effect.provide(services)))

  it.effect("a provider that leased with the holder it was handed and returned the id: adopted", () =>
    Effect.gen(function*() {
      const seed = yield* newSeed
      const leases = yield* Lease
      const leased = yield* leaseWith({
        seedProvider: (holder) => leases.acquireSeed(seed.seedId, holder).pipe(Effect.as(seed.seedId))
      })
      assert.match(Option.getOrThrow(leased).grant.holder, new RegExp(`^${PROCESS_ID}#`))
    }).pipe(Effect.scoped, Effect.provide(services)))

  it.effect("a seed leased by another process is still refused as busy", () =>
    Effect.gen(function*() {
      const seed = yield* newSeed
      const leases = yield* Lease
      yield* leases.acquireSeed(seed.seedId, "other-process")
      const refused = yield* Effect.flip(leaseWith({ seedProvider: () => Effect.succeed(seed.seedId) }))
      assert.strictEqual(refused._tag, "SeedUnavailable")
      assert.include(refused.message, "leased by other-process")
    }).pipe(Effect.scoped, Effect.provide(services)))

  it.effect("the adopted lease is released with the run's scope", () =>
    Effect.gen(function*() {
      const seed = yield* newSeed
      const leases = yield* Lease
      yield* Effect.scoped(leaseWith({
        seedProvider: () => leases.acquireSeed(seed.seedId, PROCESS_ID).pipe(Effect.as(seed.seedId))
      }))
      const stored = Option.getOrThrow(yield* SeedStore.use((store) => store.get(seed.seedId)))
      assert.isUndefined(stored.lease)
    }).pipe(Effect.scoped, Effect.provide(services)))
})

describe("leaseTaskSeed under compat python-0.1 (item 12)", () => {
  it.effect("leases as the process id, the holder the reference renews and releases by", () =>
    Effect.gen(function*() {
      const seed = yield* newSeed
      const config = yield* decodeCodexTaskConfig({ consumerInstructions: "x", seedId: seed.seedId, compat: "python-0.1" })
      const grant = Option.getOrThrow(yield* leaseTaskSeed(config, {})).grant
      assert.strictEqual(grant.holder, PROCESS_ID)
      const plain = yield* decodeCodexTaskConfig({ consumerInstructions: "x", seedId: (yield* newSeed).seedId })
      assert.match(Option.getOrThrow(yield* leaseTaskSeed(plain, {})).grant.holder, new RegExp(`^${PROCESS_ID}#[0-9a-f]+$`))
    }).pipe(Effect.scoped, Effect.provide(services)))
})

const quotaOn = (seedId: string, usedPercent: number, resetsAtMs: number, observedAtMs: number) =>
  SeedStore.use((store) =>
    store.declareMetadata(seedId, {
      quota: { plan: "plus", primary: { usedPercent, windowMinutes: 300, resetsAtMs }, secondary: null, limitedUntilMs: null, observedAtMs, source: "test" }
    })
  )

const poolSeed = (poolKey: string) => SeedStore.use((store) => store.create({ blob: Stream.succeed(new Uint8Array([1])), poolKey }))

const progressLines = TaskRecorder.use((recorder) => recorder.current).pipe(Effect.map((record) => record.progress.map((p) => p.message ?? "")))

describe("leaseTaskSeed from a pool with quota", () => {
  it.effect("every free seed exhausted: QuotaExhausted at once (no wait configured), naming the pool and the earliest reset", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-07-03T10:00:00Z"))
      const a = yield* poolSeed("spent")
      const b = yield* poolSeed("spent")
      yield* quotaOn(a.seedId, 100, Date.parse("2026-07-03T12:30:00Z"), Date.parse("2026-07-03T09:00:00Z"))
      yield* quotaOn(b.seedId, 100, Date.parse("2026-07-03T11:15:00Z"), Date.parse("2026-07-03T09:00:00Z"))
      const config = yield* decodeCodexTaskConfig({ consumerInstructions: "x", seedPool: "spent" })
      const error = yield* Effect.flip(leaseTaskSeed(config, {}))
      assert.strictEqual(error._tag, "QuotaExhausted")
      if (error._tag !== "QuotaExhausted") return
      assert.strictEqual(error.poolKey, "spent")
      assert.strictEqual(error.earliestReset.toISOString(), "2026-07-03T11:15:00.000Z")
      assert.include(yield* progressLines, "No seed leased: pool spent: 2 seeds exhausted until 11:15 UTC (earliest)")
    }).pipe(Effect.scoped, Effect.provide(services)))

  it.effect("a waiting pool lease says why and until when, then takes the exhausted seed at its reset (TestClock)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-07-03T10:00:00Z"))
      const spent = yield* poolSeed("wait")
      const busy = yield* poolSeed("wait")
      yield* quotaOn(spent.seedId, 100, Date.parse("2026-07-03T10:01:00Z"), Date.parse("2026-07-03T09:00:00Z"))
      yield* Lease.use((lease) => lease.acquireSeed(busy.seedId, "other-task", { ttl: "1 hour" }))
      const config = yield* decodeCodexTaskConfig({ consumerInstructions: "x", seedPool: "wait", seedPoolWaitSeconds: 120 })
      const fiber = yield* leaseTaskSeed(config, {}).pipe(Effect.forkChild)
      yield* TestClock.adjust("1 second")
      assert.include(yield* progressLines, "Waiting for a seed until 10:02:00 UTC: pool wait: 1 seed exhausted until 10:01 UTC, 1 leased")
      assert.isUndefined(fiber.pollUnsafe(), "still waiting before the reset")
      yield* TestClock.adjust("59 seconds")
      const leased = yield* Fiber.join(fiber)
      assert.strictEqual(Option.getOrThrow(leased).grant.seedId, spent.seedId)
      assert.include(yield* progressLines, `Leased seed ${spent.seedId}`)
    }).pipe(Effect.scoped, Effect.provide(services)))

  it.effect("a waiting pool lease gives up at its bound: SeedUnavailable saying why", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-07-03T10:00:00Z"))
      const busy = yield* poolSeed("bound")
      yield* Lease.use((lease) => lease.acquireSeed(busy.seedId, "other-task", { ttl: "1 hour" }))
      const config = yield* decodeCodexTaskConfig({ consumerInstructions: "x", seedPool: "bound", seedPoolWaitSeconds: 30 })
      const fiber = yield* leaseTaskSeed(config, {}).pipe(Effect.flip, Effect.forkChild)
      yield* TestClock.adjust("31 seconds")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "SeedUnavailable")
      assert.include(error.message, "pool bound: 1 leased")
    }).pipe(Effect.scoped, Effect.provide(services)))
})
