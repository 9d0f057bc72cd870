/**
 * snapshot: a workdir of many mixed files (full run: 200 MB / 10,000 files, partly
 * compressible) captured with `captureSnapshot` (zstd) into an embedded store with AES-GCM and
 * restored with `restoreSnapshot` into a fresh directory, against `tar czf` + `tar xzf` of the
 * same tree as child processes; interleaved round by round. Also the worker's peak RSS growth
 * during capture + restore (sampled every 20 ms), since the archive must stream, never buffer.
 *
 * Everything lives on a tmpfs (the run's work root when it is one, else /dev/shm), and the tree
 * is generated before anything big is deleted (this disk is slow to create files after mass
 * deletes).
 */
import { Effect, Layer, Redacted } from "effect"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { captureSnapshot, restoreSnapshot } from "../src/snapshots/WorkdirSnapshot.ts"
import { BlobCrypto } from "../src/store/BlobCrypto.ts"
import { Store } from "../src/store/Store.ts"
import type { BenchContext, BenchResult } from "./context.ts"
import { fmt, now, quantile } from "./harness.ts"
import type { Row } from "./harness.ts"

const SNAPSHOT_KEY = Redacted.make("bench-snapshot-key-0123456789abcdef01234")
const GOAL_RATIO = 0.3
const GOAL_MEMORY_MB = 64

/** Writes `files` files of about `bytes` in total under `dir`: many small, a few large, each half random. */
export const generateTree = (dir: string, files: number, bytes: number) => {
  // Shares of the files and the bytes: 90% small files hold 20%, 9% medium 27%, 1% large 53%.
  const classes = [
    { count: Math.round(files * 0.9), share: 0.2 },
    { count: Math.round(files * 0.09), share: 0.27 },
    { count: Math.max(1, files - Math.round(files * 0.9) - Math.round(files * 0.09)), share: 0.53 }
  ]
  const text = Buffer.from(
    "export const handler = async (event) => { return { statusCode: 200, body: JSON.stringify(event) } }\n".repeat(64)
  )
  let index = 0
  for (const { count, share } of classes) {
    const size = Math.max(1, Math.floor((bytes * share) / count))
    for (let i = 0; i < count; i++, index++) {
      const sub = join(dir, `pkg${index % 50}`, `mod${index % 7}`)
      if (index < 350) mkdirSync(sub, { recursive: true })
      // Half of each file random, half repetitive source-like text: "partly compressible".
      const random = randomBytes(Math.floor(size / 2))
      const body = Buffer.alloc(size)
      random.copy(body)
      for (let offset = random.length; offset < size; offset += text.length) text.copy(body, offset, 0, Math.min(text.length, size - offset))
      writeFileSync(join(sub, `file-${index}.${index % 3 === 0 ? "ts" : index % 3 === 1 ? "json" : "bin"}`), body)
    }
  }
  return index
}

const run = (command: string, args: ReadonlyArray<string>) =>
  Effect.callback<void, Error>((resume) => {
    execFile(command, [...args], { maxBuffer: 1024 * 1024 }, (error, _stdout, stderr) => {
      resume(error === null ? Effect.void : Effect.fail(new Error(`${command} ${args.join(" ")}: ${error.message} ${stderr}`)))
    })
  })

const countFiles = (dir: string): number =>
  readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).length

/** Peak RSS growth (MB) over `body`, sampled every 20 ms. */
const peakGrowth = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }, 20)
    const result = yield* body.pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
    peak = Math.max(peak, process.memoryUsage().rss)
    return [result, (peak - baseline) / 1e6] as const
  })

