/**
 * EventLog: the listener's memory of one conversation. Every event a viewer may see is kept, in
 * order and numbered from 1, for the life of the listener (no ring buffer: a viewer attaching
 * late still gets the whole conversation, [P8]), stored compactly as its serialized JSON line.
 * It also builds the SSE frames a viewer receives: everything after the viewer's last seen
 * number, then the live tail, with no gap and no duplicate.
 *
 * Owns ordering, numbering and delivery; it does not decide which events are kept (the listener
 * does) and knows nothing about HTTP.
 *
 * @since 0.1.0
 */
import { Effect, Option, PubSub, Stream } from "effect"

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
  /**
   * SSE frames (`id: <n>\ndata: <json>\n\n`) of every event numbered above `after`, then of each
   * new event as it is released. Frames released together come as one string (one socket write
   * per viewer per wakeup, not one per event). Never ends by itself; interrupt it to stop.
   */
  readonly follow: (after: number) => Stream.Stream<string>
}

/** Frames per emitted string, so replaying a long history streams out instead of piling up. */
const PAGE = 512

/**
 * Creates an empty log.
 * @category constructors
 */
export const makeEventLog: Effect.Effect<EventLog> = Effect.gen(function*() {
  // Each event's whole SSE frame, built once however many viewers send it.
  const frames: Array<string> = []
  // Events up to `released` may be delivered; `holds` keeps it from advancing.
  const state = { released: 0, holds: 0 }
  const wake = yield* PubSub.sliding<number>(1)

  const releaseAll = Effect.suspend(() => {
    if (state.holds > 0 || state.released === frames.length) return Effect.void
    state.released = frames.length
    return PubSub.publish(wake, state.released)
  })

  const append = (json: string) =>
    Effect.suspend(() => {
      frames.push(`id: ${frames.length + 1}\ndata: ${json}\n\n`)
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

  const follow = (after: number): Stream.Stream<string> =>
    Stream.unwrap(Effect.gen(function*() {
      // Subscribing before the first look at `released` means no release can slip between the
      // replay and the live tail; the cursor makes every event go out exactly once.
      const wakeups = yield* PubSub.subscribe(wake)
      const nextPage = Effect.fnUntraced(function*(cursor: number) {
        if (state.released <= cursor) {
          while (state.released <= cursor) yield* PubSub.take(wakeups)
          // One scheduler turn for events appended in the same burst, so they share this write.
          yield* Effect.yieldNow
        }
        const to = Math.min(state.released, cursor + PAGE)
        return [[frames.slice(cursor, to).join("")], Option.some(to)] as const
      })
      return Stream.paginate(Math.max(0, after), nextPage)
    }))

  return { append, size: Effect.sync(() => frames.length), hold, follow } satisfies EventLog
})
