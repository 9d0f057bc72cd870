/**
 * GuardedFiles: the local host's file operations for paths the agent could have touched
 * (`Host.readRegularFile`, `appendRegularFile`, `createRegularFile`, and the tail's range reads).
 *
 * Every one opens the path exactly once with `O_NOFOLLOW | O_NONBLOCK` (a final symlink fails
 * with ELOOP, a FIFO opens at once instead of waiting for a writer, a FIFO without reader fails
 * with ENXIO), then judges the opened handle, never the path again: `fstat` must say regular
 * file, and when the caller names a root, `/proc/self/fd/<n>` must point inside it — that is the
 * real location of what was opened, whatever directory in between was swapped for a symlink.
 * Reads and writes then go through that handle only, sized by its `fstat`.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Stream } from "effect"
import { constants } from "node:fs"
import type { FileHandle } from "node:fs/promises"
import * as fs from "node:fs/promises"
import { HostError } from "./Host.ts"
import type { GuardedFileOptions, HostErrorReason } from "./Host.ts"

const DEFAULT_TIMEOUT = Duration.seconds(10)
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK

/** A refusal of a guarded operation, with the reason the Host contract names. */
class Refused extends Error {
  readonly reason: HostErrorReason
  constructor(reason: HostErrorReason, detail: string) {
    super(detail)
    this.reason = reason
  }
}

const REASONS: Readonly<Record<string, HostErrorReason>> = {
  ELOOP: "SymlinkRefused",
  ENXIO: "NotRegularFile",
  EISDIR: "NotRegularFile",
  ENOENT: "NotFound",
  EACCES: "PermissionDenied",
  EPERM: "PermissionDenied",
  EEXIST: "AlreadyExists",
  ENOTDIR: "NotADirectory",
  EFBIG: "TooLarge",
  ENAMETOOLONG: "BadArgument"
}

const toHostError = (host: string, operation: string, path: string) => (error: unknown): HostError => {
  if (error instanceof HostError) return error
  if (error instanceof Refused) return new HostError({ host, operation, path, reason: error.reason, detail: error.message })
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "UNKNOWN"
  const detail = error instanceof Error ? error.message : String(error)
  return new HostError({ host, operation, path, reason: REASONS[code] ?? "Unknown", detail, cause: error })
}

/** Whether `path` lies strictly below `root` (both resolved). */
export const isStrictlyInside = (path: string, root: string): boolean => {
  const prefix = root.endsWith("/") ? root : `${root}/`
  return path.startsWith(prefix) && path.length > prefix.length
}

/** Where an open handle really is: the kernel's name for it, not the path it was opened by. */
const locationOf = (handle: FileHandle) => fs.readlink(`/proc/self/fd/${handle.fd}`)

/** Opens once and checks the handle: regular file, inside `within`. Closes it on refusal. */
const openChecked = async (path: string, flags: number, mode: number | undefined, within: string | undefined) => {
  const handle = await fs.open(path, flags, mode)
  try {
    const info = await handle.stat()
    if (!info.isFile()) throw new Refused("NotRegularFile", "not a regular file")
    const location = within === undefined ? undefined : await locationOf(handle)
    if (within !== undefined && (location === undefined || !isStrictlyInside(location, within))) {
      throw new Refused("OutsideRoot", "the opened file lies outside the allowed directory")
    }
    return { handle, info, location }
  } catch (error) {
    await handle.close()
    throw error
  }
}

/** Reads `length` bytes at `position` from a handle, fewer at end of file. */
const readFrom = async (handle: FileHandle, position: number, length: number): Promise<Uint8Array> => {
  const buffer = Buffer.allocUnsafe(length)
  let filled = 0
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled)
    if (bytesRead === 0) break
    filled += bytesRead
  }
  return new Uint8Array(buffer.buffer, buffer.byteOffset, filled)
}

