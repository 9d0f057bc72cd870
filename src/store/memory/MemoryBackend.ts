/**
 * The in-memory store backend, for unit tests. Every primitive runs synchronously inside one
 * `Effect.sync`, which makes it atomic on the single JavaScript thread. Its clock is the Effect
 * `Clock`, so `TestClock` drives lease expiry and snapshot times. Blobs are held whole in memory.
 *
 * State lives in a {@link MemoryStoreState} value, so a test can open the same store twice (for
 * example with two different encryption keys).
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option, Stream } from "effect"
import type { LeaseGrant } from "../../lease/Lease.ts"
import type { SeedDoc } from "../../seeds/SeedStore.ts"
import type { SnapshotDoc } from "../../snapshots/SnapshotStore.ts"
import { newObjectIdHex } from "../ids.ts"
import { fenceHolds } from "../StoreBackend.ts"
import type { BlobInfo, StoreBackend } from "../StoreBackend.ts"
import { BlobMissing } from "../../persistence/StoreError.ts"

interface StoredSeed {
  readonly doc: SeedDoc
  /** The epoch of the latest grant (the counter survives release). */
  readonly epochCounter: number
}

/**
 * The data of one in-memory store.
 * @category models
 * @since 0.1.0
 */
export class MemoryStoreState {
  readonly seeds = new Map<string, StoredSeed>()
  readonly snapshots = new Map<string, SnapshotDoc>()
  readonly blobs = new Map<string, { readonly info: BlobInfo; readonly chunks: ReadonlyArray<Uint8Array> }>()

  /** The stored (possibly encrypted) bytes of a blob, for tests that inspect data at rest. */
  rawBlob(blobId: string): Uint8Array | undefined {
    const blob = this.blobs.get(blobId)
    return blob === undefined ? undefined : Buffer.concat(blob.chunks)
  }
}

/**
 * A backend over `state`.
 * @category constructors
 */
