/**
 * The embedded store's blob files and ChunkRegistry: the sealer's chunks are freed once on disk,
 * any other chunk is left to its owner; snapshot reads are issued to the restore's registry,
 * seed reads are not; every byte comes back, including a short last read.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { mkdirSync, rmSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import { afterAll } from "vitest"
import { openedChunks, sealedChunks } from "../../src/store/ChunkRegistry.ts"
import { makeBlobFiles } from "../../src/store/embedded/BlobFiles.ts"

const root = join(process.cwd(), ".cache", "test", `blob-files-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

const freshDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(root, "blobs-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)
const chunksOf = (data: Uint8Array, size: number, issue: (chunk: Uint8Array) => Uint8Array) => {
  const chunks: Array<Uint8Array> = []
  for (let offset = 0; offset < data.length; offset += size) chunks.push(issue(Uint8Array.from(data.subarray(offset, offset + size))))
  return chunks
}

describe("BlobFiles", () => {
  it.effect("the sealer's chunks are freed once written, every other chunk is left whole; the file holds every byte", () =>
    Effect.gen(function*() {
      const blobs = yield* makeBlobFiles(yield* freshDir)
      const data = randomBytes(3 * 1024 * 1024 + 11)
      // Alternate sealed and foreign chunks (a header, a caller's bytes, another registry's).
      const chunks = chunksOf(data, 65_536, (chunk) => chunk)
      const issued = chunks.map((chunk, index) => index % 3 === 0 ? chunk : index % 3 === 1 ? sealedChunks.issue(chunk) : openedChunks.issue(chunk))
      const blobId = yield* blobs.put(Stream.fromIterable(issued))
      assert.isTrue((yield* Effect.promise(() => readFile(blobs.pathOf(blobId)))).equals(data))
      issued.forEach((chunk, index) => {
        assert.strictEqual(chunk.byteLength, index % 3 === 1 ? 0 : Math.min(65_536, data.length - index * 65_536), `chunk ${index}`)
      })
    }).pipe(Effect.scoped))

  it.effect("snapshot reads are issued to the restore's registry, seed reads are not; a short last read comes back whole", () =>
    Effect.gen(function*() {
      const blobs = yield* makeBlobFiles(yield* freshDir)
      const data = randomBytes(600_000) // 256 KiB reads: two full, one of 75,712 bytes
      const blobId = yield* blobs.put(Stream.make(Uint8Array.from(data)))
      const snapshot = yield* Stream.runCollect(blobs.get("snapshot", blobId))
      assert.isTrue(Buffer.concat(snapshot).equals(data))
      assert.deepStrictEqual(snapshot.map((chunk) => chunk.length), [262_144, 262_144, 75_712])
      assert.isTrue(snapshot.every((chunk) => openedChunks.isIssued(chunk)))
      const seed = yield* Stream.runCollect(blobs.get("seed", blobId))
      assert.isTrue(Buffer.concat(seed).equals(data))
      assert.isFalse(seed.some((chunk) => openedChunks.isIssued(chunk) || sealedChunks.isIssued(chunk)))
      const missing = yield* Effect.flip(Stream.runCollect(blobs.get("snapshot", "0123456789abcdef01234567")))
      assert.strictEqual(missing._tag, "BlobMissing")
    }).pipe(Effect.scoped))
})
