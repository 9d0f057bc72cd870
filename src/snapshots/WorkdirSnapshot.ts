/**
 * WorkdirSnapshot: capturing a task's workdir into the {@link SnapshotStore} and restoring it
 * (spec §8.3, §8.6). It owns the pipeline — the host's GNU tar, compression, the
 * store's streaming insert and retention — and its failures. It does not own where blobs live or
 * their encryption (the store), nor wiping the workdir before a restore (the caller).
 *
 * **Details**
 *
 * - Capture: `tar -c` on the host, its stdout streamed through zstd (or gzip) into
 *   `SnapshotStore.insert`. zstd runs on the host (`tar --use-compress-program`, multi-threaded)
 *   when the host has it, else in the worker (Node's zlib); gzip always runs in the worker. Nothing is buffered whole and no scratch file is written in the
 *   workdir (P40). tar exit 1 ("file changed as we read it") is a warning; 2+ fails the stream
 *   before the upload completes, so the store keeps nothing.
 * - Members are workdir-relative paths without `./` (as the reference's local archiver wrote
 *   them) with directory entries, empty directories, symlinks and modes — one format wherever the
 *   host is (P33). codex's rollouts, which live outside the workdir (in the task's private
 *   CODEX_HOME), travel as the members under `home/.codex/sessions/` — where the reference's
 *   layout had them — and the workdir's own `home/.codex` (agent-written) is left out, so the
 *   archive holds one rollout tree, the worker's. {@link placeRestored} splits them apart again.
 * - Restore: the blob is decompressed (on the host for zstd when it can, else in the worker) and
 *   written to `tar -x` on the host with backpressure. GNU tar refuses members containing `..` (skipped; the restore then fails
 *   typed), strips a leading `/` (extracted inside the workdir) and defers symlinks that point
 *   outside, so nothing is written outside the workdir.
 * - A prune failure after a successful insert is logged, not raised: the new snapshot exists and
 *   is the latest, so the caller should still record that the process has saved state (P34).
 *
 * @since 0.1.0
 */
import { NodeStream } from "@effect/platform-node"
import { Clock, Effect, Schema, Stream } from "effect"
import type { Duplex } from "node:stream"
import * as zlib from "node:zlib"
import { Host } from "../host/Host.ts"
import type { HostError, HostShape } from "../host/Host.ts"
import type { BlobDecryptFailed } from "../persistence/StoreError.ts"
import type { BlobMissing, StoreUnavailable } from "../persistence/StoreError.ts"
import { describeCause } from "../persistence/StoreError.ts"
import { openedChunks } from "../store/ChunkRegistry.ts"
import { tarExcludeArgs, withAlwaysExcluded } from "./SnapshotExcludes.ts"
import { SNAPSHOT_RETENTION, SnapshotStore } from "./SnapshotStore.ts"
import type { SnapshotCodec, SnapshotDoc, SnapshotEndState } from "./SnapshotStore.ts"

export { ALWAYS_EXCLUDED, excludes, hidesRollouts } from "./SnapshotExcludes.ts"
export { newestRolloutId, rotateOptioLog } from "./ResumeFiles.ts"

/**
 * Capturing a snapshot failed before anything was stored.
 * @category errors
 * @since 0.1.0
 */
