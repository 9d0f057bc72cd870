/**
 * Tail: follows a growing file through two host primitives (`stat` and a guarded `readRange`
 * that refuses symlinks and non-regular files on the opened handle), so every
 * host — local or over SFTP — follows files the same way, including truncation, replacement by
 * rename (log rotation), and a final drain when the writer is known to be done.
 *
 * A host that can watch a directory (the local one, with inotify) wakes the tail when the file's
 * directory changes and otherwise polls it only once a second: a task's optio.log is quiet most of
 * the time, and polling it 20 times a second cost an idle task ~3 ms of the worker's loop each
 * second. The watch is one-shot, armed before each look: the agent owns that directory, and a
 * standing watch would let it make the worker handle every event it can cause; this way the tail
 * costs at most one watch and one look per poll interval. Events carry nothing the tail trusts.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Exit, Option, Scope, Stream } from "effect"
import type { Duration } from "effect"
import type { FileInfo, HostError, HostErrorReason, TailChunk, TailOptions } from "./Host.ts"

interface TailState {
  readonly offset: number
  readonly identity: string | undefined
  readonly first: boolean
}

const READ_CHUNK = 1024 * 1024
// With a watcher, the poll that catches whatever an event was missed for (and a watcher that died).
const WATCHED_POLL = "1 second"
const SWAPPED: ReadonlySet<HostErrorReason> = new Set(["NotFound", "SymlinkRefused", "NotRegularFile"])

/**
 * Watches `directory` for its next change, until the scope closes. Succeeds once the watch is in
 * place, with an effect that completes at the first change (or if the watch ends); fails when the
 * host cannot watch the directory (the tail then polls).
 */
export type WatchDirectory = (directory: string) => Effect.Effect<Effect.Effect<void>, unknown, Scope.Scope>

/** Builds `Host.tail` from `stat` and `readRange`. */
export const makeTail = (
  primitives: {
    readonly stat: (path: string) => Effect.Effect<FileInfo, HostError>
    readonly readRange: (path: string, offset: number, length: number) => Effect.Effect<Uint8Array, HostError>
    readonly watchDirectory?: WatchDirectory
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
    const pause = yield* waitBetweenLooks(primitives.watchDirectory, path, poll)
    // Only a regular file is followed: a symlink, FIFO or directory in its place reads as absent.
    const statIfPresent = primitives.stat(path).pipe(
      Effect.map((info) => info.type === "File" ? Option.some(info) : Option.none()),
      Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeedNone)
    )
    return Stream.paginate<TailState, TailChunk, HostError>(
      { offset: 0, identity: undefined, first: true },
      Effect.fnUntraced(function*(state) {
        if (!state.first) yield* Effect.raceFirst(pause.wait, Deferred.await(stop))
        yield* pause.arm
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

/**
 * What the tail does between two looks: `arm` (right before a look) sets a watch on the file's
 * directory, and `wait` waits the poll interval, then for that watch to see a change or for the
 * slow poll. Without a watch, or when one cannot be set, `wait` is the poll interval.
 */
const waitBetweenLooks = (
  watchDirectory: WatchDirectory | undefined,
  path: string,
  poll: Duration.Input
): Effect.Effect<{ readonly arm: Effect.Effect<void>; readonly wait: Effect.Effect<void> }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const polling = Effect.sleep(poll)
    if (watchDirectory === undefined) return { arm: Effect.void, wait: polling }
    const directory = path.slice(0, Math.max(path.lastIndexOf("/"), 1))
    // The watch armed before the last look, in a scope of its own; closed once waited on.
    let armed: { readonly scope: Scope.Closeable; readonly changed: Effect.Effect<void> | undefined } | undefined
    const disarm = Effect.suspend(() => {
      const current = armed
      armed = undefined
      return current === undefined ? Effect.void : Scope.close(current.scope, Exit.void)
    })
    yield* Effect.addFinalizer(() => disarm)
    const arm = Effect.gen(function*() {
      yield* disarm
      const scope = yield* Scope.make()
      const changed = yield* watchDirectory(directory).pipe(Scope.provide(scope), Effect.option)
      armed = { scope, changed: Option.getOrUndefined(changed) }
    })
    const wait = Effect.gen(function*() {
      yield* polling
      const changed = armed?.changed
      if (changed !== undefined) yield* Effect.raceFirst(changed, Effect.sleep(WATCHED_POLL))
      yield* disarm
    })
    return { arm, wait }
  })
