/**
 * The MongoDB store backend, with the reference's layout (spec §1; see `MongoDocuments`):
 * collections `{prefix}_codex_seeds` and `{prefix}_codex_session_snapshots`, blobs in the
 * unprefixed GridFS bucket `fs` as files named `seed` / `workdir` with metadata
 * `{prefix, name, processId?}`. Indexes are created at startup: `by_poolKey_lastLeasedAt` on seeds
 * (spec §1.5's recommendation) and `by_processId_capturedAt_desc` on snapshots.
 *
 * **Atomicity.** Every decision is one conditional single-document update (`findOneAndUpdate` /
 * `updateOne` / `findOneAndDelete` whose filter is the whole precondition): lease grants, renewals,
 * releases, fenced blob swaps, guarded deletes. Correctness never rests on unique or TTL indexes
 * (which some wire-compatible servers do not enforce).
 *
 * **Clock.** Lease times use the server's clock, read from `hello.localTime` just before the
 * conditional update and passed into it as a literal (the reference uses `$$NOW` in pipeline
 * updates, which not every wire-compatible server supports). A reading a few milliseconds old
 * can only make a lease look live slightly longer, never hand one seed to two holders: the epoch
 * and holder in the filter decide that.
 *
 * @since 0.1.0
 */
import * as NodeSink from "@effect/platform-node/NodeSink"
import { Duration, Effect, Option, Redacted, Schema, Stream } from "effect"
import type { Scope } from "effect"
import { Binary, GridFSBucket, MongoClient, ObjectId } from "mongodb"
import type { Db, Document, Filter, UpdateFilter } from "mongodb"
import type { LeaseGrant } from "../../lease/Lease.ts"
import type { SeedDoc, SeedFence } from "../../seeds/SeedStore.ts"
import { isObjectIdHex } from "../ids.ts"
import type { BlobInfo, DeleteOutcome, StoreBackend } from "../StoreBackend.ts"
import { BlobMissing, describeCause, StoreUnavailable } from "../../persistence/StoreError.ts"
import { SeedDocument, SnapshotDocument, toSeedDoc, toSnapshotDoc } from "./MongoDocuments.ts"

/**
 * Options of `Store.layerMongo`.
 * @category models
 */
export interface MongoStoreOptions {
  /** Connection string; may carry credentials, so prefer `Redacted`. */
  readonly uri: Redacted.Redacted<string> | string
  readonly database: string
  /** The optio namespace prefix (collections `{prefix}_codex_seeds`, …). */
  readonly prefix: string
  /** How long to wait for a reachable server. Default 10 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
}

/** Collection suffixes and bucket of the reference layout. */
export const SEEDS_SUFFIX = "_codex_seeds"
export const SNAPSHOTS_SUFFIX = "_codex_session_snapshots"
export const BUCKET = "fs"

const Hello = Schema.Struct({ localTime: Schema.Date })
const GridFile = Schema.Struct({ length: Schema.Number })
const GridChunk = Schema.Struct({
  n: Schema.Number,
  data: Schema.instanceOf(Binary)
})
/** Chunks fetched per round trip when reading a blob (255 KiB each by default). */
const CHUNK_BATCH = 8
const LastCapture = Schema.Struct({ capturedAt: Schema.Date })

/**
 * Connects for the life of the scope and creates the indexes.
 * @category constructors
 */
export const acquireMongoBackend = (options: MongoStoreOptions): Effect.Effect<StoreBackend, StoreUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const uri = typeof options.uri === "string" ? options.uri : Redacted.value(options.uri)
    const scrub = (text: string) => text.split(uri).join("<uri>")
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          new MongoClient(uri, { serverSelectionTimeoutMS: Duration.toMillis(options.connectTimeout ?? "10 seconds") }).connect(),
        catch: (cause) => new StoreUnavailable({ backend: "mongo", operation: "connect", detail: scrub(describeCause(cause)) })
      }),
      (client) => Effect.promise(() => client.close().catch(() => undefined))
    )
    const backend = makeMongoBackend(client.db(options.database), options.prefix)
    yield* backend.createIndexes
    return backend
  })

