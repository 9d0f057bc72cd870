/**
 * The embedded store's blob files and the HandedOver rules: a snapshot blob's written chunks are
 * released once on disk and its read chunks handed over; a seed blob's are left alone.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { mkdirSync, rmSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import { afterAll } from "vitest"
import { handOver, isHandedOver } from "../../src/bytes/HandedOver.ts"
import { makeBlobFiles } from "../../src/store/embedded/BlobFiles.ts"

const root = join(process.cwd(), ".cache", "test", `blob-files-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

const freshDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(root, "blobs-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)
const handedOverChunks = (data: Uint8Array, size: number) => {
  const chunks: Array<Uint8Array> = []
  for (let offset = 0; offset < data.length; offset += size) chunks.push(handOver(Uint8Array.from(data.subarray(offset, offset + size))))
  return chunks
}

describe("BlobFiles", () => {
  it.effect("a recycling put releases each handed-over chunk once it is written; the file holds every byte", () =>
    Effect.gen(function*() {
      const blobs = yield* makeBlobFiles(yield* freshDir)
      const data = randomBytes(3 * 1024 * 1024 + 11)
      const chunks = handedOverChunks(data, 65_536)
      const blobId = yield* blobs.put(Stream.fromIterable(chunks), true)
      assert.isTrue(chunks.every((chunk) => chunk.byteLength === 0))
      assert.isTrue((yield* Effect.promise(() => readFile(blobs.pathOf(blobId)))).equals(data))
    }).pipe(Effect.scoped))

  it.effect("a non-recycling put (seed blobs) leaves the chunks to their owner", () =>
    Effect.gen(function*() {
      const blobs = yield* makeBlobFiles(yield* freshDir)
      const data = randomBytes(200_000)
      const chunks = handedOverChunks(data, 65_536)
      yield* blobs.put(Stream.fromIterable(chunks), false)
      assert.isTrue(Buffer.concat(chunks).equals(data))
      assert.isTrue(chunks.every(isHandedOver))
    }).pipe(Effect.scoped))

  it.effect("snapshot reads are handed over, seed reads are not", () =>
    Effect.gen(function*() {
      const blobs = yield* makeBlobFiles(yield* freshDir)
      const data = randomBytes(600_000)
      const blobId = yield* blobs.put(Stream.make(Uint8Array.from(data)), false)
      const snapshot = yield* Stream.runCollect(blobs.get("snapshot", blobId))
      assert.isTrue(Buffer.concat(snapshot).equals(data))
      assert.isTrue(snapshot.every(isHandedOver))
      const seed = yield* Stream.runCollect(blobs.get("seed", blobId))
      assert.isTrue(Buffer.concat(seed).equals(data))
      assert.isFalse(seed.some(isHandedOver))
    }).pipe(Effect.scoped))
})
