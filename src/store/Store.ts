/**
 * Store: the one place a store backend is chosen. Each layer provides all three store services —
 * `SeedStore`, `Lease`, `SnapshotStore` — over one backend, and applies the `BlobCrypto` it is
 * given (kept open in the type, so the key configuration is composed by the caller):
 *
 * - `Store.layerMemory()` — in memory, for unit tests;
 * - `Store.layerEmbedded({ dataDir })` — the single-machine default: `node:sqlite` for documents
 *   and leases (safe across OS processes) and atomically written blob files under `dataDir`;
 * - `Store.layerMongo({ uri, database, prefix })` — MongoDB with the reference's layout
 *   (`{prefix}_codex_seeds`, `{prefix}_codex_session_snapshots`, GridFS bucket `fs`), so Python
 *   and TypeScript workers can share one database;
 * - `Store.layerNone` — a worker that keeps nothing: tasks run without seeds or resume.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { join } from "node:path"
import { BlobCrypto } from "./BlobCrypto.ts"
import { acquireEmbeddedBackend } from "./embedded/EmbeddedBackend.ts"
import type { EmbeddedStoreOptions } from "./embedded/EmbeddedBackend.ts"
import { makeMemoryBackend, MemoryStoreState } from "./memory/MemoryBackend.ts"
import type { MongoStoreOptions } from "./mongo/MongoBackend.ts"
import { loadOptionalPackage } from "../package/OptionalPackage.ts"
import type { OptionalPackageMissing } from "../package/OptionalPackage.ts"
import { noStores } from "./NoStore.ts"
import { makeStores } from "./StoreBackend.ts"
import type { StoreBackend, StoreServices } from "./StoreBackend.ts"
import type { StoreUnavailable } from "../persistence/StoreError.ts"

export type { EmbeddedStoreOptions } from "./embedded/EmbeddedBackend.ts"
export { MemoryStoreState } from "./memory/MemoryBackend.ts"
export type { MongoStoreOptions } from "./mongo/MongoBackend.ts"
export type { StoreServices } from "./StoreBackend.ts"

const fromBackend = <E, R>(backend: Effect.Effect<StoreBackend, E, R>) =>
  Layer.effectContext(Effect.gen(function*() {
    const crypto = yield* BlobCrypto
    return makeStores(yield* backend, crypto)
  }))

/**
 * An in-memory store. Pass a `state` to open the same data more than once.
 * @category layers
 */
const layerMemory = (options: { readonly state?: MemoryStoreState | undefined } = {}): Layer.Layer<StoreServices, never, BlobCrypto> =>
  fromBackend(Effect.sync(() => makeMemoryBackend(options.state ?? new MemoryStoreState())))

/**
 * The embedded store under `dataDir` (created if missing): `store.sqlite` plus `blobs/`.
 * @category layers
 */
const layerEmbedded = (options: EmbeddedStoreOptions): Layer.Layer<StoreServices, StoreUnavailable, BlobCrypto> =>
  fromBackend(acquireEmbeddedBackend(options))

/**
 * The MongoDB store; the client is connected for the layer's lifetime and indexes are created at
 * startup. `mongodb` is an optional peer dependency, loaded here on first use: without it the
 * layer fails with `OptionalPackageMissing`.
 * @category layers
 */
const layerMongo = (options: MongoStoreOptions): Layer.Layer<StoreServices, StoreUnavailable | OptionalPackageMissing, BlobCrypto> =>
  fromBackend(
    loadOptionalPackage("mongodb", "The MongoDB store (Store.layerMongo)", () => import("mongodb")).pipe(
      // The backend module imports mongodb itself; it is only loaded once mongodb is known to be there.
      Effect.andThen(Effect.promise(() => import("./mongo/MongoBackend.ts"))),
      Effect.flatMap((backend) => backend.acquireMongoBackend(options))
    )
  )

/**
 * No store: the store services of a worker that keeps nothing (`persistent: false`). A task that
 * needs one — a seed, seed capture, resume — is refused with `PersistenceNotConfigured` before it
 * starts; no snapshot is taken at teardown. Needs no `BlobCrypto`.
 * @category layers
 */
const layerNone: Layer.Layer<StoreServices> = Layer.succeedContext(noStores)

/**
 * The embedded store's default data directory: `OPTIO_CODEX_DATA_DIR`, else
 * `$XDG_DATA_HOME/optio-codex` (an absolute `XDG_DATA_HOME` only, per the XDG spec), else
 * `<homeDir>/.local/share/optio-codex`. The caller passes its environment and home directory.
 * @category constructors
 */
const defaultDataDir = (env: Readonly<Record<string, string | undefined>>, homeDir: string): string => {
  const explicit = env["OPTIO_CODEX_DATA_DIR"]
  if (explicit !== undefined && explicit !== "") return explicit
  const xdg = env["XDG_DATA_HOME"]
  const dataHome = xdg !== undefined && xdg.startsWith("/") ? xdg : join(homeDir, ".local", "share")
  return join(dataHome, "optio-codex")
}

/**
 * The store layers and helpers.
 * @category layers
 * @since 0.1.0
 */
export const Store = { layerMemory, layerEmbedded, layerMongo, layerNone, defaultDataDir } as const
