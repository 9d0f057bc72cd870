/**
 * OptioLogMonitor: turns the growing `optio.log` on a host into a stream of keyword events. It
 * owns byte-to-line decoding across chunk boundaries (partial lines, split UTF-8 sequences),
 * restarts cleanly when the log is rotated or truncated, and drains the file one last time when
 * the writer is known to be done, so a `DONE` written just before codex exits is never missed.
 * What the events mean for a session is the session's business.
 *
 * @since 0.1.0
 */
import { Effect, Stream } from "effect"
import { Host } from "../host/Host.ts"
import type { HostError, TailOptions } from "../host/Host.ts"
import type { OptioLogEvent } from "./OptioLogEvent.ts"
import { flushCarry, parseOptioLogLine, splitCompleteLines } from "./OptioLogParser.ts"

/**
 * A line longer than this without a newline is cut and parsed as it is, so a runaway writer
 * cannot grow the monitor's memory without bound.
 * @category constants
 */
export const MAX_LINE_CHARS = 64 * 1024

/**
 * Follows `path` on the current host from its first byte. With `until`, the stream ends after a
 * final read to end of file once `until` completes (the partial last line is parsed too).
 * @category constructors
 */
export const followOptioLog = (
  path: string,
  options?: TailOptions
): Stream.Stream<OptioLogEvent, HostError, Host> =>
  Stream.unwrap(Effect.gen(function*() {
    const host = yield* Host
    let decoder = new TextDecoder()
    let carry = ""
    const lines = host.tail(path, options).pipe(
      Stream.flatMap((chunk) => {
        if (chunk._tag === "Reset") {
          // A rotated log starts over: whatever was half-read belongs to the old file.
          decoder = new TextDecoder()
          carry = ""
          return Stream.empty
        }
        const split = splitCompleteLines(carry, decoder.decode(chunk.bytes, { stream: true }))
        const complete = [...split.lines]
        carry = split.carry
        while (carry.length > MAX_LINE_CHARS) {
          complete.push(carry.slice(0, MAX_LINE_CHARS))
          carry = carry.slice(MAX_LINE_CHARS)
        }
        return Stream.fromIterable(complete)
      }),
      Stream.concat(Stream.suspend(() => Stream.fromIterable(flushCarry(carry + decoder.decode()))))
    )
    return lines.pipe(
      Stream.map(parseOptioLogLine),
      Stream.filter((event): event is OptioLogEvent => event !== null)
    )
  }))
