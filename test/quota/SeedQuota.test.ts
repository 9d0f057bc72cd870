/**
 * SeedQuota's pure parts (reading codex's two spellings, merging sparse updates, exhaustion and
 * ranking) and QuotaRecorder's writes (only under the lease) and rollout reads (guarded, only
 * lines since the seed was planted) on the memory store and the local host.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream } from "effect"
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { latestRolloutObservation, planOfAuthJson, recordQuota } from "../../src/quota/QuotaRecorder.ts"
import { SeedQuota } from "../../src/quota/SeedQuota.ts"
import type { SeedQuotaRecord } from "../../src/quota/SeedQuota.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import type { SeedDoc } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"

const root = join(process.cwd(), ".cache", "test", `seed-quota-${process.pid}`)
afterAll(() => rmSync(root, { recursive: true, force: true }))

// Verbatim shapes codex 0.171.0 produced against the scripted model server (see test/e2e/quota.test.ts).
const APP_SERVER_UPDATE = {
  limitId: "codex",
  limitName: null,
  primary: { usedPercent: 42, windowDurationMins: 300, resetsAt: 1796665557 },
  secondary: { usedPercent: 7, windowDurationMins: 10080, resetsAt: 1796751957 },
  credits: null,
  planType: null
}
const ROLLOUT_LINE = (timestamp: string, used: number) =>
  JSON.stringify({
    timestamp,
    type: "event_msg",
    payload: {
      type: "token_count",
      info: null,
      rate_limits: {
        limit_id: "codex",
        primary: { used_percent: used, window_minutes: 300, resets_at: 1796665557 },
        secondary: null,
        plan_type: null
      }
    }
  })

const record = (overrides: Partial<SeedQuotaRecord>): SeedQuotaRecord => ({
  plan: null,
  primary: null,
  secondary: null,
  limitedUntilMs: null,
  observedAtMs: 0,
  source: "test",
  ...overrides
})

const doc = (seedId: string, quota: SeedQuotaRecord | undefined, extra: Partial<SeedDoc> = {}): SeedDoc => ({
  seedId,
  createdAt: new Date(0),
  blobId: "b",
  manifestVersion: 1,
  generation: 0,
  status: "alive",
  metadata: quota === undefined ? {} : { quota },
  ...extra
})

describe("SeedQuota", () => {
  it("reads app-server's camelCase and the rollout's snake_case snapshot alike (resets in seconds → ms)", () => {
    const fromAppServer = Option.getOrThrow(SeedQuota.observationOfSnapshot(APP_SERVER_UPDATE, "app-server"))
    assert.deepStrictEqual(fromAppServer.primary, { usedPercent: 42, windowMinutes: 300, resetsAtMs: 1796665557000 })
    assert.deepStrictEqual(fromAppServer.secondary, { usedPercent: 7, windowMinutes: 10080, resetsAtMs: 1796751957000 })
    assert.isUndefined(fromAppServer.plan, "a null planType says nothing")
    const line = JSON.parse(ROLLOUT_LINE("2026-12-07T16:45:58.028Z", 42)) as { payload: { rate_limits: unknown } }
    const fromRollout = Option.getOrThrow(SeedQuota.observationOfSnapshot(line.payload.rate_limits, "rollout"))
    assert.deepStrictEqual(fromRollout.primary, fromAppServer.primary)
    assert.isTrue(Option.isNone(SeedQuota.observationOfSnapshot({ primary: null, secondary: null }, "x")))
    assert.isTrue(Option.isNone(SeedQuota.observationOfSnapshot({ primary: { usedPercent: "lots" } }, "x")))
  })

  it("merges sparse updates: absent members keep their value, the plan survives a window-only update", () => {
    const first = SeedQuota.mergeObservation(undefined, { plan: "pro", source: "credentials" }, 1)
    const second = SeedQuota.mergeObservation(first, { primary: { usedPercent: 10, windowMinutes: 300, resetsAtMs: 99 }, source: "app-server" }, 2)
    const third = SeedQuota.mergeObservation(second, { secondary: { usedPercent: 3, windowMinutes: 10080, resetsAtMs: 999 }, source: "app-server" }, 3)
    assert.deepStrictEqual(third, {
      plan: "pro",
      primary: { usedPercent: 10, windowMinutes: 300, resetsAtMs: 99 },
      secondary: { usedPercent: 3, windowMinutes: 10080, resetsAtMs: 999 },
      limitedUntilMs: null,
      observedAtMs: 3,
      source: "app-server"
    })
  })

  it("exhaustion: a full window until its reset; a usage-limit failure until its time; no reset known: one window from the observation", () => {
    const full = record({ primary: { usedPercent: 100, windowMinutes: 300, resetsAtMs: 5000 } })
    assert.strictEqual(Option.getOrThrow(SeedQuota.exhaustedUntil(full, 4999)), 5000)
    assert.isTrue(Option.isNone(SeedQuota.exhaustedUntil(full, 5000)))
    const limited = record({ primary: { usedPercent: 40, windowMinutes: 300, resetsAtMs: 5000 }, limitedUntilMs: 9000 })
    assert.strictEqual(Option.getOrThrow(SeedQuota.exhaustedUntil(limited, 100)), 9000)
    const noReset = record({ primary: { usedPercent: 100, windowMinutes: 60, resetsAtMs: null }, observedAtMs: 1000 })
    assert.strictEqual(Option.getOrThrow(SeedQuota.exhaustedUntil(noReset, 1000)), 1000 + 3_600_000)
    assert.strictEqual(Option.getOrThrow(SeedQuota.usedPercentAt(record({ primary: { usedPercent: 90, windowMinutes: 300, resetsAtMs: 10 } }), 11)), 0)
  })

  it("ranks known headroom first (lowest highest-window), then unknown, round-robin within equals; exhausted, leased and dead apart", () => {
    const now = new Date(10_000)
    const window = (usedPercent: number) => ({ usedPercent, windowMinutes: 300, resetsAtMs: 50_000 })
    const members = [
      doc("unknown-old", undefined, { lastLeasedAt: new Date(1) }),
      doc("unknown-new", undefined, { lastLeasedAt: new Date(2) }),
      doc("weekly-tight", record({ primary: window(10), secondary: window(90) })),
      doc("even-a", record({ primary: window(50) }), { lastLeasedAt: new Date(5) }),
      doc("even-b", record({ primary: window(50) }), { lastLeasedAt: new Date(3) }),
      doc("spent", record({ primary: window(100) })),
      doc("held", record({ primary: window(0) }), { lease: { holder: "h", epoch: 1, expiresAt: new Date(20_000) } }),
      doc("gone", record({ primary: window(0) }), { status: "dead" })
    ]
    const ranked = SeedQuota.rankPool("p", members, now)
    assert.deepStrictEqual(ranked.candidates.map((c) => c.seed.seedId), ["even-b", "even-a", "weekly-tight", "unknown-old", "unknown-new"])
    assert.deepStrictEqual(ranked.exhausted.map((e) => [e.seed.seedId, e.untilMs]), [["spent", 50_000]])
    assert.strictEqual(ranked.leased, 1)
    assert.strictEqual(ranked.dead, 1)
    assert.strictEqual(SeedQuota.describeHeadroom(ranked), "pool p: 5 available, 1 seed exhausted until 00:00 UTC, 1 leased, 1 dead")
    assert.isTrue(Option.isNone(SeedQuota.exhaustionOf(ranked)))
  })

  it("reads the plan from an auth.json id token; anything unreadable is none", () => {
    const claims = { "https://api.openai.com/auth": { chatgpt_plan_type: "pro" } }
    const idToken = `e30.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`
    const auth = new TextEncoder().encode(JSON.stringify({ tokens: { id_token: idToken } }))
    assert.strictEqual(Option.getOrThrow(planOfAuthJson(auth)), "pro")
    assert.isTrue(Option.isNone(planOfAuthJson(new TextEncoder().encode("{not json"))))
    assert.isTrue(Option.isNone(planOfAuthJson(new TextEncoder().encode(JSON.stringify({ tokens: { id_token: "one-part" } })))))
  })
})

const stores = Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext))

describe("QuotaRecorder", () => {
  it.effect("writes under the held lease; after the lease is lost nothing is written", () =>
    Effect.gen(function*() {
      const seeds = yield* SeedStore
      const leases = yield* Lease
      const seed = yield* seeds.create({ blob: Stream.succeed(new Uint8Array([1])), poolKey: "p" })
      const grant = Option.getOrThrow(yield* leases.acquire("p", "task-1"))
      const window = { usedPercent: 33, windowMinutes: 300, resetsAtMs: 123_000 }
      const written = yield* recordQuota({ seeds, leases }, grant, { primary: window, source: "app-server" })
      assert.strictEqual(Option.getOrThrow(written).primary?.usedPercent, 33)
      // Another worker takes the seed over: the old holder's observation must not land.
      yield* leases.release(grant)
      const thief = Option.getOrThrow(yield* leases.acquire("p", "task-2"))
      const refused = yield* recordQuota({ seeds, leases }, grant, { primary: { ...window, usedPercent: 99 }, source: "app-server" })
      assert.isTrue(Option.isNone(refused))
      const stored = Option.getOrThrow(SeedQuota.quotaOf(Option.getOrThrow(yield* seeds.get(seed.seedId))))
      assert.strictEqual(stored.primary?.usedPercent, 33)
      assert.strictEqual(Option.getOrThrow(yield* seeds.get(seed.seedId)).lease?.holder, thief.holder)
    }).pipe(Effect.provide(stores)))

  it.effect("reads the newest token_count since the plant; older lines (another seed's run) and symlinked rollouts are ignored", () =>
    Effect.gen(function*() {
      const codexHome = join(root, "codex-home")
      const day = join(codexHome, "sessions", "2026", "12", "07")
      mkdirSync(day, { recursive: true })
      writeFileSync(join(day, "rollout-a.jsonl"), [
        ROLLOUT_LINE("2026-12-07T10:00:00.000Z", 11),
        "{\"timestamp\":\"2026-12-07T10:00:01.000Z\",\"type\":\"event_msg\",\"payload\":{\"type\":\"agent_message\"}}",
        ROLLOUT_LINE("2026-12-07T12:00:00.000Z", 64),
        "not json at all \"token_count\" \"rate_limits\"",
        ROLLOUT_LINE("2026-12-07T11:00:00.000Z", 50)
      ].join("\n"))
      // A planted symlink to a file claiming 1 % must not be followed.
      const decoy = join(root, "decoy.jsonl")
      writeFileSync(decoy, ROLLOUT_LINE("2026-12-07T13:00:00.000Z", 1))
      symlinkSync(decoy, join(day, "rollout-b.jsonl"))
      const since = Date.parse("2026-12-07T10:30:00.000Z")
      const seen = Option.getOrThrow(yield* latestRolloutObservation(codexHome, since))
      assert.strictEqual(seen.primary?.usedPercent, 64)
      const nothingNew = yield* latestRolloutObservation(codexHome, Date.parse("2026-12-07T12:00:00.001Z"))
      assert.isTrue(Option.isNone(nothingNew))
    }).pipe(Effect.provide(LocalHost.layer())))
})
