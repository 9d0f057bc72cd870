/**
 * HostKey: known_hosts parsing and host key decisions, without a server.
 */
import { assert, describe, it } from "@effect/vitest"
import { createHmac, generateKeyPairSync, randomBytes } from "node:crypto"
import { decide, fingerprintOf, hostFieldMatches, keyTypeOf, knownHostsName, parseKnownHosts, preferredAlgorithms } from "../../src/host/ssh/HostKey.ts"
import type { HostKeyPolicy } from "../../src/host/ssh/HostKey.ts"

/** An ed25519 public key in SSH wire format. */
const ed25519Blob = () => {
  const raw = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32)
  const field = (bytes: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes])
  return Buffer.concat([field(Buffer.from("ssh-ed25519")), field(raw)])
}

const line = (hosts: string, key: Buffer) => `${hosts} ${keyTypeOf(key)} ${key.toString("base64")}`
const policy = (overrides: Partial<HostKeyPolicy> = {}): HostKeyPolicy => ({ host: "build.example", port: 2222, mode: "strict", ...overrides })

describe("HostKey", () => {
  const key = ed25519Blob()
  const other = ed25519Blob()

  it("names hosts like OpenSSH and fingerprints keys like ssh-keygen", () => {
    assert.strictEqual(knownHostsName("h", 22), "h")
    assert.strictEqual(knownHostsName("h", 2222), "[h]:2222")
    assert.match(fingerprintOf(key), /^SHA256:[A-Za-z0-9+/]{43}$/)
    assert.strictEqual(keyTypeOf(key), "ssh-ed25519")
  })

  it("matches plain, wildcard, negated and hashed host fields", () => {
    assert.isTrue(hostFieldMatches("a.example,[build.example]:2222", "[build.example]:2222"))
    assert.isTrue(hostFieldMatches("[*.example]:2222", "[build.example]:2222"))
    assert.isFalse(hostFieldMatches("[*.example]:2222,![build.example]:2222", "[build.example]:2222"))
    assert.isFalse(hostFieldMatches("build.example", "[build.example]:2222"))
    const salt = randomBytes(20)
    const hashed = `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update("[build.example]:2222").digest("base64")}`
    assert.isTrue(hostFieldMatches(hashed, "[build.example]:2222"))
    assert.isFalse(hostFieldMatches(hashed, "build.example"))
  })

  it("parses known_hosts, skipping comments, blanks and malformed lines", () => {
    const entries = parseKnownHosts([
      "# comment",
      "",
      line("[build.example]:2222", key),
      `@revoked ${line("*", other)}`,
      "broken line",
      `h ssh-rsa ${key.toString("base64")}` // the blob says ed25519: rejected
    ].join("\n"))
    assert.deepStrictEqual(entries.map((entry) => [entry.marker, entry.hosts]), [[undefined, "[build.example]:2222"], ["revoked", "*"]])
  })

  it("decides: trusted, unknown, changed, revoked, pinned", () => {
    const known = parseKnownHosts(line("[build.example]:2222", key))
    assert.strictEqual(decide(policy(), known, key)._tag, "Trusted")
    assert.strictEqual(decide(policy(), [], key)._tag, "Unknown")
    assert.strictEqual(decide(policy({ mode: "accept-new" }), [], key)._tag, "Unknown", "accept-new needs a file to record in")
    assert.strictEqual(decide(policy({ mode: "accept-new", knownHostsFile: "/x" }), [], key)._tag, "New")
    const changed = decide(policy({ mode: "accept-new", knownHostsFile: "/x" }), known, other)
    assert.strictEqual(changed._tag, "Changed")
    if (changed._tag === "Changed") assert.deepStrictEqual(changed.error.expected, [fingerprintOf(key)])
    const revoked = decide(policy(), parseKnownHosts(`${line("[build.example]:2222", key)}\n@revoked ${line("*", key)}`), key)
    assert.strictEqual(revoked._tag === "Changed" ? revoked.error.source : revoked._tag, "revoked")
    const pin = fingerprintOf(key)
    assert.strictEqual(decide(policy({ fingerprint: pin }), [], key)._tag, "Trusted")
    assert.strictEqual(decide(policy({ fingerprint: `${pin.slice(7)}=` }), [], key)._tag, "Trusted", "prefix and padding are optional")
    assert.strictEqual(decide(policy({ fingerprint: fingerprintOf(other) }), known, key)._tag, "Changed", "a pin decides alone")
  })

  it("offers the key types on record first", () => {
    const rsaOnRecord = parseKnownHosts(`[build.example]:2222 ssh-rsa ${Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from("ssh-rsa"), Buffer.alloc(8)]).toString("base64")}`)
    assert.deepStrictEqual(preferredAlgorithms(policy(), rsaOnRecord).slice(0, 3), ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"])
    assert.strictEqual(preferredAlgorithms(policy(), [])[0], "ssh-ed25519")
  })
})
