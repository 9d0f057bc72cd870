import { assert, describe, it } from "@effect/vitest"
import { Redacted } from "effect"
import { decodeBasic, fromAnotherSite, loopbackAuthFor, makeLoopbackAuth, sameOrigin, splitTarget } from "../../src/http/LoopbackAuth.ts"

const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`

describe("LoopbackAuth", () => {
  it("a fresh credential is 32 random bytes, redacted, and different every time", () => {
    const first = makeLoopbackAuth("test credential")
    const second = makeLoopbackAuth("test credential")
    assert.lengthOf(Buffer.from(Redacted.value(first.credential), "base64url"), 32)
    assert.notStrictEqual(Redacted.value(first.credential), Redacted.value(second.credential))
    assert.notInclude(String(first.credential), Redacted.value(first.credential))
    assert.notInclude(JSON.stringify({ credential: first.credential }), Redacted.value(first.credential))
  })

  it("finding 7: Basic matches exactly optio:<credential>, nothing before or after", () => {
    const auth = loopbackAuthFor(Redacted.make("s3cret!"))
    const valid = basic("optio:s3cret!")
    assert.isTrue(auth.basicMatches(valid))
    assert.isTrue(auth.basicMatches(valid.replace("Basic", "basic")))
    for (const header of [
      undefined, "", valid + " junk", valid + "!!", valid + "====", valid + "\t", " " + valid, valid.replace("Basic ", "Basic  "),
      basic("optio:s3cret! "), basic("optio:s3cret"), basic("admin:s3cret!"), basic("optio:s3cret!\n"), `Bearer s3cret`,
      // Unpadded base64, which Node decodes leniently to the same bytes.
      basic("optio:s3cret!").replace(/=+$/, "")
    ]) {
      assert.isFalse(auth.basicMatches(header), JSON.stringify(header))
    }
    assert.isUndefined(decodeBasic(`${valid}junk`))
  })

  it("finding 6: derived values are per purpose, never the credential, and checked exactly", () => {
    const auth = loopbackAuthFor(Redacted.make("s3cret"))
    const cookie = Redacted.value(auth.derived("terminal cookie"))
    assert.notInclude(cookie, "s3cret")
    assert.notStrictEqual(cookie, Redacted.value(auth.derived("terminal view")))
    assert.isTrue(auth.derivedMatches("terminal cookie", cookie))
    assert.isFalse(auth.derivedMatches("terminal view", cookie))
    assert.isFalse(auth.derivedMatches("terminal cookie", "s3cret"))
    assert.isFalse(auth.credentialMatches(cookie))
    assert.isTrue(auth.credentialMatches("s3cret"))
    assert.strictEqual(Redacted.value(loopbackAuthFor(Redacted.make("other")).derived("terminal cookie")) === cookie, false)
  })

  it("finding 6: browser-held credentials count only from the server's own origin", () => {
    assert.isTrue(sameOrigin({ host: "127.0.0.1:4000" }))
    assert.isTrue(sameOrigin({ host: "127.0.0.1:4000", origin: "http://127.0.0.1:4000" }))
    assert.isFalse(sameOrigin({ host: "127.0.0.1:4000", origin: "http://127.0.0.1:4001" }))
    assert.isFalse(sameOrigin({ host: "127.0.0.1:4000", origin: "http://localhost:4000" }))
    assert.isFalse(sameOrigin({ host: "127.0.0.1:4000", origin: "null" }))
    assert.isFalse(sameOrigin({ host: "127.0.0.1:4000", origin: "file://" }))
    assert.isFalse(sameOrigin({ origin: "http://127.0.0.1:4000" }))
    assert.isTrue(fromAnotherSite({ "sec-fetch-site": "cross-site" }))
    assert.isTrue(fromAnotherSite({ "sec-fetch-site": "same-site" }))
    assert.isFalse(fromAnotherSite({ "sec-fetch-site": "same-origin" }))
    assert.isFalse(fromAnotherSite({ "sec-fetch-site": "none" }))
    assert.isFalse(fromAnotherSite({}))
  })

  it("issue 14: any run of leading slashes is one, and the query stays apart", () => {
    assert.strictEqual(splitTarget("/").path, "/")
    assert.strictEqual(splitTarget("//").path, "/")
    assert.strictEqual(splitTarget("").path, "/")
    assert.strictEqual(splitTarget("///assets/x.css").path, "/assets/x.css")
    assert.strictEqual(splitTarget("//control").path, "/control")
    const withQuery = splitTarget("//download?path=a%20b.txt&path=c")
    assert.strictEqual(withQuery.path, "/download")
    assert.deepStrictEqual(withQuery.query.getAll("path"), ["a b.txt", "c"])
    assert.strictEqual(splitTarget("/a//b").path, "/a//b")
  })
})
