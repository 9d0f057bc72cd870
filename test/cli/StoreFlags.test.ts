/**
 * How the CLI's store flags and environment resolve to a store: MongoDB when a URI is given (the
 * database from the flag, else the URI's path, else `optio`), else the embedded store; keys from
 * the environment only, an empty variable counting as absent.
 */
import { assert, describe, it } from "@effect/vitest"
import { Option, Redacted } from "effect"
import { homedir } from "node:os"
import { join, resolve } from "node:path"
import { blobKeysFromEnv, describeStore, storeChoice } from "../../src/cli/StoreFlags.ts"
import type { StoreFlagValues } from "../../src/cli/StoreFlags.ts"

const none: StoreFlagValues = { dataDir: Option.none(), mongodbUri: Option.none(), mongodbDb: Option.none(), prefix: Option.none() }
const uri = (value: string) => Option.some(Redacted.make(value))

describe("StoreFlags", () => {
  it("the embedded store at --data-dir (made absolute), else the default data dir", () => {
    assert.deepStrictEqual(storeChoice({ ...none, dataDir: Option.some("rel/dir") }, {}), { _tag: "Embedded", dataDir: resolve("rel/dir") })
    assert.deepStrictEqual(storeChoice(none, { OPTIO_CODEX_DATA_DIR: "/srv/optio" }), { _tag: "Embedded", dataDir: "/srv/optio" })
    assert.deepStrictEqual(storeChoice(none, {}), { _tag: "Embedded", dataDir: join(homedir(), ".local", "share", "optio-codex") })
    assert.strictEqual(storeChoice({ ...none, mongodbUri: uri("") }, {})._tag, "Embedded", "an empty URI selects nothing")
  })

  it("MongoDB with the database from --mongodb-db, else the URI's path, else optio; prefix default optio", () => {
    const pick = (flags: Partial<StoreFlagValues>) => {
      const choice = storeChoice({ ...none, ...flags }, {})
      return choice._tag === "Mongo" ? [choice.database, choice.prefix] : choice._tag
    }
    assert.deepStrictEqual(pick({ mongodbUri: uri("mongodb://h:27017") }), ["optio", "optio"])
    assert.deepStrictEqual(pick({ mongodbUri: uri("mongodb://u:p@h1,h2/prod?replicaSet=rs") }), ["prod", "optio"])
    assert.deepStrictEqual(pick({ mongodbUri: uri("mongodb+srv://c.example.net/app") }), ["app", "optio"])
    assert.deepStrictEqual(pick({ mongodbUri: uri("mongodb://h/?directConnection=true") }), ["optio", "optio"])
    assert.deepStrictEqual(pick({ mongodbUri: uri("mongodb://h/prod"), mongodbDb: Option.some("other"), prefix: Option.some("acme") }), ["other", "acme"])
  })

  it("the description names the store, never the URI", () => {
    const choice = storeChoice({ ...none, mongodbUri: uri("mongodb://user:hunter2@h/db") }, {})
    assert.strictEqual(describeStore(choice), "MongoDB database db (prefix optio)")
    assert.notInclude(String(choice._tag === "Mongo" ? choice.uri : ""), "hunter2", "the URI stays redacted")
  })

  it("keys come from the environment as Redacted; empty means plaintext", () => {
    const keys = blobKeysFromEnv({ OPTIO_CODEX_SEED_KEY: "seed-secret-0123456789", OPTIO_CODEX_SNAPSHOT_KEY: "" })
    assert.strictEqual(keys.seedKey === undefined ? undefined : Redacted.value(keys.seedKey), "seed-secret-0123456789")
    assert.notInclude(String(keys.seedKey), "seed-secret")
    assert.isUndefined(keys.snapshotKey)
  })
})
