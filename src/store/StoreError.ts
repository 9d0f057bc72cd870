/**
 * StoreError: the failures every store backend (memory, embedded, MongoDB) shares. The
 * seed-, lease- and snapshot-specific errors live beside their services; these two are about the
 * backend itself and its blobs.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The store backend could not carry out an operation (connection refused, disk full, a SQLite
 * error, a malformed stored document, …). `detail` never contains blob bytes or secrets.
 * @category errors
 */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()("StoreUnavailable", {
  backend: Schema.String,
  operation: Schema.String,
  detail: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  override get message(): string {
    return `${this.backend} store: ${this.operation} failed: ${this.detail}`
  }
}

/**
 * A stored document points at a blob that is not there (deleted by a concurrent writer, or
 * removed out of band).
 * @category errors
 */
export class BlobMissing extends Schema.TaggedError<BlobMissing>()("BlobMissing", {
  backend: Schema.String,
  blobId: Schema.String,
  kind: Schema.Literals(["seed", "snapshot"])
}) {
  override get message(): string {
    return `${this.backend} store: the ${this.kind} blob ${this.blobId} is missing`
  }
}

/** The text of an unknown thrown value, for `detail` fields. */
export const describeCause = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : "unknown error"
