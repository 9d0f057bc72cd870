/**
 * HandedOver: which chunks `release` frees (handed over, whole, not yet released or kept) and
 * which it must leave alone.
 */
import { assert, describe, it } from "@effect/vitest"
import { handOver, isHandedOver, keep, release } from "../../src/bytes/HandedOver.ts"

const fresh = (size: number) => {
  const chunk = Buffer.allocUnsafeSlow(size)
  chunk.fill(7)
  return chunk
}

describe("HandedOver", () => {
  it("release frees a handed-over chunk at once, and only once", () => {
    const chunk = handOver(fresh(64 * 1024))
    assert.isTrue(isHandedOver(chunk))
    release(chunk)
    assert.strictEqual(chunk.byteLength, 0)
    assert.isTrue(chunk.buffer.detached)
    assert.isFalse(isHandedOver(chunk))
    release(chunk) // a second release is a no-op, not an error
  })

  it("leaves unmarked chunks, kept chunks, partial views and pooled buffers alone", () => {
    const unmarked = fresh(1024)
    release(unmarked)
    assert.strictEqual(unmarked.byteLength, 1024)

    const kept = handOver(fresh(1024))
    keep(kept)
    release(kept)
    assert.strictEqual(kept.byteLength, 1024)

    // A view of part of a buffer is never marked: another view may share the memory.
    const whole = fresh(1024)
    const view = handOver(whole.subarray(0, 512))
    assert.isFalse(isHandedOver(view))
    release(view)
    assert.strictEqual(whole.byteLength, 1024)
    assert.strictEqual(view.byteLength, 512)

    // Small Buffers come from Node's shared pool: a slice of a bigger ArrayBuffer.
    const pooled = handOver(Buffer.from("abc"))
    release(pooled)
    assert.strictEqual(pooled.toString(), "abc")

    const empty = handOver(new Uint8Array(0))
    assert.isFalse(isHandedOver(empty))
  })

  it("a release through a view of the whole buffer frees the chunk the view shares", () => {
    const chunk = handOver(fresh(4096))
    release(new Uint8Array(chunk.buffer))
    assert.strictEqual(chunk.byteLength, 0)
  })
})
