/**
 * `optio-codex seeds …` as a user runs it: a child process on an embedded store in a data dir
 * under .cache/test-runs (OPTIO_CODEX_DATA_DIR), with seeds put there through the library, and
 * the store's state checked through the library afterwards. Plus `seeds verify` against the
 * stand-in issuer, encryption keys from the environment, and `seeds list` on MongoDB (CongoDB).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Stream } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { parseAuthJson } from "../../src/credentials/AuthJson.ts"
import { AUTH_MEMBER, CONFIG_MEMBER, packSeedArchive, unpackSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { tokenFingerprint } from "../../src/modelserver/ModelRequest.ts"
import { text as text_ } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfigToml } from "../../src/modelserver/OfflineCodexConfig.ts"
import { start as startModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import type { AesGcmKeys } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import type { StoreServices } from "../../src/store/Store.ts"
import type { RunResult } from "../../src/host/Host.ts"
import { startCongoDb } from "../support/congodb.ts"
import { closedPort } from "../support/closedPort.ts"
import { runCli, shown, testRunDir } from "./cliProcess.ts"

const DAY = 24 * 3600 * 1000
const text = (value: string) => new TextEncoder().encode(value)

/** Runs `body` on the embedded store in `dataDir`, opened for just this call. */
const inStore = (dataDir: string, keys: AesGcmKeys = {}) => <A, E>(body: Effect.Effect<A, E, StoreServices>) =>
  body.pipe(Effect.provide(Store.layerEmbedded({ dataDir }).pipe(Layer.provide(BlobCrypto.layerAesGcm(keys)))))

const createSeed = (blob: Uint8Array, poolKey?: string) =>
  SeedStore.use((store) => store.create({ blob: Stream.succeed(blob), ...(poolKey === undefined ? {} : { poolKey }) }))

const getSeed = (seedId: string) => SeedStore.use((store) => store.get(seedId))

const seedArchive = (auth: Uint8Array) =>
  packSeedArchive([
    { name: AUTH_MEMBER, bytes: auth, mode: 0o600 },
    { name: CONFIG_MEMBER, bytes: text("model = \"m\"\n"), mode: 0o600 }
  ])

/** Exactly one line on stderr, prefixed `error: `, and a non-zero exit. */
const assertOneLineError = (result: RunResult, includes: string) => {
  assert.notStrictEqual(result.exitCode, 0, shown(result))
  const lines = result.stderr.trim().split("\n")
  assert.strictEqual(lines.length, 1, shown(result))
  assert.match(lines[0] ?? "", /^error: /)
  assert.include(lines[0] ?? "", includes)
}

