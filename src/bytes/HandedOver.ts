/**
 * HandedOver: byte chunks whose memory a pipeline may free as soon as it is done with them. It
 * owns one registry — the ArrayBuffers handed over whole to their consumer — and the two moves
 * on it: mark a chunk when it is produced, release it when its last use is over.
 *
 * **Why**
 *
 * A snapshot moves ~100 MB through the worker twice (pipe read → cipher → file, and back), and
 * every stage allocates: pipe reads, file reads and Node's cipher output are fresh buffers. Left to
 * the garbage collector, that memory comes back only after a major GC of the whole worker heap
 * (V8 starts one per some tens of MB of ArrayBuffers) and is paged in fresh every time: issue 19
 * measured GC and page faults as most of the worker's time. Released right after use, the same
 * few buffers are recycled by the allocator and the collector is rarely asked.
 *
 * **Rules**
 *
 * - Mark ({@link handOver}) only a chunk the producer just allocated, whose ArrayBuffer no other
 *   view shares, and which the producer forgets after emitting it.
 * - Release ({@link release}) only when no view of the chunk will be read again. A releasing
 *   stage that passes a chunk on must not release it; a stage that keeps chunks (an in-memory
 *   store) must {@link keep} them, so nobody downstream frees what it still holds.
 * - Unmarked chunks, views of part of a buffer and shared memory are never freed: releasing is
 *   an optimisation, a no-op whenever ownership is not certain.
 *
 * @since 0.1.0
 */

const handedOver = new WeakSet<ArrayBuffer>()

const wholeBuffer = (chunk: Uint8Array): ArrayBuffer | undefined => {
  const buffer = chunk.buffer
  return buffer instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === buffer.byteLength && chunk.byteLength > 0
    ? buffer
    : undefined
}

/**
 * Marks `chunk` as handed over whole to its consumer (see the module rules); returns it.
 * @category constructors
 */
export const handOver = <A extends Uint8Array>(chunk: A): A => {
  const buffer = wholeBuffer(chunk)
  if (buffer !== undefined) handedOver.add(buffer)
  return chunk
}

/**
 * Whether `chunk` was handed over and not yet released or kept.
 * @category guards
 */
export const isHandedOver = (chunk: Uint8Array): boolean => {
  const buffer = wholeBuffer(chunk)
  return buffer !== undefined && handedOver.has(buffer)
}

/**
 * Frees a handed-over chunk's memory now: its views read as empty afterwards. Anything else is
 * left to the garbage collector.
 * @category destructors
 */
export const release = (chunk: Uint8Array): void => {
  const buffer = wholeBuffer(chunk)
  if (buffer === undefined || !handedOver.delete(buffer)) return
  try {
    // Detaching hands the memory back at once; the zero-length result is dropped.
    buffer.transfer(0)
  } catch {
    // A buffer the runtime will not detach stays with the garbage collector.
  }
}

/**
 * Takes a chunk out of the registry: its holder keeps it, and no stage may free it.
 * @category destructors
 */
export const keep = (chunk: Uint8Array): void => {
  const buffer = wholeBuffer(chunk)
  if (buffer !== undefined) handedOver.delete(buffer)
}
