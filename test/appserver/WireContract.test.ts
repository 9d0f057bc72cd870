/**
 * Drift guard: everything in WireContract (methods by direction, the fields of our schemas, the
 * enum values we send or branch on) must exist in the pinned codex binary's own protocol schema,
 * as printed by `codex app-server generate-json-schema`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { WireContract } from "../../src/appserver/AppServerSchema.ts"
import { PINNED_CODEX_VERSION } from "../../src/binary/BinaryCache.ts"
import { runChecked } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { codexBinary } from "../support/offlineCodex.ts"

type JsonSchema = { readonly [key: string]: unknown }

const root = join(process.cwd(), ".cache", "test", `appserver-schema-${process.pid}`)
const out = join(root, "schema")
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** Every named schema in the output: top-level files by title, `definitions`, titled variants. */
const named = new Map<string, Array<JsonSchema>>()
const methodsOf: Record<string, Map<string, JsonSchema>> = {}

const isSchema = (value: unknown): value is JsonSchema => typeof value === "object" && value !== null && !Array.isArray(value)

const register = (name: string, schema: JsonSchema) => named.set(name, [...(named.get(name) ?? []), schema])

const walk = (value: unknown): void => {
  if (Array.isArray(value)) return value.forEach(walk)
  if (!isSchema(value)) return
  if (typeof value["title"] === "string") register(value["title"], value)
  const definitions = value["definitions"]
  if (isSchema(definitions)) for (const [name, schema] of Object.entries(definitions)) if (isSchema(schema)) register(name, schema)
  Object.values(value).forEach(walk)
}

const filesUnder = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    return statSync(path).isDirectory() ? filesUnder(path) : entry.endsWith(".json") ? [path] : []
  })

const variants = (schema: JsonSchema): Array<JsonSchema> =>
  ["oneOf", "anyOf", "allOf"].flatMap((key) => {
    const members = schema[key]
    return Array.isArray(members) ? members.filter(isSchema) : []
  })

const resolve = (schema: JsonSchema): Array<JsonSchema> => {
  const ref = schema["$ref"]
  if (typeof ref !== "string") return [schema]
  return named.get(ref.split("/").at(-1) ?? "") ?? []
}

/** Property names a definition declares, including those of its union / intersection members. */
const propertiesOf = (name: string): Set<string> => {
  const found = new Set<string>()
  const visit = (schema: JsonSchema, depth: number) => {
    if (depth > 3) return
    for (const resolved of resolve(schema)) {
      const properties = resolved["properties"]
      if (isSchema(properties)) for (const key of Object.keys(properties)) found.add(key)
      for (const member of variants(resolved)) visit(member, depth + 1)
    }
  }
  for (const schema of named.get(name) ?? []) visit(schema, 0)
  return found
}

/** String enum members anywhere inside a definition (through `$ref`s, a few levels deep). */
const enumValuesOf = (name: string): Set<string> => {
  const found = new Set<string>()
  const visit = (value: unknown, depth: number): void => {
    if (depth > 6) return
    if (Array.isArray(value)) return value.forEach((item) => visit(item, depth))
    if (!isSchema(value)) return
    const members = value["enum"]
    if (Array.isArray(members)) for (const member of members) if (typeof member === "string") found.add(member)
    const ref = value["$ref"]
    if (typeof ref === "string") return resolve(value).forEach((target) => visit(target, depth + 1))
    Object.values(value).forEach((child) => visit(child, depth))
  }
  for (const schema of named.get(name) ?? []) visit(schema, 0)
  return found
}

/** Method name → params schema of one of the protocol's method unions (ClientRequest, …). */
const methodTable = (title: string): Map<string, JsonSchema> => {
  const table = new Map<string, JsonSchema>()
  for (const union of named.get(title) ?? []) {
    for (const member of variants(union)) {
      const properties = member["properties"]
      if (!isSchema(properties)) continue
      const method = properties["method"]
      const params = properties["params"]
      const members = isSchema(method) ? method["enum"] : undefined
      if (!Array.isArray(members)) continue
      for (const name of members) if (typeof name === "string") table.set(name, isSchema(params) ? params : {})
    }
  }
  return table
}

const paramsRefOf = (params: JsonSchema | undefined) => {
  const ref = params?.["$ref"]
  return typeof ref === "string" ? ref.split("/").at(-1) : undefined
}

beforeAll(async () => {
  rmSync(root, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  // The vitest hook is the edge of the test: running the effect here is the only way in.
  await Effect.runPromise(
    runChecked({
      argv: [codexBinary, "app-server", "generate-json-schema", "--out", out],
      env: { HOME: root, CODEX_HOME: join(root, "codex-home") }
    }).pipe(Effect.provide(LocalHost.layer()))
  )
  for (const file of filesUnder(out)) {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"))
    walk(parsed)
  }
  for (const title of ["ClientRequest", "ClientNotification", "ServerNotification", "ServerRequest"]) {
    methodsOf[title] = methodTable(title)
  }
}, 60_000)

describe(`WireContract against codex app-server generate-json-schema (${PINNED_CODEX_VERSION})`, () => {
  it("finds the protocol's method unions", () => {
    for (const title of ["ClientRequest", "ClientNotification", "ServerNotification", "ServerRequest"]) {
      assert.isAbove(methodsOf[title]?.size ?? 0, 0, title)
    }
  })

  it("has every client request, with the params definition we encode", () => {
    for (const [method, params] of Object.entries(WireContract.clientRequests)) {
      const table = methodsOf["ClientRequest"]
      assert.isTrue(table?.has(method), `client request ${method}`)
      if (params !== null) assert.strictEqual(paramsRefOf(table?.get(method)), params, `params of ${method}`)
    }
  })

  it("has every client notification", () => {
    for (const method of WireContract.clientNotifications) {
      assert.isTrue(methodsOf["ClientNotification"]?.has(method), `client notification ${method}`)
    }
  })

  it("has every server notification, with the params definition we decode", () => {
    for (const [method, params] of Object.entries(WireContract.serverNotifications)) {
      const table = methodsOf["ServerNotification"]
      assert.isTrue(table?.has(method), `server notification ${method}`)
      if (params !== null) assert.strictEqual(paramsRefOf(table?.get(method)), params, `params of ${method}`)
    }
  })

  it("has every server request, with the params definition we decode", () => {
    for (const [method, params] of Object.entries(WireContract.serverRequests)) {
      const table = methodsOf["ServerRequest"]
      assert.isTrue(table?.has(method), `server request ${method}`)
      assert.strictEqual(paramsRefOf(table?.get(method)), params, `params of ${method}`)
    }
  })

  it("declares every field of our schemas on the matching definition", () => {
    for (const [name, schema] of Object.entries(WireContract.definitions)) {
      assert.isTrue(named.has(name), `definition ${name}`)
      const declared = propertiesOf(name)
      for (const field of Object.keys(schema.fields)) {
        assert.isTrue(declared.has(field), `${name}.${field}`)
      }
    }
  })

  it("has every enum value we send or branch on", () => {
    for (const [name, values] of Object.entries(WireContract.enums)) {
      const declared = enumValuesOf(name)
      for (const value of values) assert.isTrue(declared.has(value), `${name} value ${value}`)
    }
  })
})
