/**
 * The store contract on the embedded backend (node:sqlite + blob files), plus what only it can
 * show: several OS processes sharing one data dir, persistence across reopen, and the default
 * data directory.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream } from "effect"
import { spawn } from "node:child_process"
import type { ChildProcessWithoutNullStreams } from "node:child_process"
import { mkdirSync, rmSync } from "node:fs"
import { chmod, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { StoreHarness, storeContract } from "./StoreContract.ts"

const root = join(process.cwd(), ".cache", "test", `embedded-store-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

const freshDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(root, "ns-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)
const open = (dataDir: string, crypto: Layer.Layer<BlobCrypto, unknown> = BlobCrypto.layerPlaintext) =>
  Store.layerEmbedded({ dataDir }).pipe(Layer.provide(crypto))

const harness = Layer.succeed(StoreHarness, StoreHarness.of({
  blobsInMemory: false,
  bigBlobMiB: 32,
  fresh: Effect.map(freshDir, (dataDir) => ({
    open: (crypto) => open(dataDir, crypto),
    rawBlob: (blobId) =>
      Effect.promise(() => readFile(join(dataDir, "blobs", blobId)).then((raw) => Option.some(new Uint8Array(raw)), () => Option.none())),
    // Counts temporary files too: an interrupted or failed upload must not leave one behind.
    blobCount: Effect.promise(() => readdir(join(dataDir, "blobs")).then((names) => names.length, () => 0))
  }))
}))

storeContract("embedded", harness)

const bytes = (text: string) => Stream.succeed(new TextEncoder().encode(text))
const racerScript = fileURLToPath(new URL("./fixtures/leaseRacer.ts", import.meta.url))

/** Starts a racer process for the life of the scope; resolves once it is ready. */
const startRacer = (dataDir: string, rounds: number) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, [racerScript, dataDir, String(rounds)], { stdio: ["pipe", "pipe", "pipe"] })),
      (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
    )
    const output = { stdout: "", stderr: "" }
    child.stdout.on("data", (chunk: Buffer) => {
      output.stdout += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      output.stderr += chunk.toString()
    })
    yield* Effect.callback<void, Error>((resume) => {
      const onData = () => {
        if (!output.stdout.startsWith("ready\n")) return
        child.stdout.off("data", onData)
        resume(Effect.void)
      }
      child.stdout.on("data", onData)
      child.once("exit", (code) => resume(Effect.fail(new Error(`racer exited ${code} before ready: ${output.stderr}`))))
    })
    return { child, output }
  })

const finished = (racer: { readonly child: ChildProcessWithoutNullStreams; readonly output: { stdout: string; stderr: string } }) =>
  Effect.callback<string, Error>((resume) => {
    const done = (code: number | null) =>
      resume(code === 0 ? Effect.succeed(racer.output.stdout) : Effect.fail(new Error(`racer exited ${code}: ${racer.output.stderr}`)))
    if (racer.child.exitCode !== null) return done(racer.child.exitCode)
    racer.child.once("exit", done)
  })

describe("embedded store across OS processes", () => {
  it.live("3 OS processes racing to acquire pooled seeds: exactly one holder per seed", () =>
    Effect.gen(function*() {
      const dataDir = yield* freshDir
      const rounds = 20
      yield* Effect.gen(function*() {
        const seeds = yield* SeedStore
        for (let round = 0; round < rounds; round++) yield* seeds.create({ blob: bytes(`seed-${round}`), poolKey: `race-${round}` })
      }).pipe(Effect.provide(open(dataDir)))
      const racers = yield* Effect.forEach([1, 2, 3], () => startRacer(dataDir, rounds), { concurrency: "unbounded" })
      for (const racer of racers) racer.child.stdin.write("go\n")
      const outputs = yield* Effect.forEach(racers, finished, { concurrency: "unbounded" })
      const wins = new Map<string, number>()
      for (const output of outputs) {
        const lines = output.split("\n").filter((line) => line.startsWith("{"))
        assert.strictEqual(lines.length, rounds)
        for (const line of lines) {
          const parsed: unknown = JSON.parse(line)
          if (typeof parsed !== "object" || parsed === null) return assert.fail(`bad racer line ${line}`)
          const pool = String(Reflect.get(parsed, "pool"))
          if (Reflect.get(parsed, "won") === true) wins.set(pool, (wins.get(pool) ?? 0) + 1)
        }
      }
      for (let round = 0; round < rounds; round++) assert.strictEqual(wins.get(`race-${round}`), 1, `pool race-${round}`)
      yield* Effect.gen(function*() {
        const seeds = yield* SeedStore
        const listed = yield* seeds.list()
        assert.isTrue(listed.every((seed) => seed.lease?.holder.startsWith("racer-") === true && seed.lease.epoch === 1))
      }).pipe(Effect.provide(open(dataDir)))
    }), 60_000)

  it.live("documents and blobs persist across reopen", () =>
    Effect.gen(function*() {
      const dataDir = yield* freshDir
      const created = yield* Effect.gen(function*() {
        const seeds = yield* SeedStore
        return yield* seeds.create({ blob: bytes("persisted"), poolKey: "p" })
      }).pipe(Effect.provide(open(dataDir)))
      yield* Effect.gen(function*() {
        const seeds = yield* SeedStore
        const blob = yield* seeds.readBlob(created.seedId)
        assert.strictEqual(blob.seed.poolKey, "p")
        const chunks = yield* Stream.runCollect(blob.bytes)
        assert.strictEqual(Buffer.concat(chunks).toString(), "persisted")
      }).pipe(Effect.provide(open(dataDir)))
    }))
})