describe("optio-codex seeds (embedded store)", () => {
  it.live("list, pool assign/status/list/remove change the store; blob bytes are never printed", () =>
    Effect.gen(function*() {
      const dataDir = yield* testRunDir("cli-seeds")
      const env = { OPTIO_CODEX_DATA_DIR: dataDir }
      const store = inStore(dataDir)
      const first = yield* store(createSeed(text("SECRET-BLOB-ONE")))
      const second = yield* store(createSeed(text("SECRET-BLOB-TWO")))

      const listed = yield* runCli(["seeds", "list"], env)
      assert.strictEqual(listed.exitCode, 0, shown(listed))
      const lines = listed.stdout.trim().split("\n")
      assert.match(lines[0] ?? "", /^ID\s+CREATED\s+POOL\s+STATUS\s+LEASE\s+GEN\s+LAST REFRESHED\s+PLAN\s+PRIMARY\s+SECONDARY\s+QUOTA SEEN$/)
      assert.strictEqual(lines.length, 3, listed.stdout)
      assert.match(lines[1] ?? "", new RegExp(`^${first.seedId}\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s+-\\s+alive\\s+free\\s+0\\s+-\\s+-\\s+-\\s+-\\s+-$`))
      assert.include(lines[2] ?? "", second.seedId)
      assert.notInclude(listed.stdout + listed.stderr, "SECRET-BLOB")

      const assigned = yield* runCli(["seeds", "pool", "assign", first.seedId, "team"], env)
      assert.strictEqual(assigned.exitCode, 0, shown(assigned))
      const limited = yield* runCli(["seeds", "pool", "status", first.seedId, "limited"], env)
      assert.strictEqual(limited.exitCode, 0, shown(limited))
      const stored = Option.getOrThrow(yield* store(getSeed(first.seedId)))
      assert.strictEqual(stored.poolKey, "team")
      assert.strictEqual(stored.status, "limited")

      const pool = yield* runCli(["seeds", "pool", "list", "team", "--json"], env)
      assert.strictEqual(pool.exitCode, 0, shown(pool))
      const entries = JSON.parse(pool.stdout) as Array<Record<string, unknown>>
      assert.deepStrictEqual(entries.map((entry) => [entry["seedId"], entry["poolKey"], entry["status"], entry["leased"], entry["generation"]]), [
        [first.seedId, "team", "limited", false, 0]
      ])
      assert.strictEqual(entries[0]?.["createdAt"], stored.createdAt.toISOString())

      // The store flags are shared: accepted after the subcommand too.
      const filtered = yield* runCli(["seeds", "list", "--pool", "team", "--data-dir", dataDir], {})
      assert.strictEqual(filtered.exitCode, 0, shown(filtered))
      assert.include(filtered.stdout, first.seedId)
      assert.notInclude(filtered.stdout, second.seedId)

      const removed = yield* runCli(["seeds", "pool", "remove", first.seedId], env)
      assert.strictEqual(removed.exitCode, 0, shown(removed))
      assert.isUndefined(Option.getOrThrow(yield* store(getSeed(first.seedId))).poolKey)
      const empty = yield* runCli(["seeds", "list", "--pool", "team"], env)
      assert.strictEqual(empty.stdout.trim(), "no seeds in pool team")

      const badStatus = yield* runCli(["seeds", "pool", "status", first.seedId, "sleepy"], env)
      assert.notStrictEqual(badStatus.exitCode, 0)
      assert.strictEqual(Option.getOrThrow(yield* store(getSeed(first.seedId))).status, "limited")
    }).pipe(Effect.scoped), 180_000)

  it.live("seeds list shows each seed's plan, windows and when they were seen; seeds status --pool shows the pool's headroom", () =>
    Effect.gen(function*() {
      const dataDir = yield* testRunDir("cli-seeds-quota")
      const env = { OPTIO_CODEX_DATA_DIR: dataDir }
      const store = inStore(dataDir)
      const now = Date.now()
      const quota = (usedPercent: number, resetsAtMs: number) => ({
        quota: {
          plan: "plus",
          primary: { usedPercent, windowMinutes: 300, resetsAtMs },
          secondary: { usedPercent: 12, windowMinutes: 10080, resetsAtMs: now + 5 * DAY },
          limitedUntilMs: null,
          observedAtMs: now,
          source: "test"
        }
      })
      const busy = yield* store(createSeed(text("busy"), "q"))
      const roomy = yield* store(createSeed(text("roomy"), "q"))
      const spent = yield* store(createSeed(text("spent"), "q"))
      const fresh = yield* store(createSeed(text("fresh"), "q"))
      const spentReset = now + 3_600_000
      yield* store(SeedStore.use((seeds) => seeds.declareMetadata(busy.seedId, quota(75, now + 7_200_000))))
      yield* store(SeedStore.use((seeds) => seeds.declareMetadata(roomy.seedId, quota(5, now + 7_200_000))))
      yield* store(SeedStore.use((seeds) => seeds.declareMetadata(spent.seedId, quota(100, spentReset))))

      const listed = yield* runCli(["seeds", "list", "--pool", "q"], env)
      assert.strictEqual(listed.exitCode, 0, shown(listed))
      const busyLine = listed.stdout.split("\n").find((line) => line.startsWith(busy.seedId)) ?? ""
      assert.match(busyLine, /\splus\s+75%\/300m resets \d\d-\d\d \d\d:\d\dZ\s+12%\/10080m resets \d\d-\d\d \d\d:\d\dZ\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/)
      const listedJson = JSON.parse((yield* runCli(["seeds", "list", "--pool", "q", "--json"], env)).stdout) as Array<{
        seedId: string
        quota: { plan: string; primary: { usedPercent: number; resetsAt: string }; exhaustedUntil: string | null } | null
      }>
      const spentRow = listedJson.find((row) => row.seedId === spent.seedId)
      assert.strictEqual(spentRow?.quota?.exhaustedUntil, new Date(spentReset).toISOString())
      assert.strictEqual(listedJson.find((row) => row.seedId === fresh.seedId)?.quota, null)

      const status = yield* runCli(["seeds", "status", "--pool", "q"], env)
      assert.strictEqual(status.exitCode, 0, shown(status))
      const lines = status.stdout.trim().split("\n")
      assert.match(lines[0] ?? "", /^pool q: 3 available, 1 seed exhausted until \d\d:\d\d UTC$/)
      assert.match(lines[1] ?? "", /^ID\s+STATE\s+PLAN\s+PRIMARY\s+SECONDARY\s+QUOTA SEEN$/)
      assert.deepStrictEqual(lines.slice(2).map((line) => line.split(/\s+/).slice(0, 3).join(" ")), [
        `${roomy.seedId} next #1`,
        `${busy.seedId} next #2`,
        `${fresh.seedId} next #3`,
        `${spent.seedId} exhausted until`
      ])
      const json = JSON.parse((yield* runCli(["seeds", "status", "--pool", "q", "--json"], env)).stdout) as {
        leaseOrder: Array<string>
        exhausted: Array<{ seedId: string; until: string }>
      }
      assert.deepStrictEqual(json.leaseOrder, [roomy.seedId, busy.seedId, fresh.seedId])
      assert.deepStrictEqual(json.exhausted, [{ seedId: spent.seedId, until: new Date(spentReset).toISOString() }])
      // The lease takes the order status printed.
      const grant = Option.getOrThrow(yield* store(Lease.use((lease) => lease.acquire("q", "someone"))))
      assert.strictEqual(grant.seedId, roomy.seedId)
    }).pipe(Effect.scoped), 180_000)

  it.live("a leased seed is refused for delete and purge without --force; delete keeps the blob, purge removes it; unknown ids fail", () =>
    Effect.gen(function*() {
      const dataDir = yield* testRunDir("cli-seeds-lease")
      const env = { OPTIO_CODEX_DATA_DIR: dataDir }
      const store = inStore(dataDir)
      const busy = yield* store(createSeed(text("busy"), "busy"))
      const other = yield* store(createSeed(text("other"), "busy"))
      const grant = Option.getOrThrow(yield* store(Lease.use((lease) => lease.acquire("busy", "holder-x", { ttl: "10 minutes" }))))
      assert.strictEqual(grant.seedId, busy.seedId)

      const listed = yield* runCli(["seeds", "list", "--json"], env)
      assert.strictEqual(listed.exitCode, 0, shown(listed))
      const rows = JSON.parse(listed.stdout) as Array<{ seedId: string; leased: boolean; lease: { holder: string; expiresAt: string } | null }>
      const row = rows.find((entry) => entry.seedId === busy.seedId)
      assert.isTrue(row?.leased)
      assert.strictEqual(row?.lease?.holder, "holder-x")
      assert.strictEqual(row?.lease?.expiresAt, grant.expiresAt.toISOString())
      assert.isFalse(rows.find((entry) => entry.seedId === other.seedId)?.leased)
      const table = yield* runCli(["seeds", "list"], env)
      assert.match(table.stdout, new RegExp(`${busy.seedId}.*holder-x until \\d{4}-`))

      for (const command of ["delete", "purge"]) {
        const refused = yield* runCli(["seeds", command, busy.seedId], env)
        assertOneLineError(refused, `seed ${busy.seedId} is leased by holder-x`)
        assert.isTrue(Option.isSome(yield* store(getSeed(busy.seedId))), `${command} without --force kept the seed`)
      }

      const deleted = yield* runCli(["seeds", "delete", busy.seedId, "--force"], env)
      assert.strictEqual(deleted.exitCode, 0, shown(deleted))
      assert.isTrue(Option.isNone(yield* store(getSeed(busy.seedId))))
      assert.strictEqual(readFileSync(join(dataDir, "blobs", busy.blobId), "utf8"), "busy", "delete keeps the blob")

      const purged = yield* runCli(["seeds", "purge", other.seedId], env)
      assert.strictEqual(purged.exitCode, 0, shown(purged))
      assert.isTrue(Option.isNone(yield* store(getSeed(other.seedId))))
      assert.throws(() => readFileSync(join(dataDir, "blobs", other.blobId)), /ENOENT/)

      assertOneLineError(yield* runCli(["seeds", "delete", busy.seedId], env), `unknown seed id "${busy.seedId}"`)
      assertOneLineError(yield* runCli(["seeds", "pool", "assign", "not-an-id", "p"], env), "unknown seed id \"not-an-id\"")
    }).pipe(Effect.scoped), 180_000)

  it.live("an unusable store or key is one clear line, and the key is never printed", () =>
    Effect.gen(function*() {
      const dataDir = yield* testRunDir("cli-seeds-unavailable")
      const notADir = join(dataDir, "file")
      yield* Effect.sync(() => writeFileSync(notADir, ""))
      assertOneLineError(yield* runCli(["seeds", "list", "--data-dir", join(notADir, "store")]), "embedded store")
      const shortKey = "too-short-key"
      const result = yield* runCli(["seeds", "list"], { OPTIO_CODEX_DATA_DIR: dataDir, OPTIO_CODEX_SEED_KEY: shortKey })
      assertOneLineError(result, "the seed encryption key is unusable")
      assert.notInclude(result.stdout + result.stderr, shortKey)
    }).pipe(Effect.scoped), 60_000)
})

