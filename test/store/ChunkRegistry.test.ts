/**
 * ChunkRegistry: what may be freed early. Only a whole chunk issued to a registry is freed by that
 * registry's retire; views, pooled buffers, other registries' chunks and unissued chunks never are.
 */
import { assert, describe, it } from "@effect/vitest"
import { ChunkRegistry } from "../../src/store/ChunkRegistry.ts"

describe("ChunkRegistry", () => {
  it("retiring an issued chunk frees it once; a second retire is a no-op", () => {
    const registry = new ChunkRegistry()
    const chunk = registry.issue(Buffer.alloc(65_536, 7))
    assert.isTrue(registry.isIssued(chunk))
    registry.retire(chunk)
    assert.strictEqual(chunk.byteLength, 0)
    assert.isFalse(registry.isIssued(chunk))
    registry.retire(chunk)
    assert.strictEqual(chunk.byteLength, 0)
  })

  it("never frees what it did not issue: unissued chunks, views of part of a buffer, pooled buffers, another registry's chunks", () => {
    const registry = new ChunkRegistry()
    const other = new ChunkRegistry()
    const unissued = Buffer.alloc(1024, 1)
    const whole = Buffer.alloc(4096, 2)
    const view = registry.issue(whole.subarray(0, 100)) // a view: not issued at all
    const pooled = registry.issue(Buffer.from("small")) // shares Node's pool: not issued
    const foreign = other.issue(Buffer.alloc(2048, 3))
    for (const chunk of [unissued, view, pooled, foreign]) registry.retire(chunk)
    assert.strictEqual(unissued.byteLength, 1024)
    assert.strictEqual(view.byteLength, 100)
    assert.strictEqual(whole.byteLength, 4096)
    assert.strictEqual(pooled.toString(), "small")
    assert.strictEqual(foreign.byteLength, 2048)
    assert.isTrue(other.isIssued(foreign))
    assert.isFalse(registry.isIssued(view))
    assert.isFalse(registry.isIssued(pooled))
  })
})
