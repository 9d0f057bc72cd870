/**
 * Seeds end to end with the real codex app-server: ChatGPT-mode credentials from a pooled seed,
 * rotated by codex itself against the stand-in issuer (the scripted model answers 401), saved back
 * into the seed while the session runs and at teardown; a lease stolen mid-session ends the session
 * with LeaseLost and the old holder never writes again; a setup task captures a new seed; a seeded
 * resume takes its credentials from the seed, not from the snapshot.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Stream } from "effect"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import { ConfigError } from "../../src/config/ConfigError.ts"
import { AUTH_MEMBER, findMember, unpackSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { saveCredentials } from "../../src/credentials/SeedEngine.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import type { StandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { restoreSnapshot } from "../../src/snapshots/WorkdirSnapshot.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { chatgptTask as chatgptTaskOf, expired401, mintedSeed } from "../support/chatgptTask.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { layoutOf } from "../support/taskLayout.ts"

const root = join(repoRoot, ".cache", "test", `e2e-seeds-${process.pid}`)
// Every task's trusted files (codex's home with auth.json) live under the task root.
const taskRoot = join(root, "tasks")
process.env["OPTIO_CODEX_TASK_ROOT"] = taskRoot
const codexHomeOf = (workdir: string) => layoutOf({ processId: "any", taskRoot, workdir }).codexHome
const RENEW = "400 millis"

const runLayer = (state: MemoryStoreState, processId: string, options: { readonly resume?: boolean } = {}) =>
  sessionServices(processId, {
    state,
    resume: options.resume ?? false,
    credWatcher: { pollInterval: "100 millis", renewInterval: RENEW, leaseTtl: "3 seconds", saveBackAttempts: 3, saveBackBackoff: "50 millis" }
  })

const freshDir = (name: string) => {
  const dir = join(root, name)
  mkdirSync(dir, { recursive: true })
  return dir
}

/** codex reloads auth.json on a first 401 and refreshes at the issuer on the second. */
const rotation = () => [expired401(), expired401()]

interface AuthFile {
  readonly tokens: { readonly refresh_token: string }
}

/** A pooled seed holding a minted ChatGPT login and the ChatGPT-mode offline config. */
const pooledSeed = (issuer: StandInIssuer, baseUrl: string, poolKey: string) => mintedSeed(issuer, baseUrl, poolKey)

/** The refresh token stored in a seed's blob now. */
const storedRefreshToken = (seedId: string) =>
  Effect.gen(function*() {
    const seeds = yield* SeedStore
    const blob = yield* seeds.readBlob(seedId)
    const chunks = yield* Stream.runCollect(blob.bytes)
    const members = yield* unpackSeedArchive(Buffer.concat(chunks.map((chunk) => Buffer.from(chunk))))
    const auth = findMember(members, AUTH_MEMBER)
    return { generation: blob.seed.generation, refreshToken: (JSON.parse(new TextDecoder().decode(auth?.bytes)) as AuthFile).tokens.refresh_token }
  })

const chatgptTask = (issuer: StandInIssuer, baseUrl: string, extra: Record<string, unknown> = {}) =>
  chatgptTaskOf(issuer, baseUrl, "seeded e2e", extra)

