/**
 * NoStore: the store services of a worker that keeps nothing. A worker without a database still
 * provides the three store services, so forgetting a store is a type error rather than a run-time
 * surprise; these say `persistent: false`, and the session refuses — before anything starts — a
 * task that needs a store (a seed, seed capture, resume), and skips its teardown snapshot. Every
 * operation fails with `StoreUnavailable` (backend `none`), in case something calls one anyway.
 *
 * @since 0.1.0
 */
import { Context, Effect, Stream } from "effect"
import { Lease } from "../lease/Lease.ts"
import { SeedStore } from "../seeds/SeedStore.ts"
import { SnapshotStore } from "../snapshots/SnapshotStore.ts"
import type { StoreServices } from "./StoreBackend.ts"
import { StoreUnavailable } from "../persistence/StoreError.ts"

const refuse = (operation: string) =>
  new StoreUnavailable({
    backend: "none",
    operation,
    detail: "this worker has no store (Store.layerNone): provide Store.layerEmbedded or Store.layerMongo to keep seeds and snapshots"
  })

const fail = (operation: string) => Effect.fail(refuse(operation))

/**
 * The three store services, keeping nothing.
 * @category constructors
 */
export const noStores: Context.Context<StoreServices> = Context.make(SeedStore, SeedStore.of({
  persistent: false,
  create: () => fail("SeedStore.create"),
  get: () => fail("SeedStore.get"),
  list: () => fail("SeedStore.list"),
  listPool: () => fail("SeedStore.listPool"),
  delete: () => fail("SeedStore.delete"),
  purge: () => fail("SeedStore.purge"),
  assignToPool: () => fail("SeedStore.assignToPool"),
  setStatus: () => fail("SeedStore.setStatus"),
  declareMetadata: () => fail("SeedStore.declareMetadata"),
  readBlob: () => fail("SeedStore.readBlob"),
  writeBlob: () => fail("SeedStore.writeBlob")
})).pipe(
  Context.add(Lease, Lease.of({
    persistent: false,
    acquire: () => fail("Lease.acquire"),
    acquireSeed: () => fail("Lease.acquireSeed"),
    acquireScoped: () => fail("Lease.acquireScoped"),
    renew: () => fail("Lease.renew"),
    release: () => fail("Lease.release"),
    headroom: () => fail("Lease.headroom")
  })),
  Context.add(SnapshotStore, SnapshotStore.of({
    persistent: false,
    insert: () => fail("SnapshotStore.insert"),
    latest: () => fail("SnapshotStore.latest"),
    list: () => fail("SnapshotStore.list"),
    readBlob: () => Stream.fail(refuse("SnapshotStore.readBlob")),
    prune: () => fail("SnapshotStore.prune")
  }))
)
