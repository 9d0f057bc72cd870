/**
 * StoreError: the failures every store port (SeedStore, Lease, SnapshotStore) shares, whatever the
 * backend (memory, embedded, MongoDB). They sit below both the ports and the backends, so a port
 * never imports its adapters. The seed-, lease- and snapshot-specific errors live beside their
 * services; these are about the backend itself and its blobs.
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

/**
 * A stored blob could not be decrypted; `reason` says why. Nothing is emitted before the blob
 * authenticates, and nothing is written.
 * @category errors
 * @since 0.1.0
 */
export class BlobDecryptFailed extends Schema.TaggedError<BlobDecryptFailed>()("BlobDecryptFailed", {
  scope: Schema.Literals(["seed", "snapshot"]),
  reason: Schema.Literals([
    "authentication-failed",
    "not-encrypted",
    "encrypted-without-key",
    "wrong-scope",
    "unsupported-version",
    "truncated",
    "malformed"
  ])
}) {
  override get message(): string {
    switch (this.reason) {
      case "authentication-failed":
        return `the ${this.scope} blob does not authenticate: wrong key, or the blob is corrupt`
      case "not-encrypted":
        return `the ${this.scope} blob is not encrypted, but a ${this.scope} key is configured`
      case "encrypted-without-key":
        return `the ${this.scope} blob is encrypted, but no ${this.scope} key is configured`
      case "wrong-scope":
        return `the blob was encrypted for another key scope than ${this.scope}`
      case "unsupported-version":
        return `the ${this.scope} blob uses an unsupported encryption format version`
      case "truncated":
        return `the ${this.scope} blob ends before its final frame (truncated)`
      case "malformed":
        return `the ${this.scope} blob is not in the expected encrypted format`
    }
  }
}
