/**
 * BlobCrypto: encryption at rest for the blobs the stores keep (spec §1.6, §8.12). It owns the
 * encryption seam — a pair of stream transforms per key scope, one scope for seed blobs and a
 * separate one for snapshot blobs — and a ready AES-256-GCM implementation. It does not own where
 * blobs are stored or which blob is read: the stores apply the right cipher on every blob read and
 * write path, so no caller can forget it.
 *
 * The reference's seam is a synchronous `bytes -> bytes` pair over the whole blob; here both
 * directions are streams, so a multi-gigabyte snapshot is never held in memory.
 *
 * **AES-256-GCM format (version 1)**
 *
 * - Header, 40 bytes: `OCXENC` (6 bytes), version `1` (1 byte), scope (1 byte: 1 seed,
 *   2 snapshot), a random 32-byte salt.
 * - The blob key is HKDF-SHA256(scope key, salt, "blob"); the scope key is
 *   HKDF-SHA256(secret, "optio-codex/blob-crypto/v1", "scope:<scope>"). The same secret therefore
 *   gives unrelated seed and snapshot keys, and no two blobs share a key.
 * - Frames: flag (1 byte: 0 more, 1 final), plaintext length (4 bytes, big-endian, at most
 *   64 KiB), ciphertext, 16-byte GCM tag. The nonce is the frame index (8 bytes, big-endian),
 *   three zero bytes and the flag; the header is the additional authenticated data. Reordered,
 *   dropped, truncated or appended frames fail authentication or the final-frame check.
 *
 * **Gotchas**
 *
 * - A wrong key fails on the first frame with {@link BlobDecryptFailed} `authentication-failed`,
 *   before any plaintext is emitted. A caller that reads a blob to rewrite it (credential
 *   save-back) therefore fails before writing anything.
 * - Each frame is authenticated before its plaintext is emitted, but a blob tampered with or cut
 *   short further in fails only at that frame: a consumer must treat a failed stream as a failed
 *   read as a whole (e.g. discard a partial restore), never use what came before the failure.
 * - The plaintext cipher refuses to pass through a blob that carries this format's header
 *   (`encrypted-without-key`), so a missing key is reported as such, not as a corrupt tar.
 * - Python workers sharing a MongoDB cannot read encrypted blobs; leave a scope plaintext when it
 *   must interoperate.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Redacted, Schema, Stream } from "effect"
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes } from "node:crypto"
import type { KeyObject } from "node:crypto"
import { BlobDecryptFailed } from "../persistence/StoreError.ts"
import { openedChunks, sealedChunks } from "./ChunkRegistry.ts"

/**
 * Which kind of blob a cipher protects; each scope has its own key.
 * @category models
 */
export type BlobScope = "seed" | "snapshot"

export { BlobDecryptFailed }

/**
 * A configured key cannot be used (empty or too short).
 * @category errors
 */
export class BlobKeyInvalid extends Schema.TaggedError<BlobKeyInvalid>()("BlobKeyInvalid", {
  scope: Schema.Literals(["seed", "snapshot"]),
  detail: Schema.String
}) {
  override get message(): string {
    return `the ${this.scope} encryption key is unusable: ${this.detail}`
  }
}

/**
 * One direction pair of the encryption seam, for one key scope. Both directions stream.
 * @category models
 */
