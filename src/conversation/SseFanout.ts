/**
 * SseFanout: writes the event log's SSE frames straight into every open `/events` response, from
 * one fiber per listener. It is the listener's only place below the Effect HTTP response: with
 * many viewers, a stream per viewer (a fiber, a pull and a wake-up for each release) cost more
 * than the writes themselves, so one pass over all viewers writes each release instead, and the
 * platform still writes the headers and ends the response. Over HTTP/1.1 the frames go to the
 * response's connection as chunks framed once for all viewers: Node's response would frame each
 * write again, with three buffered writes, a writev and their garbage per viewer (measured: 40 %
 * of the listener's allocations at 10 viewers).
 *
 * Owns: each viewer's cursor in the log, keep-alive comments for idle viewers, and backpressure:
 * a viewer whose socket buffer is full (`write` returned false) is skipped until its `drain`, and
 * then catches up from the log page by page, so a slow viewer holds at most one page beyond
 * Node's buffer and never delays the others. Does not own the frames, their numbering or holds
 * (EventLog), nor the routes (ConversationListener).
 *
 * @since 0.1.0
 */
import { Clock, Deferred, Duration, Effect } from "effect"
import type { Scope } from "effect"
import type { EventLogReader } from "./EventLog.ts"

/**
 * The `/events` writer shared by every viewer of one listener.
 * @category models
 */
export interface SseFanout {
  /**
   * Serves `response` (its status and headers already set, nothing written yet): a keep-alive
   * comment at once so the headers leave, then every frame after number `after`, then the live
   * tail. Completes when the log closes; the viewer is removed when the calling fiber ends or is
   * interrupted (the platform interrupts it when the client goes away).
   */
  readonly serve: (response: SseSink, after: number) => Effect.Effect<void>
}

/**
 * How far apart write passes are kept, per open viewer. Each pass costs one socket write per
 * viewer (a few µs of the listener's CPU on loopback, most of it in the kernel), so with many
 * viewers the writes, not the events, are what the listener spends its time on. Spacing the
 * passes by 20 µs per viewer keeps them under about 50,000 writes a second whatever the event
 * rate (100 viewers: a pass at most every 2 ms); events arriving meanwhile share the next pass.
 * Below a millisecond (fewer than 50 viewers) a pass runs as soon as something changes.
 * Measured at 100 viewers, 2,000 events/s, with pre-framed writes (issue 19): 20 µs gave p99
 * 8.9 and 9.7 ms at 37 % of the listener's CPU; 30 µs 9.5 and 11.2 ms at 32 %; 40 µs 11.3 and
 * 11.4 ms at 33 %.
 */
const SPACING_PER_VIEWER_MS = 0.02
const MIN_SPACING_MS = 1

const PING = new TextEncoder().encode(": ping\n\n")
const CRLF = Buffer.from("\r\n", "latin1")
/** Framed chunks kept for the viewers of the same pass (see `frame`). */
const FRAMED_CHUNKS = 8

/**
 * The part of a Node response the fan-out uses; `ServerResponse` and HTTP/2's compatibility
 * response both have it.
 * @category models
 */
export interface SseSink extends ByteSink {
  /** HTTP/1.1's `ServerResponse`: whether its body is sent in chunked transfer encoding. */
  readonly chunkedEncoding?: boolean
  /** HTTP/1.1's `ServerResponse`: the connection, while this response is the one it carries. */
  readonly socket?: ByteSink | null
}

/**
 * What the fan-out writes bytes into: a response, or the connection under it.
 * @category models
 */
export interface ByteSink {
  readonly destroyed: boolean
  readonly writableEnded: boolean
  readonly writableNeedDrain: boolean
  write(chunk: Uint8Array): boolean
  on(event: "drain", listener: () => void): unknown
  off(event: "drain", listener: () => void): unknown
}

interface Viewer {
  /** The response, or for HTTP/1.1 its connection, written with pre-framed chunks (see `frame`). */
  readonly sink: ByteSink
  /** Whether bytes written to `sink` must be framed as HTTP/1.1 chunks first. */
  readonly framed: boolean
  /** Number of the last frame written to this viewer. */
  cursor: number
  /** The log's ping count when this viewer last got bytes. */
  pingsSeen: number
  /** Completed when the log closes. */
  readonly ended: Deferred.Deferred<void>
  readonly onDrain: () => void
}

