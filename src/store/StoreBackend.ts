/**
 * StoreBackend: the small set of primitives a storage backend implements (memory, embedded
 * SQLite + files, MongoDB + GridFS), and `makeStores`, which derives the three public services —
 * `SeedStore`, `Lease`, `SnapshotStore` — from them. Everything a backend must get right
 * atomically is a primitive (conditional blob swap, lease grant / renew / release, guarded delete,
 * snapshot insert on the store clock); everything else — encryption on every blob path, the write
 * protocol around the swap, rejection reasons, blob clean-up, retention — lives here once.
 *
 * Backends may assume ids passed to them are well-formed (24 hex characters); `makeStores` treats
 * malformed ids as unknown before calling them.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Option } from "effect"
import type { Stream } from "effect"
import { LEASE_TTL, Lease, LeaseLost } from "../lease/Lease.ts"
import { quotaOf, rankPool } from "../quota/SeedQuota.ts"
import type { LeaseGrant, LeaseOptions } from "../lease/Lease.ts"
import { SeedInUse, SeedStore, SeedWriteRejected, UnknownSeed } from "../seeds/SeedStore.ts"
import type { NewSeed, SeedDoc, SeedFence, SeedLease, SeedStatus, SeedWriteRejectedReason } from "../seeds/SeedStore.ts"
import { SNAPSHOT_RETENTION, SnapshotStore } from "../snapshots/SnapshotStore.ts"
import type { NewSnapshot, SnapshotCodec, SnapshotDoc, SnapshotEndState } from "../snapshots/SnapshotStore.ts"
import type { BlobCrypto } from "./BlobCrypto.ts"
import { isObjectIdHex } from "./ids.ts"
import { StoreUnavailable } from "../persistence/StoreError.ts"
import type { BlobMissing } from "../persistence/StoreError.ts"

/**
 * What a blob is, for its stored name and metadata (GridFS file name `seed` / `workdir`).
 * @category models
 */
export interface BlobInfo {
  readonly kind: "seed" | "snapshot"
  readonly processId?: string | undefined
}

/**
 * A seed document to insert.
 * @category models
 */
export interface NewSeedRecord {
  readonly createdAt: Date
  readonly blobId: string
  readonly manifestVersion: number
  readonly poolKey?: string | undefined
}

/**
 * A single-field seed update; each also stamps `updatedAt`.
 * @category models
 */
export type SeedPatch =
  | { readonly _tag: "Pool"; readonly poolKey: string | null }
  | { readonly _tag: "Status"; readonly status: SeedStatus }
  | { readonly _tag: "Metadata"; readonly entries: Readonly<Record<string, unknown>> }

/**
 * The outcome of a guarded delete.
 * @category models
 */
export type DeleteOutcome =
  | { readonly _tag: "Deleted"; readonly seed: SeedDoc }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Leased"; readonly lease: SeedLease }

/**
 * A snapshot document to insert; the backend assigns the id and `capturedAt`.
 * @category models
 */
export interface NewSnapshotRecord {
  readonly processId: string
  readonly endState: SnapshotEndState
  readonly sessionId: string | null
  readonly codec: SnapshotCodec
  readonly workdirBlobId: string
}

/**
 * The primitives of a storage backend. "now" always means the backend's own clock.
 * @category models
 */
