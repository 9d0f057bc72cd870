/**
 * SessionSeed's lease step on the memory store: which leases a run takes, adopts or refuses.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream } from "effect"
import { decodeCodexTaskConfig } from "../../src/config/CodexTaskConfig.ts"
import type { CodexTaskHooks } from "../../src/session/Hooks.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { leaseTaskSeed } from "../../src/session/SessionSeed.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { TaskContext } from "../../src/task/TaskContext.ts"

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