/**
 * Starts the fan-out over `log`; its fiber stops with the scope.
 * @category constructors
 */
export const makeSseFanout = (log: EventLogReader): Effect.Effect<SseFanout, never, Scope.Scope> =>
  Effect.gen(function*() {
    const viewers = new Set<Viewer>()
    // Each chunk of the log framed once as an HTTP/1.1 chunk (size line, bytes, CRLF) for all the
    // viewers it goes to in a pass: they share the log's chunk, so a few recent ones are kept
    // (not every chunk ever sent, which would double the log's memory).
    const framedChunks = new Map<Uint8Array, Uint8Array>()
    const frame = (bytes: Uint8Array): Uint8Array => {
      const cached = framedChunks.get(bytes)
      if (cached !== undefined) return cached
      const framed = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`, "latin1"), bytes, CRLF])
      framedChunks.set(bytes, framed)
      if (framedChunks.size > FRAMED_CHUNKS) {
        const oldest = framedChunks.keys().next().value
        if (oldest !== undefined) framedChunks.delete(oldest)
      }
      return framed
    }
    const send = (viewer: Viewer, bytes: Uint8Array) => viewer.sink.write(viewer.framed ? frame(bytes) : bytes)

    // Writes what the viewer has not had yet, page by page, until it is current or its socket
    // buffer is full; an idle viewer answers a pending keep-alive instead.
    const pump = (viewer: Viewer) => {
      const sink = viewer.sink
      if (sink.destroyed || sink.writableEnded || sink.writableNeedDrain) return
      if (viewer.cursor >= log.released()) {
        if (viewer.pingsSeen !== log.pings()) {
          viewer.pingsSeen = log.pings()
          send(viewer, PING)
        }
        return
      }
      viewer.pingsSeen = log.pings()
      while (viewer.cursor < log.released()) {
        const [bytes, to] = log.chunk(viewer.cursor)
        viewer.cursor = to
        if (!send(viewer, bytes)) return
      }
    }

    // One pass over every viewer per change of the log, spaced as above. The change signal is
    // taken in the same synchronous step as the pass, so a release during the pass or the wait
    // is never missed: it wakes the next pass.
    yield* Effect.gen(function*() {
      while (true) {
        const startedAt = yield* Clock.currentTimeMillis
        const change = log.nextChange()
        if (log.closed()) {
          for (const viewer of viewers) Deferred.doneUnsafe(viewer.ended, Effect.void)
          return
        }
        for (const viewer of viewers) pump(viewer)
        yield* Deferred.await(change)
        const spacing = viewers.size * SPACING_PER_VIEWER_MS
        if (spacing >= MIN_SPACING_MS) {
          const wait = startedAt + spacing - (yield* Clock.currentTimeMillis)
          if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        }
      }
    }).pipe(Effect.forkScoped)

    const serve = (response: SseSink, after: number) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          // The headers go out with this comment, through the response: a viewer's client waits
          // for them. Over HTTP/1.1 the rest goes pre-framed to the connection (see the module
          // docs); the response still ends the body, after those complete chunks.
          if (!response.destroyed) response.write(PING)
          const socket = response.chunkedEncoding === true && response.socket != null ? response.socket : undefined
          const viewer: Viewer = {
            sink: socket ?? response,
            framed: socket !== undefined,
            cursor: after,
            pingsSeen: log.pings(),
            ended: Deferred.makeUnsafe<void>(),
            onDrain: () => pump(viewer)
          }
          if (log.closed()) Deferred.doneUnsafe(viewer.ended, Effect.void)
          viewers.add(viewer)
          viewer.sink.on("drain", viewer.onDrain)
          pump(viewer)
          return viewer
        }),
        (viewer) => Deferred.await(viewer.ended),
        (viewer) =>
          Effect.sync(() => {
            viewers.delete(viewer)
            viewer.sink.off("drain", viewer.onDrain)
          })
      )

    return { serve } satisfies SseFanout
  })
