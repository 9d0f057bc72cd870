/**
 * Faults at teardown, with the real codex app-server and a seeded session:
 * - the seed store is unreachable when the final credential save-back runs → retried with
 *   backoff, then the session fails loudly with TeardownFailed, and the task dir — holding the
 *   only copy of the rotated auth.json — is kept;
 * - the store comes back while the save-back retries → the credentials reach the seed, nothing lost;
 * - the filesystem holding the workdir and the store fills up during the snapshot (a small tmpfs)
 *   → a typed error, and the seed stays as it was.
 *
 * What would break without the handling: a save-back that gives up silently loses the rotated
 * token (its predecessor is spent at the issuer), and removing the task dir deletes the last copy;
 * a snapshot failure swallowed in a finalizer would report success.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { randomFillSync } from "node:crypto"
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import { AUTH_MEMBER, packSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { StoreUnavailable } from "../../src/persistence/StoreError.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { layoutOf } from "../support/taskLayout.ts"
import { faultRoot, noProcessMentions } from "./harness.ts"
import { recordOutcome } from "./summary.ts"

const dirs = faultRoot("teardown-store")
// Task-owned workdirs (not explicit ones): the session would remove them at the end.
const taskRoot = dirs.taskRoot

/** An outage switch in front of the seed store: while down, blob reads and writes fail. */
interface Outage {
  down: boolean
  /** Injected failures left before the store "comes back" by itself. */
  failuresLeft: number
  injected: number
}

const flakySeedStore = (outage: Outage) =>
  Layer.effectContext(Effect.gen(function*() {
    const seeds = yield* SeedStore
    const guard = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | StoreUnavailable, R> =>
      Effect.suspend((): Effect.Effect<A, E | StoreUnavailable, R> => {
        if (!outage.down) return effect
        if (outage.failuresLeft <= 0) {
          outage.down = false
          return effect
        }
        outage.failuresLeft -= 1
        outage.injected += 1
        return Effect.fail(new StoreUnavailable({ backend: "memory", operation: "seed blob", detail: "injected outage: connection refused" }))
      })
    return Context.make(SeedStore, {
      ...seeds,
      readBlob: (seedId) => guard(seeds.readBlob(seedId)),
      writeBlob: (seedId, expected, blob) => guard(seeds.writeBlob(seedId, expected, blob))
    }).pipe(Context.add(Lease, yield* Lease), Context.add(SnapshotStore, yield* SnapshotStore))
  })).pipe(Layer.provide(Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext))))

const runLayer = <E>(processId: string, stores: Layer.Layer<SeedStore | Lease | SnapshotStore, E>) =>
  sessionServices(processId, {
    stores,
    credWatcher: { pollInterval: "100 millis", renewInterval: "500 millis", saveBackAttempts: 4, saveBackBackoff: "50 millis" }
  })

const API_KEY_AUTH = new TextEncoder().encode(JSON.stringify({ OPENAI_API_KEY: "sk-optio-offline" }))
const ROTATED_AUTH = JSON.stringify({ OPENAI_API_KEY: "sk-rotated-during-the-task" })

const seedInPool = (poolKey: string) =>
  SeedStore.use((seeds) => seeds.create({ blob: Stream.succeed(packSeedArchive([{ name: AUTH_MEMBER, bytes: API_KEY_AUTH, mode: 0o600 }])), poolKey }))

const liveProgress = Effect.gen(function*() {
  const recorder = yield* TaskRecorder
  return yield* waitUntil("codex is live", recorder.current.pipe(Effect.map((record) =>
    record.progress.some((entry) => entry.message === "Codex conversation is live") ? true : undefined
  )), "60 seconds")
})

/** Runs a seeded conversation task that rotates its credentials, then finishes with DONE. */
const rotateThenFinish = (processId: string, outage: Outage, pool: string) =>
  Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([])
    const seed = yield* seedInPool(pool)
    const layout = layoutOf({ processId, taskRoot })
    const workdir = layout.workdir
    const session = yield* runCodexSession(
      { consumerInstructions: "teardown faults", mode: "conversation", seedPool: pool, ...demoTaskSettings(server.baseUrl) },
      { stopGracePeriod: "2 seconds" }
    ).pipe(Effect.forkChild)
    yield* liveProgress
    outage.down = true
    writeFileSync(join(layout.codexHome, "auth.json"), ROTATED_AUTH, { mode: 0o600 })
    appendFileSync(join(workdir, "optio.log"), "DONE: finished\n")
    const exit = yield* Fiber.await(session).pipe(Effect.timeout("60 seconds"))
    return { exit, seed, workdir, codexHome: layout.codexHome }
  })

