/**
 * Document ids: every backend uses 24-hex-character ids laid out like a MongoDB ObjectId
 * (4-byte seconds timestamp, 5 random bytes per process, 3-byte counter), so a seed id means the
 * same thing whichever backend issued it, and a malformed id is recognizable without a lookup.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"

/** Issues fresh ObjectId-shaped hex ids; `nowMillis` is the issuing clock's time. */
export type ObjectIdIssuer = (nowMillis: number) => string

/**
 * An id issuer for one backend instance: its own 5 random bytes (where MongoDB uses one value per
 * process) and its own counter, so two issuers never share a sequence and no state is global.
 */
export const makeObjectIdIssuer = (): ObjectIdIssuer => {
  const unique = randomBytes(5).toString("hex")
  let counter = randomBytes(3).readUIntBE(0, 3)
  return (nowMillis) => {
    counter = (counter + 1) % 0x1000000
    const seconds = Math.floor(nowMillis / 1000) >>> 0
    return seconds.toString(16).padStart(8, "0") + unique + counter.toString(16).padStart(6, "0")
  }
}

/** Whether `id` is a well-formed ObjectId hex string (24 hex characters). */
export const isObjectIdHex = (id: string): boolean => /^[0-9a-f]{24}$/i.test(id)
