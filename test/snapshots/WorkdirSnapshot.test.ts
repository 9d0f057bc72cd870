/**
 * Workdir snapshots for real: the host's GNU tar through LocalHost, Node's zstd/gzip, and the
 * memory and embedded (AES-GCM) stores. Tests named `P<n>: …` pin a fix for that reference
 * pitfall (spec §9).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import { join } from "node:path"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as zlib from "node:zlib"
import { afterAll } from "vitest"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { DEFAULT_WORKDIR_EXCLUDE, effectiveWorkdirExclude } from "../../src/protocol/AgentsMd.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import type { SnapshotDoc } from "../../src/snapshots/SnapshotStore.ts"
import {
  ALWAYS_EXCLUDED,
  captureSnapshot,
  excludes,
  hidesRollouts,
  placeRestored,
  restoreSnapshot
} from "../../src/snapshots/WorkdirSnapshot.ts"
import type { CaptureSnapshotOptions } from "../../src/snapshots/WorkdirSnapshot.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { StoreUnavailable } from "../../src/persistence/StoreError.ts"

const root = join(process.cwd(), ".cache", "test-runs", `snapshots-${process.pid}`)
fs.rmSync(root, { recursive: true, force: true })
fs.mkdirSync(root, { recursive: true })
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

let counter = 0
const freshDir = (name: string) => {
  const dir = join(root, `${name}-${++counter}`)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

const memoryStore = Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext))
const embeddedStore = (dataDir: string, encrypted: boolean) =>
  Store.layerEmbedded({ dataDir }).pipe(
    Layer.provide(
      encrypted
        ? BlobCrypto.layerAesGcm({ snapshotKey: Redacted.make("snapshot-test-key-0123456789abcdef0123") })
        : BlobCrypto.layerPlaintext
    )
  )
const withStore = <A, E>(
  store: Layer.Layer<SnapshotStore, unknown>,
  body: Effect.Effect<A, E, Host | SnapshotStore>,
  host: Layer.Layer<Host> = LocalHost.layer()
) => body.pipe(Effect.provide(Layer.merge(store, host)))

/** Writes files (string content) and symlinks (`{ link }`) and dirs (`null`) under `dir`. */
type Entry = string | Uint8Array | null | { readonly link: string } | { readonly mode: number; readonly content: string }
const writeTree = (dir: string, entries: Readonly<Record<string, Entry>>) => {
  for (const [path, entry] of Object.entries(entries)) {
    const full = join(dir, path)
    if (entry === null) {
      fs.mkdirSync(full, { recursive: true })
      continue
    }
    fs.mkdirSync(join(full, ".."), { recursive: true })
    if (typeof entry === "string" || entry instanceof Uint8Array) fs.writeFileSync(full, entry)
    else if ("link" in entry) fs.symlinkSync(entry.link, full)
    else {
      fs.writeFileSync(full, entry.content)
      fs.chmodSync(full, entry.mode)
    }
  }
}

/** Every path under `dir` with its type, mode and content or link target. */
const describeTree = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(join(dir, rel))) {
      const path = rel === "" ? name : `${rel}/${name}`
      const full = join(dir, path)
      const info = fs.lstatSync(full)
      const mode = (info.mode & 0o7777).toString(8)
      if (info.isSymbolicLink()) out[path] = `link -> ${fs.readlinkSync(full)}`
      else if (info.isDirectory()) {
        out[path] = `dir ${mode}`
        walk(path)
      } else out[path] = `file ${mode} ${fs.readFileSync(full).toString("base64").slice(0, 80)} ${info.size}`
    }
  }
  walk("")
  return out
}

const capture = (workdir: string, overrides: Partial<CaptureSnapshotOptions> = {}) =>
  captureSnapshot({
    workdir,
    processId: "proc-1",
    endState: "done",
    sessionId: "0199a213-81c0-7800-8aa1-bbab2a035a53",
    exclude: [],
    codec: "zstd",
    ...overrides
  })

const ROLLOUT = "home/.codex/sessions/2026/11/27/rollout-2026-11-27T10-00-00-0199a213-81c0-7800-8aa1-bbab2a035a53.jsonl"

