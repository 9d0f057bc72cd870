/**
 * Property-based tests (fast-check) that add coverage beyond the ones that already exist:
 * - test/protocol/OptioLogParser.test.ts: no string crashes the line parser; any chunking of a
 *   string yields the same lines (strings only);
 * - test/config/CodexTaskConfig.test.ts: decoding arbitrary JSON never throws;
 * - test/config/ShellQuote.test.ts: any NUL-free argv round-trips through a real /bin/sh;
 * - test/config/Toml.test.ts: any string and any JSON-like value round-trip through smol-toml.
 * Those are referenced in the fault table, not duplicated. Added here: the optio.log monitor on
 * raw bytes (split UTF-8, invalid bytes, rotation, runaway lines), the app-server line framer
 * (any chunking, oversized lines) and config.toml rendering with hostile override keys and
 * workdir paths.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Result, Stream } from "effect"
import fc from "fast-check"
import { parse } from "smol-toml"
import * as AppServerProtocol from "../../src/appserver/AppServerProtocol.ts"
import { Host } from "../../src/host/Host.ts"
import type { TailChunk } from "../../src/host/Host.ts"
import type { OptioLogEvent } from "../../src/protocol/OptioLogEvent.ts"
import { followOptioLog, MAX_LINE_CHARS } from "../../src/protocol/OptioLogMonitor.ts"
import { parseOptioLogLine } from "../../src/protocol/OptioLogParser.ts"
import { renderCodexConfig } from "../../src/workdir/CodexConfigToml.ts"
import { recordOutcome } from "./summary.ts"

const encoder = new TextEncoder()
const bytesOf = (text: string) => [...encoder.encode(text)]

/** Bytes that make optio.log interesting: keywords, line ends, split multi-byte UTF-8, invalid bytes. */
const logPiece = fc.oneof(
  fc.constantFrom(
    ...["DONE", "DONE: ok", "ERROR: boom", "STATUS: 5% x", "STATUS:", "DELIVERABLE: ./deliverables/a.md", "BROWSER: \"http://x\"", "ATTENTION: hi", " ", ":", "\r", "é", "🙂", "日本"]
      .map(bytesOf)
  ),
  fc.constant([0x0a]),
  fc.constant([0x0a]),
  fc.constantFrom([0xff], [0xc3], [0xe6, 0x97], [0xf0, 0x9f, 0x99]),
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 4 })
)
const logBytes = fc.array(logPiece, { maxLength: 40 }).map((pieces) => new Uint8Array(pieces.flat()))

/** Cuts `bytes` at the given points; a cut may also mark a rotation (Reset) of the log there. */
const chunked = (bytes: Uint8Array, cuts: ReadonlyArray<{ readonly at: number; readonly reset: boolean }>): ReadonlyArray<TailChunk> => {
  const points = [...new Map(cuts.map((cut) => [cut.at % (bytes.length + 1), cut.reset])).entries()].sort((a, b) => a[0] - b[0])
  const out: Array<TailChunk> = []
  let start = 0
  for (const [at, reset] of points) {
    out.push({ _tag: "Data", bytes: bytes.slice(start, at) })
    if (reset) out.push({ _tag: "Reset" })
    start = at
  }
  out.push({ _tag: "Data", bytes: bytes.slice(start) })
  return out
}

/** The events of the same chunks, computed the simple way: whole segments decoded at once. */
const expectedEvents = (chunks: ReadonlyArray<TailChunk>): ReadonlyArray<OptioLogEvent> => {
  const segments: Array<Array<number>> = [[]]
  for (const chunk of chunks) {
    if (chunk._tag === "Reset") segments.push([])
    else segments[segments.length - 1]?.push(...chunk.bytes)
  }
  const lines = segments.flatMap((segment, index) => {
    const parts = new TextDecoder().decode(new Uint8Array(segment)).split("\n")
    const last = parts.pop() ?? ""
    // A rotation drops the old file's unfinished line; the final one is drained at the end.
    return index === segments.length - 1 && last !== "" ? [...parts, last] : parts
  })
  return lines.map(parseOptioLogLine).filter((event): event is OptioLogEvent => event !== null)
}