export const runSnapshot = (ctx: BenchContext) =>
  Effect.gen(function*() {
    const { snapshotFiles, snapshotMB, snapshotRounds } = ctx.counts
    const shm = ctx.space.filesystem !== "tmpfs" && existsSync("/dev/shm")
    const base = shm ? join("/dev/shm", `optio-bench-snapshot-${process.pid}`) : ctx.space.fresh("snapshot")
    mkdirSync(base, { recursive: true })
    yield* Effect.addFinalizer(() => Effect.sync(() => shm && rmSync(base, { recursive: true, force: true })))

    const tree = join(base, "tree")
    mkdirSync(tree)
    const generatedAt = now()
    const files = generateTree(tree, snapshotFiles, snapshotMB * 1e6)
    ctx.log(`snapshot: ${files} files, ${snapshotMB} MB generated in ${((now() - generatedAt) / 1000).toFixed(1)} s on ${shm ? "/dev/shm" : ctx.space.filesystem}`)

    const store = Store.layerEmbedded({ dataDir: join(base, "store") }).pipe(
      Layer.provide(BlobCrypto.layerAesGcm({ snapshotKey: SNAPSHOT_KEY }))
    )
    const library: Array<number> = []
    const captures: Array<number> = []
    const restores: Array<number> = []
    const baseline: Array<number> = []
    const memory: Array<number> = []
    let storedMB = 0
    let tarMB = 0
    let round = 0
    const total = ctx.counts.warmup + snapshotRounds
    for (let index = 0; index < total; index++) {
      const timed = index >= ctx.counts.warmup
      const restored = join(base, `restored-${index}`)
      const [times, growth] = yield* peakGrowth(Effect.gen(function*() {
        const began = now()
        const doc = yield* captureSnapshot({
          workdir: tree,
          processId: "bench-snapshot",
          endState: "done",
          sessionId: null,
          exclude: [],
          codec: "zstd"
        })
        const captured = now()
        yield* restoreSnapshot(doc, restored)
        return { capture: captured - began, restore: now() - captured, doc }
      }).pipe(Effect.provide(store)))
      if (index === 0) {
        const restoredFiles = countFiles(restored)
        if (restoredFiles !== files) return yield* Effect.fail(new Error(`restored ${restoredFiles} files of ${files}`))
        storedMB = statSync(join(base, "store", "blobs", times.doc.workdirBlobId)).size / 1e6
      }
      rmSync(restored, { recursive: true, force: true })

      const archive = join(base, `tar-${index}.tar.gz`)
      const extracted = join(base, `tar-restored-${index}`)
      mkdirSync(extracted)
      const tarBegan = now()
      yield* run("tar", ["czf", archive, "-C", tree, "."])
      yield* run("tar", ["xzf", archive, "-C", extracted])
      const tarTime = now() - tarBegan
      if (index === 0) tarMB = statSync(archive).size / 1e6
      rmSync(extracted, { recursive: true, force: true })
      rmSync(archive, { force: true })

      if (!timed) continue
      round++
      library.push(times.capture + times.restore)
      captures.push(times.capture)
      restores.push(times.restore)
      baseline.push(tarTime)
      memory.push(growth)
      ctx.log(`snapshot round ${round}: library ${fmt(times.capture)}+${fmt(times.restore)} ms, tar ${fmt(tarTime)} ms, RSS +${fmt(growth)} MB`)
    }

    const ratio = quantile(library, 0.5) / quantile(baseline, 0.5)
    const peak = Math.max(...memory)
    const rows: ReadonlyArray<Row> = [
      {
        name: "snapshot",
        what: `captureSnapshot (zstd, AES-GCM, embedded store) + restoreSnapshot, ${snapshotMB} MB / ${files} files`,
        unit: "ms",
        samples: library,
        baseline: "snapshot/tar",
        goal: `≤ ${GOAL_RATIO}× snapshot/tar`,
        met: ratio <= GOAL_RATIO,
        notes: `capture ${fmt(quantile(captures, 0.5))} ms + restore ${fmt(quantile(restores, 0.5))} ms; stored ${fmt(storedMB)} MB`
      },
      {
        name: "snapshot/tar",
        what: "`tar czf` + `tar xzf` of the same tree (child processes)",
        unit: "ms",
        samples: baseline,
        notes: `archive ${fmt(tarMB)} MB`
      },
      {
        name: "snapshot/memory",
        what: "worker peak RSS growth during capture + restore",
        unit: "MB",
        samples: memory,
        goal: `< ${GOAL_MEMORY_MB} MB`,
        met: peak < GOAL_MEMORY_MB,
        notes: `peak over rounds ${fmt(peak)} MB`
      }
    ]
    const result: BenchResult = {
      rows,
      data: { files, megabytes: snapshotMB, storedMB, tarMB, ratio, library, captures, restores, baseline, memory }
    }
    return result
  }).pipe(Effect.scoped)