const richTree: Record<string, Entry> = {
  "AGENTS.md": "# task\n",
  "src/deep/er/file.txt": "nested\n",
  "empty-dir": null,
  "src/empty-nested/also-empty": null,
  "run.sh": { mode: 0o755, content: "#!/bin/sh\necho hi\n" },
  "secret.txt": { mode: 0o600, content: "s3cret" },
  "link-relative": { link: "src/deep/er/file.txt" },
  "link-absolute": { link: "/etc/hostname" },
  "link-dangling": { link: "does/not/exist" },
  "link-dir": { link: "src" },
  "name with spaces 'single' \"double\"\nnewline.txt": "odd name",
  "-starts-with-dash": "dash",
  "ünïcødé.txt": "utf8",
  [ROLLOUT]: "{\"type\":\"session_meta\"}\n",
  "binary.bin": randomBytes(300_000)
}

setFlagsFromString("--expose-gc")
const gc: unknown = runInNewContext("gc")
// Freed buffers stay in the RSS until a collection: start each measurement from a collected heap.
const collectGarbage = () => {
  if (typeof gc === "function") gc()
}

const collectBytes = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) =>
  Stream.runCollect(stream).pipe(Effect.map((chunks) => Buffer.concat(chunks)))

describe("WorkdirSnapshot", () => {
  it.live("round-trips nested and empty dirs, symlinks, modes and odd names (zstd, memory store)", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const workdir = freshDir("rich")
      writeTree(workdir, richTree)
      fs.chmodSync(join(workdir, "src/empty-nested"), 0o700)
      const before = describeTree(workdir)
      const doc = yield* capture(workdir, { endState: "cancelled" })
      assert.strictEqual(doc.codec, "zstd")
      assert.strictEqual(doc.endState, "cancelled")
      assert.strictEqual(doc.sessionId, "0199a213-81c0-7800-8aa1-bbab2a035a53")
      const latest = yield* (yield* SnapshotStore).latest("proc-1")
      assert.strictEqual(Option.getOrUndefined(latest)?.snapshotId, doc.snapshotId)

      const target = join(freshDir("rich-restored"), "workdir")
      yield* restoreSnapshot(doc, target)
      assert.deepStrictEqual(describeTree(target), before)
      // P33: one member format everywhere — relative names with directory entries.
      const members = execFileSync("tar", ["-t", "-f", "-"], {
        input: zlib.zstdDecompressSync(yield* collectBytes((yield* SnapshotStore).readBlob(doc)))
      }).toString().split("\n")
      assert.include(members, "empty-dir/")
      assert.include(members, "AGENTS.md")
    })))

  it.live("round-trips through the embedded store with AES-GCM and gzip; progress reports what was stored", () =>
    Effect.gen(function*() {
      const dataDir = freshDir("embedded-data")
      const workdir = freshDir("gzip")
      writeTree(workdir, richTree)
      const before = describeTree(workdir)
      const progress: Array<number> = []
      const restoredProgress: Array<number> = []
      const target = join(freshDir("gzip-restored"), "w")
      yield* withStore(embeddedStore(dataDir, true), Effect.gen(function*() {
        const doc = yield* capture(workdir, {
          codec: "gzip",
          onProgress: (bytes) => Effect.sync(() => progress.push(bytes))
        })
        assert.strictEqual(doc.codec, "gzip")
        const stored = fs.readFileSync(join(dataDir, "blobs", doc.workdirBlobId))
        // Encrypted at rest: neither gzip's magic nor any file content is visible.
        assert.notDeepEqual([...stored.subarray(0, 2)], [0x1f, 0x8b])
        assert.isFalse(stored.includes(Buffer.from("s3cret")))
        const plain = yield* collectBytes((yield* SnapshotStore).readBlob(doc))
        assert.deepStrictEqual([...plain.subarray(0, 2)], [0x1f, 0x8b])
        assert.isAbove(progress.length, 0)
        assert.strictEqual(progress.at(-1), plain.length)
        assert.deepStrictEqual(progress, [...progress].sort((a, b) => a - b))
        yield* restoreSnapshot(doc, target, { onProgress: (bytes) => Effect.sync(() => restoredProgress.push(bytes)) })
        assert.strictEqual(restoredProgress.at(-1), plain.length)
      }))
      assert.deepStrictEqual(describeTree(target), before)
    }))

  it.live("default excludes drop codex junk at the root and keep rollouts, auth, config and deliverables", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const workdir = freshDir("defaults")
      writeTree(workdir, {
        [ROLLOUT]: "{}\n",
        "home/.codex/auth.json": "{}",
        "home/.codex/config.toml": "model = 'x'\n",
        "deliverables/out.txt": "out",
        "AGENTS.md": "a",
        "resume.log": "2026-11-27T10:00:00Z\n",
        "home/.codex/packages/app-server-daemon/bin": "big",
        "home/.codex/state_5.sqlite": "db",
        "home/.codex/logs_2.sqlite-wal": "wal",
        "home/.codex/cache/c": "c",
        "home/.codex/tmp/t": "t",
        "home/.codex/.tmp/t": "t",
        "home/.codex/shell_snapshots/s.sh": "s",
        "home/.codex/models_cache.json": "{}",
        "home/.codex/version.json": "{}",
        "home/.codex/installation_id": "id",
        "home/.codex/log/codex.log": "l",
        "home/.cache/x": "x",
        ".git/HEAD": "ref",
        "deep/er/.git/HEAD": "ref",
        "deep/node_modules/m/index.js": "m",
        "deep/a.pyc": "pyc",
        "deep/b.sqlite3": "db",
        // Anchored entries only prune at the workdir root.
        "x/home/.codex/packages/keep.txt": "kept",
        "x/home/.cache/keep.txt": "kept",
        "notgit/.gitignore": "kept: .git matches whole segments only"
      })
      const doc = yield* capture(workdir, { exclude: effectiveWorkdirExclude(null) })
      const target = freshDir("defaults-restored")
      yield* restoreSnapshot(doc, target)
      const files = Object.entries(describeTree(target)).filter(([, what]) => what.startsWith("file")).map(([path]) => path).sort()
      assert.deepStrictEqual(files, [
        "AGENTS.md",
        "deliverables/out.txt",
        "home/.codex/auth.json",
        "home/.codex/config.toml",
        ROLLOUT,
        "notgit/.gitignore",
        "resume.log",
        "x/home/.cache/keep.txt",
        "x/home/.codex/packages/keep.txt"
      ].sort())
    })))

  it.live("ALWAYS_EXCLUDED applies even to an empty list; patterns are argv, never shell; `.*` does not drop the tree", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const workdir = freshDir("always")
      writeTree(workdir, {
        "home/.codex/packages/p": "p",
        "a/b.sqlite": "db",
        ".git/HEAD": "kept: the user list is empty",
        ".hidden/x": "x",
        "visible/.dot": "x",
        "visible/y": "y"
      })
      const empty = yield* capture(workdir, { exclude: [] })
      const emptyTarget = freshDir("always-restored")
      yield* restoreSnapshot(empty, emptyTarget)
      assert.deepStrictEqual(Object.keys(describeTree(emptyTarget)).sort(), [
        ".git",
        ".git/HEAD",
        ".hidden",
        ".hidden/x",
        "a",
        "home",
        "home/.codex",
        "visible",
        "visible/.dot",
        "visible/y"
      ])
      const marker = join(root, "shell-ran")
      const dots = yield* capture(workdir, { exclude: [".*", `$(touch ${marker})`, "; touch ${marker}"] })
      const dotsTarget = freshDir("dots-restored")
      yield* restoreSnapshot(dots, dotsTarget)
      assert.deepStrictEqual(Object.keys(describeTree(dotsTarget)).sort(), ["a", "home", "visible", "visible/y"])
      assert.isFalse(fs.existsSync(marker))
    })))

  it.live("`excludes` predicts exactly what tar drops (one matching engine, P33)", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const paths = [
        "a.txt",
        "dir/a.txt",
        "dir/sub/b.log",
        "home/.codex/packages/x",
        "x/home/.codex/packages/y",
        "build/out/z.o",
        "src/build/q",
        "data/2026/report.csv",
        ".env",
        "cfg/.env.local",
        "-dash/f"
      ]
      const patterns = [".*", "*", "?", "-*", "*.txt", "build", "home/.codex/packages", "dir/*", "data/*.csv", ".env*", "d?r", "[bs]*", "dir/sub", "*/*.o"]
      const workdir = freshDir("engine")
      writeTree(workdir, Object.fromEntries(paths.map((path) => [path, path])))
      for (const pattern of patterns) {
        // Excluded on top of ALWAYS_EXCLUDED, which drops home/.codex/packages for every pattern.
        const doc = yield* capture(workdir, { exclude: [pattern], processId: `engine-${pattern}` })
        const target = freshDir("engine-restored")
        yield* restoreSnapshot(doc, target)
        const kept = new Set(Object.keys(describeTree(target)))
        for (const path of paths) {
          const predicted = excludes(pattern, path) || ALWAYS_EXCLUDED.some((always) => excludes(always, path))
          assert.strictEqual(!kept.has(path), predicted, `pattern ${pattern} on ${path}`)
        }
      }
    })))

  it("hidesRollouts flags every pattern that would drop home/.codex/sessions or a rollout", () => {
    for (const pattern of ["sessions", "home/.codex/sessions", "/home/.codex/sessions/", "home/.codex", "home", ".codex", "*", "*.jsonl", "rollout-*", "home/*", "home/.codex/sessions/2025/*", "2026", "[0-9]*", "s*s"]) {
      assert.isTrue(hidesRollouts(pattern), pattern)
    }
    for (const pattern of [...DEFAULT_WORKDIR_EXCLUDE, ...ALWAYS_EXCLUDED, "x/home/.codex/sessions", "sessions-old", "*.log", "home/.codex/sessions-backup", ""]) {
      assert.isFalse(hidesRollouts(pattern), pattern)
    }
  })

  /** Captures `workdir` on `host` into a fresh embedded store; the typed failure, after checking nothing was stored. */
  const failedCapture = (name: string, workdir: string, host: Layer.Layer<Host>) =>
    Effect.gen(function*() {
      const dataDir = freshDir(`${name}-data`)
      const error = yield* withStore(embeddedStore(dataDir, false), Effect.gen(function*() {
        const failure = yield* Effect.flip(capture(workdir))
        assert.deepStrictEqual(yield* (yield* SnapshotStore).list("proc-1"), [])
        return failure
      }), host)
      assert.deepStrictEqual(fs.readdirSync(join(dataDir, "blobs")), [])
      assert.strictEqual(error._tag, "SnapshotCaptureFailed")
      if (error._tag !== "SnapshotCaptureFailed") throw new Error(`expected SnapshotCaptureFailed, got ${error._tag}`)
      assert.strictEqual(error.stage, "archive")
      return error
    })

  it.live("a tar failure mid-stream fails typed and stores nothing (embedded store: no blob left)", () =>
    Effect.gen(function*() {
      const workdir = freshDir("fail")
      writeTree(workdir, { "big.bin": randomBytes(6 * 1024 * 1024), "small.txt": "x" })
      // A real tar failure after real output: the entry vanishes between listing and archiving.
      const racyHost = Layer.effect(Host, Effect.map(LocalHost.make(), (local) => {
        return Host.of({ ...local, readDirectory: (path) => Effect.map(local.readDirectory(path), (names) => [...names, "vanished"]) })
      }))
      const error = yield* failedCapture("fail", workdir, racyHost)
      assert.isFalse(error.diskFull)
      assert.match(error.detail, /tar exited 2: .*vanished: Cannot stat: No such file or directory/s)
    }))

  it.live("output that never arrives fails the capture, though tar exited 0: no empty snapshot is stored", () =>
    Effect.gen(function*() {
      const workdir = freshDir("lost")
      writeTree(workdir, { "a.txt": "a" })
      // The host loses the archive on its way (as Node dropped a fast tar's unread pipe).
      const losingHost = Layer.effect(Host, Effect.map(LocalHost.make(), (local) =>
        Host.of({ ...local, spawn: (command, options) => Effect.map(local.spawn(command, options), (proc) => ({ ...proc, stdout: Stream.empty })) })))
      const error = yield* failedCapture("lost", workdir, losingHost)
      assert.match(error.detail, /tar exited 0 but its output never arrived/)
    }))

  it.live("hostile archive: `..` members are refused and fail the restore typed; `/` is stripped; nothing lands outside", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const base = freshDir("hostile")
      const outside = join(base, "outside")
      fs.mkdirSync(outside)
      writeTree(base, { "src/ok.txt": "ok", "escape.txt": "escape", "t1": null, "t2/link/pwned": "pwned" })
      fs.symlinkSync(outside, join(base, "t1", "link"))
      const archive = join(base, "hostile.tar")
      const absolute = join(base, "abs.txt")
      fs.writeFileSync(absolute, "absolute")
      execFileSync("tar", ["-c", "-P", "-f", archive, "ok.txt", "../escape.txt", absolute], { cwd: join(base, "src"), stdio: "ignore" })
      // A symlink to outside, then a file through it.
      execFileSync("tar", ["-r", "-f", archive, "-C", join(base, "t1"), "link"])
      execFileSync("tar", ["-r", "-f", archive, "-C", join(base, "t2"), "link/pwned"])
      fs.rmSync(join(base, "escape.txt"))
      fs.rmSync(absolute)
      const snapshots = yield* SnapshotStore
      const doc = yield* snapshots.insert({
        processId: "hostile",
        endState: "done",
        sessionId: null,
        codec: "zstd",
        blob: Stream.succeed(new Uint8Array(zlib.zstdCompressSync(fs.readFileSync(archive))))
      })
      const workdir = join(base, "workdir")
      const error = yield* Effect.flip(restoreSnapshot(doc, workdir))
      assert.strictEqual(error._tag, "SnapshotRestoreFailed")
      if (error._tag !== "SnapshotRestoreFailed") return
      assert.strictEqual(error.stage, "extract")
      assert.match(error.detail, /Member name contains '\.\.'/)
      assert.isFalse(fs.existsSync(join(base, "escape.txt")))
      assert.isFalse(fs.existsSync(absolute))
      assert.deepStrictEqual(fs.readdirSync(outside), [])
      assert.strictEqual(fs.readFileSync(join(workdir, "ok.txt"), "utf8"), "ok")
      // The absolute member was extracted inside the workdir, under its stripped name.
      assert.strictEqual(fs.readFileSync(join(workdir, absolute.slice(1)), "utf8"), "absolute")
    })))

  it.live("corrupt blobs fail typed: bad compression at decompress, a non-tar stream at extract", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const snapshots = yield* SnapshotStore
      const insert = (bytes: Uint8Array, codec: "zstd" | "gzip") =>
        snapshots.insert({ processId: "corrupt", endState: "done", sessionId: null, codec, blob: Stream.succeed(bytes) })
      const garbage = yield* insert(randomBytes(4096), "gzip")
      const bad = yield* Effect.flip(restoreSnapshot(garbage, freshDir("corrupt")))
      assert.strictEqual(bad._tag === "SnapshotRestoreFailed" ? bad.stage : bad._tag, "decompress")
      // Large enough that tar gives up while the worker is still writing (EPIPE must not win).
      const notTar = yield* insert(new Uint8Array(zlib.zstdCompressSync(randomBytes(16 * 1024 * 1024))), "zstd")
      const refused = yield* Effect.flip(restoreSnapshot(notTar, freshDir("not-tar")))
      assert.strictEqual(refused._tag, "SnapshotRestoreFailed")
      if (refused._tag !== "SnapshotRestoreFailed") return
      assert.strictEqual(refused.stage, "extract")
      assert.match(refused.detail, /tar exited 2/)
      const unknown: SnapshotDoc = { ...garbage, codec: "brotli" }
      const unsupported = yield* Effect.flip(restoreSnapshot(unknown, freshDir("brotli")))
      assert.strictEqual(unsupported._tag === "SnapshotRestoreFailed" ? unsupported.stage : unsupported._tag, "decompress")
    })))

  it.live("restores a reference-style gzip archive (GNU `tar czf`, names with and without `./`)", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const source = freshDir("reference")
      writeTree(source, { "AGENTS.md": "a", [ROLLOUT]: "{}\n", "empty": null })
      const remoteStyle = execFileSync("tar", ["czf", "-", "."], { cwd: source })
      const localStyle = execFileSync("tar", ["czf", "-", "AGENTS.md", "home"], { cwd: source })
      const snapshots = yield* SnapshotStore
      for (const archive of [remoteStyle, localStyle]) {
        const doc = yield* snapshots.insert({ processId: "py", endState: "done", sessionId: null, codec: "gzip", blob: Stream.succeed(new Uint8Array(archive)) })
        const target = freshDir("reference-restored")
        yield* restoreSnapshot(doc, target)
        assert.strictEqual(fs.readFileSync(join(target, ROLLOUT), "utf8"), "{}\n")
        assert.strictEqual(fs.readFileSync(join(target, "AGENTS.md"), "utf8"), "a")
      }
    })))

  it.live("keeps the newest 5 snapshots per process (retention), newest first", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const workdir = freshDir("retention")
      writeTree(workdir, { "n.txt": "0" })
      const docs: Array<SnapshotDoc> = []
      for (let i = 0; i < 7; i++) {
        fs.writeFileSync(join(workdir, "n.txt"), String(i))
        docs.push(yield* capture(workdir, { processId: "ret" }))
      }
      const snapshots = yield* SnapshotStore
      const kept = yield* snapshots.list("ret")
      assert.deepStrictEqual(kept.map((doc) => doc.snapshotId), docs.slice(2).reverse().map((doc) => doc.snapshotId))
      const target = freshDir("retention-restored")
      yield* restoreSnapshot(kept[0] ?? assert.fail("no snapshot"), target)
      assert.strictEqual(fs.readFileSync(join(target, "n.txt"), "utf8"), "6")
      const custom = yield* capture(workdir, { processId: "ret", retention: 2 })
      assert.deepStrictEqual((yield* snapshots.list("ret")).map((doc) => doc.snapshotId), [custom.snapshotId, docs[6]?.snapshotId])
    })))

  it.live("P34: a failing prune after a stored snapshot is logged, and the capture still succeeds", () =>
    Effect.gen(function*() {
      const workdir = freshDir("prune-fails")
      writeTree(workdir, { "a.txt": "a" })
      const pruneFails = Layer.effect(SnapshotStore, Effect.gen(function*() {
        const store = yield* SnapshotStore
        return SnapshotStore.of({
          ...store,
          prune: () => Effect.fail(new StoreUnavailable({ backend: "test", operation: "prune", detail: "down" }))
        })
      })).pipe(Layer.provide(memoryStore))
      const listed = yield* withStore(pruneFails, Effect.gen(function*() {
        const doc = yield* capture(workdir, { processId: "prune" })
        return { doc, list: yield* (yield* SnapshotStore).list("prune") }
      }))
      assert.deepStrictEqual(listed.list.map((doc) => doc.snapshotId), [listed.doc.snapshotId])
    }))

  it.live("an empty workdir round-trips", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const doc = yield* capture(freshDir("empty"))
      const target = freshDir("empty-restored")
      yield* restoreSnapshot(doc, target)
      assert.deepStrictEqual(fs.readdirSync(target), [])
    })))

  it.live("zstd, with and without AES-GCM, through the embedded store restores every byte, twice (chunks freed on the way are never read again)", () =>
    Effect.gen(function*() {
      const workdir = freshDir("exact")
      // Sizes around and across the 64 KiB frame and the store's 256 KiB reads, half random, half
      // text: pipe reads, frames and file reads straddle each other everywhere.
      const text = Buffer.from("const answer = 42 // a line of source\n".repeat(4000))
      for (let i = 0; i < 40; i++) {
        const size = [1, 65_535, 65_536, 65_537, 300_001, 900_000][i % 6]! + i
        const body = Buffer.concat([randomBytes(Math.ceil(size / 2)), text]).subarray(0, size)
        writeTree(workdir, { [`d${i % 5}/f${i}.bin`]: body })
      }
      const digests = (dir: string) =>
        Object.fromEntries(
          fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => {
            const path = join(entry.parentPath, entry.name)
            return [path.slice(dir.length), createHash("sha256").update(fs.readFileSync(path)).digest("hex")]
          })
        )
      const expected = digests(workdir)
      assert.strictEqual(Object.keys(expected).length, 40)
      for (const encrypted of [true, false]) {
        const targets = [join(freshDir("exact-restored"), "w"), join(freshDir("exact-again"), "w")]
        yield* withStore(embeddedStore(freshDir("exact-data"), encrypted), Effect.gen(function*() {
          const doc = yield* capture(workdir)
          assert.strictEqual(doc.codec, "zstd")
          for (const target of targets) yield* restoreSnapshot(doc, target)
        }))
        for (const target of targets) assert.deepStrictEqual(digests(target), expected, `encrypted ${encrypted}: ${target}`)
      }
    }))

  it.live("capturing and restoring a 64 MiB tree keeps the worker's RSS growth well under the archive size", () =>
    Effect.gen(function*() {
      const dataDir = freshDir("memory-data")
      const workdir = freshDir("memory")
      // Incompressible, so a whole-archive buffer anywhere would show as >= 32 MiB of growth.
      for (let i = 0; i < 128; i++) writeTree(workdir, { [`d${i % 8}/f${i}.bin`]: randomBytes(512 * 1024) })
      const target = freshDir("memory-restored")
      const peaks = yield* withStore(embeddedStore(dataDir, true), Effect.gen(function*() {
        // Warm up code paths and pools first, so only the archive's own cost is measured.
        const warm = freshDir("memory-warm")
        writeTree(warm, { "w.bin": randomBytes(1024 * 1024) })
        yield* restoreSnapshot(yield* capture(warm, { processId: "warm" }), freshDir("memory-warm-restored"))
        const sampled = <A, E, R>(body: Effect.Effect<A, E, R>) =>
          Effect.gen(function*() {
            collectGarbage()
            const baseline = process.memoryUsage().rss
            let peak = baseline
            const timer = setInterval(() => {
              peak = Math.max(peak, process.memoryUsage().rss)
            }, 20)
            const result = yield* body.pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
            peak = Math.max(peak, process.memoryUsage().rss)
            return [result, (peak - baseline) / 2 ** 20] as const
          })
        const [doc, captureGrowth] = yield* sampled(capture(workdir, { processId: "memory" }))
        const [, restoreGrowth] = yield* sampled(restoreSnapshot(doc, target))
        return { captureGrowth, restoreGrowth, stored: fs.statSync(join(dataDir, "blobs", doc.workdirBlobId)).size / 2 ** 20 }
      }))
      assert.isAbove(peaks.stored, 64, "the archive really is incompressible")
      assert.isBelow(peaks.captureGrowth, 40, `capture grew RSS by ${peaks.captureGrowth.toFixed(1)} MiB`)
      assert.isBelow(peaks.restoreGrowth, 40, `restore grew RSS by ${peaks.restoreGrowth.toFixed(1)} MiB`)
      assert.strictEqual(describeTree(target)["d0/f0.bin"], describeTree(workdir)["d0/f0.bin"])
    }))
})

