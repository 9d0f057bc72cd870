/**
 * StoreFlags: how the CLI picks its persistence store and blob encryption. Owns the store flags
 * every persistence-aware command takes and the layer they select; does not own the stores
 * themselves (`Store`) nor what a command does with them.
 *
 * - `--mongodb-uri` (env `OPTIO_CODEX_MONGODB_URI`) selects MongoDB, with `--mongodb-db`
 *   (env `OPTIO_CODEX_MONGODB_DB`; default: the database named in the URI's path, else `optio`)
 *   and `--prefix` (env `OPTIO_CODEX_PREFIX`; default `optio`, so collections are
 *   `optio_codex_seeds` / `optio_codex_session_snapshots`).
 * - Otherwise the embedded store at `--data-dir`, else `Store.defaultDataDir` (which honours
 *   `OPTIO_CODEX_DATA_DIR`, then `$XDG_DATA_HOME/optio-codex`, then `~/.local/share/optio-codex`).
 * - Keys come from the environment only, never from flags (a flag would show in `ps`):
 *   `OPTIO_CODEX_SEED_KEY` and `OPTIO_CODEX_SNAPSHOT_KEY`, each read straight into `Redacted`.
 *   A scope without a key stays plaintext (what Python workers sharing a MongoDB can read).
 *
 * @since 0.1.0
 */
import { Config, Layer, Option, Redacted } from "effect"
import { Flag } from "effect/cli"
import { homedir } from "node:os"
import { isAbsolute, resolve } from "node:path"
import type { OptionalPackageMissing } from "../package/OptionalPackage.ts"
import { BlobCrypto } from "../store/BlobCrypto.ts"
import type { BlobKeyInvalid } from "../store/BlobCrypto.ts"
import { Store } from "../store/Store.ts"
import type { StoreServices } from "../store/Store.ts"
import type { StoreUnavailable } from "../persistence/StoreError.ts"

/**
 * The MongoDB database used when neither `--mongodb-db`, `OPTIO_CODEX_MONGODB_DB` nor the URI's
 * path names one.
 * @category constants
 * @since 0.1.0
 */
export const DEFAULT_MONGODB_DB = "optio"

/**
 * The optio prefix used when neither `--prefix` nor `OPTIO_CODEX_PREFIX` is given.
 * @category constants
 * @since 0.1.0
 */
export const DEFAULT_PREFIX = "optio"

/**
 * The flags every store-aware command takes (spread them into `Command.make`'s config).
 * @category constructors
 * @since 0.1.0
 */
export const storeFlags = {
  dataDir: Flag.String("data-dir").pipe(
    Flag.withDescription("embedded store directory (default $OPTIO_CODEX_DATA_DIR, else ${XDG_DATA_HOME:-~/.local/share}/optio-codex)"),
    Flag.optional
  ),
  mongodbUri: Flag.Redacted("mongodb-uri").pipe(
    Flag.withDescription("use MongoDB instead of the embedded store (env OPTIO_CODEX_MONGODB_URI)"),
    Flag.withFallbackConfig(Config.Redacted("OPTIO_CODEX_MONGODB_URI")),
    Flag.optional
  ),
  mongodbDb: Flag.String("mongodb-db").pipe(
    Flag.withDescription(`MongoDB database (env OPTIO_CODEX_MONGODB_DB; default: the URI's, else ${DEFAULT_MONGODB_DB})`),
    Flag.withFallbackConfig(Config.String("OPTIO_CODEX_MONGODB_DB")),
    Flag.optional
  ),
  prefix: Flag.String("prefix").pipe(
    Flag.withDescription(`optio namespace prefix of the MongoDB collections (env OPTIO_CODEX_PREFIX; default ${DEFAULT_PREFIX})`),
    Flag.withFallbackConfig(Config.String("OPTIO_CODEX_PREFIX")),
    Flag.optional
  )
}

/**
 * What {@link storeFlags} parse to.
 * @category models
 * @since 0.1.0
 */
export interface StoreFlagValues {
  readonly dataDir: Option.Option<string>
  readonly mongodbUri: Option.Option<Redacted.Redacted<string>>
  readonly mongodbDb: Option.Option<string>
  readonly prefix: Option.Option<string>
}

