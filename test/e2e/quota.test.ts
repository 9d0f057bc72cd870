/**
 * Quota awareness end to end with the real codex app-server against the scripted model server's
 * per-account usage windows (ScriptedQuota) and the stand-in issuer.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import { AUTH_MEMBER, CONFIG_MEMBER, packSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfig, chatgptCodexConfigToml } from "../../src/modelserver/OfflineCodexConfig.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { ScriptedQuota } from "../../src/modelserver/ScriptedQuota.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import type { StandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { layoutOf } from "../support/taskLayout.ts"

const root = join(repoRoot, ".cache", "test", `e2e-quota-${process.pid}`)
const taskRoot = join(root, "tasks")
process.env["OPTIO_CODEX_TASK_ROOT"] = taskRoot
const codexHomeOf = (workdir: string) => layoutOf({ processId: "any", taskRoot, workdir }).codexHome

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

const chatgptTask = (issuer: StandInIssuer, baseUrl: string, extra: Record<string, unknown> = {}) => {
  const { model: _model, ...configOverrides } = chatgptCodexConfig({ baseUrl, requestMaxRetries: 0 })
  return {
    consumerInstructions: "quota e2e",
    mode: "conversation",
    model: "scripted-model",
    configOverrides,
    env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl },
    ...extra
  }
}

const rolloutLines = (codexHome: string): Array<string> => {
  const out: Array<string> = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry)
      if (statSync(path).isDirectory()) walk(path)
      else if (entry.endsWith(".jsonl")) out.push(...readFileSync(path, "utf8").split("\n").filter((l) => l !== ""))
    }
  }
  walk(join(codexHome, "sessions"))
  return out
}

describe("quota with the real codex", () => {
  it.live("codex parses the scripted rate-limit headers (rollout token_count + app-server notification)", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer({ accountId: "acct-probe" })
      const quotas = yield* ScriptedQuota.make
      const resetsAt = new Date(Date.now() + 3_600_000)
      yield* quotas.set("acct-probe", {
        planType: "plus",
        primary: { usedPercent: 42, windowMinutes: 300, resetsAt },
        secondary: { usedPercent: 7, windowMinutes: 10080, resetsAt: new Date(resetsAt.getTime() + 86_400_000) }
      })
      const server = yield* ScriptedModelServer.start([ModelScript.text("hello")], { quotas })
      yield* pooledSeed(issuer, server.baseUrl, "probe")
      const conversation = yield* Deferred.make<CodexConversation>()
      const workdir = freshDir("probe")
      const session = yield* runCodexSession(chatgptTask(issuer, server.baseUrl, { seedPool: "probe" }), {
        workdir,
        stopGracePeriod: "2 seconds",
        onConversation: (live) => Deferred.succeed(conversation, live)
      }).pipe(Effect.forkChild)
      const live = yield* Deferred.await(conversation)
      const events = yield* live.subscribe
      const seen = yield* events.pipe(Stream.filter((e) => typeof e["method"] === "string" && e["method"].startsWith("account/")), Stream.take(1), Stream.runCollect, Effect.forkChild)
      yield* live.sendTurn("hi")
      const got = yield* Fiber.join(seen).pipe(Effect.timeout("60 seconds"))
      console.log("NOTIFICATIONS", JSON.stringify(got))
      yield* waitUntil("token_count", Effect.sync(() => rolloutLines(codexHomeOf(workdir)).find((l) => l.includes("rate_limits") && l.includes("token_count"))), "30 seconds").pipe(
        Effect.tap((line) => Effect.sync(() => console.log("ROLLOUT", line)))
      )
      const recorder = yield* TaskRecorder
      yield* Fiber.interrupt(session)
      console.log("PROGRESS", JSON.stringify((yield* recorder.current).progress.map((p) => p.message)))
      assert.isTrue(true)
    }).pipe(Effect.scoped, Effect.provide(runLayer(new MemoryStoreState(), "quota-probe"))), 120_000)

  it.live("PROBE usage limit", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer({ accountId: "acct-x" })
      const quotas = yield* ScriptedQuota.make
      const resetsAt = new Date(Date.now() + 3_600_000)
      yield* quotas.set("acct-x", { planType: "plus", exhausted: true, primary: { usedPercent: 100, windowMinutes: 300, resetsAt } })
      const server = yield* ScriptedModelServer.start([ModelScript.text("hello")], { quotas })
      yield* pooledSeed(issuer, server.baseUrl, "x")
      const conversation = yield* Deferred.make<CodexConversation>()
      const workdir = freshDir("x")
      const session = yield* runCodexSession(chatgptTask(issuer, server.baseUrl, { seedPool: "x" }), {
        workdir, stopGracePeriod: "2 seconds", onConversation: (live) => Deferred.succeed(conversation, live)
      }).pipe(Effect.forkChild)
      const live = yield* Deferred.await(conversation)
      const events = yield* live.subscribe
      const seen = yield* events.pipe(Stream.filter((e) => e["method"] !== "item/agentMessage/delta"), Stream.takeUntil((e) => e["method"] === "turn/completed"), Stream.runCollect, Effect.forkChild)
      yield* live.sendTurn("hi")
      const got = yield* Fiber.join(seen).pipe(Effect.timeout("60 seconds"))
      console.log("EVENTS", JSON.stringify(got))
      yield* Effect.sleep("1 second")
      console.log("ROLLOUT", rolloutLines(codexHomeOf(workdir)).filter((l) => l.includes("rate_limits") || l.includes("error")).join("\n"))
      console.log("REQS", JSON.stringify((yield* server.requests).map((r) => [r.path, r.answer])))
      yield* Fiber.interrupt(session)
    }).pipe(Effect.scoped, Effect.provide(runLayer(new MemoryStoreState(), "quota-x"))), 120_000)
})
