import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import fc from "fast-check"
import { isTerminal, OptioLogEvent } from "../../src/protocol/OptioLogEvent.ts"
import {
  flushCarry,
  optioLogEvents,
  parseOptioLogLine,
  splitCompleteLines
} from "../../src/protocol/OptioLogParser.ts"

const { Attention, Browser, Deliverable, Done, Failed, Status, Unknown } = OptioLogEvent

const table: ReadonlyArray<readonly [string, OptioLogEvent | null]> = [
  // blank lines
  ["", null],
  ["   \t  ", null],
  ["\r\n", null],
  // STATUS
  ["STATUS: 50% counting my fingers", Status({ percent: 50, message: "counting my fingers" })],
  ["STATUS: working", Status({ percent: null, message: "working" })],
  ["STATUS: 50%", Status({ percent: null, message: "50%" })],
  ["STATUS: 50%   ", Status({ percent: null, message: "50%" })],
  ["STATUS: 150% overachiever", Status({ percent: 100, message: "overachiever" })],
  ["STATUS: 999% way over", Status({ percent: 100, message: "way over" })],
  ["STATUS: 1000% too many digits", Status({ percent: null, message: "1000% too many digits" })],
  ["STATUS: 007% leading zeros", Status({ percent: 7, message: "leading zeros" })],
  ["STATUS: 0% starting", Status({ percent: 0, message: "starting" })],
  ["STATUS:25% no space after colon", Status({ percent: 25, message: "no space after colon" })],
  ["STATUS: 50%done", Status({ percent: null, message: "50%done" })],
  ["STATUS: 30%    many spaces", Status({ percent: 30, message: "many spaces" })],
  ["STATUS:", Status({ percent: null, message: "" })],
  ["STATUS: 10% step\r\n", Status({ percent: 10, message: "step" })],
  ["STATUS: 5 % spaced", Status({ percent: null, message: "5 % spaced" })],
  ["status: lower case", Unknown({ text: "status: lower case" })],
  ["  STATUS: indented", Unknown({ text: "  STATUS: indented" })],
  // DELIVERABLE
  ["DELIVERABLE: ./deliverables/summary.md", Deliverable({ path: "./deliverables/summary.md" })],
  ["DELIVERABLE:    /abs/path with space.txt   ", Deliverable({ path: "/abs/path with space.txt" })],
  ["DELIVERABLE:", Unknown({ text: "DELIVERABLE:" })],
  ["DELIVERABLE:    ", Unknown({ text: "DELIVERABLE:" })],
  // DONE
  ["DONE", Done({ summary: null })],
  ["DONE\n", Done({ summary: null })],
  ["DONE   ", Done({ summary: null })],
  ["DONE:", Done({ summary: null })],
  ["DONE:    ", Done({ summary: null })],
  ["DONE: wrote the report", Done({ summary: "wrote the report" })],
  ["DONE now", Unknown({ text: "DONE now" })],
  ["DONE!", Unknown({ text: "DONE!" })],
  ["  DONE", Unknown({ text: "  DONE" })],
  ["done", Unknown({ text: "done" })],
  // ERROR
  ["ERROR", Failed({ message: null })],
  ["ERROR: provider auth failed", Failed({ message: "provider auth failed" })],
  ["ERROR:", Failed({ message: null })],
  ["ERRORS happen", Unknown({ text: "ERRORS happen" })],
  ["ERROR: codex exited 3\r\n", Failed({ message: "codex exited 3" })],
  // BROWSER
  ["BROWSER: https://example.com/login", Browser({ url: "https://example.com/login" })],
  ["BROWSER: \"http://127.0.0.1:1455/auth?x=1\"", Browser({ url: "http://127.0.0.1:1455/auth?x=1" })],
  ["BROWSER: \"https://e.x/?q=\"a\"\"", Browser({ url: "https://e.x/?q=\"a\"" })],
  ["BROWSER: \"\"", Unknown({ text: "BROWSER: \"\"" })],
  ["BROWSER:", Unknown({ text: "BROWSER:" })],
  // ATTENTION
  ["ATTENTION: waiting for your approval", Attention({ reason: "waiting for your approval" })],
  ["ATTENTION:   ", Unknown({ text: "ATTENTION:" })],
  // disabled keywords and other text
  ["CLIENT_MESSAGE: hi", Unknown({ text: "CLIENT_MESSAGE: hi" })],
  ["CALLER_MESSAGE: hi", Unknown({ text: "CALLER_MESSAGE: hi" })],
  ["just some chatter  ", Unknown({ text: "just some chatter" })]
]

