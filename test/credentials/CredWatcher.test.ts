/**
 * CredWatcher on a real LocalHost, against the memory and the embedded store, with real time and
 * small intervals: rotations saved back (fenced), stale writes refused, lease loss reported within
 * a renew interval with no write afterwards (P4), store blips survived (P2/P3), the final
 * save-back's retries and loud failure.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer, Option, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { execFileSync } from "node:child_process"
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { credentialFingerprint } from "../../src/credentials/AuthJson.ts"
import { CredWatcher } from "../../src/credentials/CredWatcher.ts"
import type { CredWatcherSettings } from "../../src/credentials/CredWatcher.ts"
import { AUTH_MEMBER, CONFIG_MEMBER, packSeedArchive, unpackSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { captureSeed, plantSeed } from "../../src/credentials/SeedEngine.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { StoreUnavailable } from "../../src/persistence/StoreError.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { waitUntil } from "../support/waitUntil.ts"

const runRoot = join(repoRoot, ".cache", "test-runs", `cred-watcher-${randomUUID().slice(0, 8)}`)
mkdirSync(runRoot, { recursive: true })
afterAll(() => rmSync(runRoot, { recursive: true, force: true }))

const backends = [
  { name: "memory", store: () => Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)) },
  {
    name: "embedded",
    store: () => Store.layerEmbedded({ dataDir: join(runRoot, `store-${randomUUID().slice(0, 8)}`) }).pipe(Layer.provide(BlobCrypto.layerPlaintext), Layer.orDie)
  }
] as const

const FAST: CredWatcherSettings = { pollInterval: "50 millis", renewInterval: "150 millis", leaseTtl: "2 seconds", saveBackAttempts: 3, saveBackBackoff: "20 millis" }

const auth = (refresh: string) =>
  JSON.stringify({ auth_mode: "chatgpt", OPENAI_API_KEY: null, tokens: { access_token: `acc-${refresh}`, refresh_token: refresh, account_id: "acct" } })

/** Codex replaces auth.json by renaming a temp file over it (new inode). */
const rotate = (codexHome: string, refresh: string) =>
  Effect.sync(() => {
    const temp = join(codexHome, `.auth-${randomUUID().slice(0, 6)}`)
    writeFileSync(temp, auth(refresh), { mode: 0o600 })
    renameSync(temp, join(codexHome, "auth.json"))
  })

const seedAuth = (seedId: string) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const blob = yield* store.readBlob(seedId)
    const members = yield* unpackSeedArchive(Buffer.concat(yield* Stream.runCollect(blob.bytes)))
    const found = members.find((member) => member.name === AUTH_MEMBER)
    return {
      generation: blob.seed.generation,
      blobId: blob.seed.blobId,
      auth: found === undefined ? undefined : new TextDecoder().decode(found.bytes),
      hasConfig: members.some((member) => member.name === CONFIG_MEMBER)
    }
  })

/**
 * Reads of each auth.json through the host: every poll reads it exactly once, so the count shows
 * the watcher's polls from outside (its production interface has no test counters).
 */
const authReads = new Map<string, number>()
const readsOf = (authPath: string) => Effect.sync(() => authReads.get(authPath) ?? 0)
const countingHost = Layer.effect(Host, Effect.map(Host, (host) => Host.of({
  ...host,
  readRegularFile: (path, options) =>
    Effect.andThen(Effect.sync(() => authReads.set(path, (authReads.get(path) ?? 0) + 1)), host.readRegularFile(path, options))
}))).pipe(Layer.provide(LocalHost.layer()))

/**
 * Waits until the watcher has completed `count` more polls of `authPath` than when called: one
 * read more than that has started (polls run one after another).
 */
const morePolls = (authPath: string, count: number) =>
  Effect.gen(function*() {
    const from = yield* readsOf(authPath)
    yield* waitUntil(`${count} more polls`, Effect.map(readsOf(authPath), (reads) => reads >= from + count + 1 ? true : undefined))
  })

/** A seed captured from a source home, planted into a fresh CODEX_HOME. */
const plantedSeed = (options: { readonly poolKey?: string } = {}) =>
  Effect.gen(function*() {
    const root = join(runRoot, randomUUID().slice(0, 8))
    const source = join(root, "source")
    const codexHome = join(root, "home", ".codex")
    mkdirSync(source, { recursive: true })
    writeFileSync(join(source, "auth.json"), auth("T1"))
    writeFileSync(join(source, "config.toml"), "model = \"m\"\n")
    const seed = yield* captureSeed({ codexHome: source, ...options })
    if (Option.isNone(seed)) return assert.fail("capture failed")
    const planted = yield* plantSeed(seed.value.seedId, codexHome)
    return { ...planted, codexHome, authPath: join(codexHome, "auth.json") }
  })