export interface BlobCipher {
  readonly scope: BlobScope
  /** Whether stored bytes differ from plaintext (false for the plaintext cipher). */
  readonly encrypted: boolean
  /** Turns plaintext into the stored form. */
  readonly encrypt: <E, R>(plain: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Uint8Array, E, R>
  /** Turns the stored form back into plaintext; fails typed when it cannot. */
  readonly decrypt: <E, R>(
    stored: Stream.Stream<Uint8Array, E, R>
  ) => Stream.Stream<Uint8Array, E | BlobDecryptFailed, R>
}

/**
 * Keys for {@link BlobCrypto.layerAesGcm}. A scope without a key stays plaintext.
 * @category models
 */
export interface AesGcmKeys {
  /** Secret for seed blobs (credentials). High entropy, e.g. `openssl rand -base64 32`. */
  readonly seedKey?: Redacted.Redacted<string> | undefined
  /** Secret for snapshot blobs (whole workdirs). May equal `seedKey`: the scopes still differ. */
  readonly snapshotKey?: Redacted.Redacted<string> | undefined
}

/**
 * The encryption seam the stores apply to every blob: one cipher per key scope.
 * @category services
 * @since 0.1.0
 */
export class BlobCrypto extends Context.Service<BlobCrypto, {
  /** Applied to seed blobs (the credential tarballs). */
  readonly seed: BlobCipher
  /** Applied to snapshot blobs (the workdir archives). */
  readonly snapshot: BlobCipher
}>()("optio-codex/BlobCrypto") {
  /** No encryption in either scope (the reference's behavior; readable by Python workers). */
  static readonly layerPlaintext: Layer.Layer<BlobCrypto> = Layer.succeed(
    BlobCrypto,
    BlobCrypto.of({ seed: plaintextCipher("seed"), snapshot: plaintextCipher("snapshot") })
  )

  /** AES-256-GCM in each scope that has a key; plaintext in a scope without one. */
  static readonly layerAesGcm = (keys: AesGcmKeys): Layer.Layer<BlobCrypto, BlobKeyInvalid> =>
    Layer.effect(BlobCrypto, Effect.gen(function*() {
      const seed = keys.seedKey === undefined ? plaintextCipher("seed") : yield* aesGcmCipher("seed", keys.seedKey)
      const snapshot = keys.snapshotKey === undefined
        ? plaintextCipher("snapshot")
        : yield* aesGcmCipher("snapshot", keys.snapshotKey)
      return BlobCrypto.of({ seed, snapshot })
    }))

  /** Custom ciphers (a KMS, another format). */
  static readonly layer = (ciphers: { readonly seed: BlobCipher; readonly snapshot: BlobCipher }): Layer.Layer<BlobCrypto> =>
    Layer.succeed(BlobCrypto, BlobCrypto.of(ciphers))
}

/**
 * The identity cipher. Its decrypt refuses blobs in the AES-256-GCM format
 * (`encrypted-without-key`) instead of passing ciphertext on.
 * @category constructors
 */
export function plaintextCipher(scope: BlobScope): BlobCipher {
  return {
    scope,
    encrypted: false,
    encrypt: (plain) => plain,
    decrypt: (stored) =>
      stored.pipe(
        Stream.mapAccumEffect(
          (): { readonly head: Uint8Array | undefined } => ({ head: new Uint8Array(0) }),
          (state, chunk: Uint8Array) => {
            if (state.head === undefined) return Effect.succeed([state, [chunk]] as const)
            const head = concatBytes([state.head, chunk])
            if (head.length < MAGIC.length) return Effect.succeed([{ head }, []] as const)
            if (startsWithMagic(head)) return Effect.fail(new BlobDecryptFailed({ scope, reason: "encrypted-without-key" }))
            return Effect.succeed([{ head: undefined }, [head]] as const)
          },
          { onHalt: (state) => state.head === undefined || state.head.length === 0 ? [] : [state.head] }
        )
      )
  }
}

/**
 * An AES-256-GCM cipher for `scope`, keyed from `secret` (see the module docs for the format).
 * @category constructors
 */
export const aesGcmCipher = (scope: BlobScope, secret: Redacted.Redacted<string>): Effect.Effect<BlobCipher, BlobKeyInvalid> =>
  Effect.gen(function*() {
    const material = Buffer.from(Redacted.value(secret), "utf8")
    if (material.length < MIN_SECRET_BYTES) {
      return yield* new BlobKeyInvalid({ scope, detail: `a key needs at least ${MIN_SECRET_BYTES} bytes of secret` })
    }
    const scopeKey = Buffer.from(hkdfSync("sha256", material, KDF_SALT, `scope:${scope}`, 32))
    const cipher: BlobCipher = {
      scope,
      encrypted: true,
      encrypt: (plain) =>
        Stream.suspend(() => {
          const sealer = new Sealer(scope, scopeKey, issuesChunks(scope))
          return Stream.concat(
            Stream.succeed(sealer.header),
            plain.pipe(Stream.mapAccum(() => sealer, (s, chunk: Uint8Array) => [s, s.push(chunk)] as const, {
              onHalt: (s) => s.finish()
            }))
          )
        }),
      decrypt: (stored) =>
        Stream.suspend(() => {
          const opener = new Opener(scope, scopeKey, issuesChunks(scope))
          const opened = stored.pipe(Stream.mapAccumEffect(() => opener, (o, chunk: Uint8Array) => {
            const step = o.push(chunk)
            return step.ok
              ? Effect.succeed([o, step.out] as const)
              : Effect.fail(new BlobDecryptFailed({ scope, reason: step.reason }))
          }))
          return Stream.concat(
            opened,
            Stream.suspend(() =>
              opener.done ? Stream.empty : Stream.fail(new BlobDecryptFailed({ scope, reason: opener.endReason() }))
            )
          )
        })
    }
    return cipher
  })

// Snapshot blobs are the big ones: the cipher issues its output, and the opener retires its input,
// on the paths ChunkRegistry names. Seed blobs are small and read by more varied code: left to
// the garbage collector.
const issuesChunks = (scope: BlobScope): boolean => scope === "snapshot"

// --- format ----------------------------------------------------------------------------------

const MAGIC = Buffer.from("OCXENC", "ascii")
const VERSION = 1
const SALT_BYTES = 32
const HEADER_BYTES = MAGIC.length + 2 + SALT_BYTES
const FRAME_BYTES = 64 * 1024
const TAG_BYTES = 16
const FRAME_HEAD_BYTES = 5
const MIN_SECRET_BYTES = 16
const KDF_SALT = Buffer.from("optio-codex/blob-crypto/v1", "utf8")
const SCOPE_BYTE: Record<BlobScope, number> = { seed: 1, snapshot: 2 }

type DecryptReason = BlobDecryptFailed["reason"]

const startsWithMagic = (bytes: Uint8Array): boolean =>
  bytes.length >= MAGIC.length && MAGIC.every((byte, i) => bytes[i] === byte)

// A KeyObject, made once per blob: a raw key would be imported again for every 64 KiB frame.
const blobKey = (scopeKey: Buffer, salt: Uint8Array): KeyObject =>
  createSecretKey(Buffer.from(hkdfSync("sha256", scopeKey, salt, "blob", 32)))

// From Node's shared pool (the cipher copies it): one ArrayBuffer per 8 KiB of nonces, not per frame.
const nonce = (index: number, final: boolean): Buffer => {
  const bytes = Buffer.allocUnsafe(12)
  bytes.writeBigUInt64BE(BigInt(index), 0)
  bytes.fill(0, 8, 11)
  bytes[11] = final ? 1 : 0
  return bytes
}

/** Per-blob encryption state: header, key, frame counter and a partial frame. */
class Sealer {
  readonly header: Uint8Array
  private readonly key: KeyObject
  private readonly pending = new ByteQueue()
  private index = 0
  private readonly issues: boolean

