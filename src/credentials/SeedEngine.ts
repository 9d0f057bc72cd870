/**
 * SeedEngine: moving codex identities between a task's CODEX_HOME (through `Host`) and the seed
 * store (spec §3.3–§3.6, §4.4, §4.6, §6.2–§6.4). It owns reading `auth.json` into validated bytes,
 * capture (a new seed from a live CODEX_HOME), planting (a seed's files into a CODEX_HOME) and
 * the fenced credential save-back. It does not own when these happen (the session and
 * `CredWatcher`), leases (`Lease`) or workdir trust (the session re-renders `config.toml`).
 *
 * Fixes over the reference: no scratch archive files in the workdir (P40) — archives are built
 * and read in memory; a seed whose blob holds no usable `auth.json` fails to plant instead of
 * silently planting nothing (P22); save-back stores exactly the bytes that were validated (P12)
 * and goes through the store's fenced write (P13); a read error other than not-found is an error
 * the caller handles per tick (P3), never a silent crash.
 *
 * @since 0.1.0
 */
import { Effect, Option, Schema, Stream } from "effect"
import { posix } from "node:path"
import { HostError, Host } from "../host/Host.ts"
import { SeedStore } from "../seeds/SeedStore.ts"
import type { SeedDoc, SeedFence } from "../seeds/SeedStore.ts"
import { credentialFingerprint } from "./AuthJson.ts"
import { AUTH_MEMBER, CONFIG_MEMBER, findMember, mergeSeedArchive, packSeedArchive, unpackSeedArchive } from "./SeedArchive.ts"
import type { SeedMember } from "./SeedArchive.ts"

/**
 * Mode codex gives `auth.json`, used for everything optio writes into CODEX_HOME from a seed.
 * @category constants
 */
export const CREDENTIAL_FILE_MODE = 0o600

/**
 * Manifest version recorded on captured seeds (spec §4.1).
 * @category constants
 */
export const SEED_MANIFEST_VERSION = 1

/**
 * A seed's blob holds no usable `auth.json`, so planting it would start codex logged out.
 * @category errors
 * @since 0.1.0
 */
export class SeedHasNoCredentials extends Schema.TaggedError<SeedHasNoCredentials>()("SeedHasNoCredentials", {
  seedId: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `seed ${this.seedId} holds no usable credentials: ${this.detail}`
  }
}

/**
 * Validated credentials read from a CODEX_HOME: the exact bytes and their fingerprint.
 * @category models
 * @since 0.1.0
 */
export interface Credentials {
  readonly bytes: Uint8Array
  readonly fingerprint: string
}

/**
 * What planting a seed left behind.
 * @category models
 * @since 0.1.0
 */
export interface PlantedSeed {
  /** The document the blob was read under; its generation fences the first save-back. */
  readonly seed: SeedDoc
  /** Fingerprint of the planted `auth.json` (none cannot happen today: planting requires one). */
  readonly baseline: Option.Option<string>
}

/**
 * Largest `auth.json` or `config.toml` read from a CODEX_HOME (a real one is a few KiB); a bigger
 * file is refused before anything is read.
 * @category constants
 */
export const MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024

/** How long one read of a CODEX_HOME file may take (a hostile filesystem must not hang a save). */
const CREDENTIAL_READ_TIMEOUT = "10 seconds"

/** Refusals that mean "this is not a file codex wrote", not "the host failed". */
const REFUSED: ReadonlySet<HostError["reason"]> = new Set(["SymlinkRefused", "NotRegularFile", "TooLarge", "OutsideRoot"])

/**
 * Reads a file of a CODEX_HOME the agent may have touched: no symlink, regular files only, at
 * most {@link MAX_CREDENTIAL_FILE_BYTES}, within a timeout. None when it does not exist or was
 * refused (a symlink to another task's auth.json, a FIFO, a huge file: logged, never followed).
 */
const readGuarded = (path: string) =>
  Effect.gen(function*() {
    const host = yield* Host
    return yield* host.readRegularFile(path, { maxBytes: MAX_CREDENTIAL_FILE_BYTES, timeout: CREDENTIAL_READ_TIMEOUT }).pipe(
      Effect.map(Option.some),
      Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed(Option.none<Uint8Array>())),
      Effect.catchIf((error) => REFUSED.has(error.reason), (error) =>
        Effect.as(
          Effect.logWarning(`refused to read ${posix.basename(path)} from CODEX_HOME (${error.reason}): ${error.detail}`).pipe(
            Effect.annotateLogs({ path })
          ),
          Option.none<Uint8Array>()
        ))
    )
  })

/**
 * Reads `authPath` through the Host: none when the file does not exist, holds no usable
 * credentials (a torn or logged-out file) or is refused (a symlink, FIFO or oversized file
 * planted by the agent — never followed, never saved); any other read error fails.
 * @category constructors
 * @since 0.1.0
 */
export const readCredentials = (authPath: string): Effect.Effect<Option.Option<Credentials>, HostError, Host> =>
  readGuarded(authPath).pipe(
    Effect.map((read) => Option.flatMap(read, (bytes) => Option.map(credentialFingerprint(bytes), (fingerprint) => ({ bytes, fingerprint }))))
  )

const collect = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) =>
  Stream.runCollect(stream).pipe(Effect.map((chunks) => new Uint8Array(Buffer.concat(chunks))))