/**
 * The store the flags select, resolved (no secrets in it but the Redacted URI).
 * @category models
 * @since 0.1.0
 */
export type StoreChoice =
  | { readonly _tag: "Embedded"; readonly dataDir: string }
  | { readonly _tag: "Mongo"; readonly uri: Redacted.Redacted<string>; readonly database: string; readonly prefix: string }

type Env = Readonly<Record<string, string | undefined>>

const nonEmpty = <A>(value: Option.Option<A>, text: (a: A) => string): Option.Option<A> =>
  Option.filter(value, (a) => text(a).trim() !== "")

// `mongodb://host/db?…` or `mongodb+srv://…/db`: the database the URI names, if any.
const databaseInUri = (uri: string): string | undefined => {
  const match = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]+)/.exec(uri)
  return match?.[1] === undefined ? undefined : decodeURIComponent(match[1])
}

/**
 * Resolves the flags (and the environment, for the default data dir) into a store choice.
 * @category constructors
 * @since 0.1.0
 */
export const storeChoice = (flags: StoreFlagValues, env: Env = process.env): StoreChoice => {
  const uri = nonEmpty(flags.mongodbUri, Redacted.value)
  if (Option.isSome(uri)) {
    const database = Option.getOrElse(
      nonEmpty(flags.mongodbDb, (db) => db),
      () => databaseInUri(Redacted.value(uri.value)) ?? DEFAULT_MONGODB_DB
    )
    return { _tag: "Mongo", uri: uri.value, database, prefix: Option.getOrElse(nonEmpty(flags.prefix, (p) => p), () => DEFAULT_PREFIX) }
  }
  const dir = Option.getOrElse(nonEmpty(flags.dataDir, (d) => d), () => Store.defaultDataDir(env, homedir()))
  return { _tag: "Embedded", dataDir: isAbsolute(dir) ? dir : resolve(dir) }
}

/**
 * A one-line description of the choice for messages (never the URI: it may carry a password).
 * @category constructors
 * @since 0.1.0
 */
export const describeStore = (choice: StoreChoice): string =>
  choice._tag === "Embedded"
    ? `embedded store at ${choice.dataDir}`
    : `MongoDB database ${choice.database} (prefix ${choice.prefix})`

/**
 * The blob keys from the environment (`OPTIO_CODEX_SEED_KEY`, `OPTIO_CODEX_SNAPSHOT_KEY`); an
 * empty variable counts as absent.
 * @category constructors
 * @since 0.1.0
 */
export const blobKeysFromEnv = (env: Env = process.env): {
  readonly seedKey: Redacted.Redacted<string> | undefined
  readonly snapshotKey: Redacted.Redacted<string> | undefined
} => {
  const key = (name: string) => {
    const value = env[name]
    return value === undefined || value === "" ? undefined : Redacted.make(value)
  }
  return { seedKey: key("OPTIO_CODEX_SEED_KEY"), snapshotKey: key("OPTIO_CODEX_SNAPSHOT_KEY") }
}

/**
 * The store services (`SeedStore`, `Lease`, `SnapshotStore`) the flags select, with blob
 * encryption keyed from the environment. Fails with `StoreUnavailable` when the store cannot be
 * opened, `BlobKeyInvalid` when a configured key is unusable and `OptionalPackageMissing` when
 * MongoDB is chosen but the `mongodb` package is not installed.
 * @category layers
 * @since 0.1.0
 */
export const storeLayer = (
  flags: StoreFlagValues,
  env: Env = process.env
): Layer.Layer<StoreServices, StoreUnavailable | BlobKeyInvalid | OptionalPackageMissing> => {
  const choice = storeChoice(flags, env)
  const store = choice._tag === "Embedded"
    ? Store.layerEmbedded({ dataDir: choice.dataDir })
    : Store.layerMongo({ uri: choice.uri, database: choice.database, prefix: choice.prefix })
  return store.pipe(Layer.provide(BlobCrypto.layerAesGcm(blobKeysFromEnv(env))))
}