const monitorOver = (chunks: ReadonlyArray<TailChunk>) =>
  followOptioLog("/optio.log").pipe(
    Stream.runCollect,
    Effect.provide(Layer.mock(Host)({ label: "mock", tail: () => Stream.fromIterable(chunks) }))
  )

/** The frames of `bytes` computed the simple way: split the whole on LF. */
const expectedFrames = (bytes: Uint8Array, maxLineBytes: number, prefixBytes: number) => {
  const lines: Array<Uint8Array> = []
  let start = 0
  for (let index = 0; index < bytes.length; index++) {
    if (bytes[index] === 0x0a) {
      lines.push(bytes.slice(start, index))
      start = index + 1
    }
  }
  if (start < bytes.length) lines.push(bytes.slice(start))
  return lines.map((line) =>
    line.length > maxLineBytes
      ? { tag: "Oversized", bytes: line.length, content: [...line.subarray(0, prefixBytes)] }
      : { tag: "Line", bytes: line.length, content: [...line] }
  )
}

const cutPoints = fc.array(fc.record({ at: fc.nat(), reset: fc.boolean() }), { maxLength: 12 })
const RUNS = 300

describe("properties (fault suite additions)", () => {
  it.live("optio.log monitor: any bytes, any chunking, any rotation point → the events of the whole text; never fails", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(logBytes, cutPoints, async (bytes, cuts) => {
          const chunks = chunked(bytes, cuts)
          const events = await Effect.runPromise(monitorOver(chunks))
          assert.deepStrictEqual(events, expectedEvents(chunks))
        }),
        { numRuns: RUNS }
      )
    ).pipe(Effect.tap(() =>
      Effect.sync(() =>
        recordOutcome(
          "property: optio.log monitor (raw bytes, any chunking)",
          `${RUNS} runs: split UTF-8 / invalid bytes / rotations never fail the follow and give the events of the whole text`
        )
      )
    )))

  it.live("optio.log monitor: a runaway line without newline is cut into MAX_LINE_CHARS pieces, nothing lost", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 4 * MAX_LINE_CHARS }), fc.array(fc.integer({ min: 1, max: MAX_LINE_CHARS }), { minLength: 1, maxLength: 8 }), async (length, sizes) => {
          const text = "x".repeat(length)
          const chunks: Array<TailChunk> = []
          let offset = 0
          for (let index = 0; offset < length; index++) {
            const size = sizes[index % sizes.length] ?? 1
            chunks.push({ _tag: "Data", bytes: encoder.encode(text.slice(offset, offset + size)) })
            offset += size
          }
          const events = await Effect.runPromise(monitorOver(chunks))
          const texts = events.map((event) => event._tag === "Unknown" ? event.text : "")
          assert.isTrue(texts.every((piece) => piece.length <= MAX_LINE_CHARS))
          assert.strictEqual(texts.join(""), text)
        }),
        { numRuns: 40 }
      )
    ))

  it.live("app-server framer: any bytes, any chunking, any limit → the lines of the whole; oversized lines counted exactly", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ maxLength: 200 }).map((raw) => raw.map((byte) => byte % 4 === 0 ? 0x0a : byte)),
          fc.array(fc.nat(), { maxLength: 12 }),
          fc.integer({ min: 0, max: 24 }),
          fc.integer({ min: 0, max: 25 }),
          async (bytes, cuts, maxLineBytes, prefixWanted) => {
            // The prefix of an oversized line is exact while it is not longer than the limit + 1
            // (codex's framer: 1 KiB prefix, 16 MiB limit).
            const prefixBytes = Math.min(prefixWanted, maxLineBytes + 1)
            const data = chunked(bytes, cuts.map((at) => ({ at, reset: false })))
              .flatMap((chunk) => chunk._tag === "Data" ? [chunk.bytes] : [])
            const frames = await Effect.runPromise(
              Stream.fromIterable(data).pipe(AppServerProtocol.splitFrames(maxLineBytes, prefixBytes), Stream.runCollect)
            )
            const got = frames.map((frame) =>
              frame._tag === "Line"
                ? { tag: "Line", bytes: frame.bytes.length, content: [...frame.bytes] }
                : { tag: "Oversized", bytes: frame.bytes, content: [...frame.prefix] }
            )
            assert.deepStrictEqual(got, expectedFrames(bytes, maxLineBytes, prefixBytes))
          }
        ),
        { numRuns: RUNS }
      )
    ).pipe(Effect.tap(() =>
      Effect.sync(() =>
        recordOutcome(
          "property: app-server line framing (any chunking)",
          `${RUNS} runs: frames equal the LF split of the whole input for any chunking and limit; oversized lines keep only an exact prefix and byte count`
        )
      )
    )))

  it.effect("config.toml rendering: hostile override keys and workdir paths → never throws; the output parses and reads back", () =>
    Effect.sync(() => {
      // `__proto__`, `constructor` and `prototype` parts are refused (they would reach prototypes).
      const segment = fc.oneof(
        fc.constantFrom("__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "model_providers", "x", "é", "日本", "a-b", "1", "true"),
        fc.string({ minLength: 1, maxLength: 6 })
      )
      const key = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join("."))
      const value = fc.oneof(fc.string({ unit: "binary", maxLength: 8 }), fc.integer(), fc.boolean(), fc.array(fc.integer(), { maxLength: 3 }))
      const workdir = fc.string({ unit: "binary", minLength: 1, maxLength: 20 }).map((text) => `/${text}`)
      let rendered = 0
      fc.assert(
        fc.property(workdir, fc.dictionary(key, value, { maxKeys: 5 }), (dir, overrides) => {
          const result = renderCodexConfig({ workdir: dir, model: "m", overrides })
          assert.deepStrictEqual(Object.keys(Object.prototype), [], "Object.prototype must stay clean")
          if (Result.isFailure(result)) {
            assert.strictEqual(result.failure._tag, "InvalidCodexConfig")
            return
          }
          rendered++
          const table: unknown = parse(result.success)
          const at = (path: ReadonlyArray<string>) =>
            path.reduce<unknown>((node, part) => typeof node === "object" && node !== null && Object.hasOwn(node, part) ? Reflect.get(node, part) : undefined, table)
          // Overrides that share no path with another override read back as given.
          const paths = Object.keys(overrides).map((dotted) => dotted.split("."))
          const overlaps = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) =>
            a !== b && a.slice(0, Math.min(a.length, b.length)).every((part, index) => part === b[index])
          for (const [dotted, wanted] of Object.entries(overrides)) {
            const path = dotted.split(".")
            if (paths.some((other) => overlaps(path, other))) continue
            if (path.some((part) => /[\s\p{Cc}="']/u.test(part))) continue // refused keys never render
            assert.deepStrictEqual(at(path), wanted, dotted)
          }
          // The unattended-session settings survive unless an override names them.
          if (!paths.some((path) => path[0] === "projects")) assert.strictEqual(at(["projects", dir, "trust_level"]), "trusted")
          if (!paths.some((path) => path[0] === "features")) assert.strictEqual(at(["features", "daemon_auto_start"]), false)
        }),
        { numRuns: 500 }
      )
      assert.isAbove(rendered, 0)
      recordOutcome(
        "property: config.toml rendering (hostile overrides)",
        `500 runs: never throws (Success or InvalidCodexConfig); output parses; overrides and the workdir's trust read back; ` +
          `Object.prototype stays clean with __proto__/constructor/prototype key parts (refused)`
      )
    }))

  it.effect("existing properties are referenced, not duplicated", () =>
    Effect.sync(() => {
      recordOutcome("property: optio.log parser (strings)", "covered by test/protocol/OptioLogParser.test.ts (never throws; any chunking → same lines)")
      recordOutcome("property: config decoding", "covered by test/config/CodexTaskConfig.test.ts (arbitrary JSON never throws: Success or ConfigError)")
      recordOutcome("property: shell quoting through /bin/sh", "covered by test/config/ShellQuote.test.ts (any NUL-free argv round-trips through a real /bin/sh)")
      recordOutcome("property: TOML encoding through smol-toml", "covered by test/config/Toml.test.ts (strings and JSON-like values round-trip)")
    }))
})
