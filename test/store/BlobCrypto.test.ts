/**
 * The encryption seam: the AES-256-GCM stream format (round trips over every chunking, tamper and
 * truncation detection, key scopes) and the plaintext cipher's refusal of encrypted blobs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { aesGcmCipher, BlobCrypto, plaintextCipher } from "../../src/store/BlobCrypto.ts"
import { openedChunks, sealedChunks } from "../../src/store/ChunkRegistry.ts"
import type { BlobCipher } from "../../src/store/BlobCrypto.ts"

const SECRET = Redacted.make("correct horse battery staple 0123456789")
const OTHER = Redacted.make("incorrect horse battery staple 98765432")
const FRAME = 64 * 1024

/** A stream of `data` in pieces of `size` bytes. */
const pieces = (data: Uint8Array, size: number) => {
  const parts: Array<Uint8Array> = []
  for (let offset = 0; offset < data.length; offset += size) parts.push(data.subarray(offset, offset + size))
  return Stream.fromIterable(parts)
}
const collect = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => new Uint8Array(Buffer.concat(chunks)))
const seal = (cipher: BlobCipher, data: Uint8Array, size = 10_000) => collect(cipher.encrypt(pieces(data, size)))
/** `data` as fresh chunks of `size` bytes issued as the embedded store's reads are. */
const storedPieces = (data: Uint8Array, size: number) => {
  const parts: Array<Uint8Array> = []
  for (let offset = 0; offset < data.length; offset += size) parts.push(openedChunks.issue(Uint8Array.from(data.subarray(offset, offset + size))))
  return parts
}
const decryptReason = (cipher: BlobCipher, sealed: Uint8Array, size = 4096) =>
  Effect.map(Effect.flip(collect(cipher.decrypt(pieces(sealed, size)))), (error) => error.reason)

