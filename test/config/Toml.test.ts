import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import fc from "fast-check"
import { parse } from "smol-toml"
import type { TomlValue } from "../../src/config/Toml.ts"
import { InvalidTomlKeyPath, tomlKey, tomlKeyPath, tomlString, tomlValue, TomlValueSchema } from "../../src/config/Toml.ts"

// smol-toml builds null-prototype tables; rebuild plain objects so deepStrictEqual compares content.
const plain = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(plain)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]))
  }
  return value
}
const parseBack = (rendered: string): unknown => plain(parse(`x = ${rendered}`)["x"])
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/

const HOSTILE: ReadonlyArray<string> = [
  "", "plain", "\"", "\\", "\\\"", "'", "'''", "\"\"\"", "a\nb", "\r\n", "\t", "\b\f",
  "\u0000", "\u0001\u001f", "\u007f", "\u0080\u009f", "é", "日本語", "🙂", "e\u0301", "\u2028\u2029",
  "\ufeff", "\uffff", "$(id) `id` ${x}", "# not a comment", "[table]", "a = b", "/home/u/it's here/",
  "C:\\Users\\x", "\\u0041", "\\U0001F642",
]

describe("tomlString", () => {
  it.effect("escapes quote, backslash and the named control characters", () =>
    Effect.sync(() => {
      assert.strictEqual(tomlString("a\"b\\c"), String.raw`"a\"b\\c"`)
      assert.strictEqual(tomlString("\b\t\n\f\r"), String.raw`"\b\t\n\f\r"`)
      assert.strictEqual(tomlString(""), "\"\"")
      assert.strictEqual(tomlString("/home/u/cache"), "\"/home/u/cache\"")
    }))

  it.effect("escapes other control characters as \\u00XX", () =>
    Effect.sync(() => {
      assert.strictEqual(tomlString("\u0000\u0001\u001f\u007f"), String.raw`"\u0000\u0001\u001F\u007F"`)
    }))

  it.effect("escapes non-ASCII as \\uXXXX (BMP) and \\UXXXXXXXX (astral), never surrogate pairs", () =>
    Effect.sync(() => {
      assert.strictEqual(tomlString("é"), String.raw`"\u00E9"`)
      assert.strictEqual(tomlString("日本"), String.raw`"\u65E5\u672C"`)
      assert.strictEqual(tomlString("🙂"), String.raw`"\U0001F642"`)
      assert.notInclude(tomlString("🙂"), "\\uD83D")
    }))

  it.effect("writes a lone surrogate as U+FFFD", () =>
    Effect.sync(() => {
      assert.strictEqual(tomlString("a\ud800b"), String.raw`"a\uFFFDb"`)
      assert.strictEqual(parseBack(tomlString("\udc00")), "\ufffd")
    }))

  it.effect("round-trips hostile strings through a TOML parser, as printable ASCII", () =>
    Effect.sync(() => {
      for (const text of HOSTILE) {
        const rendered = tomlString(text)
        assert.match(rendered, PRINTABLE_ASCII)
        assert.strictEqual(parseBack(rendered), text)
      }
    }))

  it.effect("round-trips any well-formed string (property)", () =>
    Effect.sync(() => {
      fc.assert(
        fc.property(fc.string({ unit: "binary", maxLength: 64 }), (text) => {
          const rendered = tomlString(text)
          assert.match(rendered, PRINTABLE_ASCII)
          assert.strictEqual(parseBack(rendered), text)
        }),
        { numRuns: 500 },
      )
    }))
})

