/**
 * The token broker end to end with the real codex app-server, the scripted model server and the
 * stand-in issuer: two concurrent tasks on one seed both hit 401 → exactly one upstream refresh,
 * both continue on the new access token, the store holds the rotated refresh token, and neither
 * the old nor the new refresh token is anywhere in the task trees, their snapshots or the worker's
 * logs; the same with a second worker process on a shared embedded store; a lost lease (seed taken by a
 * non-broker holder) ends the session with LeaseLost, nothing presented or written.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Logger, Option, References } from "effect"
import { FetchHttpClient } from "effect/http"
import { spawn } from "node:child_process"
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import { readStoredCredentials } from "../../src/credentials/SeedRefresh.ts"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { tokenFingerprint } from "../../src/modelserver/ModelRequest.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import type { ScriptedModelServerHandle } from "../../src/modelserver/ScriptedModelServer.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import type { StandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { restoreSnapshot } from "../../src/snapshots/WorkdirSnapshot.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { MemoryStoreState, Store } from "../../src/store/Store.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { chatgptTask as chatgptTaskOf, expired401, mintedSeed } from "../support/chatgptTask.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(repoRoot, ".cache", "test", `e2e-broker-${process.pid}`)
const taskRoot = join(root, "tasks")
process.env["OPTIO_CODEX_TASK_ROOT"] = taskRoot

const freshDir = (name: string) => {
  const dir = join(root, name)
  mkdirSync(dir, { recursive: true })
  return dir
}


// Every log line of the worker (sessions and broker), to search for tokens.
const logged: Array<string> = []
const captureLogs = Layer.mergeAll(
  Logger.layer([Logger.make((entry) => void logged.push(`${JSON.stringify(entry.message)} ${Cause.pretty(entry.cause)}`))]),
  Layer.succeed(References.MinimumLogLevel, "Debug")
)

const seedFor = (issuer: StandInIssuer, baseUrl: string) => mintedSeed(issuer, baseUrl)

const chatgptTask = (issuer: StandInIssuer, baseUrl: string, extra: Record<string, unknown> = {}) =>
  chatgptTaskOf(issuer, baseUrl, "brokered e2e", extra)

/** Every regular file under `dir` (no symlink followed). */
const filesUnder = (dir: string): Array<string> => {
  if (!existsSync(dir)) return []
  const out: Array<string> = []
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry)
    const stat = lstatSync(path)
    if (stat.isDirectory()) out.push(...filesUnder(path))
    else if (stat.isFile()) out.push(path)
  }
  return out
}

/** The files under `dirs` whose bytes contain one of `secrets`. */
const filesHolding = (dirs: ReadonlyArray<string>, secrets: ReadonlyArray<string>) =>
  dirs.flatMap(filesUnder).filter((path) => {
    const bytes = readFileSync(path)
    return secrets.some((secret) => bytes.includes(secret))
  })

const brokerLayer = (issuer: StandInIssuer, stores: Layer.Layer<SeedStore | Lease | SnapshotStore>) =>
  TokenBroker.layer({ upstreamTokenUrl: issuer.tokenUrl, renewInterval: "400 millis", leaseTtl: "3 seconds" }).pipe(
    Layer.provide(Layer.mergeAll(stores, FetchHttpClient.layer)),
    Layer.provide(captureLogs)
  )

/** Starts a brokered session and waits until its conversation is live. */
const startTask = (config: Record<string, unknown>, workdir: string) =>
  Effect.gen(function*() {
    const conversation = yield* Deferred.make<CodexConversation>()
    const session = yield* runCodexSession(config, {
      workdir,
      stopGracePeriod: "2 seconds",
      onConversation: (live) => Deferred.succeed(conversation, live)
    }).pipe(Effect.forkScoped)
    const live = yield* Deferred.await(conversation).pipe(Effect.timeout("90 seconds"))
    return { session, live }
  })

/** The request that got the scripted text answer, once it came. */
const answered = (server: ScriptedModelServerHandle) =>
  server.awaitRequests((requests) => requests.some((request) => request.answer._tag === "Step" && request.answer.index === 2), "90 seconds").pipe(
    Effect.map((requests) => requests.find((request) => request.answer._tag === "Step" && request.answer.index === 2)!)
  )