describe("BlobCrypto AES-256-GCM", () => {
  it.effect("round-trips every size around the frame boundary, whatever the chunking on either side", () =>
    Effect.gen(function*() {
      const cipher = yield* aesGcmCipher("seed", SECRET)
      for (const size of [0, 1, 5, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME, 200_000]) {
        const data = randomBytes(size)
        for (const [inChunk, outChunk] of [[1 << 20, 1 << 20], [7, 4096], [FRAME, 1], [FRAME + 3, 13]] as const) {
          if ((inChunk < 100 || outChunk < 100) && size > 2 * FRAME) continue
          const sealed = yield* seal(cipher, data, inChunk)
          assert.isTrue(Buffer.from(sealed.subarray(0, 6)).toString("ascii") === "OCXENC")
          const opened = yield* collect(cipher.decrypt(pieces(sealed, outChunk)))
          assert.isTrue(Buffer.from(opened).equals(data), `size ${size}, chunks ${inChunk}/${outChunk}`)
        }
      }
    }))

  it.effect("encrypting the same plaintext twice gives different blobs (per-blob salt and key)", () =>
    Effect.gen(function*() {
      const cipher = yield* aesGcmCipher("snapshot", SECRET)
      const data = new TextEncoder().encode("same tree")
      const first = yield* seal(cipher, data)
      const second = yield* seal(cipher, data)
      assert.isFalse(Buffer.from(first).equals(Buffer.from(second)))
    }))

  it.effect("a wrong key fails with authentication-failed before emitting any plaintext", () =>
    Effect.gen(function*() {
      const right = yield* aesGcmCipher("seed", SECRET)
      const wrong = yield* aesGcmCipher("seed", OTHER)
      const sealed = yield* seal(right, randomBytes(3 * FRAME))
      let emitted = 0
      const error = yield* Effect.flip(Stream.runForEach(wrong.decrypt(pieces(sealed, 1 << 20)), (chunk) =>
        Effect.sync(() => {
          emitted += chunk.length
        })))
      assert.strictEqual(error._tag, "BlobDecryptFailed")
      assert.strictEqual(error.reason, "authentication-failed")
      assert.strictEqual(emitted, 0)
      assert.include(error.message, "wrong key")
    }))

  it.effect("seed and snapshot scopes are separate even with the same secret", () =>
    Effect.gen(function*() {
      const seed = yield* aesGcmCipher("seed", SECRET)
      const snapshot = yield* aesGcmCipher("snapshot", SECRET)
      const sealed = yield* seal(seed, new TextEncoder().encode("auth.json"))
      assert.strictEqual(yield* decryptReason(snapshot, sealed), "wrong-scope")
      const forged = Uint8Array.from(sealed)
      forged[7] = 2 // claim the snapshot scope: the header is authenticated, and the keys differ anyway
      assert.strictEqual(yield* decryptReason(snapshot, forged), "authentication-failed")
    }))

  it.effect("tampering, truncation, reordering and trailing bytes are detected", () =>
    Effect.gen(function*() {
      const cipher = yield* aesGcmCipher("snapshot", SECRET)
      const data = randomBytes(2 * FRAME + 100)
      const sealed = yield* seal(cipher, data)
      const frame = 5 + FRAME + 16
      const header = 40

      const flipped = Uint8Array.from(sealed)
      flipped[header + 5 + 100] = (flipped[header + 5 + 100] ?? 0) ^ 1
      assert.strictEqual(yield* decryptReason(cipher, flipped), "authentication-failed")

      const markedFinal = Uint8Array.from(sealed)
      markedFinal[header] = 1
      assert.strictEqual(yield* decryptReason(cipher, markedFinal), "authentication-failed")

      assert.strictEqual(yield* decryptReason(cipher, sealed.subarray(0, sealed.length - 10)), "truncated")
      assert.strictEqual(yield* decryptReason(cipher, sealed.subarray(0, header + 2 * frame)), "truncated", "final frame dropped")
      assert.strictEqual(yield* decryptReason(cipher, sealed.subarray(0, 20)), "truncated")

      const swapped = new Uint8Array(Buffer.concat([
        sealed.subarray(0, header),
        sealed.subarray(header + frame, header + 2 * frame),
        sealed.subarray(header, header + frame),
        sealed.subarray(header + 2 * frame)
      ]))
      assert.strictEqual(yield* decryptReason(cipher, swapped), "authentication-failed")

      const trailing = new Uint8Array(Buffer.concat([sealed, Buffer.from("extra")]))
      assert.strictEqual(yield* decryptReason(cipher, trailing), "malformed")
    }))

  it.effect("snapshot scope: the ciphertext and plaintext pieces are issued, issued input is freed once deciphered, whatever the chunking", () =>
    Effect.gen(function*() {
      const cipher = yield* aesGcmCipher("snapshot", SECRET)
      for (const size of [0, 5, FRAME, FRAME + 1, 3 * FRAME + 17]) {
        const data = randomBytes(size)
        // 40 keeps the 40-byte header inside the first chunk (the header is every frame's AAD:
        // freeing its chunk must not lose it), 7 splits it, 1 << 20 holds everything.
        for (const [inChunk, outChunk] of [[1 << 20, 1 << 20], [7, 40], [FRAME, 7], [FRAME + 3, FRAME - 1]] as const) {
          if ((inChunk < 100 || outChunk < 100) && size > 2 * FRAME) continue
          const sealedParts = yield* Stream.runCollect(cipher.encrypt(pieces(data, inChunk)))
          const ciphertext = sealedParts.filter((chunk) => sealedChunks.isIssued(chunk))
          assert.strictEqual(ciphertext.reduce((sum, chunk) => sum + chunk.length, 0), size, "every ciphertext piece is issued")
          const sealed = Buffer.concat(sealedParts)

          const stored = storedPieces(sealed, outChunk)
          const opened = yield* Stream.runCollect(cipher.decrypt(Stream.fromIterable(stored)))
          assert.isTrue(Buffer.concat(opened).equals(data), `size ${size}, chunks ${inChunk}/${outChunk}`)
          assert.isTrue(opened.every((chunk) => openedChunks.isIssued(chunk)), "the plaintext pieces are issued")
          assert.isTrue(stored.every((chunk) => chunk.byteLength === 0), `stored chunks freed, chunks ${outChunk}`)
        }
      }
    }))

  it.effect("neither side keeps what it consumed: the memory in use stays flat while a 40 MiB blob streams through", () =>
    Effect.gen(function*() {
      setFlagsFromString("--expose-gc")
      const gc = runInNewContext("gc") as (options: object) => void
      const buffersInUse = () => {
        gc({ type: "major", execution: "sync", flavor: "last-resort" })
        return process.memoryUsage().arrayBuffers
      }
      const MiB = 1024 * 1024
      const cipher = yield* aesGcmCipher("snapshot", SECRET)
      // Sources that hold no chunk once emitted: 40 chunks of 1 MiB each.
      const source = (make: (index: number) => Uint8Array) =>
        Stream.range(0, 39).pipe(Stream.rechunk(1), Stream.map(make))
      const plainChunk = (index: number) => Buffer.alloc(MiB, index)

      // Sealing, the output dropped as it comes: what is in use midway is what the sealer holds.
      let baseline = buffersInUse()
      let total = 0
      let midway = 0
      yield* Stream.runForEach(cipher.encrypt(source(plainChunk)), (chunk) =>
        Effect.sync(() => {
          total += chunk.length
          if (midway === 0 && total > 30 * MiB) midway = buffersInUse() - baseline
        }))
      assert.isBelow(midway, 8 * MiB, `the sealer held ${Math.round(midway / MiB)} MiB after 30 MiB`)

      // Opening fresh copies of a stored blob's 1 MiB pieces, the plaintext dropped as it comes.
      const blob = Buffer.concat(yield* Stream.runCollect(cipher.encrypt(source(plainChunk))))
      baseline = buffersInUse()
      total = 0
      midway = 0
      const stored = Stream.range(0, Math.ceil(blob.length / MiB) - 1).pipe(
        Stream.rechunk(1),
        Stream.map((index) => Uint8Array.from(blob.subarray(index * MiB, (index + 1) * MiB)))
      )
      yield* Stream.runForEach(cipher.decrypt(stored), (chunk) =>
        Effect.sync(() => {
          total += chunk.length
          if (midway === 0 && total > 30 * MiB) midway = buffersInUse() - baseline
        }))
      assert.strictEqual(total, 40 * MiB)
      assert.isBelow(midway, 8 * MiB, `the opener held ${Math.round(midway / MiB)} MiB after 30 MiB`)
    }))

  it.effect("seed scope issues nothing and frees nothing", () =>
    Effect.gen(function*() {
      const cipher = yield* aesGcmCipher("seed", SECRET)
      const data = randomBytes(2 * FRAME + 5)
      const sealedParts = yield* Stream.runCollect(cipher.encrypt(pieces(data, 10_000)))
      assert.isFalse(sealedParts.some((chunk) => sealedChunks.isIssued(chunk)))
      const sealed = Buffer.concat(sealedParts)
      const stored = storedPieces(sealed, 10_000)
      const opened = yield* Stream.runCollect(cipher.decrypt(Stream.fromIterable(stored)))
      assert.isTrue(Buffer.concat(opened).equals(data))
      assert.isTrue(Buffer.concat(stored).equals(sealed), "the input is left whole")
      assert.isFalse(opened.some((chunk) => openedChunks.isIssued(chunk)))
    }))

  it.effect("snapshot scope: a tampered frame fails without freeing the failing step's input or emitting its plaintext", () =>
    Effect.gen(function*() {
      const cipher = yield* aesGcmCipher("snapshot", SECRET)
      const sealed = Buffer.from(Buffer.concat(yield* Stream.runCollect(cipher.encrypt(pieces(randomBytes(3 * FRAME), FRAME)))))
      sealed[sealed.length - 100]! ^= 1 // inside the last frame
      const stored = storedPieces(sealed, 1 << 20)
      const emitted: Array<Uint8Array> = []
      const error = yield* Effect.flip(Stream.runForEach(cipher.decrypt(Stream.fromIterable(stored)), (chunk) => Effect.sync(() => void emitted.push(chunk))))
      assert.strictEqual(error.reason, "authentication-failed")
      assert.deepStrictEqual(emitted, [], "one input chunk holds every frame: nothing is emitted")
      assert.isTrue(Buffer.concat(stored).equals(sealed), "the failing step's input is not freed")
    }))

  it.effect("a plaintext blob read with a key configured is not-encrypted", () =>
    Effect.gen(function*() {
      const cipher = yield* aesGcmCipher("seed", SECRET)
      assert.strictEqual(yield* decryptReason(cipher, new TextEncoder().encode("\x1f\x8b plain tar.gz")), "not-encrypted")
      assert.strictEqual(yield* decryptReason(cipher, new TextEncoder().encode("hi")), "not-encrypted")
    }))

  it.effect("a key shorter than 16 bytes is refused when the layer is built", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.provide(Effect.asVoid(BlobCrypto), BlobCrypto.layerAesGcm({ seedKey: Redacted.make("short") })))
      assert.strictEqual(error._tag, "BlobKeyInvalid")
      assert.strictEqual(error.scope, "seed")
      assert.notInclude(error.message, "short")
    }))
})

describe("BlobCrypto plaintext", () => {
  it.effect("passes plaintext through unchanged, including blobs shorter than the format's magic", () =>
    Effect.gen(function*() {
      const cipher = plaintextCipher("seed")
      for (const text of ["", "hi", "a longer plaintext that is not encrypted"]) {
        const data = new TextEncoder().encode(text)
        assert.strictEqual(Buffer.from(yield* collect(cipher.decrypt(pieces(data, 1)))).toString(), text)
        assert.strictEqual(Buffer.from(yield* collect(cipher.encrypt(pieces(data, 3)))).toString(), text)
      }
    }))

  it.effect("refuses an encrypted blob (encrypted-without-key), even with its magic split across chunks", () =>
    Effect.gen(function*() {
      const sealed = yield* seal(yield* aesGcmCipher("seed", SECRET), new TextEncoder().encode("secret"))
      for (const size of [1, 2, 5, 4096]) {
        assert.strictEqual(yield* decryptReason(plaintextCipher("seed"), sealed, size), "encrypted-without-key")
      }
    }))
})
