/**
 * SeedArchive: round trips, determinism and modes (P23), GNU tar / pax interop both ways, unsafe
 * names refused, only manifest members returned, merge order.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import {
  AUTH_MEMBER,
  CONFIG_MEMBER,
  mergeSeedArchive,
  packSeedArchive,
  SeedArchiveInvalid,
  unpackSeedArchive
} from "../../src/credentials/SeedArchive.ts"
import { repoRoot } from "../support/offlineCodex.ts"

const text = (value: string) => new TextEncoder().encode(value)
const decode = (value: Uint8Array) => new TextDecoder().decode(value)

const scratch = Effect.acquireRelease(
  Effect.sync(() => {
    const root = join(repoRoot, ".cache", "test-runs", `seed-archive-${randomUUID().slice(0, 8)}`)
    mkdirSync(join(root, "home", ".codex"), { recursive: true })
    return root
  }),
  (root) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
)

describe("SeedArchive", () => {
  it.effect("round-trips members with their modes, deterministically", () =>
    Effect.gen(function*() {
      const members = [
        { name: AUTH_MEMBER, bytes: text('{"OPENAI_API_KEY":"sk"}'), mode: 0o600 },
        { name: CONFIG_MEMBER, bytes: text("model = \"m\"\n"), mode: 0o644 }
      ]
      const packed = packSeedArchive(members)
      assert.deepStrictEqual(packed, packSeedArchive(members))
      const back = yield* unpackSeedArchive(packed)
      assert.deepStrictEqual(back.map((member) => [member.name, decode(member.bytes), member.mode]), [
        [AUTH_MEMBER, '{"OPENAI_API_KEY":"sk"}', 0o600],
        [CONFIG_MEMBER, "model = \"m\"\n", 0o644]
      ])
      assert.deepStrictEqual(yield* unpackSeedArchive(packSeedArchive([])), [])
    }))

  it.effect("reads archives written by GNU tar (gnu and pax formats, ./ names, dirs, extra files)", () =>
    Effect.gen(function*() {
      const root = yield* scratch
      const home = join(root, "home")
      writeFileSync(join(home, ".codex", "auth.json"), '{"tokens":{"refresh_token":"R"}}')
      chmodSync(join(home, ".codex", "auth.json"), 0o600)
      writeFileSync(join(home, ".codex", "config.toml"), "x = 1\n")
      writeFileSync(join(home, ".codex", "junk.sqlite"), "junk")
      for (const format of ["gnu", "pax", "ustar"]) {
        const explicit = join(root, `explicit-${format}.tgz`)
        execFileSync("tar", [`--format=${format}`, "-czf", explicit, "-C", home, ".codex/auth.json", ".codex/config.toml"])
        const whole = join(root, `whole-${format}.tgz`)
        execFileSync("tar", [`--format=${format}`, "-czf", whole, "-C", home, "."])
        for (const file of [explicit, whole]) {
          const members = yield* unpackSeedArchive(readFileSync(file))
          assert.deepStrictEqual(members.map((member) => [member.name, decode(member.bytes), member.mode]), [
            [AUTH_MEMBER, '{"tokens":{"refresh_token":"R"}}', 0o600],
            [CONFIG_MEMBER, "x = 1\n", statSync(join(home, ".codex", "config.toml")).mode & 0o7777]
          ], `${format} ${file}`)
        }
      }
    }))

  it.effect("GNU tar extracts what we write, keeping auth.json 0600 (P23)", () =>
    Effect.gen(function*() {
      const root = yield* scratch
      const out = join(root, "out")
      mkdirSync(out)
      const archive = join(root, "ours.tgz")
      writeFileSync(archive, packSeedArchive([{ name: AUTH_MEMBER, bytes: text("{}"), mode: 0o600 }]))
      execFileSync("tar", ["-xzf", archive, "-C", out])
      assert.strictEqual(readFileSync(join(out, ".codex", "auth.json"), "utf8"), "{}")
      assert.strictEqual(statSync(join(out, ".codex", "auth.json")).mode & 0o777, 0o600)
    }))

  it.effect("long names (GNU L records, pax path records) do not derail reading", () =>
    Effect.gen(function*() {
      const root = yield* scratch
      const base = join(root, "tree")
      const long = `${"a".repeat(120)}/${"b".repeat(60)}`
      mkdirSync(join(base, long), { recursive: true })
      mkdirSync(join(base, ".codex"), { recursive: true })
      writeFileSync(join(base, long, "x.txt"), "x".repeat(700))
      writeFileSync(join(base, ".codex", "auth.json"), '{"OPENAI_API_KEY":"sk"}')
      for (const format of ["gnu", "pax"]) {
        const archive = join(root, `long-${format}.tgz`)
        execFileSync("tar", [`--format=${format}`, "-czf", archive, "-C", base, `${long}/x.txt`, ".codex/auth.json"])
        const members = yield* unpackSeedArchive(readFileSync(archive))
        assert.deepStrictEqual(members.map((member) => [member.name, decode(member.bytes)]), [[AUTH_MEMBER, '{"OPENAI_API_KEY":"sk"}']], format)
      }
    }))

  it.effect("refuses absolute and .. names, garbage and truncation", () =>
    Effect.gen(function*() {
      const root = yield* scratch
      const home = join(root, "home")
      writeFileSync(join(home, ".codex", "auth.json"), "{}")
      const evil = join(root, "evil.tgz")
      execFileSync("tar", ["-czf", evil, "-P", join(home, ".codex", "auth.json")])
      const absolute = yield* Effect.flip(unpackSeedArchive(readFileSync(evil)))
      assert.instanceOf(absolute, SeedArchiveInvalid)
      assert.match(absolute.message, /absolute/)
      execFileSync("tar", ["-czf", evil, "-C", join(home, ".codex"), "-P", "../.codex/auth.json"])
      assert.match((yield* Effect.flip(unpackSeedArchive(readFileSync(evil)))).message, /leaves the archive root/)
      assert.instanceOf(yield* Effect.flip(unpackSeedArchive(text("not gzip"))), SeedArchiveInvalid)
      const tar = new Uint8Array(512)
      tar.fill(65)
      assert.instanceOf(yield* Effect.flip(unpackSeedArchive(gzipSync(tar))), SeedArchiveInvalid)
      const good = packSeedArchive([{ name: AUTH_MEMBER, bytes: new Uint8Array(2000), mode: 0o600 }])
      const { gunzipSync } = yield* Effect.promise(() => import("node:zlib"))
      const cut = gunzipSync(good).subarray(0, 1024)
      assert.match((yield* Effect.flip(unpackSeedArchive(gzipSync(cut)))).message, /truncated/)
    }))

  it("merge: base members not in the overlay, then the overlay", () => {
    const member = (name: string, body: string) => ({ name, bytes: text(body), mode: 0o600 })
    const merged = mergeSeedArchive(
      [member(AUTH_MEMBER, "old"), member(CONFIG_MEMBER, "cfg")],
      [member(AUTH_MEMBER, "new")]
    )
    assert.deepStrictEqual(merged.map((m) => [m.name, decode(m.bytes)]), [[CONFIG_MEMBER, "cfg"], [AUTH_MEMBER, "new"]])
  })
})
