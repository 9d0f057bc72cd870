/**
 * The store contract on the MongoDB backend: in CI against CongoDB (a MongoDB wire-protocol server
 * fetched at test setup, see test/support/congodb.ts), and against a real MongoDB whenever
 * `OPTIO_CODEX_MONGODB_URI` is set (e.g. `mongodb://127.0.0.1:27017`; each test uses its own
 * database, dropped afterwards). Plus the reference-layout checks: collection names, document
 * shapes, GridFS file names and metadata, indexes, and documents written by reference workers.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option, Redacted, Stream } from "effect"
import type { Scope } from "effect"
import { GridFSBucket, MongoClient, ObjectId } from "mongodb"
import type { Db } from "mongodb"
import { Lease } from "../../src/lease/Lease.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { startCongoDb } from "../support/congodb.ts"
import { StoreHarness, storeContract } from "./StoreContract.ts"

let databases = 0
const PREFIX = "test"

/** A connected admin client and a way to open fresh, dropped-afterwards databases on `uri`. */
class MongoPeer extends Context.Service<MongoPeer, {
  readonly uri: string
  readonly fresh: Effect.Effect<Db, Error, Scope.Scope>
}>()("test/MongoPeer") {}

const peerLayer = (uri: Effect.Effect<string, Error, Scope.Scope>) =>
  Layer.effect(MongoPeer, Effect.gen(function*() {
    const address = yield* uri
    const client = yield* Effect.acquireRelease(
      Effect.promise(() => new MongoClient(address, { serverSelectionTimeoutMS: 10_000 }).connect()),
      (client) => Effect.promise(() => client.close())
    )
    return MongoPeer.of({
      uri: address,
      fresh: Effect.acquireRelease(
        Effect.sync(() => client.db(`optio_codex_test_${process.pid}_${++databases}`)),
        (db) => Effect.promise(() => db.dropDatabase().catch(() => undefined))
      )
    })
  }))

const rawBlob = (db: Db, blobId: string) =>
  Effect.promise(async () => {
    const chunks: Array<Buffer> = []
    try {
      for await (const chunk of new GridFSBucket(db).openDownloadStream(new ObjectId(blobId))) chunks.push(Buffer.from(chunk))
      return Option.some(new Uint8Array(Buffer.concat(chunks)))
    } catch {
      return Option.none<Uint8Array>()
    }
  })

/** Blob files plus chunk groups without a file document (a half-written upload is still a blob). */
const blobCount = (db: Db) =>
  Effect.promise(async () => {
    const files = await db.collection("fs.files").find({}, { projection: { _id: 1 } }).toArray()
    const chunkOwners: Array<unknown> = await db.collection("fs.chunks").distinct("files_id")
    const ids = new Set([...files.map((file) => String(file["_id"])), ...chunkOwners.map(String)])
    return ids.size
  })

const openStore = (peer: Context.Service.Shape<typeof MongoPeer>, db: Db, crypto: Layer.Layer<BlobCrypto, unknown>) =>
  Store.layerMongo({ uri: Redacted.make(peer.uri), database: db.databaseName, prefix: PREFIX }).pipe(Layer.provide(crypto))

const harness = (peer: Layer.Layer<MongoPeer, Error>) =>
  Layer.effect(StoreHarness, Effect.gen(function*() {
    const mongo = yield* MongoPeer
    return StoreHarness.of({
      blobsInMemory: false,
      // CongoDB stores GridFS chunks slowly (~4 MiB/s here): a smaller blob keeps CI time down.
      bigBlobMiB: 24,
      fresh: Effect.map(mongo.fresh, (db) => ({
        open: (crypto) => openStore(mongo, db, crypto),
        rawBlob: (blobId) => rawBlob(db, blobId),
        blobCount: blobCount(db)
      }))
    })
  })).pipe(Layer.provide(peer))

const congo = peerLayer(Effect.map(startCongoDb, (server) => server.uri))
const realUri = process.env["OPTIO_CODEX_MONGODB_URI"]
const peers: ReadonlyArray<readonly [string, Layer.Layer<MongoPeer, Error>]> = [
  ["MongoDB wire protocol (CongoDB)", congo],
  ...(realUri === undefined || realUri === "" ? [] : [["MongoDB (OPTIO_CODEX_MONGODB_URI)", peerLayer(Effect.succeed(realUri))] as const])
]

const bytes = (text: string) => Stream.succeed(new TextEncoder().encode(text))

