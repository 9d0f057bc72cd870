/**
 * SnapshotStore: stored workdir snapshots of a process (spec §1.4, §8.3, §8.4). It owns the
 * snapshot documents and their blobs — insert with streaming upload, newest-for-process, listing,
 * streaming download and retention. It does not own what a snapshot contains (the archive of the
 * workdir and its compression are built and restored by the session's snapshot code; the codec is
 * only recorded here), nor where the data lives (`store/` backends provide this service).
 *
 * **Gotchas**
 *
 * - Blobs are encrypted with the snapshot scope of `BlobCrypto`; reads yield plaintext. Blobs are
 *   streamed both ways, never buffered whole (except by the in-memory backend).
 * - `capturedAt` is assigned by the store, on its clock, and is strictly later than the process's
 *   previous snapshot, so "latest" is the last inserted even across workers with skewed clocks.
 * - Reference documents have no `codec`: they read as `gzip`. A `zstd` snapshot cannot be restored
 *   by a Python worker.
 *
 * @since 0.1.0
 */
import { Context } from "effect"
import type { Effect, Option, Stream } from "effect"
import type { BlobDecryptFailed } from "../persistence/StoreError.ts"
import type { BlobMissing, StoreUnavailable } from "../persistence/StoreError.ts"

/**
 * Snapshots kept per process by default (spec §8.1).
 * @category constants
 */
export const SNAPSHOT_RETENTION = 5

/**
 * Compression of a snapshot archive.
 * @category models
 */
export type SnapshotCodec = "zstd" | "gzip"

/**
 * How the run that produced a snapshot ended. (The reference records failures as `done`; a
 * failed run is `failed` here.)
 * @category models
 */
export type SnapshotEndState = "done" | "failed" | "cancelled"

/**
 * A snapshot document, decoded forward-compatibly.
 * @category models
 */
export interface SnapshotDoc {
  readonly snapshotId: string
  /** The optio process id (not a database id). */
  readonly processId: string
  /** Store clock; strictly increasing per process. */
  readonly capturedAt: Date
  /** `done`, `failed`, `cancelled` (reference documents may hold other strings). */
  readonly endState: string
  readonly workdirBlobId: string
  /** codex thread / rollout id, when one was found. */
  readonly sessionId: string | null
  /** `zstd` or `gzip` (absent in reference documents: `gzip`). */
  readonly codec: string
}

/**
 * Input of `insert`.
 * @category models
 */
export interface NewSnapshot<E, R> {
  readonly processId: string
  readonly endState: SnapshotEndState
  readonly sessionId: string | null
  readonly codec: SnapshotCodec
  /** The compressed archive, streamed into the store (encrypted there). */
  readonly blob: Stream.Stream<Uint8Array, E, R>
}

/**
 * The snapshot store. Every method fails with `StoreUnavailable` when the backend does.
 * @category services
 * @since 0.1.0
 */
export class SnapshotStore extends Context.Service<SnapshotStore, {
  /**
   * False only for `Store.layerNone` (a worker without a store): nothing is kept, and a task that
   * needs a store (a seed, seed capture, resume) is refused before it starts.
   */
  readonly persistent: boolean
  /** Streams the blob in, then records the document; a failed upload leaves nothing behind. */
  readonly insert: <E, R>(input: NewSnapshot<E, R>) => Effect.Effect<SnapshotDoc, StoreUnavailable | E, R>
  /** The newest snapshot of a process. */
  readonly latest: (processId: string) => Effect.Effect<Option.Option<SnapshotDoc>, StoreUnavailable>
  /** All snapshots of a process, newest first. */
  readonly list: (processId: string) => Effect.Effect<ReadonlyArray<SnapshotDoc>, StoreUnavailable>
  /** The snapshot's archive (plaintext, streamed). */
  readonly readBlob: (
    snapshot: SnapshotDoc
  ) => Stream.Stream<Uint8Array, BlobMissing | BlobDecryptFailed | StoreUnavailable>
  /**
   * Keeps the newest `keep` (default {@link SNAPSHOT_RETENTION}) snapshots of a process, deleting
   * the older documents and their blobs; returns the deleted documents.
   */
  readonly prune: (processId: string, keep?: number) => Effect.Effect<ReadonlyArray<SnapshotDoc>, StoreUnavailable>
}>()("optio-codex/SnapshotStore") {}
