/**
 * HostKey: decides whether an SSH server's host key is trusted, before anything runs there.
 *
 * Owns the OpenSSH `known_hosts` format (plain and `[host]:port` patterns with `*`/`?`/`!`,
 * hashed `|1|salt|hash` entries, `@revoked` markers; key types ed25519, ecdsa and rsa), SHA256
 * fingerprints as OpenSSH prints them, and the `accept-new` policy (append the key on first
 * contact). It does not open connections: {@link decide} is a pure function the SSH client's
 * host verifier calls with the key the server presented.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { createHash, createHmac, timingSafeEqual } from "node:crypto"
import * as fs from "node:fs/promises"
import type { ServerHostKeyAlgorithm } from "ssh2"
import { HostError } from "../Host.ts"

/**
 * The server presented a host key that nothing vouches for (not in known_hosts, no pin), and the
 * policy is `strict`. Nothing was run on the host.
 * @category errors
 * @since 0.1.0
 */
export class HostKeyUnknown extends Schema.TaggedError<HostKeyUnknown>()("HostKeyUnknown", {
  /** The name the key was looked up under: `host`, or `[host]:port` off port 22. */
  host: Schema.String,
  keyType: Schema.String,
  /** `SHA256:…` of the key the server presented. */
  fingerprint: Schema.String,
  knownHostsFile: Schema.optionalKey(Schema.String)
}) {
  override get message(): string {
    const where = this.knownHostsFile === undefined ? "no known_hosts file or pinned fingerprint" : `not in ${this.knownHostsFile}`
    return `host key of ${this.host} is unknown (${this.keyType} ${this.fingerprint}, ${where}); ` +
      `verify it out of band, then add it to known_hosts or pin it with a fingerprint`
  }
}

/**
 * The server presented a host key that differs from the one on record (known_hosts entry or
 * pinned fingerprint), or one that is marked `@revoked`. Nothing was run on the host.
 * @category errors
 * @since 0.1.0
 */
export class HostKeyChanged extends Schema.TaggedError<HostKeyChanged>()("HostKeyChanged", {
  host: Schema.String,
  keyType: Schema.String,
  /** `SHA256:…` of the key the server presented. */
  fingerprint: Schema.String,
  /** `SHA256:…` fingerprints on record for this host (empty for a revoked key). */
  expected: Schema.Array(Schema.String),
  source: Schema.Literals(["known_hosts", "fingerprint", "revoked"])
}) {
  override get message(): string {
    const expected = this.expected.length === 0 ? "" : `, expected ${this.expected.join(" or ")}`
    return `host key of ${this.host} has CHANGED (${this.source}): the server presented ${this.keyType} ${this.fingerprint}${expected}; ` +
      `this may be an attack, nothing was run`
  }
}

/**
 * How host keys are checked.
 * @category models
 */
export interface HostKeyPolicy {
  readonly host: string
  readonly port: number
  /** An OpenSSH known_hosts file on the worker. */
  readonly knownHostsFile?: string
  /** A pinned `SHA256:…` fingerprint; when given, it alone decides. */
  readonly fingerprint?: string
  /** `accept-new` trusts (and records) a key on first contact; a changed key is still refused. */
  readonly mode: "strict" | "accept-new"
}

/**
 * One line of a known_hosts file.
 * @category models
 */
export interface KnownHostEntry {
  readonly marker: "revoked" | "cert-authority" | undefined
  readonly hosts: string
  readonly keyType: string
  readonly key: Buffer
}

/**
 * The verdict on a presented key.
 * @category models
 */
export type HostKeyVerdict =
  | { readonly _tag: "Trusted" }
  | { readonly _tag: "New" }
  | { readonly _tag: "Unknown"; readonly error: HostKeyUnknown }
  | { readonly _tag: "Changed"; readonly error: HostKeyChanged }

/**
 * The name a host is recorded under in known_hosts: `host` on port 22, else `[host]:port`.
 * @category encoding
 */
export const knownHostsName = (host: string, port: number): string => port === 22 ? host : `[${host}]:${port}`

/**
 * OpenSSH's fingerprint of a public key blob: `SHA256:` + unpadded base64 of its SHA-256.
 * @category encoding
 */
export const fingerprintOf = (key: Buffer): string => `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`

/**
 * The key type named inside an SSH public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …).
 * @category encoding
 */
export const keyTypeOf = (key: Buffer): string => {
  if (key.length < 4) return "unknown"
  const length = key.readUInt32BE(0)
  return length > 0 && 4 + length <= key.length ? key.subarray(4, 4 + length).toString("latin1") : "unknown"
}

/**
 * Parses a known_hosts file; comments, blank and malformed lines are skipped.
 * @category encoding
 */
export const parseKnownHosts = (text: string): ReadonlyArray<KnownHostEntry> => {
  const entries: Array<KnownHostEntry> = []
  for (const raw of text.split("\n")) {
    const line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    const fields = line.split(/\s+/)
    const marker = fields[0] === "@revoked" ? "revoked" : fields[0] === "@cert-authority" ? "cert-authority" : undefined
    const [hosts, keyType, key] = marker === undefined ? fields : fields.slice(1)
    if (hosts === undefined || keyType === undefined || key === undefined) continue
    const blob = Buffer.from(key, "base64")
    if (blob.length === 0 || keyTypeOf(blob) !== keyType) continue
    entries.push({ marker, hosts, keyType, key: blob })
  }
  return entries
}

/**
 * Whether a known_hosts host field (`a,b,[c]:2222`, wildcards, `!negations`, or a hashed
 * `|1|salt|hash`) names `name`.
 * @category predicates
 */