  constructor(scope: BlobScope, scopeKey: Buffer, issues: boolean) {
    this.issues = issues
    const salt = randomBytes(SALT_BYTES)
    this.header = concatBytes([MAGIC, Uint8Array.of(VERSION, SCOPE_BYTE[scope]), salt])
    this.key = blobKey(scopeKey, salt)
  }

  push(chunk: Uint8Array): ReadonlyArray<Uint8Array> {
    this.pending.push(chunk)
    const frames: Array<Uint8Array> = []
    while (this.pending.length >= FRAME_BYTES) this.seal(this.pending.takeParts(FRAME_BYTES), FRAME_BYTES, false, frames)
    return frames
  }

  /** The final frame (possibly empty), which marks the end of the blob. */
  finish(): ReadonlyArray<Uint8Array> {
    const frame: Array<Uint8Array> = []
    const size = this.pending.length
    this.seal(this.pending.takeParts(size), size, true, frame)
    return frame
  }

  // A frame's plaintext is encrypted from views of the input chunks it spans, never gathered into
  // one buffer first (pipe reads rarely align with frames), and goes out as its parts (head,
  // ciphertext pieces, tag) for the store's writev: every byte copied is one more byte of
  // ArrayBuffer the worker's GC has to account for (issue 19's profile: ~40 % of capture was GC).
  private seal(plain: ReadonlyArray<Uint8Array>, size: number, final: boolean, into: Array<Uint8Array>): void {
    const cipher = createCipheriv("aes-256-gcm", this.key, nonce(this.index++, final))
    cipher.setAAD(this.header)
    const head = Buffer.allocUnsafe(FRAME_HEAD_BYTES)
    head[0] = final ? 1 : 0
    head.writeUInt32BE(size, 1)
    into.push(head)
    for (const part of plain) into.push(this.issues ? sealedChunks.issue(cipher.update(part)) : cipher.update(part))
    const rest = cipher.final() // GCM is a stream mode: nothing is held back, this is empty
    if (rest.length > 0) into.push(rest)
    into.push(cipher.getAuthTag())
  }
}

type OpenStep = { readonly ok: true; readonly out: ReadonlyArray<Uint8Array> } | { readonly ok: false; readonly reason: DecryptReason }

/** Per-blob decryption state: parses the header, then authenticates frame by frame. */
class Opener {
  done = false
  private readonly input = new ByteQueue({ collectSpent: true })
  private header: Uint8Array | undefined
  private key: KeyObject | undefined
  private index = 0

