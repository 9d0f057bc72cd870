/**
 * Quota awareness end to end with the real codex app-server against the scripted model server's
 * per-account usage windows (ScriptedQuota) and one stand-in issuer per account: codex reports the
 * windows (usage read at start, rate-limit headers after every answer) and they land on the seed;
 * a pool leases by headroom and skips an exhausted seed until its reset; a usage-limit failure
 * mid-conversation hands the task off to another seed of its pool, or ends it with QuotaExhausted.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Stream } from "effect"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import { AUTH_MEMBER, CONFIG_MEMBER, packSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfigToml } from "../../src/modelserver/OfflineCodexConfig.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { ScriptedQuota } from "../../src/modelserver/ScriptedQuota.ts"
import type { AccountQuota, ScriptedQuotas } from "../../src/modelserver/ScriptedQuota.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { SeedQuota } from "../../src/quota/SeedQuota.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import type { StandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { chatgptTask as chatgptTaskOf } from "../support/chatgptTask.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(repoRoot, ".cache", "test", `e2e-quota-${process.pid}`)
const taskRoot = join(root, "tasks")
process.env["OPTIO_CODEX_TASK_ROOT"] = taskRoot

const runLayer = (state: MemoryStoreState, processId: string) =>
  sessionServices(processId, {
    state,
    credWatcher: { pollInterval: "100 millis", renewInterval: "400 millis", leaseTtl: "3 seconds", saveBackAttempts: 3, saveBackBackoff: "50 millis" }
  })

const freshDir = (name: string) => {
  const dir = join(root, name)
  mkdirSync(dir, { recursive: true })
  return dir
}

const pooledSeed = (issuer: StandInIssuer, baseUrl: string, poolKey: string) =>
  Effect.gen(function*() {
    const minted = yield* issuer.mintAuthJson()
    const seeds = yield* SeedStore
    return yield* seeds.create({
      blob: Stream.succeed(packSeedArchive([
        { name: AUTH_MEMBER, bytes: minted.bytes, mode: 0o600 },
        { name: CONFIG_MEMBER, bytes: new TextEncoder().encode(chatgptCodexConfigToml({ baseUrl, requestMaxRetries: 0 })), mode: 0o600 }
      ])),
      poolKey
    })
  })

const chatgptTask = (issuer: StandInIssuer, baseUrl: string, extra: Record<string, unknown> = {}) =>
  chatgptTaskOf(issuer, baseUrl, "quota e2e", extra)

const minutesFromNow = (minutes: number) => new Date(Date.now() + minutes * 60_000)
const fiveHours = (usedPercent: number, resetsAt: Date) => ({ usedPercent, windowMinutes: 300, resetsAt })

/** A pool of seeds, each its own ChatGPT account (one stand-in issuer per account). */
const accountsPool = (baseUrl: string, poolKey: string, accounts: ReadonlyArray<string>) =>
  Effect.forEach(accounts, (accountId) =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer({ accountId })
      const seed = yield* pooledSeed(issuer, baseUrl, poolKey)
      return { accountId, issuer, seed }
    }))

const progressOf = TaskRecorder.use((recorder) => recorder.current).pipe(Effect.map((record) => record.progress.map((p) => p.message ?? "")))

/** Runs a conversation session, sends one turn, waits for its answer on the model server, cancels. */
const oneTurn = (
  issuer: StandInIssuer,
  server: ScriptedModelServer.ScriptedModelServerHandle,
  source: Record<string, unknown>,
  name: string
) =>
  Effect.gen(function*() {
    const conversation = yield* Deferred.make<CodexConversation>()
    const before = (yield* server.requests).filter((r) => r.path === "/v1/responses").length
    const session = yield* runCodexSession(chatgptTask(issuer, server.baseUrl, source), {
      workdir: freshDir(name),
      stopGracePeriod: "2 seconds",
      onConversation: (live) => Deferred.succeed(conversation, live)
    }).pipe(Effect.forkChild)
    const live = yield* Deferred.await(conversation)
    yield* live.sendTurn(`turn of ${name}`)
    yield* server.awaitRequests((all) => all.filter((r) => r.path === "/v1/responses").length > before, "60 seconds")
    yield* waitUntil("the turn is over", live.activeTurn.pipe(Effect.map((turn) => turn === null ? true : undefined)), "30 seconds")
    yield* Fiber.interrupt(session)
    return yield* progressOf
  }).pipe(Effect.provide(runLayer(state, name)))

let state = new MemoryStoreState()

