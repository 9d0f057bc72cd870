/**
 * Tail: follows a growing file through two host primitives (`stat` and a guarded `readRange`
 * that refuses symlinks and non-regular files on the opened handle), so every
 * host — local or over SFTP — follows files the same way, including truncation, replacement by
 * rename (log rotation), and a final drain when the writer is known to be done.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Option, Stream } from "effect"
import type { Duration } from "effect"
import type { FileInfo, HostError, HostErrorReason, TailChunk, TailOptions } from "./Host.ts"

interface TailState {
  readonly offset: number
  readonly identity: string | undefined
  readonly first: boolean
}

const READ_CHUNK = 1024 * 1024
const SWAPPED: ReadonlySet<HostErrorReason> = new Set(["NotFound", "SymlinkRefused", "NotRegularFile"])

/** Builds `Host.tail` from `stat` and `readRange`. */
export const makeTail = (
  primitives: {
    readonly stat: (path: string) => Effect.Effect<FileInfo, HostError>
    readonly readRange: (path: string, offset: number, length: number) => Effect.Effect<Uint8Array, HostError>
  },
  defaultPollInterval: Duration.Input
) =>
(path: string, options?: TailOptions): Stream.Stream<TailChunk, HostError> =>
  Stream.unwrap(Effect.gen(function*() {
    const stop = yield* Deferred.make<void>()
    if (options?.until !== undefined) {
      yield* options.until.pipe(Effect.andThen(Deferred.succeed(stop, undefined)), Effect.forkScoped)
    }
    const poll = options?.pollInterval ?? defaultPollInterval
    // Only a regular file is followed: a symlink, FIFO or directory in its place reads as absent.
    const statIfPresent = primitives.stat(path).pipe(
      Effect.map((info) => info.type === "File" ? Option.some(info) : Option.none()),
      Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeedNone)
    )
    return Stream.paginate<TailState, TailChunk, HostError>(
      { offset: 0, identity: undefined, first: true },
      Effect.fnUntraced(function*(state) {
        if (!state.first) yield* Effect.raceFirst(Effect.sleep(poll), Deferred.await(stop))
        // Decided before reading, so the last pass sees everything written before `until` fired.
        const stopping = yield* Deferred.isDone(stop)
        const chunks: Array<TailChunk> = []
        let { identity, offset } = state
        const info = yield* statIfPresent
        if (Option.isNone(info)) {
          if (identity !== undefined) chunks.push({ _tag: "Reset" })
          offset = 0
          identity = undefined
        } else {
          if (identity !== undefined && (info.value.identity !== identity || info.value.size < offset)) {
            chunks.push({ _tag: "Reset" })
            offset = 0
          }
          identity = info.value.identity
          while (offset < info.value.size) {
            // The reads are guarded (no symlink, regular file only): a swap after the stat is
            // refused and simply read as "nothing new" until the next poll sees what is there.
            const bytes = yield* primitives.readRange(path, offset, Math.min(READ_CHUNK, info.value.size - offset)).pipe(
              Effect.catchIf((error) => SWAPPED.has(error.reason), () => Effect.succeed(new Uint8Array(0)))
            )
            if (bytes.length === 0) break
            chunks.push({ _tag: "Data", bytes })
            offset += bytes.length
          }
        }
        const next: Option.Option<TailState> = stopping ? Option.none() : Option.some({ offset, identity, first: false })
        return [chunks, next] as const
      })
    )
  }))
