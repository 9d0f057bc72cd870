/**
 * The embedded store backend: the single-machine default when no MongoDB is configured.
 * Documents and leases live in `<dataDir>/store.sqlite` (`node:sqlite`, built into Node), blobs in
 * files under `<dataDir>/blobs/` (see `BlobFiles`).
 *
 * Safe across OS processes sharing one data dir: the database runs in WAL mode with a busy
 * timeout, and every read-modify-write (lease grant, renewal, release, fenced blob swap, guarded
 * delete, snapshot insert) is one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock
 * before reading, so two processes never decide on the same state. The store clock is SQLite's
 * own (`unixepoch('subsec')`), read once inside each such transaction.
 *
 * **Gotchas**
 *
 * - `node:sqlite` is synchronous: a transaction waiting on another process's lock blocks this
 *   process's event loop for up to the busy timeout. Transactions are a few statements long.
 * - Metadata is stored as JSON; `Date` values survive the round trip, other non-JSON values do not.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Option, Schema } from "effect"
import type { Scope } from "effect"
import { chmod, mkdir, open } from "node:fs/promises"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import type { SQLInputValue } from "node:sqlite"
import type { LeaseGrant } from "../../lease/Lease.ts"
import type { SeedDoc } from "../../seeds/SeedStore.ts"
import type { SnapshotDoc } from "../../snapshots/SnapshotStore.ts"
import { newObjectIdHex } from "../ids.ts"
import { fenceHolds } from "../StoreBackend.ts"
import type { DeleteOutcome, StoreBackend } from "../StoreBackend.ts"
import { describeCause, StoreUnavailable } from "../../persistence/StoreError.ts"
import { makeBlobFiles } from "./BlobFiles.ts"
import type { BlobFiles } from "./BlobFiles.ts"

/**
 * Options of `Store.layerEmbedded`.
 * @category models
 */