describe("tomlValue", () => {
  it.effect("renders scalars", () =>
    Effect.sync(() => {
      assert.strictEqual(tomlValue(true), "true")
      assert.strictEqual(tomlValue(false), "false")
      assert.strictEqual(tomlValue(42), "42")
      assert.strictEqual(tomlValue(-7), "-7")
      assert.strictEqual(tomlValue(1.5), "1.5")
      assert.strictEqual(tomlValue(-0), "-0.0")
      assert.strictEqual(tomlValue(1e-7), "1e-7")
      assert.strictEqual(tomlValue(2 ** 60), "1.152921504606847e+18")
      assert.strictEqual(tomlValue("o3"), "\"o3\"")
    }))

  it.effect("renders non-finite numbers as TOML nan / inf", () =>
    Effect.sync(() => {
      assert.deepStrictEqual([NaN, Infinity, -Infinity].map(tomlValue), ["nan", "inf", "-inf"])
    }))

  it.effect("renders arrays and inline tables on one line, quoting keys only when needed", () =>
    Effect.sync(() => {
      assert.strictEqual(tomlValue([]), "[]")
      assert.strictEqual(tomlValue({}), "{}")
      assert.strictEqual(tomlValue(["a", 1, [true]]), "[\"a\", 1, [true]]")
      assert.strictEqual(
        tomlValue({ plain_key: 1, "with-dash": 2, "a.b": 3, "": 4, "é": "x", "sp ace": { n: [] } }),
        String.raw`{ plain_key = 1, with-dash = 2, "a.b" = 3, "" = 4, "\u00E9" = "x", "sp ace" = { n = [] } }`,
      )
      assert.strictEqual(tomlKey("A_z-9"), "A_z-9")
      assert.strictEqual(tomlKey("a\"b"), String.raw`"a\"b"`)
    }))

  it.effect("round-trips nested hostile values through a TOML parser", () =>
    Effect.sync(() => {
      const value: TomlValue = { paths: HOSTILE, nested: { "key \"q\"\n": [1, -2.5, false, { deep: "🙂" }] } }
      const rendered = tomlValue(value)
      assert.match(rendered, PRINTABLE_ASCII)
      assert.deepStrictEqual(parseBack(rendered), value)
    }))

  it.effect("round-trips arbitrary JSON-like values without null (property)", () =>
    Effect.sync(() => {
      const key = fc.string({ unit: "binary", maxLength: 12 }).filter((k) => k !== "__proto__")
      const { value } = fc.letrec<{ value: TomlValue }>((tie) => ({
        value: fc.oneof(
          { depthSize: "small" },
          fc.string({ unit: "binary", maxLength: 16 }),
          fc.double({ noNaN: true, noDefaultInfinity: true }),
          fc.integer(),
          fc.boolean(),
          fc.array(tie("value"), { maxLength: 4 }),
          fc.dictionary(key, tie("value"), { maxKeys: 4 }),
        ),
      }))
      fc.assert(
        fc.property(value, (v) => {
          const rendered = tomlValue(v)
          assert.match(rendered, PRINTABLE_ASCII)
          assert.deepStrictEqual(parseBack(rendered), v)
        }),
        { numRuns: 300 },
      )
    }))

  it.effect("TomlValueSchema accepts TOML-representable values and rejects null and non-finite numbers", () =>
    Effect.sync(() => {
      const is = Schema.is(TomlValueSchema)
      assert.isTrue(is({ a: [1, "x", { b: true }] }))
      assert.isFalse(is(null))
      assert.isFalse(is([1, null]))
      assert.isFalse(is({ a: NaN }))
      assert.isFalse(is(Infinity))
    }))
})

describe("tomlKeyPath", () => {
  it.effect("accepts dotted keys and returns their segments", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* Effect.fromResult(tomlKeyPath("model")), ["model"])
      assert.deepStrictEqual(
        yield* Effect.fromResult(tomlKeyPath("model_providers.my-prov.base_url")),
        ["model_providers", "my-prov", "base_url"],
      )
      assert.deepStrictEqual(yield* Effect.fromResult(tomlKeyPath("projects./srv/w.trust_level")), [
        "projects",
        "/srv/w",
        "trust_level",
      ])
    }))

  it.effect.each([
    { key: "", why: "empty" },
    { key: ".a", why: "empty part" },
    { key: "a.", why: "empty part" },
    { key: "a..b", why: "empty part" },
    { key: "a b", why: "whitespace" },
    { key: " a", why: "whitespace" },
    { key: "a=b", why: "\"=\"" },
    { key: "\"a.b\"", why: "quote" },
    { key: "a.'b'", why: "quote" },
    { key: "a\tb", why: "control" },
    { key: "a\u0000b", why: "control" },
  ])("rejects $key", ({ key, why }) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.fromResult(tomlKeyPath(key)))
      assert.instanceOf(error, InvalidTomlKeyPath)
      assert.strictEqual(error.key, key)
      assert.include(error.message, why)
      assert.include(error.message, JSON.stringify(key))
    }))
})