  private readonly scope: BlobScope
  private readonly scopeKey: Buffer
  private readonly issues: boolean

  constructor(scope: BlobScope, scopeKey: Buffer, issues: boolean) {
    this.scope = scope
    this.scopeKey = scopeKey
    this.issues = issues
  }

  push(chunk: Uint8Array): OpenStep {
    this.input.push(chunk)
    const step = this.step()
    // Input read to its end is deciphered and no view of it is kept (the header is a copy): freed
    // now if the store issued it. After a failure the stream ends; the collector takes the rest.
    const spent = this.input.takeSpent()
    if (this.issues && step.ok) for (const done of spent) openedChunks.retire(done)
    return step
  }

  private step(): OpenStep {
    const out: Array<Uint8Array> = []
    for (;;) {
      if (this.done) return this.input.length === 0 ? { ok: true, out } : { ok: false, reason: "malformed" }
      if (this.header === undefined || this.key === undefined) {
        if (this.input.length < HEADER_BYTES) {
          return this.couldBeHeader() ? { ok: true, out } : { ok: false, reason: "not-encrypted" }
        }
        // Copied: the header is every frame's AAD, and its input chunk may be freed.
        const header = Uint8Array.from(this.input.take(HEADER_BYTES))
        const problem = this.checkHeader(header)
        if (problem !== undefined) return { ok: false, reason: problem }
        this.header = header
        this.key = blobKey(this.scopeKey, header.subarray(MAGIC.length + 2))
        continue
      }
      if (this.input.length < FRAME_HEAD_BYTES) return { ok: true, out }
      const head = Buffer.from(this.input.peek(FRAME_HEAD_BYTES))
      const flag = head[0]
      const size = head.readUInt32BE(1)
      if ((flag !== 0 && flag !== 1) || size > FRAME_BYTES) return { ok: false, reason: "malformed" }
      if (this.input.length < FRAME_HEAD_BYTES + size + TAG_BYTES) return { ok: true, out }
      this.input.take(FRAME_HEAD_BYTES)
      const body = this.input.takeParts(size)
      const tag = this.input.take(TAG_BYTES)
      const final = flag === 1
      const plain = this.open(this.header, this.key, body, tag, final)
      if (plain === undefined) return { ok: false, reason: "authentication-failed" }
      for (const part of plain) if (part.length > 0) out.push(this.issues ? openedChunks.issue(part) : part)
      this.done = final
    }
  }

  /** Why the stream ended too early. */
  endReason(): DecryptReason {
    return this.header === undefined && !this.couldBeHeader() ? "not-encrypted" : "truncated"
  }

  /** Whether the bytes seen so far (before a complete header) are a prefix of a header. */
  private couldBeHeader(): boolean {
    const seen = this.input.peek(Math.min(this.input.length, MAGIC.length))
    return seen.every((byte, i) => byte === MAGIC[i])
  }