export interface EmbeddedStoreOptions {
  /** The data directory (see `Store.defaultDataDir`); created with mode 0700 if missing. */
  readonly dataDir: string
  /** How long a transaction waits for another process's write lock. Default 5 seconds. */
  readonly busyTimeout?: Duration.Input | undefined
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS seeds (
  id TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  updated_at INTEGER,
  blob_id TEXT NOT NULL,
  manifest_version INTEGER NOT NULL,
  generation INTEGER NOT NULL DEFAULT 0,
  pool_key TEXT,
  status TEXT,
  lease_holder TEXT,
  lease_expires_at INTEGER,
  lease_epoch INTEGER NOT NULL DEFAULT 0,
  last_leased_at INTEGER,
  last_refreshed_at INTEGER,
  metadata TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX IF NOT EXISTS seeds_by_pool_last_leased ON seeds (pool_key, last_leased_at);
CREATE TABLE IF NOT EXISTS snapshots (
  id TEXT PRIMARY KEY,
  process_id TEXT NOT NULL,
  captured_at INTEGER NOT NULL,
  end_state TEXT NOT NULL,
  workdir_blob_id TEXT NOT NULL,
  session_id TEXT,
  codec TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS by_processId_capturedAt_desc ON snapshots (process_id, captured_at DESC);
`

const SeedRow = Schema.Struct({
  id: Schema.String,
  created_at: Schema.Number,
  updated_at: Schema.NullOr(Schema.Number),
  blob_id: Schema.String,
  manifest_version: Schema.Number,
  generation: Schema.Number,
  pool_key: Schema.NullOr(Schema.String),
  status: Schema.NullOr(Schema.String),
  lease_holder: Schema.NullOr(Schema.String),
  lease_expires_at: Schema.NullOr(Schema.Number),
  lease_epoch: Schema.Number,
  last_leased_at: Schema.NullOr(Schema.Number),
  last_refreshed_at: Schema.NullOr(Schema.Number),
  metadata: Schema.String
})

const SnapshotRow = Schema.Struct({
  id: Schema.String,
  process_id: Schema.String,
  captured_at: Schema.Number,
  end_state: Schema.String,
  workdir_blob_id: Schema.String,
  session_id: Schema.NullOr(Schema.String),
  codec: Schema.String
})

const NowRow = Schema.Struct({ now: Schema.Number })
const MaxRow = Schema.Struct({ last: Schema.NullOr(Schema.Number) })
const decodeIdRow = Schema.decodeUnknownSync(Schema.Struct({ id: Schema.String }))
const decodeMaxRow = Schema.decodeUnknownSync(MaxRow)
const decodeSeedRow = Schema.decodeUnknownSync(SeedRow)
const decodeSnapshotRow = Schema.decodeUnknownSync(SnapshotRow)
const decodeNowRow = Schema.decodeUnknownSync(NowRow)

/**
 * Opens the embedded backend for the life of the scope.
 * @category constructors
 */
export const acquireEmbeddedBackend = (options: EmbeddedStoreOptions): Effect.Effect<StoreBackend, StoreUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    yield* Effect.tryPromise({
      try: async () => {
        await mkdir(options.dataDir, { recursive: true, mode: 0o700 })
        // A directory that existed already (0755 from an earlier version or by hand) is made
        // private too: it holds every seed's credentials. The database files are created 0600
        // before SQLite opens them (SQLite gives its WAL and SHM files the database's mode).
        await chmod(options.dataDir, 0o700)
        const database = join(options.dataDir, "store.sqlite")
        await open(database, "a", 0o600).then((handle) => handle.close())
        for (const file of [database, `${database}-wal`, `${database}-shm`]) {
          await chmod(file, 0o600).catch((error: unknown) => {
            if (!(typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT")) throw error
          })
        }
      },
      catch: (cause) => unavailable("create data directory", cause)
    })
    const blobs = yield* makeBlobFiles(join(options.dataDir, "blobs"))
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => openDatabase(join(options.dataDir, "store.sqlite"), Duration.toMillis(options.busyTimeout ?? "5 seconds")),
        catch: (cause) => unavailable("open database", cause)
      }),
      (db) => Effect.sync(() => db.close())
    )
    return makeSqliteBackend(db, blobs)
  })

const openDatabase = (path: string, busyTimeoutMillis: number): DatabaseSync => {
  const db = new DatabaseSync(path, { timeout: busyTimeoutMillis })
  try {
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
    db.exec(`BEGIN IMMEDIATE; ${SCHEMA} COMMIT;`)
    return db
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK")
    db.close()
    throw error
  }
}

const makeSqliteBackend = (db: DatabaseSync, blobs: BlobFiles): StoreBackend => {
  const all = (sql: string, ...params: Array<SQLInputValue>) => db.prepare(sql).all(...params)
  const get = (sql: string, ...params: Array<SQLInputValue>) => db.prepare(sql).get(...params)
  const run = (sql: string, ...params: Array<SQLInputValue>) => db.prepare(sql).run(...params)
  const nowMillis = () => decodeNowRow(get("SELECT CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) AS now")).now
  const findRow = (seedId: string) => {
    const row = get("SELECT * FROM seeds WHERE id = ?", seedId)
    return row === undefined ? undefined : toSeedDoc(decodeSeedRow(row))
  }

  /** Runs `body` in one synchronous BEGIN IMMEDIATE transaction with the store's time. */
  const transaction = <A>(operation: string, body: (now: number) => A): Effect.Effect<A, StoreUnavailable> =>
    Effect.try({
      try: () => {
        db.exec("BEGIN IMMEDIATE")
        try {
          const result = body(nowMillis())
          db.exec("COMMIT")
          return result
        } catch (error) {
          if (db.isTransaction) db.exec("ROLLBACK")
          throw error
        }
      },
      catch: (cause) => unavailable(operation, cause)
    })
  const query = <A>(operation: string, body: () => A): Effect.Effect<A, StoreUnavailable> =>
    Effect.try({ try: body, catch: (cause) => unavailable(operation, cause) })

  return {
    name: "embedded",
    now: query("read clock", () => new Date(nowMillis())),
    putBlob: (_info, bytes) => blobs.put(bytes),
    getBlob: blobs.get,
    deleteBlob: blobs.remove,
    insertSeed: (seed) =>
      query("insert seed", () => {
        const seedId = newObjectIdHex(seed.createdAt.getTime())
        const created = seed.createdAt.getTime()
        run(
          "INSERT INTO seeds (id, created_at, updated_at, blob_id, manifest_version, pool_key) VALUES (?, ?, ?, ?, ?, ?)",
          seedId, created, seed.poolKey === undefined ? null : created, seed.blobId, seed.manifestVersion, seed.poolKey ?? null
        )
        return findSeedOrThrow(findRow, seedId)
      }),
    findSeed: (seedId) => query("find seed", () => Option.fromNullishOr(findRow(seedId))),
    listSeeds: (poolKey) =>
      query("list seeds", () =>
        (poolKey === undefined
          ? all("SELECT * FROM seeds ORDER BY created_at, id")
          : all("SELECT * FROM seeds WHERE pool_key = ? ORDER BY created_at, id", poolKey)).map((row) => toSeedDoc(decodeSeedRow(row)))
      ),
    updateSeed: (seedId, patch, updatedAt) =>
      transaction("update seed", () => {
        const at = updatedAt.getTime()
        switch (patch._tag) {
          case "Pool":
            return run("UPDATE seeds SET pool_key = ?, updated_at = ? WHERE id = ?", patch.poolKey, at, seedId).changes === 1
          case "Status":
            return run("UPDATE seeds SET status = ?, updated_at = ? WHERE id = ?", patch.status, at, seedId).changes === 1
          case "Metadata": {
            const doc = findRow(seedId)
            if (doc === undefined) return false
            const metadata = encodeMetadata({ ...doc.metadata, ...patch.entries })
            return run("UPDATE seeds SET metadata = ?, updated_at = ? WHERE id = ?", metadata, at, seedId).changes === 1
          }
        }
      }),
    deleteSeed: (seedId, force) =>
      transaction("delete seed", (now): DeleteOutcome => {
        const doc = findRow(seedId)
        if (doc === undefined) return { _tag: "Missing" }
        if (!force && doc.lease !== undefined && doc.lease.expiresAt.getTime() > now) return { _tag: "Leased", lease: doc.lease }
        run("DELETE FROM seeds WHERE id = ?", seedId)
        return { _tag: "Deleted", seed: doc }
      }),
    swapBlob: (seedId, fence, newBlobId) =>
      transaction("swap seed blob", (now) => {
        const doc = findRow(seedId)
        if (doc === undefined || !fenceHolds(doc, fence, new Date(now))) return Option.none()
        run(
          "UPDATE seeds SET blob_id = ?, generation = generation + 1, updated_at = ?, last_refreshed_at = ? WHERE id = ?",
          newBlobId, now, now, seedId
        )
        return Option.some({ replacedBlobId: doc.blobId, seed: findSeedOrThrow(findRow, seedId) })
      }),
    acquire: (poolKey, holder, ttlMillis) =>
      transaction("acquire lease", (now) => {
        const row = get(
          `SELECT id FROM seeds
           WHERE pool_key = ? AND (status IS NULL OR status != 'dead')
             AND (lease_holder IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= ?)
           ORDER BY last_leased_at ASC, id ASC LIMIT 1`,
          poolKey, now
        )
        if (row === undefined) return Option.none<LeaseGrant>()
        const { id } = decodeIdRow(row)
        const expiresAt = now + ttlMillis
        run(
          `UPDATE seeds SET lease_holder = ?, lease_expires_at = ?, lease_epoch = lease_epoch + 1, last_leased_at = ?
           WHERE id = ?`,
          holder, expiresAt, now, id
        )
        const seed = findSeedOrThrow(findRow, id)
        return Option.some({ seedId: id, holder, epoch: seed.lease?.epoch ?? 0, expiresAt: new Date(expiresAt) })
      }),
    acquireById: (seedId, holder, ttlMillis, inPool) =>
      transaction("acquire lease by id", (now) => {
        const expiresAt = now + ttlMillis
        const free = "id = ? AND (lease_holder IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= ?)"
        const set = "UPDATE seeds SET lease_holder = ?, lease_expires_at = ?, lease_epoch = lease_epoch + 1, last_leased_at = ?"
        const changed = (inPool === undefined
          ? run(`${set} WHERE ${free}`, holder, expiresAt, now, seedId, now)
          : run(
            `${set} WHERE ${free} AND pool_key = ? AND (status IS NULL OR status != 'dead')`,
            holder, expiresAt, now, seedId, now, inPool
          )).changes
        if (changed !== 1) return Option.none<LeaseGrant>()
        const seed = findSeedOrThrow(findRow, seedId)
        return Option.some({ seedId, holder, epoch: seed.lease?.epoch ?? 0, expiresAt: new Date(expiresAt) })
      }),
    renew: (grant, ttlMillis) =>
      transaction("renew lease", (now) => {
        const expiresAt = now + ttlMillis
        const changed = run(
          `UPDATE seeds SET lease_expires_at = ?
           WHERE id = ? AND lease_holder = ? AND lease_epoch = ? AND lease_expires_at > ?`,
          expiresAt, grant.seedId, grant.holder, grant.epoch, now
        ).changes
        return changed === 1 ? Option.some(new Date(expiresAt)) : Option.none()
      }),
    release: (grant) =>
      transaction("release lease", () =>
        run(
          "UPDATE seeds SET lease_holder = NULL, lease_expires_at = NULL WHERE id = ? AND lease_holder = ? AND lease_epoch = ?",
          grant.seedId, grant.holder, grant.epoch
        ).changes === 1
      ),
    insertSnapshot: (snapshot) =>
      transaction("insert snapshot", (now): SnapshotDoc => {
        const { last } = decodeMaxRow(get("SELECT MAX(captured_at) AS last FROM snapshots WHERE process_id = ?", snapshot.processId))
        const capturedAt = Math.max(now, last === null ? -Infinity : last + 1)
        const snapshotId = newObjectIdHex(now)
        run(
          `INSERT INTO snapshots (id, process_id, captured_at, end_state, workdir_blob_id, session_id, codec)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
          snapshotId, snapshot.processId, capturedAt, snapshot.endState, snapshot.workdirBlobId, snapshot.sessionId, snapshot.codec
        )
        return { snapshotId, capturedAt: new Date(capturedAt), ...snapshot }
      }),
    listSnapshots: (processId, limit) =>
      query("list snapshots", () =>
        all(
          "SELECT * FROM snapshots WHERE process_id = ? ORDER BY captured_at DESC, id DESC LIMIT ?",
          processId, limit ?? -1
        ).map((row) => toSnapshotDoc(decodeSnapshotRow(row)))
      ),
    deleteSnapshots: (snapshotIds) =>
      transaction("delete snapshots", () => {
        for (const id of snapshotIds) run("DELETE FROM snapshots WHERE id = ?", id)
      })
  }
}

