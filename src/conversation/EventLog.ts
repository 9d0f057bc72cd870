/**
 * EventLog: the listener's memory of one conversation. Every event a viewer may see is kept, in
 * order and numbered from 1, for the life of the listener (no ring buffer: a viewer attaching
 * late still gets the whole conversation, [P8]), stored compactly as its encoded SSE frame.
 * It also builds the bytes a viewer receives: everything after the viewer's last seen number,
 * then the live tail, with no gap and no duplicate, and keep-alive comments while it is quiet.
 *
 * Owns ordering, numbering and delivery; it does not decide which events are kept (the listener
 * does) and knows nothing about HTTP.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Option, Stream } from "effect"

/**
 * An append-only, numbered log of serialized events with live followers.
 * @category models
 */
export interface EventLog {
  /** Appends one event as a single-line JSON text; returns its number. */
  readonly append: (json: string) => Effect.Effect<number>
  /** How many events the log holds, which is also the highest number given out. */
  readonly size: Effect.Effect<number>
  /**
   * Holds back delivery of everything appended from now on until the returned effect runs
   * (idempotent). Holds nest: delivery resumes when the last one is released.
   */
  readonly hold: Effect.Effect<Effect.Effect<void>>
  /** Sends every follower with nothing new to send a keep-alive comment (`: ping\n\n`). */
  readonly ping: Effect.Effect<void>
  /** Ends every follow stream, now and later ones, at its next wakeup (which this causes). */
  readonly close: Effect.Effect<void>
  /**
   * UTF-8 SSE frames (`id: <n>\ndata: <json>\n\n`) of every event numbered above `after`, then of
   * each new event as it is released, and a ping comment at each `ping` that finds nothing new.
   * Frames released together come as one chunk, and followers at the same point share the same
   * bytes. Ends at `close`, or when interrupted. (The listener serves its viewers through
   * `reader` and SseFanout instead: one writer for all of them rather than a stream each.)
   */
  readonly follow: (after: number) => Stream.Stream<Uint8Array>
  /**
   * Synchronous access for a writer that serves every viewer from one place (the listener's
   * SSE fan-out), instead of one `follow` stream each.
   */
  readonly reader: EventLogReader
}

/**
 * The log's state read synchronously, with the signal of its next change.
 * @category models
 */
export interface EventLogReader {
  /** The highest number that may be delivered now (holds keep it back). */
  readonly released: () => number
  /** How many keep-alives were asked for so far; a change means "send a ping if idle". */
  readonly pings: () => number
  readonly closed: () => boolean
  /**
   * The frames after `from` (at most a page's worth, and only released ones) as one chunk, and
   * the number of the last frame in it; readers at the same point get the same bytes.
   */
  readonly chunk: (from: number) => readonly [Uint8Array, number]
  /**
   * Completes at the next release, ping or close after this call. Take it in the same
   * synchronous step as reading the state, so no change slips between.
   */
  readonly nextChange: () => Deferred.Deferred<void>
}

/** Frames per emitted chunk, so replaying a long history streams out instead of piling up. */
const PAGE = 512

/** How many recently built chunks are kept for followers that arrive at the same cursor. */
const SHARED_CHUNKS = 64

const PING = new TextEncoder().encode(": ping\n\n")
const EMPTY = new Uint8Array(0)

/**
 * Creates an empty log.
 * @category constructors
 */
export const makeEventLog: Effect.Effect<EventLog> = Effect.gen(function*() {
  // Each event's whole SSE frame, encoded once however many viewers send it.
  const frames: Array<Uint8Array> = []
  // Events up to `released` may be delivered; `holds` keeps it from advancing. `pings` counts
  // keep-alives asked for, so each follower answers each one at most once.
  const state = { released: 0, holds: 0, pings: 0, closed: false }
  // Recent chunks by their first frame's index: the live followers all wake at the same cursor
  // after a release, so the first one builds the chunk and the others send the same bytes; a
  // follower that fell behind takes the chunks already built, one per pull, without copying.
  const shared = new Map<number, { readonly bytes: Uint8Array; readonly to: number }>()
  // Completed (and replaced) at each release, ping and close: one completion wakes every waiting
  // follower, and a second release before they ran costs nothing per follower.
  let wake = Deferred.makeUnsafe<void>()
  const wakeAll = Effect.sync(() => {
    const woken = wake
    wake = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(woken, Effect.void)
  })
  const encoder = new TextEncoder()

  const releaseAll = Effect.suspend(() => {
    if (state.holds > 0 || state.released === frames.length) return Effect.void
    state.released = frames.length
    return wakeAll
  })

  const append = (json: string) =>
    Effect.suspend(() => {
      frames.push(encoder.encode(`id: ${frames.length + 1}\ndata: ${json}\n\n`))
      return Effect.as(releaseAll, frames.length)
    })

  const hold = Effect.sync(() => {
    state.holds += 1
    let released = false
    return Effect.suspend(() => {
      if (released) return Effect.void
      released = true
      state.holds -= 1
      return releaseAll
    })
  })

  const ping = Effect.suspend(() => {
    state.pings += 1
    return wakeAll
  })

  const close = Effect.suspend(() => {
    state.closed = true
    return wakeAll
  })

  // The chunk that starts at `from`: one already built, or the frames up to `to` (built once).
  const chunk = (from: number, to: number): readonly [Uint8Array, number] => {
    const built = shared.get(from)
    if (built !== undefined) return [built.bytes, built.to]
    const single = to - from === 1 ? frames[from] : undefined
    const bytes = single ?? Buffer.concat(frames.slice(from, to))
    shared.set(from, { bytes, to })
    if (shared.size > SHARED_CHUNKS) {
      const oldest = shared.keys().next().value
      if (oldest !== undefined) shared.delete(oldest)
    }
    return [bytes, to]
  }

  const follow = (after: number): Stream.Stream<Uint8Array> =>
    Stream.suspend(() => {
      // The cursor makes every event go out exactly once; a follower looks at `released` and
      // takes the current wake signal in one synchronous step, so no release slips between.
      let pingsSeen = state.pings
      const nextPage = Effect.fnUntraced(function*(cursor: number) {
        if (state.closed) return [[], Option.none()] as const
        if (state.released <= cursor) {
          while (state.released <= cursor) {
            if (state.closed) return [[], Option.none()] as const
            if (state.pings !== pingsSeen) {
              pingsSeen = state.pings
              return [[PING], Option.some(cursor)] as const
            }
            yield* Deferred.await(wake)
          }
          // Events appended in the same burst share this write.
          yield* Effect.yieldNow
        }
        pingsSeen = state.pings
        const [bytes, to] = chunk(cursor, Math.min(state.released, cursor + PAGE))
        return [[bytes], Option.some(to)] as const
      })
      return Stream.paginate(Math.max(0, after), nextPage)
    })

  const reader: EventLogReader = {
    released: () => state.released,
    pings: () => state.pings,
    closed: () => state.closed,
    chunk: (from) => from < state.released ? chunk(from, Math.min(state.released, from + PAGE)) : [EMPTY, from],
    nextChange: () => wake
  }

  return { append, size: Effect.sync(() => frames.length), hold, ping, close, follow, reader } satisfies EventLog
})