export const makeMemoryBackend = (state: MemoryStoreState): StoreBackend => {
  const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))
  const atNow = <A>(f: (now: Date) => A): Effect.Effect<A> => Effect.flatMap(now, (date) => Effect.sync(() => f(date)))
  const put = (seedId: string, epochCounter: number, doc: SeedDoc) => state.seeds.set(seedId, { doc, epochCounter })
  const liveAt = (doc: SeedDoc, date: Date) => doc.lease !== undefined && doc.lease.expiresAt > date
  const sortSeeds = (docs: Array<SeedDoc>) =>
    docs.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || compare(a.seedId, b.seedId))

  return {
    name: "memory",
    now,
    putBlob: (info, bytes) =>
      Effect.gen(function*() {
        const chunks = yield* Stream.runCollect(Stream.map(bytes, (chunk) => Uint8Array.from(chunk)))
        const blobId = newObjectIdHex(yield* Clock.currentTimeMillis)
        state.blobs.set(blobId, { info, chunks })
        return blobId
      }),
    getBlob: (kind, blobId) =>
      Stream.suspend(() => {
        const blob = state.blobs.get(blobId)
        return blob === undefined
          ? Stream.fail(new BlobMissing({ backend: "memory", blobId, kind }))
          : Stream.fromIterable(blob.chunks)
      }),
    deleteBlob: (blobId) => Effect.sync(() => void state.blobs.delete(blobId)),
    insertSeed: (seed) =>
      Effect.gen(function*() {
        const doc: SeedDoc = {
          seedId: newObjectIdHex(yield* Clock.currentTimeMillis),
          createdAt: seed.createdAt,
          blobId: seed.blobId,
          manifestVersion: seed.manifestVersion,
          generation: 0,
          status: "alive",
          metadata: {},
          ...(seed.poolKey === undefined ? {} : { poolKey: seed.poolKey, updatedAt: seed.createdAt })
        }
        put(doc.seedId, 0, doc)
        return doc
      }),
    findSeed: (seedId) => Effect.sync(() => Option.map(Option.fromNullishOr(state.seeds.get(seedId)), (stored) => stored.doc)),
    listSeeds: (poolKey) =>
      Effect.sync(() =>
        sortSeeds([...state.seeds.values()].map((stored) => stored.doc).filter((doc) => poolKey === undefined || doc.poolKey === poolKey))
      ),
    updateSeed: (seedId, patch, updatedAt) =>
      Effect.sync(() => {
        const stored = state.seeds.get(seedId)
        if (stored === undefined) return false
        const { doc } = stored
        switch (patch._tag) {
          case "Pool": {
            const { poolKey: _dropped, ...rest } = doc
            put(seedId, stored.epochCounter, patch.poolKey === null ? { ...rest, updatedAt } : { ...rest, poolKey: patch.poolKey, updatedAt })
            break
          }
          case "Status":
            put(seedId, stored.epochCounter, { ...doc, status: patch.status, updatedAt })
            break
          case "Metadata":
            put(seedId, stored.epochCounter, { ...doc, metadata: { ...doc.metadata, ...structuredClone(patch.entries) }, updatedAt })
            break
        }
        return true
      }),
    deleteSeed: (seedId, force) =>
      atNow((date) => {
        const stored = state.seeds.get(seedId)
        if (stored === undefined) return { _tag: "Missing" as const }
        if (!force && stored.doc.lease !== undefined && liveAt(stored.doc, date)) {
          return { _tag: "Leased" as const, lease: stored.doc.lease }
        }
        state.seeds.delete(seedId)
        return { _tag: "Deleted" as const, seed: stored.doc }
      }),
    swapBlob: (seedId, fence, newBlobId) =>
      atNow((date) => {
        const stored = state.seeds.get(seedId)
        if (stored === undefined || !fenceHolds(stored.doc, fence, date)) return Option.none()
        const seed: SeedDoc = {
          ...stored.doc,
          blobId: newBlobId,
          generation: stored.doc.generation + 1,
          updatedAt: date,
          lastRefreshedAt: date
        }
        put(seedId, stored.epochCounter, seed)
        return Option.some({ replacedBlobId: stored.doc.blobId, seed })
      }),
    acquire: (poolKey, holder, ttlMillis) =>
      atNow((date) => {
        const candidates = [...state.seeds.values()].filter(({ doc }) =>
          doc.poolKey === poolKey && doc.status !== "dead" && !liveAt(doc, date)
        )
        candidates.sort((a, b) =>
          (a.doc.lastLeasedAt?.getTime() ?? -Infinity) - (b.doc.lastLeasedAt?.getTime() ?? -Infinity) ||
          compare(a.doc.seedId, b.doc.seedId)
        )
        const chosen = candidates[0]
        if (chosen === undefined) return Option.none<LeaseGrant>()
        const epoch = chosen.epochCounter + 1
        const expiresAt = new Date(date.getTime() + ttlMillis)
        put(chosen.doc.seedId, epoch, { ...chosen.doc, lease: { holder, epoch, expiresAt }, lastLeasedAt: date })
        return Option.some({ seedId: chosen.doc.seedId, holder, epoch, expiresAt })
      }),
    acquireById: (seedId, holder, ttlMillis, inPool) =>
      atNow((date) => {
        const stored = state.seeds.get(seedId)
        if (stored === undefined || liveAt(stored.doc, date)) return Option.none<LeaseGrant>()
        if (inPool !== undefined && (stored.doc.poolKey !== inPool || stored.doc.status === "dead")) return Option.none<LeaseGrant>()
        const epoch = stored.epochCounter + 1
        const expiresAt = new Date(date.getTime() + ttlMillis)
        put(seedId, epoch, { ...stored.doc, lease: { holder, epoch, expiresAt }, lastLeasedAt: date })
        return Option.some({ seedId, holder, epoch, expiresAt })
      }),
    renew: (grant, ttlMillis) =>
      atNow((date) => {
        const stored = state.seeds.get(grant.seedId)
        const lease = stored?.doc.lease
        if (stored === undefined || lease === undefined) return Option.none()
        if (lease.epoch !== grant.epoch || lease.holder !== grant.holder || lease.expiresAt <= date) return Option.none()
        const expiresAt = new Date(date.getTime() + ttlMillis)
        put(grant.seedId, stored.epochCounter, { ...stored.doc, lease: { ...lease, expiresAt } })
        return Option.some(expiresAt)
      }),
    release: (grant) =>
      Effect.sync(() => {
        const stored = state.seeds.get(grant.seedId)
        const lease = stored?.doc.lease
        if (stored === undefined || lease === undefined || lease.epoch !== grant.epoch || lease.holder !== grant.holder) return false
        const { lease: _released, ...rest } = stored.doc
        put(grant.seedId, stored.epochCounter, rest)
        return true
      }),
    insertSnapshot: (snapshot) =>
      atNow((date) => {
        const previous = newestFirst([...state.snapshots.values()].filter((doc) => doc.processId === snapshot.processId))[0]
        const capturedAt = new Date(Math.max(date.getTime(), (previous?.capturedAt.getTime() ?? -Infinity) + 1))
        const doc: SnapshotDoc = { snapshotId: newObjectIdHex(date.getTime()), capturedAt, ...snapshot }
        state.snapshots.set(doc.snapshotId, doc)
        return doc
      }),
    listSnapshots: (processId, limit) =>
      Effect.sync(() =>
        newestFirst([...state.snapshots.values()].filter((doc) => doc.processId === processId)).slice(0, limit ?? Infinity)
      ),
    deleteSnapshots: (snapshotIds) =>
      Effect.sync(() => {
        for (const id of snapshotIds) state.snapshots.delete(id)
      })
  }
}

const compare = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0

const newestFirst = (docs: Array<SnapshotDoc>) =>
  docs.sort((a, b) => b.capturedAt.getTime() - a.capturedAt.getTime() || compare(b.snapshotId, a.snapshotId))