describe("seeds with the real codex", () => {
  it.live("codex rotates twice; each rotation reaches the seed; cancel leaves the seed with the live token", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([...rotation(), ModelScript.text("first"), ...rotation(), ModelScript.text("second")])
      const { seed, minted } = yield* pooledSeed(issuer, server.baseUrl, "team")
      const conversation = yield* Deferred.make<CodexConversation>()
      const workdir = freshDir("rotate")
      const session = yield* runCodexSession(chatgptTask(issuer, server.baseUrl, { seedPool: "team" }), {
        workdir,
        stopGracePeriod: "2 seconds",
        onConversation: (live) => Deferred.succeed(conversation, live)
      }).pipe(Effect.forkChild)
      const live = yield* Deferred.await(conversation)

      yield* live.sendTurn("first turn")
      const firstToken = yield* waitUntil("the first rotation saved into the seed", Effect.gen(function*() {
        const tokens = yield* issuer.liveRefreshTokens
        const stored = yield* storedRefreshToken(seed.seedId)
        return stored.generation >= 1 && tokens.includes(stored.refreshToken) && stored.refreshToken !== minted.refreshToken ? stored : undefined
      }), "60 seconds")

      yield* live.sendTurn("second turn")
      yield* waitUntil("the second rotation saved into the seed", Effect.gen(function*() {
        const tokens = yield* issuer.liveRefreshTokens
        const stored = yield* storedRefreshToken(seed.seedId)
        return stored.refreshToken !== firstToken.refreshToken && tokens.includes(stored.refreshToken) ? stored : undefined
      }), "60 seconds")

      yield* Fiber.interrupt(session)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(session)))
      const final = yield* storedRefreshToken(seed.seedId)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [final.refreshToken], "the seed holds the one live token")
      assert.include(yield* issuer.spentRefreshTokens, minted.refreshToken)

      // A write based on an older generation is refused and changes nothing.
      const stale = yield* saveCredentials({ seedId: seed.seedId, fence: { generation: 0 }, authBytes: minted.bytes }).pipe(Effect.flip)
      assert.strictEqual(stale._tag, "SeedWriteRejected")
      assert.strictEqual((yield* storedRefreshToken(seed.seedId)).refreshToken, final.refreshToken)
      // The lease was released: the pool hands the seed out again at once.
      const again = yield* Lease.use((lease) => lease.acquire("team", "next-task"))
      assert.strictEqual(Option.getOrThrow(again).seedId, seed.seedId)
      assert.deepStrictEqual(processesMentioning(workdir), [])
    }).pipe(Effect.scoped, Effect.provide(runLayer(new MemoryStoreState(), "seed-rotate"))), 180_000)

  it.live("a lease stolen mid-session ends it with LeaseLost; the old holder never writes the seed again", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([])
      const { seed } = yield* pooledSeed(issuer, server.baseUrl, "stolen")
      const workdir = freshDir("stolen")
      const session = yield* runCodexSession(chatgptTask(issuer, server.baseUrl, { seedPool: "stolen" }), { workdir, stopGracePeriod: "2 seconds" }).pipe(Effect.forkChild)
      const recorder = yield* TaskRecorder
      yield* waitUntil("codex is live", recorder.current.pipe(Effect.map((record) =>
        record.progress.some((entry) => entry.message === "Codex conversation is live") ? true : undefined
      )), "60 seconds")

      // Another worker takes the seed over: the lease is cleared, then acquired by a thief.
      const seeds = yield* SeedStore
      const held = Option.getOrThrow(yield* seeds.get(seed.seedId)).lease
      assert.isDefined(held)
      const lease = yield* Lease
      yield* lease.release({ seedId: seed.seedId, holder: held!.holder, epoch: held!.epoch, expiresAt: held!.expiresAt })
      const thief = yield* lease.acquire("stolen", "thief")
      assert.strictEqual(Option.getOrThrow(thief).seedId, seed.seedId)
      // The old holder's codex now "rotates": a save-back would write this into the seed.
      const rotated = yield* issuer.mintAuthJson()
      writeFileSync(join(codexHomeOf(workdir), "auth.json"), rotated.bytes, { mode: 0o600 })

      const exit = yield* Fiber.await(session).pipe(Effect.timeout("20 seconds"))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.strictEqual((error as { _tag?: string })._tag, "LeaseLost", String(error))
      const after = Option.getOrThrow(yield* seeds.get(seed.seedId))
      assert.strictEqual(after.generation, 0, "the old holder wrote nothing")
      assert.strictEqual(after.lease?.holder, "thief")
      const progress = (yield* recorder.current).progress.map((entry) => entry.message ?? "").join("\n")
      assert.include(progress, "credentials not saved back")
      const snapshot = Option.getOrThrow(yield* SnapshotStore.use((store) => store.latest("seed-stolen")))
      assert.strictEqual(snapshot.endState, "cancelled")
      assert.deepStrictEqual(processesMentioning(workdir), [])
    }).pipe(Effect.scoped, Effect.provide(runLayer(new MemoryStoreState(), "seed-stolen"))), 180_000)

  it.live("a setup task captures its login as a new seed and tells onSeedSaved", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([])
      const minted = yield* issuer.mintAuthJson()
      const saved = yield* Deferred.make<string>()
      const workdir = freshDir("capture")
      const session = yield* runCodexSession(chatgptTask(issuer, server.baseUrl), {
        workdir,
        stopGracePeriod: "2 seconds",
        hooks: {
          // Stands in for the operator logging in inside the task.
          beforeExecute: (ctx) =>
            Effect.sync(() => {
              writeFileSync(join(codexHomeOf(ctx.workdir), "auth.json"), minted.bytes, { mode: 0o600 })
            }),
          onSeedSaved: (seedId) => Deferred.succeed(saved, seedId).pipe(Effect.asVoid)
        }
      }).pipe(Effect.forkChild)
      const recorder = yield* TaskRecorder
      yield* waitUntil("codex is live", recorder.current.pipe(Effect.map((record) =>
        record.progress.some((entry) => entry.message === "Codex conversation is live") ? true : undefined
      )), "60 seconds")
      yield* Fiber.interrupt(session)
      const seedId = yield* Deferred.await(saved).pipe(Effect.timeout("10 seconds"))
      const stored = yield* storedRefreshToken(seedId)
      assert.strictEqual(stored.refreshToken, minted.refreshToken)
      assert.lengthOf(yield* SeedStore.use((seeds) => seeds.list()), 1)
    }).pipe(Effect.scoped, Effect.provide(runLayer(new MemoryStoreState(), "seed-capture"))), 180_000)

  it.live("capture and consume in one task are refused before anything starts", () =>
    Effect.gen(function*() {
      const error = yield* runCodexSession({ consumerInstructions: "x", seedPool: "team" }, {
        hooks: { onSeedSaved: () => Effect.void }
      }).pipe(Effect.flip)
      assert.instanceOf(error, ConfigError)
      assert.include(error.message, "lineage")
    }).pipe(Effect.scoped, Effect.provide(runLayer(new MemoryStoreState(), "seed-both"))))

  it.live("a seeded resume plants the seed's current credentials over the snapshot's", () =>
    Effect.gen(function*() {
      const state = new MemoryStoreState()
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([])
      const setup = yield* pooledSeed(issuer, server.baseUrl, "resume").pipe(Effect.provide(runLayer(state, "seed-resume-setup")))
      const first = freshDir("resume-first")
      const liveUntilCancelled = (workdir: string) =>
        Effect.gen(function*() {
          const session = yield* runCodexSession(chatgptTask(issuer, server.baseUrl, { seedPool: "resume" }), { workdir, stopGracePeriod: "2 seconds" }).pipe(
            Effect.forkChild
          )
          const recorder = yield* TaskRecorder
          yield* waitUntil("codex is live", recorder.current.pipe(Effect.map((record) =>
            record.progress.some((entry) => entry.message === "Codex conversation is live") ? true : undefined
          )), "60 seconds")
          const planted = (JSON.parse(readFileSync(join(codexHomeOf(workdir), "auth.json"), "utf8")) as AuthFile).tokens.refresh_token
          yield* Fiber.interrupt(session)
          return planted
        })
      const plantedFirst = yield* liveUntilCancelled(first).pipe(Effect.scoped, Effect.provide(runLayer(state, "seed-resume")))
      assert.strictEqual(plantedFirst, setup.minted.refreshToken)
      // A snapshot carries codex's rollouts and the workdir, never auth.json or config.toml: the
      // seed is the one copy of its lineage, and config.toml is rendered at every launch.
      const restored = freshDir("resume-inspect")
      yield* Effect.gen(function*() {
        const doc = Option.getOrThrow(yield* SnapshotStore.use((store) => store.latest("seed-resume")))
        yield* restoreSnapshot(doc, restored)
      }).pipe(Effect.provide(runLayer(state, "seed-resume-inspect")))
      assert.isFalse(existsSync(join(restored, "home/.codex/config.toml")))
      assert.isFalse(existsSync(join(restored, "home/.codex/auth.json")))

      // Meanwhile another task rotated the seed's credentials (a fenced write under its own lease).
      const newer = yield* issuer.mintAuthJson()
      yield* Effect.gen(function*() {
        const grant = Option.getOrThrow(yield* Lease.use((lease) => lease.acquire("resume", "other-task")))
        const doc = Option.getOrThrow(yield* SeedStore.use((seeds) => seeds.get(grant.seedId)))
        yield* saveCredentials({ seedId: grant.seedId, fence: { generation: doc.generation, lease: grant }, authBytes: newer.bytes })
        yield* Lease.use((lease) => lease.release(grant))
      }).pipe(Effect.provide(runLayer(state, "seed-resume-other")))

      const second = freshDir("resume-second")
      const plantedSecond = yield* liveUntilCancelled(second).pipe(Effect.scoped, Effect.provide(runLayer(state, "seed-resume", { resume: true })))
      assert.strictEqual(plantedSecond, newer.refreshToken, "credentials come from the seed, not the snapshot")
    }), 180_000)
})