const makeMongoBackend = (db: Db, prefix: string): StoreBackend & { readonly createIndexes: Effect.Effect<void, StoreUnavailable> } => {
  const seeds = db.collection(`${prefix}${SEEDS_SUFFIX}`)
  const snapshots = db.collection(`${prefix}${SNAPSHOTS_SUFFIX}`)
  const bucket = new GridFSBucket(db, { bucketName: BUCKET })
  const files = db.collection(`${BUCKET}.files`)
  const chunks = db.collection(`${BUCKET}.chunks`)

  const attempt = <A>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (cause) => unavailable(operation, cause) })
  const decode = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S, operation: string) => (input: unknown) =>
    Schema.decodeUnknownEffect(schema)(input).pipe(Effect.mapError((cause) => unavailable(operation, cause)))
  const decodeSeed = (operation: string) => (input: unknown) => Effect.map(decode(SeedDocument, operation)(input), toSeedDoc)
  const decodeSeedOption = (operation: string) => (input: unknown) =>
    input === null || input === undefined ? Effect.succeedNone : Effect.asSome(decodeSeed(operation)(input))

  const now = attempt("read server clock", () => db.command({ hello: 1 })).pipe(
    Effect.flatMap(decode(Hello, "read server clock")),
    Effect.map((hello) => hello.localTime)
  )
  const removeBlob = (id: ObjectId) =>
    attempt("delete blob", async () => {
      await chunks.deleteMany({ files_id: id })
      await files.deleteOne({ _id: id })
    })
  /**
   * A file's chunks in order, fetched a few at a time (the driver's download stream asks for
   * batches of up to 16 MB, which also some wire-compatible servers cannot serve).
   */
  const readChunks = (id: ObjectId, blobId: string, length: number): Stream.Stream<Uint8Array, StoreUnavailable> => {
    const progress = { next: 0, bytes: 0 }
    const corrupt = (detail: string) => unavailable("download blob", new Error(`blob ${blobId} is corrupt: ${detail}`))
    return Stream.suspend(() =>
      Stream.fromAsyncIterable(
        chunks.find({ files_id: id }, { sort: { n: 1 }, batchSize: CHUNK_BATCH }),
        (cause) => unavailable("download blob", cause)
      )
    ).pipe(
      Stream.mapEffect((raw) =>
        Effect.flatMap(decode(GridChunk, "download blob")(raw), (chunk) => {
          if (chunk.n !== progress.next) return Effect.fail(corrupt(`chunk ${progress.next} is missing`))
          progress.next++
          const data = chunk.data.buffer.subarray(0, chunk.data.position)
          progress.bytes += data.length
          return Effect.succeed(data)
        })
      ),
      Stream.concat(Stream.suspend(() =>
        progress.bytes === length ? Stream.empty : Stream.fail(corrupt(`${progress.bytes} of ${length} bytes present`))
      ))
    )
  }
  const findSeed = (seedId: string) =>
    attempt("find seed", () => seeds.findOne({ _id: new ObjectId(seedId) })).pipe(Effect.flatMap(decodeSeedOption("find seed")))

  // A lease a reference (Python) worker took carries no leaseEpoch: it reads as epoch 0 and must
  // match as 0 (a provider written for the reference hands the session such a lease).
  const epochFilter = (epoch: number) => epoch === 0 ? { $in: [0, null] } : epoch

  const fenceFilter = (seedId: string, fence: SeedFence, at: Date): Filter<Document> => ({
    _id: new ObjectId(seedId),
    generation: fence.generation === 0 ? { $in: [0, null] } : fence.generation,
    ...(fence.lease === undefined
      ? { poolKey: null, "lease.expiresAt": { $not: { $gt: at } } }
      : { leaseEpoch: epochFilter(fence.lease.epoch), "lease.holder": fence.lease.holder, "lease.expiresAt": { $gt: at } })
  })

  const deleteGuarded = (seedId: string, force: boolean, attemptsLeft: number): Effect.Effect<DeleteOutcome, StoreUnavailable> =>
    Effect.gen(function*() {
      const at = yield* now
      const id = new ObjectId(seedId)
      const filter: Filter<Document> = force ? { _id: id } : { _id: id, "lease.expiresAt": { $not: { $gt: at } } }
      const deleted = yield* attempt("delete seed", () => seeds.findOneAndDelete(filter)).pipe(Effect.flatMap(decodeSeedOption("delete seed")))
      if (Option.isSome(deleted)) return { _tag: "Deleted", seed: deleted.value }
      const remaining = yield* findSeed(seedId)
      if (Option.isNone(remaining)) return { _tag: "Missing" }
      const lease = remaining.value.lease
      if (lease !== undefined && lease.expiresAt > at) return { _tag: "Leased", lease }
      if (attemptsLeft <= 0) return yield* unavailable("delete seed", new Error("the seed's lease kept changing"))
      return yield* deleteGuarded(seedId, force, attemptsLeft - 1)
    })

  return {
    name: "mongo",
    now,
    createIndexes: attempt("create indexes", async () => {
      // An equivalent index created elsewhere under another name (or options) is fine as it is.
      const tolerateExisting = (error: unknown) => {
        if (!isIndexConflict(error)) throw error
      }
      await seeds.createIndex({ poolKey: 1, lastLeasedAt: 1 }, { name: "by_poolKey_lastLeasedAt" }).catch(tolerateExisting)
      await snapshots.createIndex({ processId: 1, capturedAt: -1 }, { name: "by_processId_capturedAt_desc" }).catch(tolerateExisting)
    }),
    putBlob: <E, R>(info: BlobInfo, bytes: Stream.Stream<Uint8Array, E, R>) => {
      const id = new ObjectId()
      const name = info.kind === "seed" ? "seed" : "workdir"
      const metadata = { prefix, name, ...(info.processId === undefined ? {} : { processId: info.processId }) }
      return Stream.run(
        bytes,
        NodeSink.fromWritable<StoreUnavailable, Uint8Array>({
          evaluate: () => bucket.openUploadStreamWithId(id, name, { metadata }),
          onError: (cause) => unavailable("upload blob", cause)
        })
      ).pipe(
        Effect.onExit((exit) => exit._tag === "Success" ? Effect.void : removeBlob(id).pipe(Effect.ignore)),
        Effect.as(id.toHexString())
      )
    },
    getBlob: (kind, blobId) =>
      isObjectIdHex(blobId)
        ? Stream.unwrap(Effect.gen(function*(): Effect.fn.Return<Stream.Stream<Uint8Array, BlobMissing | StoreUnavailable>, StoreUnavailable> {
          const id = new ObjectId(blobId)
          const found = yield* attempt("download blob", () => files.findOne({ _id: id }))
          if (found === null) return Stream.fail(new BlobMissing({ backend: "mongo", blobId, kind }))
          const file = yield* decode(GridFile, "download blob")(found)
          return readChunks(id, blobId, file.length)
        }))
        : Stream.fail(new BlobMissing({ backend: "mongo", blobId, kind })),
    deleteBlob: (blobId) => isObjectIdHex(blobId) ? removeBlob(new ObjectId(blobId)) : Effect.void,
    insertSeed: (seed) =>
      Effect.gen(function*() {
        const document = {
          _id: new ObjectId(),
          createdAt: seed.createdAt,
          blobId: new ObjectId(seed.blobId),
          manifestVersion: seed.manifestVersion,
          generation: 0,
          ...(seed.poolKey === undefined ? {} : { poolKey: seed.poolKey, updatedAt: seed.createdAt })
        }
        yield* attempt("insert seed", () => seeds.insertOne(document))
        return yield* decodeSeed("insert seed")(document)
      }),
    findSeed,
    listSeeds: (poolKey) =>
      attempt("list seeds", () => seeds.find(poolKey === undefined ? {} : { poolKey }).sort({ createdAt: 1, _id: 1 }).toArray()).pipe(
        Effect.flatMap(Effect.forEach(decodeSeed("list seeds")))
      ),
    updateSeed: (seedId, patch, updatedAt) => {
      const update: UpdateFilter<Document> = patch._tag === "Pool"
        ? patch.poolKey === null ? { $unset: { poolKey: "" }, $set: { updatedAt } } : { $set: { poolKey: patch.poolKey, updatedAt } }
        : patch._tag === "Status"
        ? { $set: { status: patch.status, updatedAt } }
        : { $set: { ...metadataPaths(patch.entries), updatedAt } }
      return attempt("update seed", () => seeds.updateOne({ _id: new ObjectId(seedId) }, update)).pipe(
        Effect.map((result) => result.matchedCount === 1)
      )
    },
    deleteSeed: (seedId, force) => deleteGuarded(seedId, force, 3),
    swapBlob: (seedId, fence, newBlobId) =>
      Effect.gen(function*() {
        const at = yield* now
        const before = yield* attempt("swap seed blob", () =>
          seeds.findOneAndUpdate(
            fenceFilter(seedId, fence, at),
            { $set: { blobId: new ObjectId(newBlobId), updatedAt: at, lastRefreshedAt: at }, $inc: { generation: 1 } },
            { returnDocument: "before" }
          )).pipe(Effect.flatMap(decodeSeedOption("swap seed blob")))
        return Option.map(before, (previous): { readonly replacedBlobId: string; readonly seed: SeedDoc } => ({
          replacedBlobId: previous.blobId,
          seed: { ...previous, blobId: newBlobId, generation: previous.generation + 1, updatedAt: at, lastRefreshedAt: at }
        }))
      }),
    acquire: (poolKey, holder, ttlMillis) =>
      Effect.gen(function*() {
        const at = yield* now
        const expiresAt = new Date(at.getTime() + ttlMillis)
        const granted = yield* attempt("acquire lease", () =>
          seeds.findOneAndUpdate(
            { poolKey, status: { $ne: "dead" }, "lease.expiresAt": { $not: { $gt: at } } },
            { $set: { lease: { holder, expiresAt }, lastLeasedAt: at }, $inc: { leaseEpoch: 1 } },
            { sort: { lastLeasedAt: 1, _id: 1 }, returnDocument: "after" }
          )).pipe(Effect.flatMap(decodeSeedOption("acquire lease")))
        return Option.map(granted, (seed): LeaseGrant => ({ seedId: seed.seedId, holder, epoch: seed.lease?.epoch ?? 0, expiresAt }))
      }),
    acquireById: (seedId, holder, ttlMillis, inPool) =>
      Effect.gen(function*() {
        const at = yield* now
        const expiresAt = new Date(at.getTime() + ttlMillis)
        const pooled = inPool === undefined ? {} : { poolKey: inPool, status: { $ne: "dead" } }
        const granted = yield* attempt("acquire lease by id", () =>
          seeds.findOneAndUpdate(
            { _id: new ObjectId(seedId), "lease.expiresAt": { $not: { $gt: at } }, ...pooled },
            { $set: { lease: { holder, expiresAt }, lastLeasedAt: at }, $inc: { leaseEpoch: 1 } },
            { returnDocument: "after" }
          )).pipe(Effect.flatMap(decodeSeedOption("acquire lease by id")))
        return Option.map(granted, (seed): LeaseGrant => ({ seedId, holder, epoch: seed.lease?.epoch ?? 0, expiresAt }))
      }),
    renew: (grant, ttlMillis) =>
      Effect.gen(function*() {
        const at = yield* now
        const expiresAt = new Date(at.getTime() + ttlMillis)
        const result = yield* attempt("renew lease", () =>
          seeds.updateOne(
            { _id: new ObjectId(grant.seedId), leaseEpoch: epochFilter(grant.epoch), "lease.holder": grant.holder, "lease.expiresAt": { $gt: at } },
            { $set: { "lease.expiresAt": expiresAt } }
          ))
        return result.matchedCount === 1 ? Option.some(expiresAt) : Option.none()
      }),
    release: (grant) =>
      attempt("release lease", () =>
        seeds.updateOne(
          { _id: new ObjectId(grant.seedId), leaseEpoch: epochFilter(grant.epoch), "lease.holder": grant.holder },
          { $set: { lease: null } }
        )).pipe(Effect.map((result) => result.matchedCount === 1)),
    insertSnapshot: (snapshot) =>
      Effect.gen(function*() {
        const at = yield* now
        const last = yield* attempt("insert snapshot", () =>
          snapshots.find({ processId: snapshot.processId }).sort({ capturedAt: -1 }).limit(1).project({ capturedAt: 1 }).toArray()
        ).pipe(Effect.flatMap((docs) => docs[0] === undefined ? Effect.succeedNone : Effect.asSome(decode(LastCapture, "insert snapshot")(docs[0]))))
        const capturedAt = new Date(Math.max(at.getTime(), Option.match(last, { onNone: () => -Infinity, onSome: (doc) => doc.capturedAt.getTime() + 1 })))
        const document = {
          _id: new ObjectId(),
          processId: snapshot.processId,
          capturedAt,
          endState: snapshot.endState,
          workdirBlobId: new ObjectId(snapshot.workdirBlobId),
          sessionId: snapshot.sessionId,
          codec: snapshot.codec
        }
        yield* attempt("insert snapshot", () => snapshots.insertOne(document))
        return toSnapshotDoc(document)
      }),
    listSnapshots: (processId, limit) =>
      attempt("list snapshots", () => snapshots.find({ processId }).sort({ capturedAt: -1, _id: -1 }).limit(limit ?? 0).toArray()).pipe(
        Effect.flatMap(Effect.forEach((doc) => Effect.map(decode(SnapshotDocument, "list snapshots")(doc), toSnapshotDoc)))
      ),
    deleteSnapshots: (snapshotIds) =>
      attempt("delete snapshots", () => snapshots.deleteMany({ _id: { $in: snapshotIds.map((id) => new ObjectId(id)) } })).pipe(
        Effect.asVoid
      )
  }
}

/** `$set` paths for a metadata merge: each top-level key replaced wholesale (reference behavior). */
const metadataPaths = (entries: Readonly<Record<string, unknown>>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(entries).map(([key, value]) => [`metadata.${key}`, value]))

/** MongoDB's IndexOptionsConflict (85) and IndexKeySpecsConflict (86). */
const isIndexConflict = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && (error.code === 85 || error.code === 86)

const unavailable = (operation: string, cause: unknown) =>
  new StoreUnavailable({ backend: "mongo", operation, detail: describeCause(cause), cause })
