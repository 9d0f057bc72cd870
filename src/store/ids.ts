/**
 * Document ids: every backend uses 24-hex-character ids laid out like a MongoDB ObjectId
 * (4-byte seconds timestamp, 5 random bytes per process, 3-byte counter), so a seed id means the
 * same thing whichever backend issued it, and a malformed id is recognizable without a lookup.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"

// Process-wide by design (the ObjectId layout): ids issued by any store instance of this process
// sort in creation order within a second. A counter, not a registry: nothing is looked up in it.
const processUnique = randomBytes(5).toString("hex")
let counter = randomBytes(3).readUIntBE(0, 3)

/** A fresh ObjectId-shaped hex id; `nowMillis` is the issuing clock's time. */
export const newObjectIdHex = (nowMillis: number): string => {
  counter = (counter + 1) % 0x1000000
  const seconds = Math.floor(nowMillis / 1000) >>> 0
  return seconds.toString(16).padStart(8, "0") + processUnique + counter.toString(16).padStart(6, "0")
}

/** Whether `id` is a well-formed ObjectId hex string (24 hex characters). */
export const isObjectIdHex = (id: string): boolean => /^[0-9a-f]{24}$/i.test(id)
