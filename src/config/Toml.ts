/**
 * Toml: renders values as TOML text for codex `-c key=value` overrides and config.toml edits.
 *
 * Owns the value encoding (ASCII-only output, so a value survives any terminal, log or
 * locale unchanged) and the rule for which dotted keys codex accepts. It does not parse
 * TOML (tests use smol-toml for that) and does not decide which keys are set.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"

/**
 * A value TOML can express: no null, and tables are plain string-keyed objects.
 * @category models
 */
export type TomlValue = string | number | boolean | ReadonlyArray<TomlValue> | { readonly [key: string]: TomlValue }

/**
 * Schema for a {@link TomlValue} with finite numbers, used to decode user config overrides.
 * @category schemas
 */
export const TomlValueSchema: Schema.Codec<TomlValue> = Schema.Union([
  Schema.String,
  Schema.Finite,
  Schema.Boolean,
  Schema.Array(Schema.suspend(() => TomlValueSchema)),
  Schema.Record(Schema.String, Schema.suspend(() => TomlValueSchema)),
]).annotate({ expected: "a TOML value (string, finite number, boolean, array or object; TOML has no null)" })

/**
 * A dotted key cannot be used as a codex `-c` key; `reason` says why.
 * @category errors
 */
export class InvalidTomlKeyPath extends Schema.TaggedError<InvalidTomlKeyPath>()("InvalidTomlKeyPath", {
  key: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `${JSON.stringify(this.key)} is not a usable codex config key: ${this.reason}`
  }
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  "\"": "\\\"",
  "\\": "\\\\",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\f": "\\f",
  "\r": "\\r",
}

const hex = (n: number, width: number): string => n.toString(16).toUpperCase().padStart(width, "0")

/**
 * Renders a TOML basic string (`"…"`) whose text is pure printable ASCII.
 *
 * Quotes, backslashes and control characters are escaped; every non-ASCII character
 * becomes `\uXXXX` (BMP) or `\UXXXXXXXX` (astral), never a JSON-style surrogate pair,
 * which TOML rejects.
 *
 * **Gotchas** a lone surrogate is not a Unicode scalar value and has no TOML escape; it is
 * written as `\uFFFD`, the same replacement Node applies when it encodes such a string
 * for argv or a file, so what codex sees does not change.
 * @category encoding
 */
export const tomlString = (text: string): string => {
  let out = "\""
  for (const ch of text) {
    const simple = SIMPLE_ESCAPES[ch]
    if (simple !== undefined) {
      out += simple
      continue
    }
    const cp = ch.codePointAt(0) ?? 0
    if (cp >= 0x20 && cp < 0x7f) out += ch
    else if (cp >= 0xd800 && cp <= 0xdfff) out += "\\uFFFD"
    else if (cp <= 0xffff) out += `\\u${hex(cp, 4)}`
    else out += `\\U${hex(cp, 8)}`
  }
  return `${out}"`
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/

/**
 * Renders a table key: bare when it is `[A-Za-z0-9_-]+`, otherwise a quoted basic string.
 * @category encoding
 */
export const tomlKey = (key: string): string => BARE_KEY.test(key) ? key : tomlString(key)

const tomlNumber = (n: number): string => {
  if (Number.isNaN(n)) return "nan"
  if (n === Infinity) return "inf"
  if (n === -Infinity) return "-inf"
  if (Object.is(n, -0)) return "-0.0"
  // Integers past 2^53 are not exact anyway and may exceed TOML's int64: write them as floats.
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) return n.toExponential()
  return String(n)
}

const isTomlArray = (value: TomlValue): value is ReadonlyArray<TomlValue> => Array.isArray(value)

/**
 * Renders a value as a one-line TOML inline value (string, number, boolean, array, inline table).
 *
 * **Gotchas** integers render as TOML integers and fractions as floats; non-finite numbers
 * render as `nan` / `inf` / `-inf` ({@link TomlValueSchema} rejects them before they get here).
 * @category encoding
 */
export const tomlValue = (value: TomlValue): string => {
  if (typeof value === "string") return tomlString(value)
  if (typeof value === "number") return tomlNumber(value)
  if (typeof value === "boolean") return value ? "true" : "false"
  if (isTomlArray(value)) return `[${value.map(tomlValue).join(", ")}]`
  const entries = Object.entries(value)
  if (entries.length === 0) return "{}"
  return `{ ${entries.map(([key, item]) => `${tomlKey(key)} = ${tomlValue(item)}`).join(", ")} }`
}

// codex splits a `-c` key on "." and uses each part literally (no TOML unquoting), after
// trimming the whole key and cutting at the first "=". Anything these characters would
// change or that a reader would take for TOML quoting is refused.
const FORBIDDEN_IN_SEGMENT = /[\s\p{Cc}="']/u

/**
 * Checks a dotted `-c` key (`a.b.c`) and returns its segments.
 *
 * A segment must be non-empty and free of whitespace, control characters, `=` and quotes:
 * codex does not unquote key parts, so `"a.b"` cannot name a key containing a dot.
 * @category parsing
 */
export const tomlKeyPath = (dotted: string): Result.Result<ReadonlyArray<string>, InvalidTomlKeyPath> => {
  if (dotted === "") return Result.fail(new InvalidTomlKeyPath({ key: dotted, reason: "the key is empty" }))
  const segments = dotted.split(".")
  if (segments.some((segment) => segment === "")) {
    return Result.fail(new InvalidTomlKeyPath({
      key: dotted,
      reason: "it has an empty part (a leading, trailing or doubled \".\")",
    }))
  }
  const bad = segments.find((segment) => FORBIDDEN_IN_SEGMENT.test(segment))
  if (bad !== undefined) {
    return Result.fail(new InvalidTomlKeyPath({
      key: dotted,
      reason: `part ${JSON.stringify(bad)} contains whitespace, a control character, "=" or a quote, ` +
        `which codex would not read back as written`,
    }))
  }
  // These names reach JavaScript objects' prototypes when the key path is applied to a table.
  const reserved = segments.find((segment) => RESERVED_SEGMENTS.has(segment))
  if (reserved !== undefined) {
    return Result.fail(new InvalidTomlKeyPath({ key: dotted, reason: `part ${JSON.stringify(reserved)} is reserved` }))
  }
  return Result.succeed(segments)
}

const RESERVED_SEGMENTS: ReadonlySet<string> = new Set(["__proto__", "prototype", "constructor"])
