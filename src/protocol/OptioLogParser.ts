/**
 * OptioLogParser: turns `optio.log` text into {@link OptioLogEvent}s.
 *
 * Owns the keyword grammar of one line and the splitting of a byte-agnostic text stream into
 * complete lines (a line counts only once its `\n` has arrived). It does not own reading the
 * file (the host tails it), validating deliverable paths (`Deliverables.ts`) or acting on
 * events (the session).
 *
 * @since 0.1.0
 */
import { Stream } from "effect"
import { OptioLogEvent } from "./OptioLogEvent.ts"

// Anchored at the start; `s` so that exotic line terminators inside a line (U+2028, lone \r)
// stay part of the text instead of turning a keyword line into an unknown one.
const STATUS = /^STATUS:\s*(?:(\d{1,3})%\s+)?(.*)$/s
const DELIVERABLE = /^DELIVERABLE:\s*(.+)$/s
const DONE = /^DONE(?::\s*(.*))?$/s
const ERROR = /^ERROR(?::\s*(.*))?$/s
const BROWSER = /^BROWSER:\s*(.+)$/s
const ATTENTION = /^ATTENTION:\s*(.+)$/s

/**
 * Parses one `optio.log` line; returns null for a blank line.
 *
 * **Details**
 *
 * Trailing whitespace (including `\r\n`) is removed; leading whitespace is kept, so `  DONE`
 * is an `Unknown` line. Keywords are case-sensitive and checked in the order STATUS,
 * DELIVERABLE, DONE, ERROR, BROWSER, ATTENTION; anything else is `Unknown`.
 *
 * - `STATUS:` may start with a percentage of 1–3 digits followed by `%` and at least one
 *   space; it is clamped to 100. `STATUS: 50%` alone has no percentage: its message is `50%`.
 * - `DONE` / `ERROR` stand alone or take `:` plus optional text (empty text ⇒ null);
 *   `DONE now` (no colon) is `Unknown`.
 * - `BROWSER:` drops one pair of double quotes around the URL, the form the browser shims
 *   write; a URL that is empty after that is not a request and stays `Unknown`.
 * - `CLIENT_MESSAGE:` / `CALLER_MESSAGE:` are disabled for codex and are `Unknown`.
 *
 * **Gotchas**
 *
 * The space after a keyword's colon is optional (`DELIVERABLE:./x` is accepted), so that a
 * terse agent's deliverable is not silently shown as a progress line and left unacknowledged.
 *
 * @category parsing
 * @since 0.1.0
 */
export const parseOptioLogLine = (line: string): OptioLogEvent | null => {
  const text = line.trimEnd()
  if (text === "") return null

  const status = STATUS.exec(text)
  if (status !== null) {
    const digits = status[1]
    return OptioLogEvent.Status({
      percent: digits === undefined ? null : Math.min(Number.parseInt(digits, 10), 100),
      message: status[2] ?? ""
    })
  }

  const deliverable = DELIVERABLE.exec(text)?.[1]?.trim()
  if (deliverable !== undefined && deliverable !== "") return OptioLogEvent.Deliverable({ path: deliverable })

  const done = DONE.exec(text)
  if (done !== null) return OptioLogEvent.Done({ summary: nonEmpty(done[1]) })

  const error = ERROR.exec(text)
  if (error !== null) return OptioLogEvent.Failed({ message: nonEmpty(error[1]) })

  const browser = BROWSER.exec(text)?.[1]
  if (browser !== undefined) {
    const url = unquote(browser.trim())
    if (url !== "") return OptioLogEvent.Browser({ url })
  }

  const reason = ATTENTION.exec(text)?.[1]?.trim()
  if (reason !== undefined && reason !== "") return OptioLogEvent.Attention({ reason })

  return OptioLogEvent.Unknown({ text })
}

/**
 * Result of feeding one chunk to {@link splitCompleteLines}.
 *
 * @category models
 * @since 0.1.0
 */
export interface SplitLines {
  /** Lines completed by this chunk, without their `\n` (a `\r` before it is kept). */
  readonly lines: ReadonlyArray<string>
  /** Text after the last `\n`: the start of a line still being written. */
  readonly carry: string
}

/**
 * Splits `carry + chunk` into the lines whose `\n` has arrived and the unfinished rest.
 *
 * **Details**
 *
 * Feeding a text in any chunking, threading `carry` through, then calling
 * {@link flushCarry} yields the same lines as feeding it whole.
 *
 * @category parsing
 * @since 0.1.0
 */
export const splitCompleteLines = (carry: string, chunk: string): SplitLines => {
  if (!chunk.includes("\n")) return { lines: [], carry: carry + chunk }
  const parts = (carry + chunk).split("\n")
  const rest = parts.pop() ?? ""
  return { lines: parts, carry: rest }
}

/**
 * The last, unterminated line at drain time (`[]` when nothing is pending).
 *
 * @category parsing
 * @since 0.1.0
 */
export const flushCarry = (carry: string): ReadonlyArray<string> => carry === "" ? [] : [carry]

/**
 * Parses a stream of text chunks (any boundaries) into events, skipping blank lines.
 *
 * **Gotchas**
 *
 * The stream does not stop after `Done` / `Failed`; stop with
 * `Stream.takeUntil(isTerminal)` where the session wants that. A partial last line is parsed
 * only when the source ends.
 *
 * @category parsing
 * @since 0.1.0
 */
export const optioLogEvents = <E, R>(chunks: Stream.Stream<string, E, R>): Stream.Stream<OptioLogEvent, E, R> =>
  Stream.mapAccum(
    chunks,
    () => "",
    (carry: string, chunk: string) => {
      const split = splitCompleteLines(carry, chunk)
      return [split.carry, parseLines(split.lines)] as const
    },
    { onHalt: (carry) => parseLines(flushCarry(carry)) }
  )

const parseLines = (lines: ReadonlyArray<string>): ReadonlyArray<OptioLogEvent> => {
  const events: Array<OptioLogEvent> = []
  for (const line of lines) {
    const event = parseOptioLogLine(line)
    if (event !== null) events.push(event)
  }
  return events
}

const nonEmpty = (text: string | undefined): string | null => {
  const trimmed = text?.trim() ?? ""
  return trimmed === "" ? null : trimmed
}

// One pair only: a URL that itself ends in `"` must survive the shim's quoting round trip.
const unquote = (value: string): string =>
  value.length >= 2 && value.startsWith("\"") && value.endsWith("\"") ? value.slice(1, -1) : value