const quotaRecord = (seedId: string) =>
  SeedStore.use((seeds) => seeds.get(seedId)).pipe(
    Effect.map((seed) => Option.flatMap(seed, SeedQuota.quotaOf))
  )

const setQuotas = (quotas: ScriptedQuotas, table: Record<string, AccountQuota>) =>
  Effect.forEach(Object.entries(table), ([account, quota]) => quotas.set(account, quota), { discard: true })

describe("quota with the real codex", () => {
  it.live("a pool of three learns each seed's quota from codex; leases go to the most headroom; an exhausted seed waits for its reset", () =>
    Effect.gen(function*() {
      state = new MemoryStoreState()
      const quotas = yield* ScriptedQuota.make
      const server = yield* ScriptedModelServer.start([], { quotas, exhaustedText: "ok" })
      const [busy, roomy, spent] = yield* accountsPool(server.baseUrl, "trio", ["acct-busy", "acct-roomy", "acct-spent"]).pipe(
        Effect.provide(runLayer(state, "trio-setup"))
      )
      const spentReset = new Date(Date.now() + 20_000)
      yield* setQuotas(quotas, {
        "acct-busy": { planType: "plus", primary: fiveHours(70, minutesFromNow(120)), secondary: { usedPercent: 30, windowMinutes: 10080, resetsAt: minutesFromNow(5000) } },
        "acct-roomy": { planType: "plus", primary: fiveHours(20, minutesFromNow(200)) },
        "acct-spent": { planType: "plus", primary: fiveHours(100, spentReset) }
      })
      // Nothing known yet: one task on each seed (by id) lets codex report its windows.
      for (const member of [busy!, roomy!, spent!]) yield* oneTurn(member.issuer, server, { seedId: member.seed.seedId }, `learn-${member.accountId}`)

      const stores = runLayer(state, "trio-check")
      const recorded = yield* Effect.forEach([busy!, roomy!, spent!], (m) => quotaRecord(m.seed.seedId)).pipe(Effect.provide(stores))
      const [busyQuota, roomyQuota, spentQuota] = recorded.map((r) => Option.getOrThrow(r))
      assert.strictEqual(busyQuota!.plan, "plus", "the plan from the seed's id token")
      assert.strictEqual(busyQuota!.primary?.usedPercent, 70)
      assert.strictEqual(busyQuota!.primary?.windowMinutes, 300)
      assert.strictEqual(busyQuota!.secondary?.usedPercent, 30)
      assert.strictEqual(roomyQuota!.primary?.usedPercent, 20)
      assert.strictEqual(spentQuota!.primary?.resetsAtMs, Math.floor(spentReset.getTime() / 1000) * 1000)

      const headroom = yield* Lease.use((lease) => lease.headroom("trio")).pipe(Effect.provide(stores))
      assert.deepStrictEqual(headroom.candidates.map((c) => c.seed.seedId), [roomy!.seed.seedId, busy!.seed.seedId])
      assert.deepStrictEqual(headroom.exhausted.map((e) => e.seed.seedId), [spent!.seed.seedId])
      console.log(`pool headroom: ${SeedQuota.describeHeadroom(headroom)}`)

      // A pool task gets the roomiest seed.
      const progress = yield* oneTurn(roomy!.issuer, server, { seedPool: "trio" }, "pool-task")
      assert.include(progress, `Leased seed ${roomy!.seed.seedId}`)

      // With the two good seeds held, the pool has nothing: the exhausted one is skipped.
      const held = yield* Effect.gen(function*() {
        const lease = yield* Lease
        const first = Option.getOrThrow(yield* lease.acquire("trio", "holder-1"))
        const second = Option.getOrThrow(yield* lease.acquire("trio", "holder-2"))
        assert.isTrue(Option.isNone(yield* lease.acquire("trio", "holder-3")), "the exhausted seed is not leased before its reset")
        return [first, second]
      }).pipe(Effect.provide(stores))
      assert.sameMembers(held.map((g) => g.seedId), [roomy!.seed.seedId, busy!.seed.seedId])
      // After its reset it is leasable again (its window counts as fresh).
      const after = yield* waitUntil("the spent seed's window has reset", Lease.use((lease) => lease.acquire("trio", "holder-3")).pipe(
        Effect.map(Option.getOrUndefined)
      ), "40 seconds").pipe(Effect.provide(stores))
      assert.strictEqual(after.seedId, spent!.seed.seedId)
    }), 300_000)

  it.live("conversation mode reads the quota at start (account/rateLimits/read against the scripted backend) and after every answer", () =>
    Effect.gen(function*() {
      state = new MemoryStoreState()
      const quotas = yield* ScriptedQuota.make
      const server = yield* ScriptedModelServer.start([ModelScript.text("one"), ModelScript.text("two")], { quotas })
      const [member] = yield* accountsPool(server.baseUrl, "watch", ["acct-watch"]).pipe(Effect.provide(runLayer(state, "watch-setup")))
      yield* quotas.set("acct-watch", { planType: "pro", primary: fiveHours(12, minutesFromNow(100)), secondary: { usedPercent: 3, windowMinutes: 10080, resetsAt: minutesFromNow(9000) } })
      yield* Effect.gen(function*() {
        const conversation = yield* Deferred.make<CodexConversation>()
        const session = yield* runCodexSession(chatgptTask(member!.issuer, server.baseUrl, { seedPool: "watch" }), {
          workdir: freshDir("watch"),
          stopGracePeriod: "2 seconds",
          onConversation: (live) => Deferred.succeed(conversation, live)
        }).pipe(Effect.forkChild)
        const live = yield* Deferred.await(conversation)
        const seedId = member!.seed.seedId
        // Before any turn: the usage read at start.
        const atStart = yield* waitUntil("the windows read at start are recorded", quotaRecord(seedId).pipe(
          Effect.map((r) => Option.isSome(r) && r.value.primary?.usedPercent === 12 ? r.value : undefined)
        ), "30 seconds")
        assert.strictEqual(atStart.secondary?.usedPercent, 3)
        assert.isTrue((yield* server.requests).some((r) => r.answer._tag === "Usage"), "codex read the usage from the scripted backend")
        // A later answer's headers move the record.
        yield* quotas.set("acct-watch", { planType: "pro", primary: fiveHours(57, minutesFromNow(100)) })
        yield* live.sendTurn("go")
        const after = yield* waitUntil("the answer's windows are recorded", quotaRecord(seedId).pipe(
          Effect.map((r) => Option.isSome(r) && r.value.primary?.usedPercent === 57 ? r.value : undefined)
        ), "30 seconds")
        assert.strictEqual(after.plan, "pro")
        assert.strictEqual(after.secondary?.usedPercent, 3, "a sparse update keeps the window it does not mention")
        yield* Fiber.interrupt(session)
        // Teardown (codex stopped, lease still held) records the rollouts' last token_count: the TUI's only source.
        const final = Option.getOrThrow(yield* quotaRecord(seedId))
        assert.strictEqual(final.source, "rollout")
        assert.strictEqual(final.primary?.usedPercent, 57)
      }).pipe(Effect.provide(runLayer(state, "watch-task")))
    }), 300_000)

  it.live("a task that hits the usage limit mid-conversation hands off to another seed of its pool and re-runs the turn", () =>
    Effect.gen(function*() {
      state = new MemoryStoreState()
      const quotas = yield* ScriptedQuota.make
      const server = yield* ScriptedModelServer.start([ModelScript.text("answered on the second seed")], { quotas })
      const [first, second] = yield* accountsPool(server.baseUrl, "relay", ["acct-first", "acct-second"]).pipe(
        Effect.provide(runLayer(state, "relay-setup"))
      )
      const reset = minutesFromNow(90)
      yield* setQuotas(quotas, {
        "acct-first": { planType: "plus", primary: fiveHours(100, reset), exhausted: true },
        "acct-second": { planType: "pro", primary: fiveHours(10, minutesFromNow(240)) }
      })
      const services = runLayer(state, "relay-task")
      yield* Effect.gen(function*() {
        const conversation = yield* Deferred.make<CodexConversation>()
        const session = yield* runCodexSession(chatgptTask(first!.issuer, server.baseUrl, { seedPool: "relay" }), {
          workdir: freshDir("relay"),
          stopGracePeriod: "2 seconds",
          onConversation: (live) => Deferred.succeed(conversation, live)
        }).pipe(Effect.forkChild)
        const live = yield* Deferred.await(conversation)
        yield* live.sendTurn("please do the thing")
        const answered = yield* server.awaitRequests(
          (all) => all.some((r) => r.answer._tag === "Step" && r.headers["chatgpt-account-id"] === "acct-second"),
          "90 seconds"
        )
        const limited = answered.filter((r) => r.answer._tag === "UsageLimit")
        assert.isAbove(limited.length, 0)
        assert.isTrue(limited.every((r) => r.headers["chatgpt-account-id"] === "acct-first"))
        const rerun = answered.find((r) => r.answer._tag === "Step")!
        assert.include(rerun.userTexts.join("\n"), "please do the thing", "the failed turn's input is sent again")
        const progress = yield* waitUntil("the hand-off is reported", progressOf.pipe(
          Effect.map((lines) => lines.some((l) => l.startsWith("Handed off")) ? lines : undefined)
        ), "30 seconds")
        console.log(`HAND-OFF PROGRESS\n${progress.join("\n")}`)
        assert.include(progress, `Leased seed ${first!.seed.seedId}`)
        assert.include(progress, `Planted seed ${second!.seed.seedId}`)
        assert.isTrue(progress.some((l) => l.startsWith(`Seed ${first!.seed.seedId} hit its usage limit`)))
        assert.include(progress, `Handed off from seed ${first!.seed.seedId} to seed ${second!.seed.seedId} (pool relay); codex continues thread ${live.threadId}`)
        // The exhausted seed is marked until its reset and released; the second is held.
        const spent = Option.getOrThrow(yield* quotaRecord(first!.seed.seedId))
        assert.strictEqual(Option.getOrThrow(SeedQuota.exhaustedUntil(spent, Date.now())), Math.floor(reset.getTime() / 1000) * 1000)
        const pool = yield* SeedStore.use((seeds) => seeds.listPool("relay"))
        assert.isFalse(pool.find((s) => s.seedId === first!.seed.seedId)!.leased)
        assert.isTrue(pool.find((s) => s.seedId === second!.seed.seedId)!.leased)
        yield* waitUntil("the second seed's plan is recorded", quotaRecord(second!.seed.seedId).pipe(
          Effect.map((r) => Option.isSome(r) && r.value.primary?.usedPercent === 10 ? true : undefined)
        ), "20 seconds")
        // The lease watch follows the hand-off: losing the NEW seed's lease ends the task.
        const held = Option.getOrThrow(yield* SeedStore.use((seeds) => seeds.get(second!.seed.seedId))).lease!
        yield* Lease.use((lease) => lease.release({ seedId: second!.seed.seedId, holder: held.holder, epoch: held.epoch, expiresAt: held.expiresAt }))
        yield* Lease.use((lease) => lease.acquireSeed(second!.seed.seedId, "thief"))
        const exit = yield* Fiber.await(session).pipe(Effect.timeout("30 seconds"))
        const lost = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()
        assert.strictEqual((Option.getOrThrow(lost) as { readonly _tag: string })._tag, "LeaseLost")
      }).pipe(Effect.provide(services))
    }), 300_000)

  it.live("with no seed left in the pool, the usage limit ends the task with QuotaExhausted naming the earliest reset", () =>
    Effect.gen(function*() {
      state = new MemoryStoreState()
      const quotas = yield* ScriptedQuota.make
      const server = yield* ScriptedModelServer.start([ModelScript.text("never played")], { quotas })
      const [only] = yield* accountsPool(server.baseUrl, "solo", ["acct-only"]).pipe(Effect.provide(runLayer(state, "solo-setup")))
      const reset = minutesFromNow(45)
      yield* quotas.set("acct-only", { planType: "plus", primary: fiveHours(100, reset), exhausted: true })
      yield* Effect.gen(function*() {
        const conversation = yield* Deferred.make<CodexConversation>()
        const session = yield* runCodexSession(chatgptTask(only!.issuer, server.baseUrl, { seedPool: "solo" }), {
          workdir: freshDir("solo"),
          stopGracePeriod: "2 seconds",
          onConversation: (live) => Deferred.succeed(conversation, live)
        }).pipe(Effect.forkChild)
        const live = yield* Deferred.await(conversation)
        yield* live.sendTurn("anything")
        const exit = yield* Fiber.await(session).pipe(Effect.timeout("90 seconds"))
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()
        const failure = Option.getOrThrow(error) as { readonly _tag: string; readonly poolKey?: string; readonly earliestReset?: Date }
        assert.strictEqual(failure._tag, "QuotaExhausted")
        assert.strictEqual(failure.poolKey, "solo")
        assert.strictEqual(failure.earliestReset?.getTime(), Math.floor(reset.getTime() / 1000) * 1000)
        const progress = yield* progressOf
        console.log(`QUOTA-EXHAUSTED PROGRESS\n${progress.join("\n")}`)
        assert.isTrue(progress.some((l) => l.startsWith("No hand-off: every seed of pool solo has hit its usage limit")))
      }).pipe(Effect.provide(runLayer(state, "solo-task")))
    }), 300_000)
})