/** Builds the guarded operations of a local host labelled `host`. */
export const makeGuardedFiles = (host: string) => {
  const guarded = <A>(operation: string, path: string, options: GuardedFileOptions | undefined, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: toHostError(host, operation, path) }).pipe(
      Effect.timeoutOrElse({
        duration: options?.timeout ?? DEFAULT_TIMEOUT,
        orElse: () =>
          Effect.fail(new HostError({ host, operation, path, reason: "TimedOut", detail: `did not finish within ${Duration.format(Duration.fromInputUnsafe(options?.timeout ?? DEFAULT_TIMEOUT))}` }))
      })
    )

  const readRegularFile = (path: string, options: GuardedFileOptions & { readonly maxBytes: number }) =>
    guarded("read", path, options, async () => {
      const { handle, info } = await openChecked(path, READ_FLAGS, undefined, options.within)
      try {
        if (info.size > options.maxBytes) throw new Refused("TooLarge", `${info.size} bytes is more than the limit of ${options.maxBytes}`)
        // Sized by the handle: a file that grows meanwhile is read as it was when checked.
        return await readFrom(handle, 0, info.size)
      } finally {
        await handle.close()
      }
    })

  /** A range of a regular file (the tail's reads), same guards, no size cap. */
  const readRegularRange = (path: string, offset: number, length: number, options?: GuardedFileOptions) =>
    guarded("read", path, options, async () => {
      const { handle, info } = await openChecked(path, READ_FLAGS, undefined, options?.within)
      try {
        return await readFrom(handle, offset, Math.max(0, Math.min(length, info.size - offset)))
      } finally {
        await handle.close()
      }
    })

  const appendRegularFile = (path: string, data: string | Uint8Array, options?: GuardedFileOptions & { readonly mode?: number }) =>
    guarded("append", path, options, async () => {
      const { handle } = await openChecked(path, APPEND_FLAGS, options?.mode ?? 0o644, options?.within)
      try {
        await handle.write(typeof data === "string" ? Buffer.from(data) : data)
      } finally {
        await handle.close()
      }
    })

  const createRegularFile = <E, R>(
    path: string,
    content: Stream.Stream<Uint8Array, E, R>,
    options?: GuardedFileOptions & { readonly mode?: number; readonly maxBytes?: number }
  ): Effect.Effect<number, HostError | E, R> => {
    const mode = options?.mode ?? 0o644
    const limit = options?.maxBytes ?? Number.POSITIVE_INFINITY
    return Effect.acquireUseRelease(
      guarded("create", path, options, async () => {
        const handle = await fs.open(path, CREATE_FLAGS, mode)
        // Identity and real location of what we created, for the clean-up on failure.
        const info = await handle.stat().catch(async (error: unknown) => {
          await handle.close()
          throw error
        })
        const created = { handle, dev: info.dev, ino: info.ino, location: await locationOf(handle).catch(() => path), path }
        try {
          await handle.chmod(mode) // the umask must not narrow or widen the mode
          if (options?.within !== undefined && !isStrictlyInside(created.location, options.within)) {
            throw new Refused("OutsideRoot", "the created file lies outside the allowed directory")
          }
        } catch (error) {
          await discardCreated(created)
          throw error
        }
        return created
      }),
      (created) =>
        content.pipe(
          Stream.runFoldEffect(() => 0, (written, chunk) => {
            const total = written + chunk.byteLength
            if (total > limit) {
              return Effect.fail(new HostError({ host, operation: "create", path, reason: "TooLarge", detail: `more than the limit of ${limit} bytes` }))
            }
            return Effect.tryPromise({
              try: () => created.handle.write(chunk),
              catch: toHostError(host, "create", path)
            }).pipe(Effect.as(total))
          })
        ),
      (created, exit) =>
        Effect.promise(() => exit._tag === "Success" ? created.handle.close() : discardCreated(created))
    )
  }

  return { readRegularFile, readRegularRange, appendRegularFile, createRegularFile }
}

/**
 * Closes and removes a file this worker created, by its real location and only while that
 * location still holds the same inode (never whatever the agent put there since).
 */
const discardCreated = async (
  created: { readonly handle: FileHandle; readonly dev: number; readonly ino: number; readonly location: string; readonly path: string }
) => {
  // The handle stays open until no directory links the file any more: the agent may rename the
  // directories around it meanwhile, so its location is asked of the kernel again each round.
  for (let round = 0; round < DISCARD_ROUNDS; round++) {
    const info = await created.handle.stat().catch(() => undefined)
    if (info === undefined || info.nlink === 0) break
    const now = await locationOf(created.handle).catch(() => undefined)
    for (const candidate of [now, created.location, created.path]) {
      if (candidate === undefined) continue
      const found = await fs.lstat(candidate).catch(() => undefined)
      if (found !== undefined && found.dev === created.dev && found.ino === created.ino) {
        await fs.unlink(candidate).catch(() => undefined)
        break
      }
    }
  }
  await created.handle.close().catch(() => undefined)
}

/** Attempts at removing a created file whose directories are being renamed under it. */
const DISCARD_ROUNDS = 50