describe("optio-codex seeds verify", () => {
  it.live("a stale seed is refreshed through --issuer; keys come from the environment; a wrong key fails clearly and overwrites nothing", () =>
    Effect.gen(function*() {
      const dataDir = yield* testRunDir("cli-seeds-verify")
      const issuer = yield* startStandInIssuer()
      const key = Redacted.make("right-key-0123456789abcdef")
      const env = { OPTIO_CODEX_DATA_DIR: dataDir }
      const plain = inStore(dataDir)

      const stale = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY) })
      const seed = yield* plain(createSeed(seedArchive(stale.bytes)))
      const refreshed = yield* runCli(["seeds", "verify", seed.seedId, "--issuer", issuer.url], env)
      assert.strictEqual(refreshed.exitCode, 0, shown(refreshed))
      assert.strictEqual(refreshed.stdout.trim(), `seed ${seed.seedId}: Refreshed: alive, token refreshed and saved (generation 1)`)
      const storedAuth = yield* plain(Effect.gen(function*() {
        const blob = yield* SeedStore.use((store) => store.readBlob(seed.seedId))
        const members = yield* unpackSeedArchive(Buffer.concat(yield* Stream.runCollect(blob.bytes)))
        const auth = members.find((member) => member.name === AUTH_MEMBER)
        return Option.getOrThrow(parseAuthJson(auth?.bytes ?? new Uint8Array())) as { tokens: { refresh_token: string } }
      }))
      assert.deepStrictEqual([storedAuth.tokens.refresh_token], yield* issuer.liveRefreshTokens)
      assert.notInclude(refreshed.stdout + refreshed.stderr, storedAuth.tokens.refresh_token)

      // An encrypted seed: readable with the key from the environment (fresh: no network needed).
      const fresh = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - DAY) })
      const archive = seedArchive(fresh.bytes)
      const locked = yield* inStore(dataDir, { seedKey: key })(createSeed(archive))
      const rawBefore = readFileSync(join(dataDir, "blobs", locked.blobId))
      const ok = yield* runCli(["seeds", "verify", locked.seedId, "--json"], { ...env, OPTIO_CODEX_SEED_KEY: Redacted.value(key) })
      assert.strictEqual(ok.exitCode, 0, shown(ok))
      assert.include(JSON.parse(ok.stdout), { seedId: locked.seedId, _tag: "Fresh", alive: true })

      const wrongKey = "wrong-key-0123456789abcdef"
      const wrong = yield* runCli(["seeds", "verify", locked.seedId], { ...env, OPTIO_CODEX_SEED_KEY: wrongKey })
      assertOneLineError(wrong, "the seed blob does not authenticate: wrong key, or the blob is corrupt")
      assert.notInclude(wrong.stdout + wrong.stderr, wrongKey)
      assertOneLineError(yield* runCli(["seeds", "verify", locked.seedId], env), "the seed blob is encrypted, but no seed key is configured")

      const after = Option.getOrThrow(yield* plain(getSeed(locked.seedId)))
      assert.strictEqual(after.generation, 0)
      assert.strictEqual(after.blobId, locked.blobId)
      assert.isTrue(readFileSync(join(dataDir, "blobs", locked.blobId)).equals(rawBefore), "the stored blob is intact")
      const reread = yield* inStore(dataDir, { seedKey: key })(Effect.gen(function*() {
        const blob = yield* SeedStore.use((store) => store.readBlob(locked.seedId))
        return Buffer.concat(yield* Stream.runCollect(blob.bytes))
      }))
      assert.isTrue(reread.equals(Buffer.from(archive)))
    }).pipe(Effect.scoped), 180_000)

  it.live("with the token endpoint unreachable it falls back to the codex probe, like the library (real codex)", () =>
    Effect.gen(function*() {
      const dataDir = yield* testRunDir("cli-seeds-probe")
      const issuer = yield* startStandInIssuer()
      const server = yield* startModelServer([text_("Paris.")])
      // Stale (a refresh is due) but its access token is far from expiry, so codex itself needs no refresh.
      const stale = yield* issuer.mintAuthJson({ lastRefresh: new Date(Date.now() - 9 * DAY), accessTokenTtlSeconds: 3600 })
      const seed = yield* inStore(dataDir)(createSeed(packSeedArchive([
        { name: AUTH_MEMBER, bytes: stale.bytes, mode: 0o600 },
        { name: CONFIG_MEMBER, bytes: text(chatgptCodexConfigToml({ baseUrl: server.baseUrl })), mode: 0o600 }
      ])))
      const port = yield* closedPort
      const refreshUrl = `http://127.0.0.1:${port}/oauth/token`
      const env = { OPTIO_CODEX_DATA_DIR: dataDir }

      const probed = yield* runCli(["seeds", "verify", seed.seedId, "--refresh-url", refreshUrl, "--json"], env)
      assert.strictEqual(probed.exitCode, 0, shown(probed))
      assert.include(JSON.parse(probed.stdout), { seedId: seed.seedId, _tag: "Probed", alive: true })
      const asked = (yield* server.requests).filter((request) => request.path.endsWith("/responses"))
      assert.isAbove(asked.length, 0, "codex asked the model with the seed's login")
      for (const request of asked) assert.strictEqual(request.bearerFingerprint, tokenFingerprint(stale.accessToken))

      // --probe never keeps the host-free answer alone.
      const hostFree = yield* runCli(["seeds", "verify", seed.seedId, "--refresh-url", refreshUrl, "--probe", "never"], env)
      assert.strictEqual(hostFree.exitCode, 2, shown(hostFree))
      assert.match(hostFree.stdout.trim(), new RegExp(`^seed ${seed.seedId}: Transient: `))
    }).pipe(Effect.scoped), 180_000)

  it.live("a dead seed prints its outcome and exits 2", () =>
    Effect.gen(function*() {
      const dataDir = yield* testRunDir("cli-seeds-dead")
      const seed = yield* inStore(dataDir)(createSeed(seedArchive(text(JSON.stringify({ tokens: {} })))))
      const result = yield* runCli(["seeds", "verify", seed.seedId], { OPTIO_CODEX_DATA_DIR: dataDir })
      assert.strictEqual(result.exitCode, 2, shown(result))
      assert.match(result.stdout.trim(), new RegExp(`^seed ${seed.seedId}: Dead: `))
      assert.notInclude(result.stderr, "error:", "a dead seed is an outcome, not a failure")
      assert.strictEqual(Option.getOrThrow(yield* inStore(dataDir)(getSeed(seed.seedId))).status, "dead")
    }).pipe(Effect.scoped), 60_000)
})