describe("embedded store files at rest", () => {
  const writerScript = fileURLToPath(new URL("./fixtures/endlessBlobWriter.ts", import.meta.url))

  it.live("finding 7: a temporary blob left by a SIGKILL mid-snapshot is swept at the next open; a live writer's is kept", () =>
    Effect.gen(function*() {
      const dataDir = yield* freshDir
      const blobsDir = join(dataDir, "blobs")
      const child = spawn(process.execPath, [writerScript, dataDir], { stdio: ["ignore", "pipe", "pipe"] })
      yield* Effect.callback<void, Error>((resume) => {
        child.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("writing") && resume(Effect.void))
        child.once("exit", (code) => resume(Effect.fail(new Error(`the writer exited ${code} before writing`))))
      })
      const [leftover] = yield* waitUntil("the temporary blob exists", Effect.promise(() => readdir(blobsDir)).pipe(
        Effect.map((names) => names.some((name) => name.startsWith(".tmp-")) ? names : undefined)
      ))
      child.kill("SIGKILL")
      yield* Effect.callback<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
        else child.once("exit", () => resume(Effect.void))
      })
      // The killed write is old by now; another process's write in progress is fresh.
      const hourAndMinuteAgo = new Date(Date.now() - 61 * 60 * 1000)
      yield* Effect.promise(() => utimes(join(blobsDir, leftover ?? ""), hourAndMinuteAgo, hourAndMinuteAgo))
      yield* Effect.promise(() => writeFile(join(blobsDir, ".tmp-0123456789abcdef01234567"), "in progress"))
      yield* Effect.gen(function*() {
        yield* SeedStore
      }).pipe(Effect.provide(open(dataDir)))
      assert.deepStrictEqual((yield* Effect.promise(() => readdir(blobsDir))).filter((name) => name.startsWith(".tmp-")), [".tmp-0123456789abcdef01234567"])
    }))

  it.live("finding 7: store.sqlite is created 0600 and a pre-existing 0755 data dir is made 0700", () =>
    Effect.gen(function*() {
      const dataDir = yield* freshDir
      yield* Effect.promise(() => chmod(dataDir, 0o755))
      const previous = process.umask(0o022)
      try {
        yield* Effect.gen(function*() {
          yield* SeedStore
        }).pipe(Effect.provide(open(dataDir)))
      } finally {
        process.umask(previous)
      }
      assert.strictEqual((yield* Effect.promise(() => stat(dataDir))).mode & 0o777, 0o700)
      for (const name of (yield* Effect.promise(() => readdir(dataDir))).filter((name) => name.startsWith("store.sqlite"))) {
        assert.strictEqual((yield* Effect.promise(() => stat(join(dataDir, name)))).mode & 0o777, 0o600, name)
      }
      assert.strictEqual((yield* Effect.promise(() => stat(join(dataDir, "blobs")))).mode & 0o777, 0o700)
    }))
})

describe("Store.defaultDataDir", () => {
  it("prefers OPTIO_CODEX_DATA_DIR, then an absolute XDG_DATA_HOME, then ~/.local/share", () => {
    assert.strictEqual(Store.defaultDataDir({ OPTIO_CODEX_DATA_DIR: "/srv/optio", XDG_DATA_HOME: "/x" }, "/home/u"), "/srv/optio")
    assert.strictEqual(Store.defaultDataDir({ OPTIO_CODEX_DATA_DIR: "", XDG_DATA_HOME: "/x" }, "/home/u"), "/x/optio-codex")
    assert.strictEqual(Store.defaultDataDir({ XDG_DATA_HOME: "relative/data" }, "/home/u"), "/home/u/.local/share/optio-codex")
    assert.strictEqual(Store.defaultDataDir({}, "/home/u"), "/home/u/.local/share/optio-codex")
  })
})
