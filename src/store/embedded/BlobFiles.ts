/**
 * Blob files of the embedded store: one file per blob under `<dataDir>/blobs/`, named by the
 * blob id, mode 0600. A blob appears atomically: bytes stream into a private temporary file in the
 * same directory, which is fsynced, renamed into place, and the directory fsynced. A reader sees no
 * file or a complete one; a failed or interrupted upload removes its temporary file, and one left by
 * a killed process is swept when a store opens the directory (once it is an hour old).
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option, Stream } from "effect"
import { chmod, lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises"
import type { FileHandle } from "node:fs/promises"
import { join } from "node:path"
import { openedChunks, sealedChunks } from "../ChunkRegistry.ts"
import { newObjectIdHex } from "../ids.ts"
import type { BlobInfo } from "../StoreBackend.ts"
import { BlobMissing, describeCause, StoreUnavailable } from "../../persistence/StoreError.ts"

/**
 * Blob file operations rooted at a directory.
 * @category models
 */
export interface BlobFiles {
  readonly put: <E, R>(bytes: Stream.Stream<Uint8Array, E, R>) => Effect.Effect<string, StoreUnavailable | E, R>
  readonly get: (kind: BlobInfo["kind"], blobId: string) => Stream.Stream<Uint8Array, BlobMissing | StoreUnavailable>
  readonly remove: (blobId: string) => Effect.Effect<void, StoreUnavailable>
  /** The path of a blob (for tests that inspect data at rest). */
  readonly pathOf: (blobId: string) => string
}

const READ_CHUNK_BYTES = 256 * 1024
// Encrypted frames come as three parts each: about 1 MiB of frames may wait for the disk.
const WRITE_AHEAD_CHUNKS = 48

const unavailable = (operation: string) => (cause: unknown) =>
  new StoreUnavailable({ backend: "embedded", operation, detail: describeCause(cause), cause })

/**
 * Blob files under `dir` (created, mode 0700, if missing).
 * @category constructors
 */
export const makeBlobFiles = (dir: string): Effect.Effect<BlobFiles, StoreUnavailable> =>
  Effect.gen(function*() {
    yield* Effect.tryPromise({
      try: async () => {
        await mkdir(dir, { recursive: true, mode: 0o700 })
        await chmod(dir, 0o700)
      },
      catch: unavailable("create blob directory")
    })
    yield* sweepStaleTemporaries(dir)
    const pathOf = (blobId: string) => join(dir, blobId)
    const syncDirectory = Effect.tryPromise({
      try: async () => {
        const handle = await open(dir, "r")
        await handle.sync().finally(() => handle.close())
      },
      catch: unavailable("fsync blob directory")
    })

    const put = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>) =>
      Effect.gen(function*() {
        const blobId = newObjectIdHex(yield* Clock.currentTimeMillis)
        const temporary = join(dir, `.tmp-${blobId}`)
        const write = Effect.acquireUseRelease(
          Effect.tryPromise({ try: () => open(temporary, "wx", 0o600), catch: unavailable("create blob file") }),
          (handle) =>
            // The producer (a tar pipe, compression, encryption) runs ahead while a write is in
            // flight; what piled up meanwhile goes out as one write.
            Stream.runForEachArray(bytes.pipe(Stream.buffer({ capacity: WRITE_AHEAD_CHUNKS })), (chunks) =>
              // On disk now: the sealer's output is freed at once (see ChunkRegistry).
              writeChunks(handle, chunks).pipe(Effect.andThen(Effect.sync(() => chunks.forEach((chunk) => sealedChunks.retire(chunk)))))).pipe(
              Effect.andThen(Effect.tryPromise({ try: () => handle.sync(), catch: unavailable("fsync blob file") }))
            ),
          (handle) => Effect.promise(() => handle.close().catch(() => undefined))
        )
        yield* write.pipe(
          Effect.andThen(Effect.tryPromise({ try: () => rename(temporary, pathOf(blobId)), catch: unavailable("publish blob file") })),
          Effect.onExit((exit) =>
            exit._tag === "Success" ? Effect.void : Effect.promise(() => rm(temporary, { force: true }).catch(() => undefined))
          )
        )
        yield* syncDirectory
        return blobId
      })

    // Read into buffers of its own, not through a Node stream, so a snapshot's chunks can be issued
    // (see ChunkRegistry): each is allocated here and handed to the reader alone.
    const get = (kind: BlobInfo["kind"], blobId: string) =>
      Stream.unwrap(Effect.gen(function*() {
        const handle = yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () => open(pathOf(blobId), "r"),
            catch: (cause) => isNotFound(cause) ? new BlobMissing({ backend: "embedded", blobId, kind }) : unavailable("read blob file")(cause)
          }),
          (handle) => Effect.promise(() => handle.close().catch(() => undefined))
        )
        const readChunk = Effect.tryPromise({
          try: async () => {
            const buffer = Buffer.allocUnsafeSlow(READ_CHUNK_BYTES)
            const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK_BYTES, null)
            if (bytesRead === 0) return undefined
            // A short read (the file's end) gets a buffer of its own size, so it is whole too.
            return bytesRead === READ_CHUNK_BYTES ? buffer : Buffer.from(buffer.subarray(0, bytesRead))
          },
          catch: unavailable("read blob file")
        })
        return Stream.paginate(undefined, () =>
          readChunk.pipe(Effect.map((chunk) =>
            chunk === undefined
              ? [[], Option.none()] as const
              : [[kind === "snapshot" ? openedChunks.issue(chunk) : chunk], Option.some(undefined)] as const
          )))
      }))

    const remove = (blobId: string) =>
      Effect.tryPromise({ try: () => rm(pathOf(blobId), { force: true }), catch: unavailable("delete blob file") })

    return { put, get, remove, pathOf }
  })

/**
 * How old (by mtime) a `.tmp-` blob must be before an opening store removes it. A process killed
 * mid-upload leaves its temporary file behind; another live process sharing the directory may be
 * writing one right now, and its file's mtime moves with every write.
 */
const STALE_TEMPORARY_MILLIS = 60 * 60 * 1000

/** Removes temporary blob files nobody has written for {@link STALE_TEMPORARY_MILLIS}. */
const sweepStaleTemporaries = (dir: string) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const removed = yield* Effect.tryPromise({
      try: async () => {
        let count = 0
        for (const name of await readdir(dir)) {
          if (!name.startsWith(".tmp-")) continue
          const path = join(dir, name)
          const info = await lstat(path).catch(() => undefined)
          if (info === undefined || !info.isFile() || now - info.mtimeMs < STALE_TEMPORARY_MILLIS) continue
          await rm(path, { force: true })
          count += 1
        }
        return count
      },
      catch: unavailable("sweep temporary blob files")
    })
    if (removed > 0) yield* Effect.logInfo(`removed ${removed} temporary blob file(s) left by an interrupted write`)
  })

// One writev for the chunks that piled up; a short write continues from where it stopped.
const writeChunks = (handle: FileHandle, chunks: ReadonlyArray<Uint8Array>) =>
  Effect.tryPromise({
    try: async () => {
      let pending = chunks.filter((chunk) => chunk.length > 0)
      while (pending.length > 0) {
        let { bytesWritten } = await handle.writev(pending)
        while (pending.length > 0 && bytesWritten >= pending[0]!.length) {
          bytesWritten -= pending[0]!.length
          pending = pending.slice(1)
        }
        if (bytesWritten > 0 && pending.length > 0) pending = [pending[0]!.subarray(bytesWritten), ...pending.slice(1)]
      }
    },
    catch: unavailable("write blob file")
  })

const isNotFound = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === "ENOENT"