describe("parseOptioLogLine", () => {
  it.each(table)("%j", (line, expected) => {
    assert.deepStrictEqual(parseOptioLogLine(line), expected)
  })

  it("never throws and only returns null for blank input", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (line) => {
      const event = parseOptioLogLine(line)
      assert.strictEqual(event === null, line.trim() === "")
    }))
  })

  it("keeps STATUS percent within 0..100 for every input", () => {
    fc.assert(fc.property(fc.nat({ max: 999 }), fc.string(), (n, rest) => {
      const event = parseOptioLogLine(`STATUS: ${n}% x${rest}`)
      assert.deepStrictEqual(event?._tag, "Status")
      if (event?._tag === "Status") assert.strictEqual(event.percent, Math.min(n, 100))
    }))
  })

  it("reads back any quoted BROWSER url exactly", () => {
    const url = fc.string({ unit: "binary", minLength: 1 }).filter((s) => !/[\r\n]/.test(s))
    fc.assert(fc.property(url, (u) => {
      assert.deepStrictEqual(parseOptioLogLine(`BROWSER: "${u}"\n`), Browser({ url: u }))
    }))
  })

  it("flags DONE and ERROR as terminal, nothing else", () => {
    assert.isTrue(isTerminal(Done({ summary: null })))
    assert.isTrue(isTerminal(Failed({ message: "x" })))
    assert.isFalse(isTerminal(Status({ percent: 1, message: "x" })))
    assert.isFalse(isTerminal(Unknown({ text: "DONE now" })))
  })
})

const splitAll = (chunks: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  let carry = ""
  for (const chunk of chunks) {
    const split = splitCompleteLines(carry, chunk)
    out.push(...split.lines)
    carry = split.carry
  }
  out.push(...flushCarry(carry))
  return out
}

// Cuts `text` at the given (sorted, deduplicated) offsets.
const cut = (text: string, offsets: ReadonlyArray<number>): Array<string> => {
  const points = [...new Set(offsets.map((o) => o % (text.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<string> = []
  let start = 0
  for (const p of points) {
    chunks.push(text.slice(start, p))
    start = p
  }
  chunks.push(text.slice(start))
  return chunks
}

describe("splitCompleteLines", () => {
  it("emits a line only once its newline arrives", () => {
    const a = splitCompleteLines("", "STATUS: 1")
    assert.deepStrictEqual(a, { lines: [], carry: "STATUS: 1" })
    const b = splitCompleteLines(a.carry, "0% half\nDO")
    assert.deepStrictEqual(b, { lines: ["STATUS: 10% half"], carry: "DO" })
    const c = splitCompleteLines(b.carry, "NE\n")
    assert.deepStrictEqual(c, { lines: ["DONE"], carry: "" })
  })

  it("keeps empty lines and a CR before the newline", () => {
    assert.deepStrictEqual(splitCompleteLines("", "a\r\n\nb"), { lines: ["a\r", ""], carry: "b" })
  })

  it("flushes the pending partial line only when there is one", () => {
    assert.deepStrictEqual(flushCarry(""), [])
    assert.deepStrictEqual(flushCarry("DONE"), ["DONE"])
  })

  it("yields the same lines for any chunking as for the whole text", () => {
    const text = fc.array(fc.oneof(fc.string({ unit: "binary" }), fc.constantFrom("\n", "\r\n", "DONE", "STATUS: 5% x")))
      .map((parts) => parts.join(""))
    fc.assert(fc.property(text, fc.array(fc.nat()), (whole, offsets) => {
      const expected = splitAll([whole])
      assert.deepStrictEqual(splitAll(cut(whole, offsets)), expected)
      assert.deepStrictEqual(expected, whole === "" ? [] : whole.endsWith("\n") ? whole.split("\n").slice(0, -1) : whole.split("\n"))
    }))
  })
})

describe("optioLogEvents", () => {
  it.effect("parses a chunked stream, skipping blanks and parsing the last partial line at the end", () =>
    Effect.gen(function*() {
      const events = yield* Stream.make("STATUS: 10", "% start\n\n", "DELIVERABLE: ./deliverables/a.md\nDO", "NE: ok").pipe(
        optioLogEvents,
        Stream.runCollect
      )
      assert.deepStrictEqual(events, [
        Status({ percent: 10, message: "start" }),
        Deliverable({ path: "./deliverables/a.md" }),
        Done({ summary: "ok" })
      ])
    }))

  it.effect("stops at the first terminal event with takeUntil", () =>
    Effect.gen(function*() {
      const events = yield* Stream.make("ERROR: boom\nSTATUS: after\n").pipe(
        optioLogEvents,
        Stream.takeUntil(isTerminal),
        Stream.runCollect
      )
      assert.deepStrictEqual(events, [Failed({ message: "boom" })])
    }))
})