const findSeedOrThrow = (find: (seedId: string) => SeedDoc | undefined, seedId: string): SeedDoc => {
  const doc = find(seedId)
  if (doc === undefined) throw new Error(`seed ${seedId} vanished inside its transaction`)
  return doc
}

const toSeedDoc = (row: typeof SeedRow.Type): SeedDoc => ({
  seedId: row.id,
  createdAt: new Date(row.created_at),
  blobId: row.blob_id,
  manifestVersion: row.manifest_version,
  generation: row.generation,
  status: row.status ?? "alive",
  metadata: decodeMetadata(row.metadata),
  ...(row.updated_at === null ? {} : { updatedAt: new Date(row.updated_at) }),
  ...(row.pool_key === null ? {} : { poolKey: row.pool_key }),
  ...(row.lease_holder === null || row.lease_expires_at === null
    ? {}
    : { lease: { holder: row.lease_holder, epoch: row.lease_epoch, expiresAt: new Date(row.lease_expires_at) } }),
  ...(row.last_leased_at === null ? {} : { lastLeasedAt: new Date(row.last_leased_at) }),
  ...(row.last_refreshed_at === null ? {} : { lastRefreshedAt: new Date(row.last_refreshed_at) })
})

const toSnapshotDoc = (row: typeof SnapshotRow.Type): SnapshotDoc => ({
  snapshotId: row.id,
  processId: row.process_id,
  capturedAt: new Date(row.captured_at),
  endState: row.end_state,
  workdirBlobId: row.workdir_blob_id,
  sessionId: row.session_id,
  codec: row.codec
})

/** JSON with `Date` values kept as `{"$date": iso}` (MongoDB extended JSON's form). */
const encodeMetadata = (metadata: Readonly<Record<string, unknown>>): string =>
  JSON.stringify(metadata, function(this: unknown, key: string, value: unknown) {
    const raw = typeof this === "object" && this !== null ? Reflect.get(this, key) : undefined
    return raw instanceof Date ? { $date: raw.toISOString() } : value
  })

const decodeMetadata = (text: string): Readonly<Record<string, unknown>> => {
  const parsed: unknown = JSON.parse(text, (_key, value: unknown) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return value
    const keys = Object.keys(value)
    const date = Reflect.get(value, "$date")
    return keys.length === 1 && typeof date === "string" ? new Date(date) : value
  })
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? { ...parsed } : {}
}

const unavailable = (operation: string, cause: unknown) =>
  new StoreUnavailable({ backend: "embedded", operation, detail: describeCause(cause), cause })
