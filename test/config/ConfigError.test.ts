import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { ConfigError, describeValue, fromSchemaError, renderFieldPath } from "../../src/config/ConfigError.ts"

describe("ConfigError helpers", () => {
  it.effect("renderFieldPath writes paths the way TypeScript code would", () =>
    Effect.sync(() => {
      assert.strictEqual(renderFieldPath([]), "")
      assert.strictEqual(renderFieldPath(["mode"]), "mode")
      assert.strictEqual(renderFieldPath(["extraAllowedDirs", 0, "path"]), "extraAllowedDirs[0].path")
      assert.strictEqual(renderFieldPath(["env", "A=B"]), "env[\"A=B\"]")
      assert.strictEqual(renderFieldPath(["configOverrides", "a.b", "c", 2]), "configOverrides[\"a.b\"].c[2]")
    }))

  it.effect("describeValue shows scalars and summarises structures", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(
        [null, undefined, 3, true, "x", [1], { a: 1 }, 1n, () => 1].map(describeValue),
        ["null", "undefined", "3", "true", "\"x\"", "an array", "an object", "a value of type bigint", "a value of type function"],
      )
      assert.strictEqual(describeValue("y".repeat(200)), JSON.stringify(`${"y".repeat(80)}…`))
    }))

  it.effect("fromSchemaError keeps secret fields out of the message and the error", () =>
    Effect.gen(function*() {
      const S = Schema.Struct({ env: Schema.Record(Schema.String, Schema.String), n: Schema.Number })
      const wording = { unknownKeyHint: () => "", secretFields: ["env"] }
      const secret = yield* Effect.flip(Schema.decodeUnknownEffect(S)({ env: { K: 424242 }, n: 1 }))
      const error = fromSchemaError(secret, { env: { K: 424242 } }, wording)
      assert.instanceOf(error, ConfigError)
      assert.deepStrictEqual([error.field, "value" in error, error.message.includes("424242")], ["env.K", false, false])
      const input = { env: {}, n: "one" }
      const plain = fromSchemaError(yield* Effect.flip(Schema.decodeUnknownEffect(S)(input)), input, wording)
      assert.deepStrictEqual([plain.field, plain.value, plain.message], ["n", "one", "n: expected number, got \"one\""])
    }))
})
