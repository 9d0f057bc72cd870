/**
 * `compat: "python-0.1"` on a MongoDB shared with Python workers (item 12), with the real codex:
 * a seed written the reference's way is leased with the process id as holder (what the reference
 * renews and releases by), and the snapshot the run leaves is read back the way the reference
 * reads it — the collection's document fields, the GridFS file, a gzip tar of the workdir with
 * codex's rollouts under home/.codex/sessions.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import { GridFSBucket, MongoClient, ObjectId } from "mongodb"
import type { Db } from "mongodb"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import { AUTH_MEMBER, packSeedArchive } from "../../src/credentials/SeedArchive.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { startCongoDb } from "../support/congodb.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { sessionServices } from "../support/sessionServices.ts"

const PREFIX = "optio"
const PROCESS_ID = "compat-task"
const root = join(repoRoot, ".cache", "test", `e2e-compat-${process.pid}`)

const gridFsBytes = (db: Db, id: ObjectId) =>
  Effect.promise(async () => {
    const chunks: Array<Buffer> = []
    for await (const chunk of new GridFSBucket(db).openDownloadStream(id)) chunks.push(Buffer.from(chunk))
    return Buffer.concat(chunks)
  })

const gridFsPut = (db: Db, name: string, bytes: Uint8Array) =>
  Effect.promise(() =>
    new Promise<ObjectId>((resolve, reject) => {
      const upload = new GridFSBucket(db).openUploadStream(name)
      upload.once("finish", () => resolve(upload.id))
      upload.once("error", reject)
      upload.end(Buffer.from(bytes))
    })
  )

describe("compat python-0.1 (item 12)", () => {
  it.live("a reference seed is leased by the process id; the snapshot reads back as the reference reads it", () =>
    Effect.gen(function*() {
      const mongo = yield* startCongoDb
      const client = yield* Effect.acquireRelease(
        Effect.promise(() => new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 10_000 }).connect()),
        (opened) => Effect.promise(() => opened.close())
      )
      const db = client.db(`compat_${process.pid}`)
      // A seed as a Python worker captured it: a gzip tar with .codex/auth.json, a GridFS file named "seed".
      const auth = new TextEncoder().encode(JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "sk-compat" }))
      const blobId = yield* gridFsPut(db, "seed", packSeedArchive([{ name: AUTH_MEMBER, bytes: auth, mode: 0o600 }]))
      const seedId = new ObjectId()
      yield* Effect.promise(() => db.collection(`${PREFIX}_codex_seeds`).insertOne({ _id: seedId, createdAt: new Date(), blobId, manifestVersion: 1 }))

      const server = yield* ScriptedModelServer.start([ModelScript.execCommand("printf 'DONE: compat\\n' >> optio.log"), ModelScript.text("ok")])
      const workdir = join(root, "w")
      mkdirSync(workdir, { recursive: true })
      let holderWhileRunning: unknown
      const stores = Store.layerMongo({ uri: Redacted.make(mongo.uri), database: db.databaseName, prefix: PREFIX }).pipe(
        Layer.provide(BlobCrypto.layerPlaintext)
      )
      const result = yield* runCodexSession(
        {
          consumerInstructions: "compat",
          mode: "conversation",
          compat: "python-0.1",
          seedId: seedId.toHexString(),
          ...demoTaskSettings(server.baseUrl)
        },
        {
          workdir,
          stopGracePeriod: "2 seconds",
          // The lease is read while codex runs, and only then is the turn that ends the task sent.
          onConversation: (conversation) =>
            Effect.promise(() => db.collection(`${PREFIX}_codex_seeds`).findOne({ _id: seedId })).pipe(
              Effect.tap((doc) => Effect.sync(() => void (holderWhileRunning = (doc?.["lease"] as { holder?: unknown } | null)?.holder))),
              Effect.andThen(conversation.sendTurn("go"))
            )
        }
      ).pipe(Effect.provide(sessionServices(PROCESS_ID, { stores })))
      assert.strictEqual(result.summary, "compat")
      assert.strictEqual(holderWhileRunning, PROCESS_ID, "the lease holder is the process id, as the reference's")
      const seedAfter = yield* Effect.promise(() => db.collection(`${PREFIX}_codex_seeds`).findOne({ _id: seedId }))
      assert.isNull(seedAfter?.["lease"] ?? null, "released as the reference releases: lease = null")

      // The snapshot, read the reference's way.
      const docs = yield* Effect.promise(() => db.collection(`${PREFIX}_codex_session_snapshots`).find({ processId: PROCESS_ID }).toArray())
      assert.lengthOf(docs, 1)
      const doc = docs[0]!
      assert.instanceOf(doc["capturedAt"], Date)
      assert.strictEqual(doc["endState"], "done")
      assert.instanceOf(doc["workdirBlobId"], ObjectId)
      assert.match(String(doc["sessionId"]), /^[0-9a-f-]{36}$/)
      const file = yield* Effect.promise(() => db.collection("fs.files").findOne({ _id: doc["workdirBlobId"] }))
      assert.strictEqual(file?.["filename"], "workdir")
      const archive = yield* gridFsBytes(db, doc["workdirBlobId"] as ObjectId)
      assert.deepStrictEqual([...archive.subarray(0, 2)], [0x1f, 0x8b], "gzip, not zstd nor encrypted")
      const members = execFileSync("tar", ["-tf", "-"], { input: gunzipSync(archive) }).toString("utf8").split("\n")
      const name = (member: string) => member.replace(/^\.\//, "")
      assert.includeMembers(members.map(name), ["AGENTS.md", "optio.log"])
      assert.isTrue(
        members.map(name).some((member) => member.startsWith("home/.codex/sessions/") && member.endsWith(`${String(doc["sessionId"])}.jsonl`)),
        "the thread's rollout where the reference's resume looks for it"
      )
      assert.isFalse(members.some((member) => member.endsWith("auth.json")), "no credentials in a snapshot")
    }).pipe(Effect.scoped), 180_000)
})