export interface StoreBackend {
  /** `memory`, `embedded` or `mongo`, for error messages. */
  readonly name: string
  /** The store's clock. */
  readonly now: Effect.Effect<Date, StoreUnavailable>
  /** Streams bytes into a new blob; a failed or interrupted upload leaves nothing behind. */
  readonly putBlob: <E, R>(info: BlobInfo, bytes: Stream.Stream<Uint8Array, E, R>) => Effect.Effect<string, StoreUnavailable | E, R>
  /** Streams a blob's bytes out. */
  readonly getBlob: (kind: BlobInfo["kind"], blobId: string) => Stream.Stream<Uint8Array, BlobMissing | StoreUnavailable>
  /** Deletes a blob; an absent blob is not an error. */
  readonly deleteBlob: (blobId: string) => Effect.Effect<void, StoreUnavailable>
  readonly insertSeed: (seed: NewSeedRecord) => Effect.Effect<SeedDoc, StoreUnavailable>
  readonly findSeed: (seedId: string) => Effect.Effect<Option.Option<SeedDoc>, StoreUnavailable>
  /** All seeds, or one pool's, oldest first. */
  readonly listSeeds: (poolKey: string | undefined) => Effect.Effect<ReadonlyArray<SeedDoc>, StoreUnavailable>
  /** Applies a patch; false when the seed does not exist. */
  readonly updateSeed: (seedId: string, patch: SeedPatch, updatedAt: Date) => Effect.Effect<boolean, StoreUnavailable>
  /** Deletes the document unless `force` is false and a lease is live now; atomically. */
  readonly deleteSeed: (seedId: string, force: boolean) => Effect.Effect<DeleteOutcome, StoreUnavailable>
  /**
   * Atomically, if the seed's generation equals `fence.generation` and — with `fence.lease` — the
   * recorded lease has that holder and epoch and expires after now, or — without it — the seed has
   * no pool and no lease live now: points the seed at `newBlobId`, bumps the generation, stamps
   * `updatedAt` and `lastRefreshedAt`. Returns the replaced blob id and the updated seed.
   */
  readonly swapBlob: (
    seedId: string,
    fence: SeedFence,
    newBlobId: string
  ) => Effect.Effect<Option.Option<{ readonly replacedBlobId: string; readonly seed: SeedDoc }>, StoreUnavailable>
  /**
   * Atomically picks the seed of `poolKey` with the oldest `lastLeasedAt` (absent first) whose
   * status is not `dead` and whose lease is absent or expired now, and records
   * `lease = {holder, expiresAt: now + ttl}`, `lastLeasedAt = now` and the next epoch.
   */
  readonly acquire: (poolKey: string, holder: string, ttlMillis: number) => Effect.Effect<Option.Option<LeaseGrant>, StoreUnavailable>
  /**
   * Atomically, if the seed exists and its lease is absent or expired now (whatever its pool or
   * status — with `inPool`, only if it is still in that pool and not `dead`), records
   * `lease = {holder, expiresAt: now + ttl}`, `lastLeasedAt = now` and the next epoch.
   */
  readonly acquireById: (
    seedId: string,
    holder: string,
    ttlMillis: number,
    inPool?: string | undefined
  ) => Effect.Effect<Option.Option<LeaseGrant>, StoreUnavailable>
  /** Atomically extends the lease to now + ttl if it is this grant's and unexpired; the new expiry. */
  readonly renew: (grant: LeaseGrant, ttlMillis: number) => Effect.Effect<Option.Option<Date>, StoreUnavailable>
  /** Atomically clears the lease if it is this grant's. */
  readonly release: (grant: LeaseGrant) => Effect.Effect<boolean, StoreUnavailable>
  /** Inserts with `capturedAt = max(now, previous capturedAt of the process + 1 ms)`. */
  readonly insertSnapshot: (snapshot: NewSnapshotRecord) => Effect.Effect<SnapshotDoc, StoreUnavailable>
  /** A process's snapshots, newest first (`capturedAt`, then id), at most `limit`. */
  readonly listSnapshots: (processId: string, limit?: number) => Effect.Effect<ReadonlyArray<SnapshotDoc>, StoreUnavailable>
  readonly deleteSnapshots: (snapshotIds: ReadonlyArray<string>) => Effect.Effect<void, StoreUnavailable>
}

/**
 * The services a store layer provides.
 * @category models
 */
export type StoreServices = SeedStore | Lease | SnapshotStore

/**
 * Derives `SeedStore`, `Lease` and `SnapshotStore` from a backend and the encryption seam.
 * @category constructors
 */