describe("optio-codex seeds (MongoDB)", () => {
  it.live("seeds list and pool assign on the MongoDB wire server, default prefix optio, database from the environment", () =>
    Effect.gen(function*() {
      const server = yield* startCongoDb
      const database = `optio_codex_cli_${process.pid}`
      const mongo = <A, E>(body: Effect.Effect<A, E, StoreServices>) =>
        body.pipe(Effect.provide(
          Store.layerMongo({ uri: server.uri, database, prefix: "optio" }).pipe(Layer.provide(BlobCrypto.layerPlaintext))
        ))
      const seed = yield* mongo(createSeed(text("mongo-seed-blob")))
      const env = { OPTIO_CODEX_MONGODB_URI: server.uri, OPTIO_CODEX_MONGODB_DB: database }

      const listed = yield* runCli(["seeds", "list", "--json"], env)
      assert.strictEqual(listed.exitCode, 0, shown(listed))
      assert.deepStrictEqual((JSON.parse(listed.stdout) as Array<{ seedId: string }>).map((entry) => entry.seedId), [seed.seedId])
      assert.notInclude(listed.stdout, "mongo-seed-blob")

      const assigned = yield* runCli(["seeds", "pool", "assign", seed.seedId, "shared"], env)
      assert.strictEqual(assigned.exitCode, 0, shown(assigned))
      assert.strictEqual(Option.getOrThrow(yield* mongo(getSeed(seed.seedId))).poolKey, "shared")

      const otherPrefix = yield* runCli(["seeds", "list", "--prefix", "elsewhere"], env)
      assert.strictEqual(otherPrefix.exitCode, 0, shown(otherPrefix))
      assert.strictEqual(otherPrefix.stdout.trim(), "no seeds")
    }).pipe(Effect.scoped), 180_000)
})