/**
 * Reads a seed's blob and unpacks its members, with the document it was read under.
 * @category constructors
 */
export const readSeedMembers = (seedId: string) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const blob = yield* store.readBlob(seedId)
    const members = yield* unpackSeedArchive(yield* collect(blob.bytes))
    return { seed: blob.seed, members }
  })

/**
 * Captures a new seed from `codexHome` (spec §3.3, §4.6): none when its `auth.json` is not usable
 * (the capture gate); otherwise the seed holds exactly those validated bytes plus `config.toml`
 * when present.
 * @category constructors
 * @since 0.1.0
 */
export const captureSeed = (options: {
  readonly codexHome: string
  readonly processId?: string
  readonly poolKey?: string
}) =>
  Effect.gen(function*() {
    const credentials = yield* readCredentials(posix.join(options.codexHome, "auth.json"))
    if (Option.isNone(credentials)) return Option.none<SeedDoc>()
    const host = yield* Host
    const configPath = posix.join(options.codexHome, "config.toml")
    const config = yield* readGuarded(configPath)
    const configMode = Option.isSome(config)
      ? yield* host.stat(configPath).pipe(Effect.map((info) => info.mode & 0o777), Effect.orElseSucceed(() => CREDENTIAL_FILE_MODE))
      : CREDENTIAL_FILE_MODE
    const members: Array<SeedMember> = [{ name: AUTH_MEMBER, bytes: credentials.value.bytes, mode: CREDENTIAL_FILE_MODE }]
    if (Option.isSome(config)) members.push({ name: CONFIG_MEMBER, bytes: config.value, mode: configMode })
    const store = yield* SeedStore
    const seed = yield* store.create({
      blob: Stream.succeed(packSeedArchive(members)),
      manifestVersion: SEED_MANIFEST_VERSION,
      processId: options.processId,
      poolKey: options.poolKey
    })
    yield* Effect.logInfo(`captured seed ${seed.seedId}`)
    return Option.some(seed)
  }).pipe(Effect.withSpan("SeedEngine.captureSeed"))

/**
 * Plants a seed into `codexHome` (spec §3.4): writes `auth.json` and `config.toml` (when the seed
 * has one), both 0600, atomically through the Host. Fails with {@link SeedHasNoCredentials} when
 * the blob holds no usable `auth.json` (nothing is written then).
 * @category constructors
 * @since 0.1.0
 */
export const plantSeed = (seedId: string, codexHome: string) =>
  Effect.gen(function*() {
    const { seed, members } = yield* readSeedMembers(seedId)
    const auth = findMember(members, AUTH_MEMBER)
    if (auth === undefined) return yield* new SeedHasNoCredentials({ seedId, detail: `the blob has no ${AUTH_MEMBER}` })
    const fingerprint = credentialFingerprint(auth.bytes)
    if (Option.isNone(fingerprint)) {
      return yield* new SeedHasNoCredentials({ seedId, detail: `its ${AUTH_MEMBER} is not a usable auth.json` })
    }
    const host = yield* Host
    // makeDirectory chmods what it finds: never through a symlink planted in its place.
    const existing = yield* host.stat(codexHome).pipe(
      Effect.map(Option.some),
      Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed(Option.none()))
    )
    if (Option.isSome(existing) && existing.value.type !== "Directory") {
      return yield* new HostError({ host: host.label, operation: "plant seed", path: codexHome, reason: "NotADirectory", detail: "CODEX_HOME is not a directory (a symlink is refused)" })
    }
    yield* host.makeDirectory(codexHome, { mode: 0o700 })
    yield* host.writeFile(posix.join(codexHome, "auth.json"), auth.bytes, { mode: CREDENTIAL_FILE_MODE })
    const config = findMember(members, CONFIG_MEMBER)
    if (config !== undefined) yield* host.writeFile(posix.join(codexHome, "config.toml"), config.bytes, { mode: CREDENTIAL_FILE_MODE })
    return { seed, baseline: fingerprint }
  }).pipe(Effect.withSpan("SeedEngine.plantSeed", { attributes: { seedId } }))

/**
 * Saves validated `auth.json` bytes back into a seed (spec §3.5/§6.4, fixed): reads the current
 * blob, replaces exactly the `auth.json` member with exactly `authBytes` (mode 0600), keeps
 * `config.toml`, and writes through the store's fenced write — a stale generation or a lost lease
 * is refused (`SeedWriteRejected`) and nothing is overwritten.
 * @category constructors
 * @since 0.1.0
 */
export const saveCredentials = (options: {
  readonly seedId: string
  readonly fence: SeedFence
  readonly authBytes: Uint8Array
}) =>
  Effect.gen(function*() {
    const { members } = yield* readSeedMembers(options.seedId)
    const merged = mergeSeedArchive(members, [{ name: AUTH_MEMBER, bytes: options.authBytes, mode: CREDENTIAL_FILE_MODE }])
    // Manifest order, so re-saves of the same bytes give the same blob.
    const ordered = [AUTH_MEMBER, CONFIG_MEMBER].flatMap((name) => {
      const member = findMember(merged, name)
      return member === undefined ? [] : [member]
    })
    const store = yield* SeedStore
    return yield* store.writeBlob(options.seedId, options.fence, Stream.succeed(packSeedArchive(ordered)))
  }).pipe(Effect.withSpan("SeedEngine.saveCredentials", { attributes: { seedId: options.seedId } }))