export const hostFieldMatches = (field: string, name: string): boolean => {
  if (field.startsWith("|1|")) {
    const [salt, hash] = field.slice(3).split("|")
    if (salt === undefined || hash === undefined) return false
    const expected = Buffer.from(hash, "base64")
    const actual = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest()
    return expected.length === actual.length && timingSafeEqual(expected, actual)
  }
  let matched = false
  for (const pattern of field.split(",")) {
    const negated = pattern.startsWith("!")
    if (!wildcardMatches(negated ? pattern.slice(1) : pattern, name)) continue
    if (negated) return false
    matched = true
  }
  return matched
}

/**
 * Decides on the key a server presented. Pure: `accept-new` returns `New`, and the caller records
 * the key once the connection is up (see {@link recordKnownHost}).
 * @category constructors
 */
export const decide = (policy: HostKeyPolicy, entries: ReadonlyArray<KnownHostEntry>, key: Buffer): HostKeyVerdict => {
  const name = knownHostsName(policy.host, policy.port)
  const keyType = keyTypeOf(key)
  const fingerprint = fingerprintOf(key)
  if (policy.fingerprint !== undefined) {
    const pinned = normalizeFingerprint(policy.fingerprint)
    if (pinned === normalizeFingerprint(fingerprint)) return { _tag: "Trusted" }
    return { _tag: "Changed", error: new HostKeyChanged({ host: name, keyType, fingerprint, expected: [pinned], source: "fingerprint" }) }
  }
  const matching = entries.filter((entry) => entry.marker !== "cert-authority" && hostFieldMatches(entry.hosts, name))
  if (matching.some((entry) => entry.marker === "revoked" && entry.key.equals(key))) {
    return { _tag: "Changed", error: new HostKeyChanged({ host: name, keyType, fingerprint, expected: [], source: "revoked" }) }
  }
  const recorded = matching.filter((entry) => entry.marker === undefined)
  if (recorded.some((entry) => entry.key.equals(key))) return { _tag: "Trusted" }
  // A host on record with other keys only (of this type or another) is a changed host, not a new one.
  if (recorded.length > 0) {
    const expected = recorded.map((entry) => fingerprintOf(entry.key))
    return { _tag: "Changed", error: new HostKeyChanged({ host: name, keyType, fingerprint, expected, source: "known_hosts" }) }
  }
  if (policy.mode === "accept-new" && policy.knownHostsFile !== undefined) return { _tag: "New" }
  return {
    _tag: "Unknown",
    error: new HostKeyUnknown({ host: name, keyType, fingerprint, ...(policy.knownHostsFile === undefined ? {} : { knownHostsFile: policy.knownHostsFile }) })
  }
}

/**
 * The host key algorithms to offer, the types on record for this host first, so a server with
 * several keys presents the one we can check (as OpenSSH does).
 * @category constructors
 */
export const preferredAlgorithms = (policy: HostKeyPolicy, entries: ReadonlyArray<KnownHostEntry>): Array<ServerHostKeyAlgorithm> => {
  const name = knownHostsName(policy.host, policy.port)
  const types = new Set(entries.filter((entry) => entry.marker === undefined && hostFieldMatches(entry.hosts, name)).map((entry) => entry.keyType))
  const preferred = ALGORITHMS.filter((algorithm) => types.has(algorithm === "rsa-sha2-512" || algorithm === "rsa-sha2-256" ? "ssh-rsa" : algorithm))
  return [...preferred, ...ALGORITHMS.filter((algorithm) => !preferred.includes(algorithm))]
}

/**
 * Reads a known_hosts file on the worker; a missing file has no entries.
 * @category constructors
 */
export const readKnownHosts = (file: string | undefined): Effect.Effect<ReadonlyArray<KnownHostEntry>, HostError> =>
  file === undefined
    ? Effect.succeed([])
    : Effect.tryPromise({
      try: () => fs.readFile(file, "utf8").catch((error: unknown) => isNotFound(error) ? "" : Promise.reject(error)),
      catch: (error) => workerFileError("read known_hosts", file, error)
    }).pipe(Effect.map(parseKnownHosts))

/**
 * Appends `name keytype base64` to a known_hosts file (created 0600), unless the same key is
 * already recorded for that name.
 * @category constructors
 */
export const recordKnownHost = (file: string, host: string, port: number, key: Buffer): Effect.Effect<void, HostError> =>
  Effect.tryPromise({
    try: async () => {
      const name = knownHostsName(host, port)
      const text = await fs.readFile(file, "utf8").catch((error: unknown) => isNotFound(error) ? "" : Promise.reject(error))
      if (parseKnownHosts(text).some((entry) => entry.marker === undefined && entry.key.equals(key) && hostFieldMatches(entry.hosts, name))) return
      const separator = text === "" || text.endsWith("\n") ? "" : "\n"
      await fs.appendFile(file, `${separator}${name} ${keyTypeOf(key)} ${key.toString("base64")}\n`, { mode: 0o600 })
    },
    catch: (error) => workerFileError("record known host", file, error)
  })

// --- helpers -------------------------------------------------------------------------------

const ALGORITHMS: ReadonlyArray<ServerHostKeyAlgorithm> = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa"
]

const normalizeFingerprint = (fingerprint: string) => `SHA256:${fingerprint.trim().replace(/^SHA256:/i, "").replace(/=+$/, "")}`

const wildcardMatches = (pattern: string, name: string): boolean => {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, (c) => `\\${c}`).replaceAll("*", ".*").replaceAll("?", ".")
  return new RegExp(`^${source}$`, "i").test(name)
}

const isNotFound = (error: unknown) => typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT"

const workerFileError = (operation: string, path: string, error: unknown) =>
  new HostError({
    host: "worker",
    operation,
    path,
    reason: isNotFound(error) ? "NotFound" : "Unknown",
    detail: error instanceof Error ? error.message : String(error),
    cause: error
  })
