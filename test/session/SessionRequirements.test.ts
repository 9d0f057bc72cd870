/**
 * What a worker must provide to run a session, as the compiler sees it (issue 15). These are type
 * assertions: `tsc --noEmit` (run by .ci/run before the suite) fails when the session's
 * requirements drift from `CodexSessionServices`, when a store-less worker's layers stop being
 * enough, or when a missing service stops being a type error (`@ts-expect-error` then reports an
 * unused directive). The runtime half builds the store-less worker's layers for real.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { expectTypeOf } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { layerCodexServices } from "../../src/session/SessionServices.ts"
import type { CodexSessionServices } from "../../src/session/SessionServices.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { Store } from "../../src/store/Store.ts"
import { TaskContext } from "../../src/task/TaskContext.ts"
import type { TaskRecorder } from "../../src/task/TaskContext.ts"

const storelessWorker = Layer.mergeAll(TaskContext.layerRecording({ processId: "types" }), layerCodexServices()).pipe(
  Layer.provideMerge(Layer.merge(Store.layerNone, LocalHost.layer()))
)

describe("runCodexSession's requirements", () => {
  it("are exactly the services a worker provides, by name", () => {
    expectTypeOf<Effect.Services<ReturnType<typeof runCodexSession>>>().toEqualTypeOf<CodexSessionServices>()
    expectTypeOf<Layer.Success<typeof storelessWorker>>().toEqualTypeOf<CodexSessionServices | TaskRecorder>()
  })

  it("a store-less worker's layers satisfy them; leaving out a service is a type error", () => {
    const run = runCodexSession({ consumerInstructions: "x" })
    expectTypeOf(run.pipe(Effect.provide(storelessWorker))).toEqualTypeOf<Effect.Effect<Effect.Success<typeof run>, Effect.Error<typeof run>>>()
    const withoutStores = Layer.mergeAll(TaskContext.layerRecording({ processId: "types" }), layerCodexServices()).pipe(
      Layer.provideMerge(LocalHost.layer())
    )
    // @ts-expect-error the session services need the stores (SeedStore, Lease) to be built
    const _noStores: Effect.Effect<unknown, unknown> = run.pipe(Effect.provide(withoutStores))
    const withoutTask = layerCodexServices().pipe(Layer.provideMerge(Layer.merge(Store.layerNone, LocalHost.layer())))
    // @ts-expect-error TaskContext is missing
    const _noTask: Effect.Effect<unknown, unknown> = run.pipe(Effect.provide(withoutTask))
    void _noStores
    void _noTask
  })

  it.effect("the store-less worker's stores say they keep nothing", () =>
    Effect.gen(function*() {
      assert.isFalse((yield* SeedStore).persistent)
      assert.isFalse((yield* Lease).persistent)
      assert.isFalse((yield* SnapshotStore).persistent)
      const refused = yield* Effect.flip((yield* SeedStore).list())
      assert.strictEqual(refused.backend, "none")
    }).pipe(Effect.provide(Store.layerNone)))
})