describe("token broker with the real codex", () => {
  it.live("two tasks on one seed, 401 to both at once: one upstream refresh, both continue, no refresh token in any tree, snapshot or log", () =>
    Effect.gen(function*() {
      const state = new MemoryStoreState()
      const stores = Store.layerMemory({ state }).pipe(Layer.provide(BlobCrypto.layerPlaintext))
      const issuer = yield* startStandInIssuer()
      const servers = [
        yield* ScriptedModelServer.start([expired401(), expired401(), ModelScript.text("first continues")]),
        yield* ScriptedModelServer.start([expired401(), expired401(), ModelScript.text("second continues")])
      ] as const
      const { seed, minted } = yield* seedFor(issuer, servers[0].baseUrl).pipe(Effect.provide(stores))
      const broker = yield* Layer.build(brokerLayer(issuer, stores))
      // Each task's services live in the test's scope (as a worker's live for the task's life).
      const runTask = (name: string, server: ScriptedModelServerHandle) =>
        Effect.gen(function*() {
          const services = yield* Layer.build(Layer.mergeAll(sessionServices(name, { state, tokenBroker: Layer.succeedContext(broker) }), captureLogs))
          const workdir = freshDir(name)
          const task = yield* startTask(chatgptTask(issuer, server.baseUrl, { seedId: seed.seedId }), workdir).pipe(
            Effect.provideContext(services),
            Effect.provideContext(broker)
          )
          return { ...task, workdir, name }
        })
      const tasks = yield* Effect.all([runTask("broker-a", servers[0]), runTask("broker-b", servers[1])], { concurrency: "unbounded" })
      // Both turns at once: each model server answers 401 (twice: codex reloads auth.json first).
      yield* Effect.all(tasks.map((task) => task.live.sendTurn("go")), { concurrency: "unbounded" })
      const continued = yield* Effect.all(servers.map(answered), { concurrency: "unbounded" })

      const grants = (yield* issuer.tokenRequests).filter((request) => request.grantType === "refresh_token")
      assert.strictEqual(grants.length, 1, "exactly one upstream refresh")
      assert.strictEqual(grants[0]?.refreshToken, minted.refreshToken)
      const rotated = grants[0]!.issuedRefreshToken!
      const newAccess = (yield* issuer.accessTokens).at(-1)!
      for (const request of continued) assert.strictEqual(request.bearerFingerprint, tokenFingerprint(newAccess), "continued on the new access token")
      const stored = Option.getOrThrow(yield* readStoredCredentials(seed.seedId).pipe(Effect.provide(stores)))
      assert.strictEqual(stored.refreshToken, rotated, "the store holds the rotated token")
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [rotated])

      const secrets = [minted.refreshToken, rotated]
      const liveTrees = [taskRoot, ...tasks.map((task) => task.workdir)]
      assert.deepStrictEqual(filesHolding(liveTrees, secrets), [], "no refresh token in the running task trees")
      for (const task of tasks) yield* Fiber.interrupt(task.session)
      assert.deepStrictEqual(filesHolding(liveTrees, secrets), [], "none after teardown")
      for (const task of tasks) {
        const restored = freshDir(`${task.name}-snapshot`)
        const doc = Option.getOrThrow(yield* SnapshotStore.use((store) => store.latest(task.name)).pipe(Effect.provide(stores)))
        yield* restoreSnapshot(doc, restored).pipe(Effect.provide(Layer.mergeAll(stores, LocalHost.layer())))
        assert.isAbove(filesUnder(restored).length, 0)
        assert.deepStrictEqual(filesHolding([restored], secrets), [], "none in the snapshot")
        assert.deepStrictEqual(processesMentioning(task.workdir), [])
      }
      assert.isTrue(logged.some((line) => line.includes("refreshed seed")), "the broker's log lines are among those searched")
      assert.deepStrictEqual(logged.filter((line) => secrets.some((secret) => line.includes(secret))), [], "none in the worker's logs")
      const stats = yield* TokenBroker.use((b) => b.stats).pipe(Effect.provideContext(broker))
      assert.strictEqual(stats.upstreamRefreshes, 1)
      assert.isAtLeast(stats.served, 2)
    }).pipe(Effect.scoped), 240_000)

  it.live("a lost lease (the seed taken by a non-broker holder) ends the brokered session with LeaseLost: nothing presented upstream, nothing written", () =>
    Effect.gen(function*() {
      const state = new MemoryStoreState()
      const stores = Store.layerMemory({ state }).pipe(Layer.provide(BlobCrypto.layerPlaintext))
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([expired401(), expired401(), ModelScript.text("never")])
      const { seed } = yield* seedFor(issuer, server.baseUrl).pipe(Effect.provide(stores))
      const broker = yield* Layer.build(brokerLayer(issuer, stores))
      yield* Effect.gen(function*() {
        const workdir = freshDir("lost")
        const task = yield* startTask(chatgptTask(issuer, server.baseUrl, { seedId: seed.seedId }), workdir)
        const seeds = yield* SeedStore
        const lease = yield* Lease
        const held = Option.getOrThrow(yield* seeds.get(seed.seedId)).lease!
        yield* lease.release({ seedId: seed.seedId, holder: held.holder, epoch: held.epoch, expiresAt: held.expiresAt })
        assert.isTrue(Option.isSome(yield* lease.acquireSeed(seed.seedId, "file-mode-task")))
        const generation = Option.getOrThrow(yield* seeds.get(seed.seedId)).generation
        yield* task.live.sendTurn("go").pipe(Effect.ignore)
        const exit = yield* Fiber.await(task.session).pipe(Effect.timeout("60 seconds"))
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.strictEqual((error as { _tag?: string })._tag, "LeaseLost", String(error))
        const grants = (yield* issuer.tokenRequests).filter((request) => request.grantType === "refresh_token")
        assert.strictEqual(grants.length, 0, "nothing presented upstream")
        const after = Option.getOrThrow(yield* seeds.get(seed.seedId))
        assert.strictEqual(after.generation, generation, "nothing written")
        assert.strictEqual(after.lease?.holder, "file-mode-task")
        const progress = (yield* (yield* TaskRecorder).current).progress.map((entry) => entry.message ?? "").join("\n")
        assert.include(progress, "token broker")
        assert.deepStrictEqual(processesMentioning(workdir), [])
      }).pipe(
        Effect.provide(sessionServices("broker-lost", { state, tokenBroker: Layer.succeedContext(broker) })),
        Effect.provide(captureLogs)
      )
    }).pipe(Effect.scoped), 180_000)

  it.live("two worker processes on one embedded store, 401 to both at once: one upstream refresh, both continue, no refresh token anywhere", () =>
    Effect.gen(function*() {
      const dataDir = freshDir("shared-store")
      const stores = Store.layerEmbedded({ dataDir }).pipe(Layer.provide(BlobCrypto.layerPlaintext), Layer.orDie)
      const issuer = yield* startStandInIssuer()
      const servers = [
        yield* ScriptedModelServer.start([expired401(), expired401(), ModelScript.text("parent continues")]),
        yield* ScriptedModelServer.start([expired401(), expired401(), ModelScript.text("child continues")])
      ] as const
      const storeContext = yield* Layer.build(stores)
      const { seed, minted } = yield* seedFor(issuer, servers[0].baseUrl).pipe(Effect.provideContext(storeContext))
      const broker = yield* Layer.build(brokerLayer(issuer, stores))
      const services = yield* Layer.build(Layer.mergeAll(sessionServices("broker-parent", { stores, tokenBroker: Layer.succeedContext(broker) }), captureLogs))
      const parentWorkdir = freshDir("broker-parent")
      const parent = yield* startTask(chatgptTask(issuer, servers[0].baseUrl, { seedId: seed.seedId }), parentWorkdir).pipe(
        Effect.provideContext(services),
        Effect.provideContext(broker)
      )

      // The second worker: another node process with its own broker over the same store.
      const childWorkdir = freshDir("broker-child")
      const child = spawn(process.execPath, [join(repoRoot, "test", "support", "brokerWorker.ts"), JSON.stringify({
        dataDir, seedId: seed.seedId, processId: "broker-child", workdir: childWorkdir, baseUrl: servers[1].baseUrl, issuerTokenUrl: issuer.tokenUrl
      })], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, OPTIO_CODEX_TASK_ROOT: taskRoot } })
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      let childOut = ""
      let childLogs = ""
      child.stdout.on("data", (chunk: Buffer) => void (childOut += chunk.toString("utf8")))
      child.stderr.on("data", (chunk: Buffer) => void (childLogs += chunk.toString("utf8")))
      yield* waitUntil("the second worker's codex is live", Effect.suspend(() =>
        childOut.includes("@@failed") || child.exitCode !== null
          ? Effect.die(new Error(`the second worker failed: ${childOut}\n${childLogs.slice(-4000)}`))
          : Effect.succeed(childOut.includes("@@ready") ? true : undefined)
      ), "90 seconds")

      // Both turns at once: each worker's codex gets 401 twice and asks its own broker.
      child.stdin.write("go\n")
      yield* parent.live.sendTurn("go")
      const continued = yield* Effect.all(servers.map(answered), { concurrency: "unbounded" })

      const grants = (yield* issuer.tokenRequests).filter((request) => request.grantType === "refresh_token")
      assert.strictEqual(grants.length, 1, "exactly one upstream refresh across both workers")
      assert.strictEqual(grants[0]?.refreshToken, minted.refreshToken)
      const rotated = grants[0]!.issuedRefreshToken!
      const newAccess = (yield* issuer.accessTokens).at(-1)!
      for (const [index, request] of continued.entries()) {
        assert.strictEqual(request.bearerFingerprint, tokenFingerprint(newAccess),
          `${index === 0 ? "parent" : "child"} continued on the new access token (minted ${tokenFingerprint(minted.accessToken)}); child log tail:\n${childLogs.slice(-3000)}`)
      }
      const stored = Option.getOrThrow(yield* readStoredCredentials(seed.seedId).pipe(Effect.provideContext(storeContext)))
      assert.strictEqual(stored.refreshToken, rotated, "the store holds the rotated token")

      child.stdin.write("stop\n")
      yield* waitUntil("the second worker stopped", Effect.sync(() => childOut.includes("@@done") ? true : undefined), "60 seconds")
      const childStats = JSON.parse(childOut.split("@@done ")[1]!.split("\n")[0]!) as { upstreamRefreshes: number; served: number }
      const parentStats = yield* TokenBroker.use((b) => b.stats).pipe(Effect.provideContext(broker))
      assert.strictEqual(childStats.upstreamRefreshes + parentStats.upstreamRefreshes, 1)
      assert.strictEqual(childStats.served + parentStats.served, 2, "each codex refreshed once, at its own worker's broker")
      yield* Fiber.interrupt(parent.session)

      const secrets = [minted.refreshToken, rotated]
      assert.deepStrictEqual(filesHolding([taskRoot, parentWorkdir, childWorkdir], secrets), [], "no refresh token in either task tree")
      for (const name of ["broker-parent", "broker-child"]) {
        const restored = freshDir(`${name}-snapshot`)
        const doc = Option.getOrThrow(yield* SnapshotStore.use((store) => store.latest(name)).pipe(Effect.provideContext(storeContext)))
        yield* restoreSnapshot(doc, restored).pipe(Effect.provideContext(storeContext), Effect.provide(LocalHost.layer()))
        assert.deepStrictEqual(filesHolding([restored], secrets), [], `none in ${name}'s snapshot`)
      }
      assert.isTrue(childLogs.length > 0, "the second worker logged")
      for (const logs of [childLogs, childOut, logged.join("\n")]) {
        assert.isFalse(secrets.some((secret) => logs.includes(secret)), "none in the workers' logs")
      }
      assert.deepStrictEqual(processesMentioning(parentWorkdir), [])
      assert.deepStrictEqual(processesMentioning(childWorkdir), [])
    }).pipe(Effect.scoped), 300_000)
})

