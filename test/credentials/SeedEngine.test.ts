/**
 * SeedEngine on a real LocalHost and the memory store: capture gate, plant (P22, modes), fenced
 * save-back of exactly the validated bytes (P12, P13), read errors surface (P3), no scratch files
 * in CODEX_HOME (P40).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { credentialFingerprint } from "../../src/credentials/AuthJson.ts"
import { AUTH_MEMBER, CONFIG_MEMBER, packSeedArchive, unpackSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { captureSeed, plantSeed, readCredentials, saveCredentials } from "../../src/credentials/SeedEngine.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { repoRoot } from "../support/offlineCodex.ts"

const Env = Layer.mergeAll(Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)), LocalHost.layer())
const text = (value: string) => new TextEncoder().encode(value)
const auth = (refresh: string) => JSON.stringify({ auth_mode: "chatgpt", OPENAI_API_KEY: null, tokens: { access_token: "a", refresh_token: refresh } })

const codexHome = Effect.acquireRelease(
  Effect.sync(() => {
    const root = join(repoRoot, ".cache", "test-runs", `seed-engine-${randomUUID().slice(0, 8)}`)
    mkdirSync(join(root, ".codex"), { recursive: true })
    return join(root, ".codex")
  }),
  (dir) => Effect.sync(() => rmSync(join(dir, ".."), { recursive: true, force: true }))
)

const seedMembers = (seedId: string) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const blob = yield* store.readBlob(seedId)
    const bytes = Buffer.concat(yield* Stream.runCollect(blob.bytes))
    return yield* unpackSeedArchive(bytes)
  })
const memberText = (members: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>, name: string) => {
  const found = members.find((member) => member.name === name)
  return found === undefined ? undefined : new TextDecoder().decode(found.bytes)
}

describe("SeedEngine", () => {
  it.effect("readCredentials: none when missing, unusable or refused; other read errors fail (P3)", () =>
    Effect.gen(function*() {
      const home = yield* codexHome
      const path = join(home, "auth.json")
      assert.isTrue(Option.isNone(yield* readCredentials(path)))
      writeFileSync(path, "{\"tokens\":")
      assert.isTrue(Option.isNone(yield* readCredentials(path)))
      writeFileSync(path, auth("T1"))
      const read = yield* readCredentials(path)
      assert.deepStrictEqual(Option.map(read, (c) => c.fingerprint), credentialFingerprint(text(auth("T1"))))
      // A directory is not a file codex wrote: refused like a FIFO or a symlink (finding 4).
      assert.isTrue(Option.isNone(yield* readCredentials(home)))
      const error = yield* Effect.flip(readCredentials(join(path, "auth.json"))) // ENOTDIR: an error, not "missing"
      assert.strictEqual(error._tag, "HostError")
    }).pipe(Effect.provide(Env)))

  it.effect("capture gate: no seed without usable auth.json; capture packs auth.json (0600) and config.toml", () =>
    Effect.gen(function*() {
      const home = yield* codexHome
      assert.isTrue(Option.isNone(yield* captureSeed({ codexHome: home })))
      writeFileSync(join(home, "auth.json"), "{}")
      assert.isTrue(Option.isNone(yield* captureSeed({ codexHome: home })))
      const store = yield* SeedStore
      assert.strictEqual((yield* store.list()).length, 0)
      writeFileSync(join(home, "auth.json"), auth("T1"))
      const onlyAuth = yield* captureSeed({ codexHome: home, processId: "p-1", poolKey: "pool" })
      assert.isTrue(Option.isSome(onlyAuth))
      if (Option.isNone(onlyAuth)) return
      assert.strictEqual(onlyAuth.value.poolKey, "pool")
      const members1 = yield* seedMembers(onlyAuth.value.seedId)
      assert.deepStrictEqual(members1.map((m) => [m.name, m.mode]), [[AUTH_MEMBER, 0o600]])
      writeFileSync(join(home, "config.toml"), "model = \"gpt-5.5\"\n")
      writeFileSync(join(home, "state.sqlite3"), "junk")
      const both = yield* captureSeed({ codexHome: home })
      if (Option.isNone(both)) return assert.fail("expected a seed")
      const members2 = yield* seedMembers(both.value.seedId)
      assert.deepStrictEqual(members2.map((m) => m.name), [AUTH_MEMBER, CONFIG_MEMBER])
      assert.strictEqual(memberText(members2, AUTH_MEMBER), auth("T1"))
      assert.strictEqual(memberText(members2, CONFIG_MEMBER), "model = \"gpt-5.5\"\n")
      assert.deepStrictEqual(readdirSync(home).sort(), ["auth.json", "config.toml", "state.sqlite3"], "P40: no scratch files")
    }).pipe(Effect.provide(Env)))

  it.effect("plant writes both files 0600 and returns the baseline; a seed without credentials fails (P22)", () =>
    Effect.gen(function*() {
      const source = yield* codexHome
      writeFileSync(join(source, "auth.json"), auth("T1"))
      writeFileSync(join(source, "config.toml"), "model = \"m\"\n")
      chmodSync(join(source, "config.toml"), 0o644)
      const seed = yield* captureSeed({ codexHome: source })
      if (Option.isNone(seed)) return assert.fail("expected a seed")
      const target = join(yield* codexHome, "nested", ".codex")
      const planted = yield* plantSeed(seed.value.seedId, target)
      assert.strictEqual(planted.seed.seedId, seed.value.seedId)
      assert.deepStrictEqual(planted.baseline, credentialFingerprint(text(auth("T1"))))
      assert.strictEqual(readFileSync(join(target, "auth.json"), "utf8"), auth("T1"))
      assert.strictEqual(readFileSync(join(target, "config.toml"), "utf8"), "model = \"m\"\n")
      assert.strictEqual(statSync(join(target, "auth.json")).mode & 0o777, 0o600)
      assert.strictEqual(statSync(join(target, "config.toml")).mode & 0o777, 0o600)

      const store = yield* SeedStore
      const empty = yield* store.create({ blob: Stream.succeed(packSeedArchive([{ name: CONFIG_MEMBER, bytes: text("x=1"), mode: 0o600 }])) })
      const loggedOut = yield* store.create({ blob: Stream.succeed(packSeedArchive([{ name: AUTH_MEMBER, bytes: text("{}"), mode: 0o600 }])) })
      const fresh = join(yield* codexHome, "fresh")
      for (const bad of [empty, loggedOut]) {
        const error = yield* Effect.flip(plantSeed(bad.seedId, fresh))
        assert.strictEqual(error._tag, "SeedHasNoCredentials")
      }
      assert.isFalse(existsSync(join(fresh, "auth.json")), "nothing planted")
      const unknown = yield* Effect.flip(plantSeed("0123456789abcdef01234567", fresh))
      assert.strictEqual(unknown._tag, "UnknownSeed")
      const garbage = yield* store.create({ blob: Stream.succeed(text("not a tar")) })
      assert.strictEqual((yield* Effect.flip(plantSeed(garbage.seedId, fresh)))._tag, "SeedArchiveInvalid")
    }).pipe(Effect.provide(Env)))

  it.effect("saveCredentials replaces exactly auth.json with the given bytes, keeps config.toml, and is fenced (P12, P13)", () =>
    Effect.gen(function*() {
      const home = yield* codexHome
      writeFileSync(join(home, "auth.json"), auth("T1"))
      writeFileSync(join(home, "config.toml"), "model = \"m\"\n")
      const seed = yield* captureSeed({ codexHome: home })
      if (Option.isNone(seed)) return assert.fail("expected a seed")
      const id = seed.value.seedId
      const saved = yield* saveCredentials({ seedId: id, fence: { generation: 0 }, authBytes: text(auth("T2")) })
      assert.strictEqual(saved.generation, 1)
      const members = yield* seedMembers(id)
      const configMode = statSync(join(home, "config.toml")).mode & 0o777
      assert.deepStrictEqual(members.map((m) => [m.name, m.mode]), [[AUTH_MEMBER, 0o600], [CONFIG_MEMBER, configMode]], "modes kept")
      assert.strictEqual(memberText(members, AUTH_MEMBER), auth("T2"))
      assert.strictEqual(memberText(members, CONFIG_MEMBER), "model = \"m\"\n")
      const stale = yield* Effect.flip(saveCredentials({ seedId: id, fence: { generation: 0 }, authBytes: text(auth("T3")) }))
      assert.strictEqual(stale._tag === "SeedWriteRejected" ? stale.reason : stale._tag, "stale-generation")
      assert.strictEqual(memberText(yield* seedMembers(id), AUTH_MEMBER), auth("T2"))
    }).pipe(Effect.provide(Env)))

  it.live("finding 4: planting into a CODEX_HOME the agent replaced with a symlink is refused; nothing is chmod'ed or written through it", () =>
    Effect.gen(function*() {
      const source = yield* codexHome
      writeFileSync(join(source, "auth.json"), auth("T1"))
      const seed = yield* captureSeed({ codexHome: source })
      if (Option.isNone(seed)) return assert.fail("capture failed")
      const target = yield* codexHome
      const victim = join(target, "..", "victim")
      mkdirSync(victim, { mode: 0o755 })
      chmodSync(victim, 0o755)
      rmSync(target, { recursive: true })
      symlinkSync(victim, target)
      const refused = yield* Effect.flip(plantSeed(seed.value.seedId, target))
      assert.strictEqual(refused._tag === "HostError" ? refused.reason : refused._tag, "NotADirectory")
      assert.deepStrictEqual(readdirSync(victim), [])
      assert.strictEqual(statSync(victim).mode & 0o777, 0o755)
    }).pipe(Effect.scoped, Effect.provide(Env)))
})