export class SnapshotCaptureFailed extends Schema.TaggedError<SnapshotCaptureFailed>()("SnapshotCaptureFailed", {
  processId: Schema.String,
  /** `archive` (tar on the host) or `compress` (in the worker). */
  stage: Schema.Literals(["archive", "compress"]),
  /** What failed; for tar, its exit code and the tail of its stderr. */
  detail: Schema.String,
  /** The failure was a full disk (ENOSPC). */
  diskFull: Schema.Boolean,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  override get message(): string {
    return `snapshot capture of ${this.processId} failed at ${this.stage}${this.diskFull ? " (disk full)" : ""}: ${this.detail}`
  }
}

/**
 * Restoring a snapshot failed. Extraction goes to a staging directory first, so a failure before
 * the `place` stage leaves the workdir as it was.
 * @category errors
 * @since 0.1.0
 */
export class SnapshotRestoreFailed extends Schema.TaggedError<SnapshotRestoreFailed>()("SnapshotRestoreFailed", {
  processId: Schema.String,
  snapshotId: Schema.String,
  /**
   * `prepare` (staging dir, tar start), `decompress` (in the worker), `extract` (tar on the host)
   * or `place` (moving the extracted files into the workdir).
   */
  stage: Schema.Literals(["prepare", "decompress", "extract", "place"]),
  detail: Schema.String,
  /** The failure was a full disk (ENOSPC). */
  diskFull: Schema.Boolean,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  override get message(): string {
    return `snapshot restore of ${this.snapshotId} (process ${this.processId}) failed at ${this.stage}${
      this.diskFull ? " (disk full)" : ""
    }: ${this.detail}`
  }
}

/**
 * Options of {@link captureSnapshot}.
 * @category models
 * @since 0.1.0
 */
export interface CaptureSnapshotOptions {
  readonly workdir: string
  readonly processId: string
  readonly endState: SnapshotEndState
  readonly sessionId: string | null
  /** The effective exclude list; {@link ALWAYS_EXCLUDED} is added to it. */
  readonly exclude: ReadonlyArray<string>
  /**
   * The task's CODEX_HOME (`<x>/home/.codex`), whose `sessions/` (the rollouts) is archived as
   * `home/.codex/sessions`; the workdir's own `home/.codex` is then left out.
   */
  readonly codexHome?: string
  readonly codec: SnapshotCodec
  /** Snapshots kept for the process. Default {@link SNAPSHOT_RETENTION}. */
  readonly retention?: number
  /** Compressed bytes stored so far; at most every 8 MiB or second, and once at the end. */
  readonly onProgress?: (bytesStored: number) => Effect.Effect<void>
}

/**
 * Options of {@link restoreSnapshot}.
 * @category models
 * @since 0.1.0
 */
export interface RestoreSnapshotOptions {
  /** Compressed bytes read from the store so far; at most every 8 MiB or second, and at the end. */
  readonly onProgress?: (bytes: number) => Effect.Effect<void>
}

// Level 1: on the bench's tree (200 MB / 10k files, half random) `tar | zstd -T0` took a median
// 1.26 s at level 1, 1.19 s at 2 and 1.65 s at 3 for archives within 0.2 % of each other
// (issue 19's measurement, loaded 2-core machine); -T0 vs -T1 made no clear difference on 2 cores.
const ZSTD_LEVEL = 1
const PROGRESS_BYTES = 8 * 1024 * 1024
const PROGRESS_MILLIS = 1000
const STDERR_TAIL = 2000
// tar's messages are parsed for ENOSPC and shown to people: keep them in one language.
const TAR_ENV = { LC_ALL: "C" } as const

const isDiskFull = (text: string) => /ENOSPC|No space left on device/i.test(text)

// zlib's default 16 KiB output chunk costs a threadpool round trip and a stream element per
// chunk: 1 MiB cuts a 200 MB restore's decompression from ~3 s to well under 1 s.
const ZLIB_CHUNK = 1024 * 1024

const compressor = (codec: SnapshotCodec): Duplex =>
  codec === "zstd"
    ? zlib.createZstdCompress({ chunkSize: ZLIB_CHUNK, params: { [zlib.constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL } })
    : zlib.createGzip({ chunkSize: ZLIB_CHUNK, level: 6 })

// Reference documents have no codec and read as gzip (the store's decoding supplies "gzip").
const decompressor = (codec: string): (() => Duplex) | undefined =>
  codec === "zstd"
    ? () => zlib.createZstdDecompress({ chunkSize: ZLIB_CHUNK })
    : codec === "gzip"
    ? () => zlib.createGunzip({ chunkSize: ZLIB_CHUNK })
    : undefined

/** Counts the bytes passing through and reports them, throttled, plus once at the end. */
const withProgress = <E, R>(
  stream: Stream.Stream<Uint8Array, E, R>,
  onProgress: ((bytes: number) => Effect.Effect<void>) | undefined
): Stream.Stream<Uint8Array, E, R> => {
  if (onProgress === undefined) return stream
  // On Clock, so a session under TestClock reports as it would in real time.
  return Stream.unwrap(Effect.gen(function*() {
    let total = 0
    let reported = 0
    let reportedAt = yield* Clock.currentTimeMillis
    const report = Effect.gen(function*() {
      reported = total
      reportedAt = yield* Clock.currentTimeMillis
      return yield* onProgress(total)
    })
    return stream.pipe(
      Stream.tap((chunk) =>
        Effect.gen(function*() {
          total += chunk.length
          const now = yield* Clock.currentTimeMillis
          if (total - reported >= PROGRESS_BYTES || now - reportedAt >= PROGRESS_MILLIS) yield* report
        })
      ),
      Stream.concat(Stream.fromEffectDrain(report))
    )
  }))
}

const tail = (text: string) => text.trim().slice(-STDERR_TAIL)

/**
 * Archives `workdir` (minus the excludes) into a new snapshot of `processId`, then prunes the
 * process's snapshots to `retention`. Returns the new document.
 * @category constructors
 * @since 0.1.0
 */
export const captureSnapshot = (
  options: CaptureSnapshotOptions
): Effect.Effect<SnapshotDoc, SnapshotCaptureFailed | StoreUnavailable, Host | SnapshotStore> =>
  Effect.gen(function*() {
    const host = yield* Host
    const store = yield* SnapshotStore
    const failed = (stage: SnapshotCaptureFailed["stage"], detail: string, cause?: unknown) =>
      new SnapshotCaptureFailed({
        processId: options.processId,
        stage,
        detail,
        diskFull: isDiskFull(detail) || isDiskFull(errorCode(cause)),
        ...(cause === undefined ? {} : { cause })
      })
    const fromHost = (error: HostError) => failed("archive", error.message, error)

    // The top-level entries instead of `.`: tar matches excludes with FNM_LEADING_DIR, so with `.`
    // (or `./x` names) a pattern like `.*` would match the root and drop the whole tree.
    const entries = yield* (options.codexHome === undefined ? host.readDirectory(options.workdir) : workdirMembers(host, options.workdir)).pipe(
      Effect.mapError(fromHost)
    )
    const rollouts = options.codexHome === undefined ? undefined : rolloutsRoot(options.codexHome)
    const withRollouts = rollouts !== undefined && (yield* isDirectory(host, `${options.codexHome}/sessions`).pipe(Effect.mapError(fromHost)))
    // The rollouts first, from their own root: after `--` (which protects workdir names starting
    // with `-`) a `-C` would be read as a file name.
    const members = [
      ...(entries.length === 0 && !withRollouts ? ["--files-from=/dev/null"] : []),
      ...(withRollouts && rollouts !== undefined ? ["-C", rollouts, ROLLOUT_MEMBER] : []),
      ...(entries.length === 0 ? [] : ["-C", options.workdir, "--", ...entries])
    ]
    // The host's zstd (multi-threaded, native) when it has one: the worker then only moves the
    // compressed bytes. The frames are the same either way, so any reader can decompress them.
    const onHost = options.codec === "zstd" && (yield* hostHasZstd(host))
    const argv = [
      "tar",
      "-c",
      "-f",
      "-",
      ...(onHost ? ["--use-compress-program", `zstd -${ZSTD_LEVEL} -T0 -q`] : []),
      ...tarExcludeArgs(withAlwaysExcluded(options.exclude)),
      ...members
    ] as const

    const doc = yield* Effect.scoped(Effect.gen(function*() {
      const tar = yield* host.spawn({ argv, env: TAR_ENV }, { stdout: true, gracePeriod: "1 second" }).pipe(
        Effect.mapError(fromHost)
      )
      let archived = 0
      const tarExit = Effect.gen(function*() {
        const code = yield* tar.exitCode.pipe(Effect.mapError(fromHost))
        const stderr = yield* tar.stderrTail
        if (code !== 0 && code !== 1) return yield* failed("archive", `tar exited ${code}: ${tail(stderr)}`)
        // Even an empty tree makes an archive (its end blocks): no bytes means they were lost on
        // the way, and an empty blob must never be stored as a snapshot.
        if (archived === 0) return yield* failed("archive", `tar exited ${code} but its output never arrived: ${tail(stderr)}`)
        if (code === 1) {
          yield* Effect.logWarning("files changed while the workdir was archived").pipe(
            Effect.annotateLogs({ processId: options.processId, stderr: tail(stderr) })
          )
        }
      })
      // The exit check is part of the stream, so a failing tar fails the upload itself.
      const archive = tar.stdout.pipe(
        Stream.tap((chunk) => Effect.sync(() => { archived += chunk.length })),
        Stream.mapError(fromHost),
        Stream.concat(Stream.fromEffectDrain(tarExit))
      )
      const compressed = onHost ? archive : NodeStream.pipeThroughDuplex(archive, {
        evaluate: () => compressor(options.codec),
        onError: (cause) => failed("compress", describeCause(cause), cause)
      })
      return yield* store.insert({
        processId: options.processId,
        endState: options.endState,
        sessionId: options.sessionId,
        codec: options.codec,
        blob: withProgress(compressed, options.onProgress)
      })
    }))
    yield* store.prune(options.processId, options.retention ?? SNAPSHOT_RETENTION).pipe(
      Effect.catch((error) =>
        Effect.logWarning("pruning old snapshots failed; the new snapshot is stored").pipe(
          Effect.annotateLogs({ processId: options.processId, error: error.message })
        )
      )
    )
    return doc
  }).pipe(
    Effect.withSpan("WorkdirSnapshot.capture", { attributes: { processId: options.processId, codec: options.codec } })
  )

/**
 * Extracts `snapshot` into `workdir` (created if missing; the caller empties it first). Fails
 * typed on a corrupt or hostile archive; see the module docs for what tar refuses.
 * @category constructors
 * @since 0.1.0
 */
export const restoreSnapshot = (
  snapshot: SnapshotDoc,
  workdir: string,
  options: RestoreSnapshotOptions = {}
): Effect.Effect<void, SnapshotRestoreFailed | StoreUnavailable | BlobMissing | BlobDecryptFailed, Host | SnapshotStore> =>
  Effect.scoped(Effect.gen(function*() {
    const host = yield* Host
    const store = yield* SnapshotStore
    const failed = (stage: SnapshotRestoreFailed["stage"], detail: string, cause?: unknown) =>
      new SnapshotRestoreFailed({
        processId: snapshot.processId,
        snapshotId: snapshot.snapshotId,
        stage,
        detail,
        diskFull: isDiskFull(detail) || isDiskFull(errorCode(cause)),
        ...(cause === undefined ? {} : { cause })
      })
    const decode = decompressor(snapshot.codec)
    if (decode === undefined) return yield* failed("decompress", `unknown codec ${JSON.stringify(snapshot.codec)}`)

    yield* host.makeDirectory(workdir).pipe(Effect.mapError((error) => failed("prepare", error.message, error)))
    const onHost = snapshot.codec === "zstd" && (yield* hostHasZstd(host))
    const tar = yield* host.spawn(
      {
        argv: [
          "tar",
          "-x",
          "-f",
          "-",
          ...(onHost ? ["--use-compress-program", "zstd -T0 -q"] : []),
          "--no-same-owner",
          "--preserve-permissions",
          "-C",
          workdir
        ],
        env: TAR_ENV
      },
      { stdin: true, stdout: false, gracePeriod: "1 second" }
    ).pipe(Effect.mapError((error) => failed("prepare", error.message, error)))
    const tarFailed = Effect.gen(function*() {
      const code = yield* tar.exitCode.pipe(Effect.mapError((error) => failed("extract", error.message, error)))
      if (code === 0) return undefined
      return failed("extract", `tar exited ${code}: ${tail(yield* tar.stderrTail)}`)
    })

    const stored = withProgress(store.readBlob(snapshot), options.onProgress)
    const plain = onHost ? stored : NodeStream.pipeThroughDuplex(stored, {
      evaluate: decode,
      onError: (cause) => failed("decompress", describeCause(cause), cause)
    })
    // `write` completes when the pipe took the chunk, so tar's pace bounds what is in flight. The
    // chunk is then done with, and freed at once if the store or the cipher issued it (see
    // ChunkRegistry): this stream is the restore's own, no other code sees its chunks.
    yield* Stream.runForEach(plain, (chunk) => tar.write(chunk).pipe(Effect.andThen(Effect.sync(() => openedChunks.retire(chunk))))).pipe(
      Effect.andThen(tar.endInput),
      // tar quit early (a corrupt archive, a full disk): its exit status says why, not the EPIPE.
      Effect.catchTag("HostError", (error) =>
        tarFailed.pipe(Effect.flatMap((tarError) => Effect.fail(tarError ?? failed("extract", error.message, error))))
      )
    )
    const failure = yield* tarFailed
    if (failure !== undefined) return yield* failure
  })).pipe(Effect.withSpan("WorkdirSnapshot.restore", { attributes: { processId: snapshot.processId, codec: snapshot.codec } }))

/**
 * The archive member under which codex's rollouts travel (the reference's layout kept CODEX_HOME
 * at `<workdir>/home/.codex`).
 * @category constants
 * @since 0.1.0
 */
export const ROLLOUT_MEMBER = "home/.codex/sessions"

// The directory that holds `home/.codex` when CODEX_HOME is `<x>/home/.codex`; otherwise none
// (the rollouts cannot be named as that member).
const rolloutsRoot = (codexHome: string): string | undefined => {
  const suffix = "/home/.codex"
  const trimmed = codexHome.replace(/\/+$/, "")
  return trimmed.endsWith(suffix) && trimmed.length > suffix.length ? trimmed.slice(0, -suffix.length) : undefined
}

const isDirectory = (host: HostShape, path: string) =>
  host.stat(path).pipe(
    Effect.map((info) => info.type === "Directory"),
    Effect.catchIf((error) => error.reason === "NotFound" || error.reason === "NotADirectory", () => Effect.succeed(false))
  )

// The workdir's top-level entries, with a real `home/` directory opened one level so that its
// `.codex` (the old layout's CODEX_HOME, or an agent's forgery of it) is left out: the archive's
// rollouts are the worker's. A `home` that is a symlink or a file is archived as it is.
const workdirMembers = (host: HostShape, workdir: string) =>
  Effect.gen(function*() {
    const entries = yield* host.readDirectory(workdir)
    if (!entries.includes("home") || !(yield* isDirectory(host, `${workdir}/home`))) return entries
    const inside = (yield* host.readDirectory(`${workdir}/home`)).filter((name) => name !== ".codex")
    return entries.flatMap((entry) => entry === "home" ? (inside.length === 0 ? [] : inside.map((name) => `home/${name}`)) : [entry])
  })

/**
 * Places an archive restored into `staging` (see {@link restoreSnapshot}): the rollouts
 * (`home/.codex/sessions`) into `codexHome/sessions`, the rest of an old-layout `home/.codex`
 * (its config.toml, auth.json, …) and a top-level `.codex` (codex's project-local config, which
 * the sandbox never lets the agent write) dropped, and every other entry moved into `workdir`. A
 * task-owned (empty) workdir takes the entries by rename; an explicit one is merged into by a
 * host-side tar copy, which replaces files and never writes through a symlink it finds there.
 * Nothing touches `workdir` before the whole archive was extracted. `staging` is removed.
 * @category constructors
 * @since 0.1.0
 */
export const placeRestored = (options: {
  readonly snapshot: SnapshotDoc
  readonly staging: string
  readonly workdir: string
  readonly codexHome: string
}): Effect.Effect<void, SnapshotRestoreFailed | HostError, Host> =>
  Effect.gen(function*() {
    const host = yield* Host
    const { staging, workdir, codexHome } = options
    const oldHome = `${staging}/home/.codex`
    if (yield* isDirectory(host, `${staging}/${ROLLOUT_MEMBER}`)) {
      yield* host.makeDirectory(codexHome, { mode: 0o700 })
      yield* host.remove(`${codexHome}/sessions`)
      yield* host.rename(`${staging}/${ROLLOUT_MEMBER}`, `${codexHome}/sessions`)
    }
    yield* host.remove(oldHome)
    yield* host.remove(`${staging}/.codex`)
    if ((yield* isDirectory(host, `${staging}/home`)) && (yield* host.readDirectory(`${staging}/home`)).length === 0) {
      yield* host.remove(`${staging}/home`)
    }
    const entries = yield* host.readDirectory(staging)
    const left: Array<string> = []
    for (const entry of entries) {
      const target = `${workdir}/${entry}`
      const free = yield* host.stat(target).pipe(
        Effect.as(false),
        Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed(true))
      )
      const moved = free && (yield* host.rename(`${staging}/${entry}`, target).pipe(Effect.as(true), Effect.orElseSucceed(() => false)))
      if (!moved) left.push(entry)
    }
    if (left.length > 0) {
      // Paths and names are positional arguments, never part of the script.
      const merged = yield* host.run({
        argv: ["sh", "-c", MERGE_SCRIPT, "sh", staging, workdir, ...left],
        env: TAR_ENV
      })
      if (merged.exitCode !== 0) {
        return yield* new SnapshotRestoreFailed({
          processId: options.snapshot.processId,
          snapshotId: options.snapshot.snapshotId,
          stage: "place",
          detail: `moving the restored files into the workdir failed: ${tail(merged.stderr)}`,
          diskFull: isDiskFull(merged.stderr)
        })
      }
    }
    yield* host.remove(staging)
  }).pipe(Effect.withSpan("WorkdirSnapshot.placeRestored"))

const MERGE_SCRIPT = "from=$1; to=$2; shift 2; tar -C \"$from\" -cf - -- \"$@\" | tar -C \"$to\" -xf - --no-same-owner --preserve-permissions"

// Whether the host can run `zstd` for tar; anything unexpected means "no" (the worker compresses).
// The Host asks once: over SSH every question is an exec.
const hostHasZstd = (host: HostShape) =>
  host.facts.pipe(Effect.map((facts) => facts.zstd), Effect.orElseSucceed(() => false))

const errorCode = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : ""
