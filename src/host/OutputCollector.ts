/**
 * OutputCollector: keeps a command's output up to a byte limit and remembers whether anything
 * was dropped. Shared by every host's `run`.
 *
 * @since 0.1.0
 */

/** A bounded buffer of output chunks. */
export interface OutputCollector {
  readonly push: (chunk: Buffer) => void
  readonly text: () => string
  readonly truncated: () => boolean
}

/** Keeps at most `limit` bytes; later bytes are dropped and `truncated` becomes true. */
export const outputCollector = (limit: number): OutputCollector => {
  const chunks: Array<Buffer> = []
  let size = 0
  let truncated = false
  return {
    push: (chunk) => {
      if (chunk.length === 0) return
      if (size >= limit) {
        truncated = true
        return
      }
      const kept = chunk.subarray(0, limit - size)
      if (kept.length < chunk.length) truncated = true
      chunks.push(kept)
      size += kept.length
    },
    text: () => Buffer.concat(chunks).toString("utf8"),
    truncated: () => truncated
  }
}