for (const [name, peer] of peers) {
  storeContract(name, harness(peer))

  layer(peer, { excludeTestServices: true, timeout: "120 seconds" })(`${name}: reference layout`, (it) => {
    const withStore = <A, E>(body: (db: Db) => Effect.Effect<A, E, Lease | SeedStore | SnapshotStore | Scope.Scope>) =>
      Effect.gen(function*() {
        const mongo = yield* MongoPeer
        const db = yield* mongo.fresh
        return yield* body(db).pipe(Effect.provide(openStore(mongo, db, BlobCrypto.layerPlaintext)))
      })

    it.effect("collections, document shapes, GridFS files and indexes are the reference's", () =>
      withStore((db) =>
        Effect.gen(function*() {
          const seeds = yield* SeedStore
          const lease = yield* Lease
          const snapshots = yield* SnapshotStore
          const seed = yield* seeds.create({ blob: bytes("tgz"), processId: "6650aa00bb11cc22dd33ee44" })
          yield* seeds.assignToPool(seed.seedId, "customer-42")
          yield* seeds.setStatus(seed.seedId, "alive")
          yield* seeds.declareMetadata(seed.seedId, { verify: { alive: true, checkedAt: new Date() } })
          const grant = yield* lease.acquire("customer-42", "codex-task-17")
          assert.isTrue(Option.isSome(grant))
          const snapshot = yield* snapshots.insert({ processId: "task-17", endState: "done", sessionId: "sess", codec: "gzip", blob: bytes("tree") })

          const collections = yield* Effect.promise(() => db.listCollections().toArray())
          const names = collections.map((c) => c.name)
          assert.includeMembers(names, [`${PREFIX}_codex_seeds`, `${PREFIX}_codex_session_snapshots`, "fs.files", "fs.chunks"])
          const doc = yield* Effect.promise(() => db.collection(`${PREFIX}_codex_seeds`).findOne({ _id: new ObjectId(seed.seedId) }))
          assert.isNotNull(doc)
          if (doc === null) return
          assert.instanceOf(doc["createdAt"], Date)
          assert.instanceOf(doc["updatedAt"], Date)
          assert.instanceOf(doc["blobId"], ObjectId)
          assert.strictEqual(doc["manifestVersion"], 1)
          assert.strictEqual(doc["poolKey"], "customer-42")
          assert.strictEqual(doc["status"], "alive")
          assert.deepStrictEqual(Object.keys(doc["lease"] ?? {}).sort(), ["expiresAt", "holder"])
          assert.strictEqual(doc["lease"]?.holder, "codex-task-17")
          assert.instanceOf(doc["lease"]?.expiresAt, Date)
          assert.instanceOf(doc["lastLeasedAt"], Date)
          assert.strictEqual(doc["metadata"]?.verify?.alive, true)
          const seedFile = yield* Effect.promise(() => db.collection("fs.files").findOne({ _id: doc["blobId"] }))
          assert.strictEqual(seedFile?.["filename"], "seed")
          assert.deepStrictEqual(seedFile?.["metadata"], { prefix: PREFIX, name: "seed", processId: "6650aa00bb11cc22dd33ee44" })

          const snap = yield* Effect.promise(() =>
            db.collection(`${PREFIX}_codex_session_snapshots`).findOne({ _id: new ObjectId(snapshot.snapshotId) })
          )
          assert.isNotNull(snap)
          if (snap === null) return
          assert.strictEqual(snap["processId"], "task-17")
          assert.instanceOf(snap["capturedAt"], Date)
          assert.strictEqual(snap["endState"], "done")
          assert.instanceOf(snap["workdirBlobId"], ObjectId)
          assert.strictEqual(snap["sessionId"], "sess")
          assert.notProperty(snap, "sessionBlobId")
          const snapFile = yield* Effect.promise(() => db.collection("fs.files").findOne({ _id: snap["workdirBlobId"] }))
          assert.strictEqual(snapFile?.["filename"], "workdir")
          assert.deepStrictEqual(snapFile?.["metadata"], { prefix: PREFIX, name: "workdir", processId: "task-17" })

          const seedIndexes = yield* Effect.promise(() => db.collection(`${PREFIX}_codex_seeds`).listIndexes().toArray())
          assert.include(seedIndexes.map((index) => index["name"]), "by_poolKey_lastLeasedAt")
          const snapshotIndexes = yield* Effect.promise(() => db.collection(`${PREFIX}_codex_session_snapshots`).listIndexes().toArray())
          const byProcess = snapshotIndexes.find((index) => index["name"] === "by_processId_capturedAt_desc")
          assert.deepStrictEqual(byProcess?.["key"], { processId: 1, capturedAt: -1 })
        })))

    it.effect("documents written by reference (Python) workers are read, leased and fenced", () =>
      withStore((db) =>
        Effect.gen(function*() {
          const seeds = yield* SeedStore
          const lease = yield* Lease
          const snapshots = yield* SnapshotStore
          const blobId = new ObjectId()
          yield* Effect.promise(() =>
            new Promise<void>((resolve, reject) => {
              const upload = new GridFSBucket(db).openUploadStreamWithId(blobId, "seed")
              upload.once("finish", () => resolve())
              upload.once("error", reject)
              upload.end(Buffer.from("python-tgz"))
            })
          )
          const seedId = new ObjectId()
          yield* Effect.promise(() =>
            db.collection(`${PREFIX}_codex_seeds`).insertOne({
              _id: seedId,
              createdAt: new Date(),
              blobId,
              manifestVersion: 1,
              updatedAt: new Date(),
              poolKey: "py-pool",
              status: "alive",
              lease: null,
              metadata: { verify: { alive: true, checkedAt: new Date() } }
            })
          )
          const workdirBlobId = new ObjectId()
          yield* Effect.promise(() =>
            db.collection(`${PREFIX}_codex_session_snapshots`).insertOne({
              processId: "py-task",
              capturedAt: new Date(),
              endState: "cancelled",
              workdirBlobId,
              sessionId: null
            })
          )

          const loaded = yield* seeds.get(seedId.toHexString())
          assert.strictEqual(Option.getOrUndefined(loaded)?.generation, 0)
          const blob = yield* seeds.readBlob(seedId.toHexString())
          assert.strictEqual(Buffer.concat(yield* Stream.runCollect(blob.bytes)).toString(), "python-tgz")
          const grant = yield* lease.acquire("py-pool", "ts-task")
          if (Option.isNone(grant)) return assert.fail("the reference seed was not acquired")
          assert.strictEqual(grant.value.epoch, 1)
          yield* seeds.writeBlob(seedId.toHexString(), { generation: 0, lease: grant.value }, bytes("ts-tgz"))

          // A reference worker takes the lease over (its acquire sets no epoch): the old grant is fenced out.
          yield* Effect.promise(() =>
            db.collection(`${PREFIX}_codex_seeds`).updateOne({ _id: seedId }, {
              $set: { lease: { holder: "py-task", expiresAt: new Date(Date.now() + 60_000) } }
            })
          )
          const refused = yield* Effect.flip(seeds.writeBlob(seedId.toHexString(), { generation: 1, lease: grant.value }, bytes("late")))
          assert.strictEqual(refused._tag === "SeedWriteRejected" ? refused.reason : refused._tag, "lease-lost")
          const renewal = yield* Effect.flip(lease.renew(grant.value))
          assert.strictEqual(renewal._tag === "LeaseLost" ? renewal.reason : renewal._tag, "taken")

          // A lease a reference worker (or a provider written for it) took has no epoch: the holder
          // it names can still renew and release it as epoch 0 (item 9 on MongoDB).
          const pyLeased = new ObjectId()
          yield* Effect.promise(() =>
            db.collection(`${PREFIX}_codex_seeds`).insertOne({
              _id: pyLeased,
              createdAt: new Date(),
              blobId,
              manifestVersion: 1,
              lease: { holder: "job-7", expiresAt: new Date(Date.now() + 60_000) }
            })
          )
          const adopted = Option.getOrThrow(yield* seeds.get(pyLeased.toHexString()))
          assert.strictEqual(adopted.lease?.epoch, 0)
          const renewed = yield* lease.renew({ seedId: pyLeased.toHexString(), holder: "job-7", epoch: 0, expiresAt: adopted.lease!.expiresAt })
          assert.isAbove(renewed.expiresAt.getTime(), Date.now())
          assert.isTrue(yield* lease.release(renewed))

          const snapshot = yield* snapshots.latest("py-task")
          assert.strictEqual(Option.getOrUndefined(snapshot)?.codec, "gzip")
          assert.strictEqual(Option.getOrUndefined(snapshot)?.sessionId, null)
        })))
  })
}