const failingN = (count: { n: number }, operation: string) =>
  Effect.suspend(() =>
    count.n > 0
      ? (count.n--, Effect.fail(new StoreUnavailable({ backend: "test", operation, detail: "injected outage" })))
      : Effect.void
  )

for (const backend of backends) {
  describe(`CredWatcher (${backend.name} store)`, () => {
    const env = (settings: CredWatcherSettings = FAST) =>
      CredWatcher.layerWith(settings).pipe(Layer.provideMerge(Layer.merge(backend.store(), countingHost)))

    it.live("saves each rotation back, fenced, and the final save-back catches the last one", () =>
      Effect.gen(function*() {
        const { seed, baseline, codexHome, authPath } = yield* plantedSeed()
        const watcher = yield* CredWatcher
        const watch = yield* watcher.watch({ seed, lease: Option.none(), authPath, baseline })
        yield* rotate(codexHome, "T2")
        yield* waitUntil("T2 is saved", Effect.map(seedAuth(seed.seedId), (s) => s.auth === auth("T2") ? s : undefined))
        yield* rotate(codexHome, "T3")
        const second = yield* waitUntil("T3 is saved", Effect.map(seedAuth(seed.seedId), (s) => s.auth === auth("T3") ? s : undefined))
        assert.strictEqual(second.generation, 2)
        assert.isTrue(second.hasConfig, "config.toml kept")
        // The watcher records a save just after the store has it.
        assert.strictEqual(yield* waitUntil("the watcher counted both saves", Effect.map(watch.saves, (n) => n >= 2 ? n : undefined)), 2)
        // A torn write is skipped, then the complete file is saved by the final save-back.
        writeFileSync(authPath, "{\"tokens\": {\"refre")
        const final = yield* watch.finalSaveBack
        assert.deepStrictEqual(final, { outcome: "unchanged", generation: 2 })
        const readsAtStop = yield* readsOf(authPath)
        yield* rotate(codexHome, "T4")
        // Polling stopped with the final save-back: while a second watcher (same cadence) polls
        // three times, this one polls no more and T4 is not picked up...
        const other = yield* plantedSeed()
        yield* watcher.watch({ seed: other.seed, lease: Option.none(), authPath: other.authPath, baseline: other.baseline })
        yield* morePolls(other.authPath, 3)
        assert.strictEqual(yield* readsOf(authPath), readsAtStop)
        assert.strictEqual((yield* seedAuth(seed.seedId)).auth, auth("T3"))
        // ...and finalSaveBack is idempotent (its first outcome stands).
        assert.deepStrictEqual(yield* watch.finalSaveBack, final)
        yield* watch.release
      }).pipe(Effect.scoped, Effect.provide(env())))

    it.live("final save-back saves the change of the last window", () =>
      Effect.gen(function*() {
        const { seed, baseline, codexHome, authPath } = yield* plantedSeed()
        const watcher = yield* CredWatcher
        const watch = yield* watcher.watch({ seed, lease: Option.none(), authPath, baseline })
        yield* rotate(codexHome, "LAST")
        const final = yield* watch.finalSaveBack
        assert.deepStrictEqual(final, { outcome: "saved", generation: 1 })
        assert.strictEqual((yield* seedAuth(seed.seedId)).auth, auth("LAST"))
      }).pipe(Effect.scoped, Effect.provide(env({ ...FAST, pollInterval: "1 hour" }))))

    it.live("a stale generation is refused: another writer's blob stays, and the final save-back fails typed without retrying", () =>
      Effect.gen(function*() {
        const { seed, baseline, codexHome, authPath } = yield* plantedSeed()
        const store = yield* SeedStore
        const other = yield* store.writeBlob(
          seed.seedId,
          { generation: 0 },
          Stream.succeed(packSeedArchive([{ name: AUTH_MEMBER, bytes: new TextEncoder().encode(auth("OTHER")), mode: 0o600 }]))
        )
        const watcher = yield* CredWatcher
        const watch = yield* watcher.watch({ seed, lease: Option.none(), authPath, baseline })
        yield* rotate(codexHome, "T2")
        // The watcher has looked at T2 (and tried to write it) at least twice.
        yield* morePolls(authPath, 2)
        const doc = Option.getOrThrow(yield* store.get(seed.seedId))
        assert.strictEqual(doc.generation, 1)
        assert.strictEqual(doc.blobId, other.blobId)
        assert.strictEqual(yield* watch.saves, 0)
        assert.strictEqual((yield* seedAuth(seed.seedId)).auth, auth("OTHER"))
        const failure = yield* Effect.flip(watch.finalSaveBack)
        assert.strictEqual(failure._tag, "CredentialSaveBackFailed")
        assert.strictEqual(failure.attempts, 1)
        assert.match(failure.reason, /stale-generation/)
        assert.strictEqual(failure.authPath, authPath)
      }).pipe(Effect.scoped, Effect.provide(env())))

    it.live("renewal keeps a short lease alive well past its TTL; release frees it", () =>
      Effect.gen(function*() {
        const { seed, baseline, authPath } = yield* plantedSeed({ poolKey: "pool" })
        const lease = yield* Lease
        const grant = Option.getOrThrow(yield* lease.acquire("pool", "task-1", { ttl: "400 millis" }))
        const watcher = yield* CredWatcher
        const watch = yield* watcher.watch({ seed, lease: Option.some(grant), authPath, baseline })
        // Renewed until the lease reaches well past three of its original TTLs.
        const seeds = yield* SeedStore
        yield* waitUntil("the lease extended past 3 × its TTL", Effect.map(seeds.get(seed.seedId), (found) => {
          const expiresAt = Option.getOrThrow(found).lease?.expiresAt.getTime() ?? 0
          return expiresAt >= grant.expiresAt.getTime() + 800 ? true : undefined
        }))
        assert.isTrue(Option.isNone(yield* lease.acquire("pool", "thief")), "still held")
        assert.deepStrictEqual(yield* watch.finalSaveBack, { outcome: "unchanged", generation: 0 })
        yield* watch.release
        assert.isTrue(Option.isSome(yield* lease.acquire("pool", "next")), "released")
      }).pipe(Effect.scoped, Effect.provide(env({ ...FAST, renewInterval: "100 millis", leaseTtl: "400 millis" }))))

    it.live("P4: a stolen lease fails `lost` within one renew interval, and the loser never writes again", () =>
      Effect.gen(function*() {
        const { seed, baseline, codexHome, authPath } = yield* plantedSeed({ poolKey: "pool" })
        const lease = yield* Lease
        const grant = Option.getOrThrow(yield* lease.acquire("pool", "loser"))
        const watcher = yield* CredWatcher
        const watch = yield* watcher.watch({ seed, lease: Option.some(grant), authPath, baseline })
        yield* rotate(codexHome, "T2")
        yield* waitUntil("T2 is saved", Effect.map(seedAuth(seed.seedId), (s) => s.auth === auth("T2") ? s : undefined))
        yield* lease.release(grant)
        const thief = Option.getOrThrow(yield* lease.acquire("pool", "thief"))
        const stolenAt = yield* Clock.currentTimeMillis
        const lost = yield* Effect.flip(watch.lost).pipe(Effect.timeout("2 seconds"))
        const elapsed = (yield* Clock.currentTimeMillis) - stolenAt
        assert.strictEqual(lost._tag, "LeaseLost")
        assert.strictEqual(lost.reason, "taken")
        assert.isAtMost(elapsed, 150 + 500, "within one renew interval (plus scheduling slack)")
        const before = yield* seedAuth(seed.seedId)
        yield* rotate(codexHome, "T3-LOSER")
        // A lost watcher no longer even reads auth.json: a second watcher of the same cadence
        // polling three times shows that the loser had time for at least two polls since.
        const clock = yield* plantedSeed()
        yield* watcher.watch({ seed: clock.seed, lease: Option.none(), authPath: clock.authPath, baseline: clock.baseline })
        yield* morePolls(clock.authPath, 3)
        assert.deepStrictEqual(yield* watch.finalSaveBack, { outcome: "skipped-lease-lost", generation: before.generation })
        yield* watch.release
        const after = yield* seedAuth(seed.seedId)
        assert.strictEqual(after.generation, before.generation)
        assert.strictEqual(after.blobId, before.blobId)
        assert.strictEqual(after.auth, auth("T2"))
        const doc = Option.getOrThrow(yield* (yield* SeedStore).get(seed.seedId))
        assert.strictEqual(doc.lease?.holder, "thief", "the loser's release did not touch the thief's lease")
        assert.strictEqual(doc.lease?.epoch, thief.epoch)
        // lost keeps failing for late subscribers.
        assert.strictEqual((yield* Effect.flip(watch.lost)).reason, "taken")
      }).pipe(Effect.scoped, Effect.provide(env())))

    it.live("a write refused for the lease (before any renew noticed) also reports the loss and writes nothing", () =>
      Effect.gen(function*() {
        const { seed, baseline, codexHome, authPath } = yield* plantedSeed({ poolKey: "pool" })
        const lease = yield* Lease
        const grant = Option.getOrThrow(yield* lease.acquire("pool", "loser"))
        const watcher = yield* CredWatcher
        const watch = yield* watcher.watch({ seed, lease: Option.some(grant), authPath, baseline })
        yield* lease.release(grant)
        yield* lease.acquire("pool", "thief")
        yield* rotate(codexHome, "T2")
        const lost = yield* Effect.flip(watch.lost).pipe(Effect.timeout("3 seconds"))
        assert.strictEqual(lost.reason, "taken")
        assert.strictEqual((yield* seedAuth(seed.seedId)).generation, 0)
        assert.strictEqual((yield* watch.finalSaveBack).outcome, "skipped-lease-lost")
      }).pipe(Effect.scoped, Effect.provide(env({ ...FAST, renewInterval: "1 hour" }))))

    it.live("P2/P3: store outages on ticks (save and renew) are survived; the watcher keeps working", () => {
      const writeOutage = { n: 3 }
      const renewOutage = { n: 3 }
      const flaky = Layer.effect(SeedStore, Effect.map(SeedStore, (real) => SeedStore.of({
        ...real,
        writeBlob: (seedId, expected, blob) => Effect.andThen(failingN(writeOutage, "swap seed blob"), real.writeBlob(seedId, expected, blob))
      })))
      const flakyLease = Layer.effect(Lease, Effect.map(Lease, (real) => Lease.of({
        ...real,
        renew: (grant, options) => Effect.andThen(failingN(renewOutage, "renew lease"), real.renew(grant, options))
      })))
      const store = backend.store()
      const layers = CredWatcher.layerWith({ ...FAST, renewInterval: "100 millis", leaseTtl: "3 seconds" }).pipe(
        Layer.provideMerge(Layer.merge(Layer.provideMerge(Layer.mergeAll(flaky, flakyLease), store), countingHost))
      )
      return Effect.gen(function*() {
        const { seed, baseline, codexHome, authPath } = yield* plantedSeed({ poolKey: "pool" })
        const lease = yield* Lease
        const grant = Option.getOrThrow(yield* lease.acquire("pool", "task", { ttl: "3 seconds" }))
        const watcher = yield* CredWatcher
        const watch = yield* watcher.watch({ seed, lease: Option.some(grant), authPath, baseline })
        yield* rotate(codexHome, "T2")
        yield* waitUntil("T2 is saved after the outage", Effect.map(seedAuth(seed.seedId), (s) => s.auth === auth("T2") ? s : undefined))
        assert.strictEqual(writeOutage.n, 0)
        yield* waitUntil("renewals went through the outage", Effect.sync(() => renewOutage.n === 0 ? true : undefined))
        const doc = yield* waitUntil("a renewal after the outage", Effect.map((yield* SeedStore).get(seed.seedId), (found) => {
          const current = Option.getOrThrow(found)
          return (current.lease?.expiresAt.getTime() ?? 0) > grant.expiresAt.getTime() ? current : undefined
        }))
        assert.strictEqual(doc.lease?.holder, "task", "lease still held")
        yield* rotate(codexHome, "T3")
        yield* waitUntil("T3 is saved", Effect.map(seedAuth(seed.seedId), (s) => s.auth === auth("T3") ? s : undefined))
        assert.strictEqual((yield* watch.finalSaveBack).outcome, "unchanged")
        yield* watch.release
      }).pipe(Effect.scoped, Effect.provide(layers))
    })

    it.live("the final save-back retries with backoff, then fails loudly with CredentialSaveBackFailed", () => {
      const outage = { n: Number.POSITIVE_INFINITY }
      const calls = { n: 0 }
      const down = Layer.effect(SeedStore, Effect.map(SeedStore, (real) => SeedStore.of({
        ...real,
        writeBlob: (seedId, expected, blob) =>
          Effect.andThen(Effect.sync(() => calls.n++), Effect.andThen(failingN(outage, "swap seed blob"), real.writeBlob(seedId, expected, blob)))
      })))
      const layers = CredWatcher.layerWith({ ...FAST, pollInterval: "1 hour" }).pipe(
        Layer.provideMerge(Layer.merge(Layer.provideMerge(down, backend.store()), countingHost))
      )
      return Effect.gen(function*() {
        const { seed, baseline, codexHome, authPath } = yield* plantedSeed()
        const watcher = yield* CredWatcher
        const watch = yield* watcher.watch({ seed, lease: Option.none(), authPath, baseline })
        yield* rotate(codexHome, "T2")
        const failure = yield* Effect.flip(watch.finalSaveBack)
        assert.strictEqual(failure._tag, "CredentialSaveBackFailed")
        assert.strictEqual(failure.attempts, 3)
        assert.strictEqual(failure.seedId, seed.seedId)
        assert.match(failure.reason, /injected outage/)
        assert.match(failure.message, /only current copy/)
        // 3 final attempts (plus the first poll tick's, when it ran after the rotation).
        assert.include([3, 4], calls.n)
        assert.strictEqual((yield* seedAuth(seed.seedId)).auth, auth("T1"), "nothing written")
        assert.deepStrictEqual(credentialFingerprint(new TextEncoder().encode(auth("T2"))).pipe(Option.isSome), true)
      }).pipe(Effect.scoped, Effect.provide(layers))
    })
  })
}

