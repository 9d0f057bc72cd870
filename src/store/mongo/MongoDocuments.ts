/**
 * The MongoDB documents of the reference layout (spec §1), as Schemas decoded forward-compatibly
 * (unknown fields ignored, optional fields tolerated), and their mapping to the store models.
 *
 * Seeds (`{prefix}_codex_seeds`): `_id`, `createdAt`, `blobId`, `manifestVersion`, `updatedAt`,
 * `poolKey`, `status`, `lease: {holder, expiresAt} | null`, `lastLeasedAt`, `metadata` — the
 * reference's fields — plus `generation` (blob version, absent = 0), `leaseEpoch` (epoch of the
 * latest grant) and `lastRefreshedAt` (last blob rewrite), which reference workers ignore.
 *
 * Snapshots (`{prefix}_codex_session_snapshots`): `_id`, `processId`, `capturedAt`, `endState`,
 * `workdirBlobId`, `sessionId` — plus `codec` (absent = `gzip`).
 *
 * @since 0.1.0
 */
import { ObjectId } from "mongodb"
import { Schema } from "effect"
import type { SeedDoc } from "../../seeds/SeedStore.ts"
import type { SnapshotDoc } from "../../snapshots/SnapshotStore.ts"

const ObjectIdSchema = Schema.instanceOf(ObjectId)
const OptionalDate = Schema.optionalKey(Schema.NullOr(Schema.Date))

/**
 * A lease as stored; a lease without holder or expiry counts as no lease (the reference's
 * `acquire` treats it as free).
 */
const StoredLease = Schema.Struct({
  holder: Schema.optionalKey(Schema.NullOr(Schema.String)),
  expiresAt: OptionalDate
})

/**
 * A seed document.
 * @category schemas
 */
export const SeedDocument = Schema.Struct({
  _id: ObjectIdSchema,
  createdAt: Schema.Date,
  blobId: ObjectIdSchema,
  manifestVersion: Schema.optionalKey(Schema.NullOr(Schema.Number)),
  updatedAt: OptionalDate,
  poolKey: Schema.optionalKey(Schema.NullOr(Schema.String)),
  status: Schema.optionalKey(Schema.NullOr(Schema.String)),
  lease: Schema.optionalKey(Schema.NullOr(StoredLease)),
  lastLeasedAt: OptionalDate,
  lastRefreshedAt: OptionalDate,
  metadata: Schema.optionalKey(Schema.NullOr(Schema.Record(Schema.String, Schema.Unknown))),
  generation: Schema.optionalKey(Schema.NullOr(Schema.Number)),
  leaseEpoch: Schema.optionalKey(Schema.NullOr(Schema.Number))
})

/**
 * A snapshot document.
 * @category schemas
 */
export const SnapshotDocument = Schema.Struct({
  _id: ObjectIdSchema,
  processId: Schema.String,
  capturedAt: Schema.Date,
  endState: Schema.optionalKey(Schema.NullOr(Schema.String)),
  workdirBlobId: ObjectIdSchema,
  sessionId: Schema.optionalKey(Schema.NullOr(Schema.String)),
  codec: Schema.optionalKey(Schema.NullOr(Schema.String))
})

/** Maps a decoded seed document to the model. */
export const toSeedDoc = (doc: typeof SeedDocument.Type): SeedDoc => {
  const holder = doc.lease?.holder
  const expiresAt = doc.lease?.expiresAt
  return {
    seedId: doc._id.toHexString(),
    createdAt: doc.createdAt,
    blobId: doc.blobId.toHexString(),
    manifestVersion: doc.manifestVersion ?? 1,
    generation: doc.generation ?? 0,
    status: doc.status ?? "alive",
    metadata: doc.metadata ?? {},
    ...(doc.updatedAt == null ? {} : { updatedAt: doc.updatedAt }),
    ...(doc.poolKey == null ? {} : { poolKey: doc.poolKey }),
    ...(holder == null || expiresAt == null ? {} : { lease: { holder, expiresAt, epoch: doc.leaseEpoch ?? 0 } }),
    ...(doc.lastLeasedAt == null ? {} : { lastLeasedAt: doc.lastLeasedAt }),
    ...(doc.lastRefreshedAt == null ? {} : { lastRefreshedAt: doc.lastRefreshedAt })
  }
}

/** Maps a decoded snapshot document to the model. */
export const toSnapshotDoc = (doc: typeof SnapshotDocument.Type): SnapshotDoc => ({
  snapshotId: doc._id.toHexString(),
  processId: doc.processId,
  capturedAt: doc.capturedAt,
  endState: doc.endState ?? "done",
  workdirBlobId: doc.workdirBlobId.toHexString(),
  sessionId: doc.sessionId ?? null,
  codec: doc.codec ?? "gzip"
})