export const makeStores = (
  backend: StoreBackend,
  crypto: Context.Service.Shape<typeof BlobCrypto>
): Context.Context<StoreServices> => {
  const clientNow = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))
  const findKnown = (seedId: string) => isObjectIdHex(seedId) ? backend.findSeed(seedId) : Effect.succeed(Option.none())
  const requireSeed = (seedId: string) =>
    findKnown(seedId).pipe(Effect.flatMap(Option.match({
      onNone: () => Effect.fail(new UnknownSeed({ seedId })),
      onSome: Effect.succeed
    })))
  const discardBlob = (blobId: string, why: string) =>
    backend.deleteBlob(blobId).pipe(Effect.catch((error) => Effect.logWarning(`could not delete ${why} blob ${blobId}: ${error.message}`)))
  const update = (seedId: string, patch: SeedPatch) =>
    Effect.gen(function*() {
      const updated = isObjectIdHex(seedId) ? yield* backend.updateSeed(seedId, patch, yield* clientNow) : false
      if (!updated) return yield* new UnknownSeed({ seedId })
    })
  const guardedDelete = (seedId: string, force: boolean) =>
    Effect.gen(function*() {
      if (!isObjectIdHex(seedId)) return Option.none<SeedDoc>()
      const outcome = yield* backend.deleteSeed(seedId, force)
      switch (outcome._tag) {
        case "Deleted":
          return Option.some(outcome.seed)
        case "Missing":
          return Option.none<SeedDoc>()
        case "Leased":
          return yield* new SeedInUse({ seedId, holder: outcome.lease.holder, expiresAt: outcome.lease.expiresAt })
      }
    })
  const rejected = (seedId: string, expected: SeedFence, seed: SeedDoc, reason: SeedWriteRejectedReason) =>
    new SeedWriteRejected({
      seedId,
      reason,
      expectedGeneration: expected.generation,
      actualGeneration: seed.generation,
      ...(expected.lease === undefined ? {} : { epoch: expected.lease.epoch })
    })

  const create = <E, R>(input: NewSeed<E, R>) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const blobId = yield* restore(backend.putBlob({ kind: "seed", processId: input.processId }, crypto.seed.encrypt(input.blob)))
        return yield* backend.insertSeed({
          createdAt: yield* clientNow,
          blobId,
          manifestVersion: input.manifestVersion ?? 1,
          poolKey: input.poolKey
        }).pipe(Effect.onError(() => discardBlob(blobId, "unreferenced seed")))
      })
    ).pipe(Effect.withSpan("SeedStore.create"))

  const writeBlob = <E, R>(seedId: string, expected: SeedFence, blob: Stream.Stream<Uint8Array, E, R>) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const current = yield* restore(requireSeed(seedId))
        const early = writeRefusal(current, expected, yield* restore(backend.now))
        if (early !== undefined) return yield* rejected(seedId, expected, current, early)
        const blobId = yield* restore(backend.putBlob({ kind: "seed" }, crypto.seed.encrypt(blob)))
        const swapped = yield* backend.swapBlob(seedId, expected, blobId).pipe(
          Effect.onError(() => discardBlob(blobId, "unswapped seed"))
        )
        if (Option.isSome(swapped)) {
          yield* discardBlob(swapped.value.replacedBlobId, "replaced seed")
          return swapped.value.seed
        }
        yield* discardBlob(blobId, "refused seed")
        const after = yield* requireSeed(seedId)
        const reason = writeRefusal(after, expected, yield* backend.now) ?? "conflict"
        return yield* rejected(seedId, expected, after, reason)
      })
    ).pipe(Effect.withSpan("SeedStore.writeBlob", { attributes: { seedId, generation: expected.generation } }))

  const seeds = SeedStore.of({
    persistent: true,
    create,
    get: (seedId) => findKnown(seedId).pipe(Effect.withSpan("SeedStore.get")),
    list: (options) => backend.listSeeds(options?.poolKey).pipe(Effect.withSpan("SeedStore.list")),
    listPool: Effect.fn("SeedStore.listPool")(function*(poolKey: string) {
      const members = yield* backend.listSeeds(poolKey)
      const now = yield* backend.now
      return members.map((seed) => ({ ...seed, leased: seed.lease !== undefined && seed.lease.expiresAt > now }))
    }),
    delete: (seedId, options) => guardedDelete(seedId, options?.force === true).pipe(Effect.withSpan("SeedStore.delete")),
    purge: Effect.fn("SeedStore.purge")(function*(seedId: string, options?: { readonly force?: boolean | undefined }) {
      const deleted = yield* guardedDelete(seedId, options?.force === true)
      if (Option.isNone(deleted)) return yield* new UnknownSeed({ seedId })
      yield* discardBlob(deleted.value.blobId, "purged seed")
    }),
    assignToPool: (seedId, poolKey) => update(seedId, { _tag: "Pool", poolKey }).pipe(Effect.withSpan("SeedStore.assignToPool")),
    setStatus: (seedId, status) => update(seedId, { _tag: "Status", status }).pipe(Effect.withSpan("SeedStore.setStatus")),
    declareMetadata: (seedId, entries) => {
      const invalid = Object.keys(entries).find((key) => key === "" || key.includes(".") || key.startsWith("$"))
      const checked = invalid === undefined
        ? update(seedId, { _tag: "Metadata", entries })
        : Effect.fail(
          new StoreUnavailable({
            backend: backend.name,
            operation: "declare metadata",
            detail: `metadata key ${JSON.stringify(invalid)} must be non-empty, without "." and not start with "$"`
          })
        )
      return checked.pipe(Effect.withSpan("SeedStore.declareMetadata"))
    },
    readBlob: Effect.fn("SeedStore.readBlob")(function*(seedId: string) {
      const seed = yield* requireSeed(seedId)
      return { seed, bytes: crypto.seed.decrypt(backend.getBlob("seed", seed.blobId)) }
    }),
    writeBlob
  })

  const ttlOf = (options: LeaseOptions | undefined) => Duration.toMillis(options?.ttl ?? LEASE_TTL)
  const headroom = (poolKey: string) =>
    Effect.gen(function*() {
      const members = yield* backend.listSeeds(poolKey)
      return { members, ranked: rankPool(poolKey, members, yield* backend.now) }
    })
  // A pool nobody has observed the quota of ranks exactly like the backend's own round-robin: one
  // atomic step. Otherwise the ranked candidates are tried in order, each leased only if still free.
  const acquire = (poolKey: string, holder: string, options?: LeaseOptions) =>
    Effect.gen(function*() {
      const { members, ranked } = yield* headroom(poolKey)
      if (!members.some((seed) => Option.isSome(quotaOf(seed)))) return yield* backend.acquire(poolKey, holder, ttlOf(options))
      for (const { seed } of ranked.candidates) {
        const grant = yield* backend.acquireById(seed.seedId, holder, ttlOf(options), poolKey)
        if (Option.isSome(grant)) return grant
      }
      return Option.none<LeaseGrant>()
    }).pipe(Effect.withSpan("Lease.acquire", { attributes: { poolKey, holder } }))
  const release = (grant: LeaseGrant) =>
    backend.release(grant).pipe(Effect.withSpan("Lease.release", { attributes: { seedId: grant.seedId, epoch: grant.epoch } }))
  const leases = Lease.of({
    persistent: true,
    acquire,
    acquireSeed: (seedId, holder, options) =>
      (isObjectIdHex(seedId) ? backend.acquireById(seedId, holder, ttlOf(options)) : Effect.succeedNone).pipe(
        Effect.withSpan("Lease.acquireSeed", { attributes: { seedId, holder } })
      ),
    acquireScoped: (poolKey, holder, options) =>
      Effect.acquireRelease(acquire(poolKey, holder, options), (grant) =>
        Option.match(grant, {
          onNone: () => Effect.void,
          onSome: (held) => release(held).pipe(Effect.catch((error) => Effect.logWarning(`lease release failed: ${error.message}`)))
        })),
    renew: Effect.fn("Lease.renew")(function*(grant: LeaseGrant, options?: LeaseOptions) {
      const renewed = yield* backend.renew(grant, ttlOf(options))
      if (Option.isSome(renewed)) return { ...grant, expiresAt: renewed.value }
      const seed = yield* backend.findSeed(grant.seedId)
      const reason = Option.match(seed, {
        onNone: () => "seed-missing" as const,
        onSome: (doc) =>
          doc.lease === undefined
            ? "released" as const
            : doc.lease.epoch !== grant.epoch || doc.lease.holder !== grant.holder
            ? "taken" as const
            : "expired" as const
      })
      return yield* new LeaseLost({ seedId: grant.seedId, holder: grant.holder, epoch: grant.epoch, reason })
    }),
    headroom: (poolKey) => headroom(poolKey).pipe(Effect.map(({ ranked }) => ranked), Effect.withSpan("Lease.headroom")),
    release
  })

  const insert = <E, R>(input: NewSnapshot<E, R>) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const blobId = yield* restore(
          backend.putBlob({ kind: "snapshot", processId: input.processId }, crypto.snapshot.encrypt(input.blob))
        )
        return yield* backend.insertSnapshot({
          processId: input.processId,
          endState: input.endState,
          sessionId: input.sessionId,
          codec: input.codec,
          workdirBlobId: blobId
        }).pipe(Effect.onError(() => discardBlob(blobId, "unreferenced snapshot")))
      })
    ).pipe(Effect.withSpan("SnapshotStore.insert", { attributes: { processId: input.processId } }))

  const snapshots = SnapshotStore.of({
    persistent: true,
    insert,
    latest: (processId) =>
      backend.listSnapshots(processId, 1).pipe(
        Effect.map((docs) => Option.fromNullishOr(docs[0])),
        Effect.withSpan("SnapshotStore.latest")
      ),
    list: (processId) => backend.listSnapshots(processId).pipe(Effect.withSpan("SnapshotStore.list")),
    readBlob: (snapshot: SnapshotDoc) => crypto.snapshot.decrypt(backend.getBlob("snapshot", snapshot.workdirBlobId)),
    prune: Effect.fn("SnapshotStore.prune")(function*(processId: string, keep: number = SNAPSHOT_RETENTION) {
      const all = yield* backend.listSnapshots(processId)
      const stale = all.slice(Math.max(0, keep))
      if (stale.length === 0) return stale
      yield* backend.deleteSnapshots(stale.map((doc) => doc.snapshotId))
      yield* Effect.forEach(stale, (doc) => discardBlob(doc.workdirBlobId, "pruned snapshot"), { discard: true })
      return stale
    })
  })

  return Context.make(SeedStore, seeds).pipe(Context.add(Lease, leases), Context.add(SnapshotStore, snapshots))
}

/**
 * Whether a blob swap with `fence` may happen on `seed` at store time `now` (the condition
 * {@link StoreBackend.swapBlob} evaluates atomically). For backends that evaluate it in code.
 * @category guards
 */
export const fenceHolds = (seed: SeedDoc, fence: SeedFence, now: Date): boolean => writeRefusal(seed, fence, now) === undefined

/**
 * Why a write with `fence` would be refused against `seed` at store time `now`; undefined when
 * it would be accepted. Lease problems win over a stale generation (the writer is not entitled to
 * write at all).
 */
const writeRefusal = (seed: SeedDoc, fence: SeedFence, now: Date): SeedWriteRejectedReason | undefined => {
  const lease = seed.lease
  const live = lease !== undefined && lease.expiresAt > now
  if (fence.lease !== undefined) {
    if (lease === undefined || lease.epoch !== fence.lease.epoch || lease.holder !== fence.lease.holder) return "lease-lost"
    if (!live) return "lease-expired"
  } else {
    if (seed.poolKey !== undefined) return "lease-required"
    if (live) return "leased-by-other"
  }
  return seed.generation === fence.generation ? undefined : "stale-generation"
}
