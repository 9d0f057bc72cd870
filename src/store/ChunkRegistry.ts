/**
 * ChunkRegistry: byte chunks a snapshot pipeline allocated itself, freed as soon as the one stage
 * that consumes each of them is done with it, instead of at the worker's next major collection.
 *
 * **Why.** A snapshot moves its archive through the worker once each way, and every read and every
 * piece of cipher output is a fresh buffer. V8 gives ArrayBuffer memory back only after a
 * mark-compact of the whole worker heap, which it starts per some tens of MB of such buffers, and
 * that collection costs in proportion to everything else the worker holds. Measured (200 MB tree,
 * capture + restore in one process): 1.2 s with a 37 MB heap, 2.3 s with a 450 MB one.
 *
 * **Rules**, which keep freeing safe by construction:
 * - A registry's producers {@link ChunkRegistry.issue} only buffers they have just allocated
 *   themselves: whole, unshared, seen by no other code. Node's own stream buffers are never issued.
 * - Its consumers {@link ChunkRegistry.retire} a chunk only where no other code can hold it: each
 *   registry below names its one path from producer to consumer.
 * - Everything else (pipe reads, seed blobs, chunks a caller handed in or was handed) is never
 *   issued to the registry whose consumer sees it, and stays with the garbage collector.
 *
 * @since 0.1.0
 */

/**
 * One producer → consumer path's chunks.
 * @category models
 */
export class ChunkRegistry {
  private readonly issued = new WeakSet<ArrayBuffer>()

  /** Registers a chunk its producer has just allocated; returns it. */
  issue<A extends Uint8Array>(chunk: A): A {
    const buffer = wholeBuffer(chunk)
    if (buffer !== undefined) this.issued.add(buffer)
    return chunk
  }

  /** Whether `chunk` was issued here and not yet retired. */
  isIssued(chunk: Uint8Array): boolean {
    const buffer = wholeBuffer(chunk)
    return buffer !== undefined && this.issued.has(buffer)
  }

  /** Frees an issued chunk's memory now (its views read as empty afterwards); ignores any other. */
  retire(chunk: Uint8Array): void {
    const buffer = wholeBuffer(chunk)
    if (buffer === undefined || !this.issued.delete(buffer)) return
    try {
      // Detaching hands the memory back at once; the zero-length result is dropped.
      buffer.transfer(0)
    } catch {
      // A buffer the runtime will not detach stays with the garbage collector.
    }
  }
}

const wholeBuffer = (chunk: Uint8Array): ArrayBuffer | undefined => {
  const buffer = chunk.buffer
  return buffer instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === buffer.byteLength && chunk.byteLength > 0
    ? buffer
    : undefined
}

/**
 * A snapshot's ciphertext on its way into the store: issued by the snapshot cipher's sealer,
 * whose output goes straight to the backend; retired by the embedded store once written.
 * @category registries
 */
export const sealedChunks = new ChunkRegistry()

/**
 * A snapshot blob on its way out of the store: issued by the embedded store's reads and by the
 * snapshot cipher's opener; retired by the opener (its input, once deciphered) and by the restore
 * (once tar's stdin took them), the one reader that keeps no chunk and hands none on.
 * @category registries
 */
export const openedChunks = new ChunkRegistry()
