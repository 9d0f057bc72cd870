/**
 * AuthJson: the single validity predicate (P21), fingerprints, `last_refresh` parsing and the
 * refresh fold that keeps unknown fields.
 */
import { assert, describe, it } from "@effect/vitest"
import { Option } from "effect"
import { createHash } from "node:crypto"
import {
  applyTokenRefresh,
  authShape,
  credentialFingerprint,
  isUsableAuth,
  parseAuthJson,
  parseLastRefresh,
  refreshedTokens
} from "../../src/credentials/AuthJson.ts"

const bytes = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value))
const chatgpt = (refresh: string) => ({
  OPENAI_API_KEY: null,
  auth_mode: "chatgpt",
  tokens: { id_token: "a.b.c", access_token: "acc", refresh_token: refresh, account_id: "acct-1" },
  last_refresh: "2026-07-02T00:11:54.339893366Z"
})

describe("AuthJson", () => {
  it("usable: ChatGPT and API-key shapes only (P21: one predicate)", () => {
    assert.isTrue(isUsableAuth(chatgpt("r1")))
    assert.isTrue(isUsableAuth({ tokens: { access_token: "only-access" } }))
    assert.isTrue(isUsableAuth({ OPENAI_API_KEY: "sk-fake" }))
    assert.isFalse(isUsableAuth({}))
    assert.isFalse(isUsableAuth({ tokens: {} }))
    assert.isFalse(isUsableAuth({ tokens: { refresh_token: "", access_token: "" } }))
    assert.isFalse(isUsableAuth({ OPENAI_API_KEY: "" }))
    assert.isFalse(isUsableAuth({ auth_mode: "chatgpt", tokens: null, OPENAI_API_KEY: null }))
    assert.isFalse(isUsableAuth([{ OPENAI_API_KEY: "sk" }]))
    assert.isFalse(isUsableAuth("sk"))
  })

  it("fingerprint: sha256 of the raw bytes, none for missing/unparseable/logged out", () => {
    const raw = bytes(chatgpt("T1"))
    assert.deepStrictEqual(credentialFingerprint(raw), Option.some(createHash("sha256").update(raw).digest("hex")))
    assert.isTrue(Option.isNone(credentialFingerprint(bytes("not json"))))
    assert.isTrue(Option.isNone(credentialFingerprint(bytes({}))))
    assert.isTrue(Option.isNone(credentialFingerprint(bytes({ tokens: {} }))))
    assert.isTrue(Option.isNone(credentialFingerprint(Uint8Array.from([0x7b, 0xff, 0x7d]))))
    assert.isTrue(Option.isSome(credentialFingerprint(bytes({ OPENAI_API_KEY: "sk-fake" }))))
    const other = credentialFingerprint(bytes(chatgpt("T2")))
    assert.notDeepEqual(credentialFingerprint(raw), other)
    // Byte-exact: the same JSON with other whitespace is another fingerprint.
    assert.notDeepEqual(credentialFingerprint(bytes(JSON.stringify(chatgpt("T1"), null, 2))), credentialFingerprint(raw))
  })

  it("parses last_refresh: nanosecond RFC 3339, offsets, epoch s/ms, garbage", () => {
    const at = (value: unknown) => Option.map(parseLastRefresh(value), (date) => date.toISOString())
    assert.deepStrictEqual(at("2026-07-02T00:11:54.339893366Z"), Option.some("2026-07-02T00:11:54.339Z"))
    assert.deepStrictEqual(at("2026-07-02T00:11:54Z"), Option.some("2026-07-02T00:11:54.000Z"))
    assert.deepStrictEqual(at(" 2026-07-02T02:11:54.5+02:00 "), Option.some("2026-07-02T00:11:54.500Z"))
    assert.deepStrictEqual(at("2026-07-02T00:11:54"), Option.some("2026-07-02T00:11:54.000Z"))
    assert.deepStrictEqual(at(1_782_951_114), Option.some("2026-07-02T00:11:54.000Z"))
    assert.deepStrictEqual(at(1_782_951_114_339), Option.some("2026-07-02T00:11:54.339Z"))
    assert.isTrue(Option.isNone(parseLastRefresh("yesterday")))
    assert.isTrue(Option.isNone(parseLastRefresh("")))
    assert.isTrue(Option.isNone(parseLastRefresh(null)))
    assert.isTrue(Option.isNone(parseLastRefresh(Number.NaN)))
  })

  it("classifies shapes; tokens win over a key", () => {
    const shape = authShape(chatgpt("R"))
    assert.strictEqual(shape._tag, "ChatGpt")
    if (shape._tag === "ChatGpt") {
      assert.deepStrictEqual(shape.refreshToken, Option.some("R"))
      assert.isTrue(Option.isSome(shape.lastRefresh))
    }
    const noRefresh = authShape({ tokens: { access_token: "a" } })
    assert.isTrue(noRefresh._tag === "ChatGpt" && Option.isNone(noRefresh.refreshToken))
    assert.strictEqual(authShape({ OPENAI_API_KEY: "sk", tokens: null })._tag, "ApiKey")
    assert.strictEqual(authShape({ tokens: {} })._tag, "Unusable")
  })

  it("applies a refresh preserving unknown fields", () => {
    const auth = {
      ...chatgpt("OLD"),
      extra_top: { keep: true },
      tokens: { ...chatgpt("OLD").tokens, oauth_provenance: { issuer: "http://x", client_id: "c" }, login_owner_id: "o" }
    }
    const refreshed = refreshedTokens({ access_token: "NEW_ACCESS", refresh_token: "ROTATED", token_type: "bearer" })
    assert.isTrue(Option.isSome(refreshed))
    if (Option.isNone(refreshed)) return
    const now = new Date("2026-07-03T10:11:12.123Z")
    const next = applyTokenRefresh(auth, refreshed.value, now)
    assert.deepStrictEqual(next, {
      ...auth,
      tokens: { ...auth.tokens, access_token: "NEW_ACCESS", refresh_token: "ROTATED" },
      last_refresh: "2026-07-03T10:11:12.123Z"
    })
    assert.isTrue(Option.isNone(refreshedTokens({ refresh_token: "x" })))
    assert.isTrue(Option.isNone(refreshedTokens("nope")))
    assert.isTrue(Option.isSome(parseAuthJson(bytes(next))))
  })
})