  private checkHeader(header: Uint8Array): DecryptReason | undefined {
    if (!startsWithMagic(header)) return "not-encrypted"
    if (header[MAGIC.length] !== VERSION) return "unsupported-version"
    if (header[MAGIC.length + 1] !== SCOPE_BYTE[this.scope]) return "wrong-scope"
    return undefined
  }

  // The body is deciphered from views of the chunks it spans (no gathering copy); its plaintext
  // pieces are released only once the tag checked out.
  private open(
    header: Uint8Array,
    key: KeyObject,
    body: ReadonlyArray<Uint8Array>,
    tag: Uint8Array,
    final: boolean
  ): ReadonlyArray<Uint8Array> | undefined {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce(this.index++, final))
    decipher.setAAD(header)
    decipher.setAuthTag(tag)
    const plain = body.map((part) => decipher.update(part))
    try {
      // A failed tag check throws here; the frame's plaintext is then discarded unseen. GCM holds
      // nothing back, so `final` adds no bytes.
      const rest = decipher.final()
      if (rest.length > 0) plain.push(rest)
      return plain
    } catch {
      return undefined
    }
  }
}

const EMPTY = new Uint8Array(0)

/** A FIFO of byte chunks with exact-size reads, copying only across chunk boundaries. */
class ByteQueue {
  length = 0
  private chunks: Array<Uint8Array> = []
  /** Index of the first unconsumed chunk, and the offset into it. */
  private first = 0
  private offset = 0
  /** Chunks consumed to their end since the last {@link takeSpent} (when collected at all). */
  private spent: Array<Uint8Array> = []
  private readonly collectSpent: boolean

  /** `collectSpent`: keep consumed chunks for {@link takeSpent}, which the owner must then call. */
  constructor(options: { readonly collectSpent?: boolean } = {}) {
    this.collectSpent = options.collectSpent ?? false
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.length += chunk.length
  }

  peek(n: number): Uint8Array {
    return this.read(n, false)
  }

  take(n: number): Uint8Array {
    return this.read(n, true)
  }

  /** The next `n` bytes as views of the queued chunks, without copying; consumes them. */
  takeParts(n: number): ReadonlyArray<Uint8Array> {
    const parts: Array<Uint8Array> = []
    let left = Math.min(n, this.length)
    let index = this.first
    let offset = this.offset
    while (left > 0) {
      const chunk = this.chunks[index]
      if (chunk === undefined) break
      const count = Math.min(left, chunk.length - offset)
      parts.push(chunk.subarray(offset, offset + count))
      left -= count
      index++
      offset = 0
    }
    this.advance(Math.min(n, this.length))
    return parts
  }

  /** The chunks consumed to their end since the last call (views of them may still be in use). */
  takeSpent(): ReadonlyArray<Uint8Array> {
    const spent = this.spent
    this.spent = []
    return spent
  }

  private read(n: number, consume: boolean): Uint8Array {
    const head = this.chunks[this.first]
    if (head !== undefined && head.length - this.offset >= n) {
      const view = head.subarray(this.offset, this.offset + n)
      if (consume) this.advance(n)
      return view
    }
    const out = new Uint8Array(n)
    let filled = 0
    let index = this.first
    let offset = this.offset
    while (filled < n) {
      const chunk = this.chunks[index]
      if (chunk === undefined) break
      const count = Math.min(n - filled, chunk.length - offset)
      out.set(chunk.subarray(offset, offset + count), filled)
      filled += count
      index++
      offset = 0
    }
    if (consume) this.advance(n)
    return out
  }

  private advance(n: number): void {
    let left = n
    this.length -= n
    while (left > 0) {
      const head = this.chunks[this.first]
      if (head === undefined) break
      const available = head.length - this.offset
      if (available > left) {
        this.offset += left
        break
      }
      left -= available
      if (this.collectSpent) this.spent.push(head)
      this.chunks[this.first++] = EMPTY // drop the consumed chunk now, not at the next compaction
      this.offset = 0
    }
    if (this.first > 64 && this.first * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.first)
      this.first = 0
    }
  }
}

const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => Buffer.concat(parts)
