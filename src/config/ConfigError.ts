/**
 * ConfigError: the one failure of configuration decoding, and its translation from Schema issues.
 *
 * Owns the error class, how a field path is written (`extraAllowedDirs[0].path`,
 * `env["A=B"]`) and how a Schema failure becomes a message a user can act on. It does not
 * know the configuration's fields; `CodexTaskConfig.ts` supplies the hints.
 *
 * @since 0.1.0
 */
import { Schema, SchemaIssue } from "effect"

/**
 * The task configuration is invalid; `field` is the path of the culprit (`extraAllowedDirs[0].path`).
 *
 * **Gotchas** `value` is absent where it could be a secret (anything under `env`) and for
 * unknown or missing keys; `field` is `""` when the whole input is not an object.
 * @category errors
 * @since 0.1.0
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  field: Schema.String,
  value: Schema.optionalKey(Schema.Unknown),
  message: Schema.String,
}) {}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/**
 * Writes a field path the way a user would in TypeScript: `a.b[0]`, `env["A=B"]`.
 * @category formatting
 */
export const renderFieldPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((out, key, i) => {
    if (typeof key === "number") return `${out}[${key}]`
    const name = String(key)
    if (i === 0) return name
    return IDENTIFIER.test(name) ? `${out}.${name}` : `${out}[${JSON.stringify(name)}]`
  }, "")

/**
 * A short, safe description of a value: never a whole structure, which may be large or hold secrets.
 * @category formatting
 */
export const describeValue = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
  if (value === null || value === undefined || typeof value === "number" || typeof value === "boolean") {
    return String(value)
  }
  if (Array.isArray(value)) return "an array"
  return typeof value === "object" ? "an object" : `a value of type ${typeof value}`
}

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>((node, key) => typeof node === "object" && node !== null ? Reflect.get(node, key) : undefined, input)

/** How {@link fromSchemaError} words its messages for one configuration shape. */
export interface SchemaErrorWording {
  /** Extra advice for an unknown key (`; did you mean …`), or `""`. */
  readonly unknownKeyHint: (key: string) => string
  /** Top-level fields whose values must never appear in an error (e.g. `env`). */
  readonly secretFields: ReadonlyArray<string>
}

/**
 * Turns the first issue of a Schema failure into a ConfigError naming the field, what was
 * expected and what was found.
 * @category constructors
 */
export const fromSchemaError = (error: Schema.SchemaError, input: unknown, wording: SchemaErrorWording): ConfigError => {
  let leaf: string | undefined
  const format = SchemaIssue.makeFormatterStandardSchemaV1({
    leafHook: (issue) => {
      leaf ??= issue._tag
      return SchemaIssue.defaultLeafHook(issue)
    },
  })
  const first = format(error.issue).issues[0]
  const path = (first?.path ?? []).map((segment) => typeof segment === "object" ? segment.key : segment)
  const field = renderFieldPath(path)
  const expected = (first?.message ?? "invalid value").replace(/^Expected/, "expected")
  if (field === "") {
    return new ConfigError({ field, value: input, message: `the task configuration must be an object, got ${describeValue(input)}` })
  }
  if (leaf === "UnexpectedKey") {
    return new ConfigError({ field, message: `unknown field "${field}"${wording.unknownKeyHint(String(path[path.length - 1]))}` })
  }
  if (leaf === "MissingKey") return new ConfigError({ field, message: `${field} is required` })
  if (wording.secretFields.includes(String(path[0]))) return new ConfigError({ field, message: `${field}: ${expected}` })
  const value = valueAt(input, path)
  return new ConfigError({ field, value, message: `${field}: ${expected}, got ${describeValue(value)}` })
}