describe("fault: the store at teardown", () => {
  it.live("unreachable for good: retries, then TeardownFailed, and the task dir with auth.json is kept", () =>
    Effect.gen(function*() {
      const outage: Outage = { down: false, failuresLeft: Number.POSITIVE_INFINITY, injected: 0 }
      const { codexHome, exit, seed, workdir } = yield* rotateThenFinish("store-down", outage, "down").pipe(
        Effect.provide(runLayer("store-down", flakySeedStore(outage)))
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.strictEqual((error as { _tag?: string })._tag, "TeardownFailed", String(error))
      const message = (error as Error).message
      assert.include(message, "credential save-back")
      assert.include(message, "after the task succeeded")
      assert.match(message, /after 4 attempt/)
      // The only copy of the rotated credentials is still on disk.
      assert.strictEqual(readFileSync(join(codexHome, "auth.json"), "utf8"), ROTATED_AUTH)
      outage.down = false
      assert.strictEqual(seed.generation, 0)
      yield* noProcessMentions(workdir, "2 seconds")
      recordOutcome(
        "store unreachable at teardown",
        `TeardownFailed: "${message.slice(0, 160)}…"; ${outage.injected} injected failures; task dir and auth.json kept`
      )
    }), 120_000)

  it.live("back in time: the retried save-back stores the rotated credentials, the task succeeds", () =>
    Effect.gen(function*() {
      const outage: Outage = { down: false, failuresLeft: 2, injected: 0 }
      const outcome = yield* Effect.gen(function*() {
        const { exit, seed, workdir } = yield* rotateThenFinish("store-back", outage, "back")
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        const stored = Option.getOrThrow(yield* SeedStore.use((seeds) => seeds.get(seed.seedId)))
        assert.isAtLeast(stored.generation, 1, "the rotated credentials reached the seed")
        assert.isFalse(existsSync(workdir), "nothing left to keep: the task dir is removed")
        return `success; ${outage.injected} injected failures absorbed by retries; seed at generation ${stored.generation}`
      }).pipe(Effect.provide(runLayer("store-back", flakySeedStore(outage))))
      recordOutcome("store back in time at teardown", outcome)
    }), 120_000)
})

describe("fault: disk full during the snapshot", () => {
  const mountPoint = join(dirs.root, "small-fs")

  it.live("a small tmpfs fills up: typed TeardownFailed naming the snapshot, the seed untouched", () =>
    Effect.gen(function*() {
      mkdirSync(mountPoint, { recursive: true })
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mountPoint])
      yield* Effect.addFinalizer(() => Effect.sync(() => execFileSync("umount", ["-l", mountPoint])))
      const workdir = join(mountPoint, "workdir")
      mkdirSync(workdir)
      // Incompressible bytes: the snapshot blob cannot fit beside them.
      writeFileSync(join(workdir, "dataset.bin"), randomFillSync(Buffer.alloc(4 * 1024 * 1024)))
      const stores = Store.layerEmbedded({ dataDir: join(mountPoint, "store") }).pipe(Layer.provide(BlobCrypto.layerPlaintext))
      const outcome = yield* Effect.gen(function*() {
        const server = yield* ScriptedModelServer.start([])
        const seed = yield* seedInPool("disk")
        const session = yield* runCodexSession(
          { consumerInstructions: "disk full", mode: "conversation", seedPool: "disk", ...demoTaskSettings(server.baseUrl) },
          { workdir, stopGracePeriod: "2 seconds" }
        ).pipe(Effect.forkChild)
        yield* liveProgress
        appendFileSync(join(workdir, "optio.log"), "DONE: finished\n")
        const exit = yield* Fiber.await(session).pipe(Effect.timeout("60 seconds"))
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.strictEqual((error as { _tag?: string })._tag, "TeardownFailed", String(error))
        const message = (error as Error).message
        assert.include(message, "snapshot")
        assert.match(message, /ENOSPC|no space/i)
        const after = Option.getOrThrow(yield* SeedStore.use((seeds) => seeds.get(seed.seedId)))
        assert.strictEqual(after.generation, 0)
        assert.strictEqual(after.blobId, seed.blobId, "the seed's blob is the one it had")
        assert.isUndefined(after.lease?.expiresAt && after.lease.expiresAt > new Date() ? after.lease : undefined, "lease released")
        assert.lengthOf(yield* SnapshotStore.use((store) => store.list("disk-full")), 0)
        yield* noProcessMentions(workdir, "2 seconds")
        return `TeardownFailed: "${message.slice(0, 140)}…"; seed untouched; no snapshot row`
      }).pipe(Effect.provide(runLayer("disk-full", stores)))
      recordOutcome("disk full during snapshot", outcome)
    }).pipe(Effect.scoped), 120_000)
})

afterAll(dirs.remove)