describe("CredWatcher: auth.json planted by a hostile agent", () => {
  const env = () => CredWatcher.layerWith(FAST).pipe(Layer.provideMerge(Layer.merge(backends[0].store(), countingHost)))

  it.live("finding 4: a symlinked auth.json is not saved into the seed", () =>
    Effect.gen(function*() {
      const { seed, baseline, authPath } = yield* plantedSeed()
      // Another task's CODEX_HOME, holding another login.
      const foreign = join(runRoot, randomUUID().slice(0, 8), "other-home")
      mkdirSync(foreign, { recursive: true })
      writeFileSync(join(foreign, "auth.json"), auth("OTHER-TENANT"), { mode: 0o600 })
      rmSync(authPath)
      symlinkSync(join(foreign, "auth.json"), authPath)
      const watcher = yield* CredWatcher
      const watch = yield* watcher.watch({ seed, lease: Option.none(), authPath, baseline })
      yield* morePolls(authPath, 3)
      assert.deepStrictEqual(yield* watch.finalSaveBack, { outcome: "unchanged", generation: seed.generation })
      assert.strictEqual((yield* seedAuth(seed.seedId)).auth, auth("T1"), "the foreign login never reached this seed")
      assert.strictEqual(yield* watch.saves, 0)
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("finding 4: a FIFO as auth.json does not hang the save-back, so teardown and the lease finish", () =>
    Effect.gen(function*() {
      const { seed, baseline, authPath } = yield* plantedSeed()
      rmSync(authPath)
      execFileSync("mkfifo", [authPath])
      const watcher = yield* CredWatcher
      const watch = yield* watcher.watch({ seed, lease: Option.none(), authPath, baseline })
      yield* morePolls(authPath, 2)
      const final = yield* watch.finalSaveBack.pipe(Effect.timeout("20 seconds"))
      assert.deepStrictEqual(final, { outcome: "unchanged", generation: seed.generation })
      yield* watch.release.pipe(Effect.timeout("20 seconds"))
      assert.strictEqual((yield* seedAuth(seed.seedId)).auth, auth("T1"))
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("finding 4: an oversized auth.json (24 MiB of valid JSON) is neither read nor saved", () =>
    Effect.gen(function*() {
      const { seed, baseline, authPath } = yield* plantedSeed()
      const huge = auth("HUGE").replace(/}$/, `,"pad":"${"x".repeat(24 * 1024 * 1024)}"}`)
      writeFileSync(authPath, huge, { mode: 0o600 })
      const watcher = yield* CredWatcher
      const watch = yield* watcher.watch({ seed, lease: Option.none(), authPath, baseline })
      yield* morePolls(authPath, 2)
      assert.deepStrictEqual(yield* watch.finalSaveBack, { outcome: "unchanged", generation: seed.generation })
      assert.strictEqual((yield* seedAuth(seed.seedId)).auth, auth("T1"))
    }).pipe(Effect.scoped, Effect.provide(env())))
})