describe("snapshots of a task: the workdir plus the rollouts of its private CODEX_HOME", () => {
  const rollout = "sessions/2026/11/27/rollout-2026-11-27T10-00-00-0199a213-81c0-7800-8aa1-bbab2a035a53.jsonl"

  it.live("the rollouts travel as home/.codex/sessions; the workdir's own home/.codex (a forgery) stays out", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const workdir = freshDir("task-workdir")
      const codexHome = join(freshDir("task-private"), "home", ".codex")
      writeTree(codexHome, { [rollout]: "{\"real\":true}\n", "auth.json": "{\"secret\":1}", "config.toml": "model = 'm'\n" })
      writeTree(workdir, {
        "work.txt": "w",
        "home/.codex/config.toml": "notify = ['sh', '-c', 'id']\n",
        [`home/.codex/${rollout}`]: "{\"forged\":true}\n",
        "home/notes.txt": "the agent's own home/ dir is kept"
      })
      const doc = yield* capture(workdir, { codexHome })
      const members = execFileSync("tar", ["-t", "-f", "-"], {
        input: zlib.zstdDecompressSync(yield* collectBytes((yield* SnapshotStore).readBlob(doc)))
      }).toString().split("\n").filter((name) => name !== "" && !name.endsWith("/"))
      assert.sameMembers(members, ["work.txt", "home/notes.txt", `home/.codex/${rollout}`])
      const staging = join(freshDir("task-staging"), "s")
      yield* restoreSnapshot(doc, staging)
      assert.strictEqual(fs.readFileSync(join(staging, "home/.codex", rollout), "utf8"), "{\"real\":true}\n")
    })))

  it.live("placeRestored puts the rollouts into CODEX_HOME and the rest into the workdir; old-layout credentials and config are dropped", () =>
    withStore(memoryStore, Effect.gen(function*() {
      // An old-layout snapshot: CODEX_HOME inside the workdir, with config.toml and auth.json.
      const old = freshDir("old-layout")
      writeTree(old, {
        "a.txt": "a",
        "dir/b.txt": "b",
        ".codex/config.toml": "[mcp_servers.x]\ncommand = 'sh'\n",
        "home/.codex/config.toml": "notify = ['sh']\n",
        "home/.codex/auth.json": "{}",
        [`home/.codex/${rollout}`]: "{}\n"
      })
      const doc = yield* capture(old)
      const base = freshDir("place")
      const workdir = join(base, "workdir")
      const codexHome = join(base, "private", "home", ".codex")
      const staging = join(base, "private", "restore")
      fs.mkdirSync(workdir, { mode: 0o700, recursive: true })
      yield* restoreSnapshot(doc, staging)
      yield* placeRestored({ snapshot: doc, staging, workdir, codexHome })
      assert.deepStrictEqual(Object.keys(describeTree(workdir)).sort(), ["a.txt", "dir", "dir/b.txt"])
      assert.deepStrictEqual(Object.keys(describeTree(codexHome)).filter((name) => name.endsWith(".jsonl")), [rollout])
      assert.isFalse(fs.existsSync(join(codexHome, "config.toml")))
      assert.isFalse(fs.existsSync(join(codexHome, "auth.json")))
      assert.isFalse(fs.existsSync(staging))
    })))

  it.live("an explicit workdir is merged into, keeps its mode, and a corrupt snapshot leaves it untouched", () =>
    withStore(memoryStore, Effect.gen(function*() {
      const source = freshDir("merge-source")
      writeTree(source, { "a.txt": "new a", "dir/new.txt": "n", "fresh.txt": "f" })
      const doc = yield* capture(source)
      const base = freshDir("merge")
      const workdir = join(base, "explicit")
      writeTree(workdir, { "a.txt": "old a", "dir/kept.txt": "k", "mine.txt": "m" })
      fs.chmodSync(workdir, 0o751)
      const staging = join(base, "staging")
      yield* restoreSnapshot(doc, staging)
      yield* placeRestored({ snapshot: doc, staging, workdir, codexHome: join(base, "codex") })
      const tree = describeTree(workdir)
      assert.deepStrictEqual(Object.keys(tree).sort(), ["a.txt", "dir", "dir/kept.txt", "dir/new.txt", "fresh.txt", "mine.txt"])
      assert.strictEqual(fs.readFileSync(join(workdir, "a.txt"), "utf8"), "new a")
      assert.strictEqual(fs.statSync(workdir).mode & 0o777, 0o751)

      // A snapshot whose blob is not an archive fails at extraction, before the workdir is touched.
      const before = describeTree(workdir)
      const corrupt = yield* (yield* SnapshotStore).insert({
        processId: "proc-1",
        endState: "done",
        sessionId: null,
        codec: "zstd",
        blob: Stream.make(new Uint8Array(zlib.zstdCompressSync(Buffer.concat([Buffer.from("a.txt"), randomBytes(4096)]))))
      })
      const failed = yield* Effect.flip(restoreSnapshot(corrupt, join(base, "staging-2")))
      assert.strictEqual(failed._tag, "SnapshotRestoreFailed")
      assert.deepStrictEqual(describeTree(workdir), before)
    })))
})
