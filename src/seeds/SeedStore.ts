/**
 * SeedStore: the stored codex identities ("seeds", spec §1.2, §1.3, §3.8, §5.5). It owns seed
 * documents and their blobs — capture, lookup, listing, deletion, pools and status — and the
 * FENCED blob write that every credential save-back goes through. It does not own what is inside
 * a blob (a tar.gz of `.codex/auth.json` and `.codex/config.toml`, built by the seed engine), nor
 * leases (see `Lease`), nor where the data lives: the backends in `store/` provide this service
 * (`Store.layerMemory`, `Store.layerEmbedded`, `Store.layerMongo`).
 *
 * **Fencing.** Every seed has a `generation`, bumped by each blob write. A write names the
 * generation it is based on and, for a pooled seed, the lease grant it holds; the store swaps the
 * blob only if both still hold at the moment of the swap (one atomic conditional update), on the
 * store's clock. A stale writer gets {@link SeedWriteRejected} and nothing is overwritten — its
 * uploaded blob is discarded, the current blob stays.
 *
 * **Gotchas**
 *
 * - Blobs are encrypted with the seed scope of `BlobCrypto` on every path; `readBlob` yields
 *   plaintext, `create` / `writeBlob` take plaintext.
 * - A pooled seed (one with a `poolKey`) can only be written under a live lease grant, and no seed
 *   can be written without a grant while someone else holds a live lease on it.
 * - Deleting or purging a seed under a live lease is refused (`SeedInUse`) unless forced.
 * - Seeds written by reference (Python) workers have no `generation` field: it reads as 0. Those
 *   workers do not bump it, so fencing protects TypeScript writers from each other, not from them.
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Effect, Option, Stream } from "effect"
import type { BlobDecryptFailed } from "../persistence/StoreError.ts"
import type { BlobMissing, StoreUnavailable } from "../persistence/StoreError.ts"

/**
 * A seed's pool status. Absent in a stored document reads as `alive`; only `dead` is skipped by
 * `Lease.acquire`. `limited` is informational (e.g. a usage limit was hit).
 * @category models
 */
export type SeedStatus = "alive" | "dead" | "limited"

/**
 * The lease recorded on a seed: who holds it, under which grant epoch, until when (store clock).
 * @category models
 */
export interface SeedLease {
  readonly holder: string
  readonly epoch: number
  readonly expiresAt: Date
}

/**
 * A seed document (spec §1.2), decoded forward-compatibly.
 * @category models
 */
export interface SeedDoc {
  /** The 24-hex id (MongoDB ObjectId hex). */
  readonly seedId: string
  readonly createdAt: Date
  readonly updatedAt?: Date
  /** The blob holding the (possibly encrypted) tar.gz. */
  readonly blobId: string
  readonly manifestVersion: number
  /** Bumped by every blob write; the basis of fenced writes. 0 for a seed never rewritten. */
  readonly generation: number
  /** Absent: not in any pool (never acquired). */
  readonly poolKey?: string
  /** `alive`, `dead` or `limited` (any other stored string is passed through). */
  readonly status: string
  /** The current or last lease; check `expiresAt` against the store's clock before trusting it. */
  readonly lease?: SeedLease
  /** When the seed was last leased (store clock); drives round-robin. */
  readonly lastLeasedAt?: Date
  /** When the blob was last rewritten (a credential save-back or refresh). */
  readonly lastRefreshedAt?: Date
  readonly metadata: Readonly<Record<string, unknown>>
}

/**
 * A seed of a pool, as `listPool` reports it.
 * @category models
 */
export interface PoolEntry extends SeedDoc {
  /** Whether a lease is live at the store's clock now. */
  readonly leased: boolean
}

/**
 * What a blob write expects to still be true: the generation it read, and — when writing a
 * pooled or leased seed — the lease grant it holds (a `LeaseGrant` fits).
 * @category models
 */
export interface SeedFence {
  readonly generation: number
  readonly lease?: { readonly holder: string; readonly epoch: number } | undefined
}

/**
 * Input of {@link SeedStore} `create`.
 * @category models
 */
export interface NewSeed<E, R> {
  /** The plaintext tar.gz; encrypted by the store. */
  readonly blob: Stream.Stream<Uint8Array, E, R>
  /** Manifest version recorded on the document (codex: 1). */
  readonly manifestVersion?: number | undefined
  /** Attribution recorded in the blob's metadata (the capturing process). */
  readonly processId?: string | undefined
  /** Put the new seed straight into a pool. */
  readonly poolKey?: string | undefined
}

/**
 * A seed's blob, with the document it was read under (its `generation` is the fence for a
 * write based on these bytes).
 * @category models
 */
export interface SeedBlob {
  readonly seed: SeedDoc
  /** Plaintext bytes, streamed. */
  readonly bytes: Stream.Stream<Uint8Array, BlobMissing | BlobDecryptFailed | StoreUnavailable>
}

/**
 * No seed has this id (or the id is malformed).
 * @category errors
 */
export class UnknownSeed extends Schema.TaggedError<UnknownSeed>()("UnknownSeed", {
  seedId: Schema.String
}) {
  override get message(): string {
    return `unknown seed id ${JSON.stringify(this.seedId)}`
  }
}

/**
 * The seed is leased right now, so it was not deleted.
 * @category errors
 */
export class SeedInUse extends Schema.TaggedError<SeedInUse>()("SeedInUse", {
  seedId: Schema.String,
  holder: Schema.String,
  expiresAt: Schema.Date
}) {
  override get message(): string {
    return `seed ${this.seedId} is leased by ${this.holder} until ${this.expiresAt.toISOString()}`
  }
}

/**
 * Why a fenced blob write was refused.
 * @category models
 */
export const SeedWriteRejectedReason = Schema.Literals([
  "stale-generation",
  "lease-lost",
  "lease-expired",
  "lease-required",
  "leased-by-other",
  "conflict"
])
export type SeedWriteRejectedReason = typeof SeedWriteRejectedReason.Type

/**
 * A fenced blob write was refused; the stored blob is unchanged.
 * - `stale-generation`: the seed was rewritten since the writer read it.
 * - `lease-lost`: the writer's grant is no longer the seed's lease (released, taken, re-granted).
 * - `lease-expired`: the writer's grant is still recorded but expired on the store's clock.
 * - `lease-required`: the seed is pooled and the write named no grant.
 * - `leased-by-other`: the write named no grant while someone holds a live lease.
 * - `conflict`: the swap lost a race that left no other trace.
 * @category errors
 */
export class SeedWriteRejected extends Schema.TaggedError<SeedWriteRejected>()("SeedWriteRejected", {
  seedId: Schema.String,
  reason: SeedWriteRejectedReason,
  expectedGeneration: Schema.Number,
  actualGeneration: Schema.Number,
  epoch: Schema.optionalKey(Schema.Number)
}) {
  override get message(): string {
    const epoch = this.epoch === undefined ? "" : ` under lease epoch ${this.epoch}`
    return `write to seed ${this.seedId} (generation ${this.expectedGeneration}${epoch}) refused: ${this.reason}` +
      ` (stored generation ${this.actualGeneration})`
  }
}

/**
 * The seed store. Every method fails with `StoreUnavailable` when the backend does.
 * @category services
 * @since 0.1.0
 */
export class SeedStore extends Context.Service<SeedStore, {
  /**
   * False only for `Store.layerNone` (a worker without a store): nothing is kept, and a task that
   * needs a store (a seed, seed capture, resume) is refused before it starts.
   */
  readonly persistent: boolean
  /** Stores a new seed from a plaintext blob (capture); returns its document (generation 0). */
  readonly create: <E, R>(input: NewSeed<E, R>) => Effect.Effect<SeedDoc, StoreUnavailable | E, R>
  /** The seed with this id; none when absent or malformed. */
  readonly get: (seedId: string) => Effect.Effect<Option.Option<SeedDoc>, StoreUnavailable>
  /** All seeds (oldest first), or those of one pool. */
  readonly list: (options?: { readonly poolKey?: string | undefined }) => Effect.Effect<ReadonlyArray<SeedDoc>, StoreUnavailable>
  /** The seeds of a pool with whether each is leased now (store clock). */
  readonly listPool: (poolKey: string) => Effect.Effect<ReadonlyArray<PoolEntry>, StoreUnavailable>
  /**
   * Removes a seed's document and returns it (none when absent); its blob stays (reference
   * `delete`). Refused under a live lease unless `force`.
   */
  readonly delete: (
    seedId: string,
    options?: { readonly force?: boolean | undefined }
  ) => Effect.Effect<Option.Option<SeedDoc>, SeedInUse | StoreUnavailable>
  /** Removes a seed's document and blob; `UnknownSeed` when absent. Refused under a live lease unless `force`. */
  readonly purge: (
    seedId: string,
    options?: { readonly force?: boolean | undefined }
  ) => Effect.Effect<void, UnknownSeed | SeedInUse | StoreUnavailable>
  /** Puts a seed into a pool (`null`: takes it out, so it is never acquired). */
  readonly assignToPool: (seedId: string, poolKey: string | null) => Effect.Effect<void, UnknownSeed | StoreUnavailable>
  /** Stamps the pool status (`dead` seeds are never acquired; `alive` revives). */
  readonly setStatus: (seedId: string, status: SeedStatus) => Effect.Effect<void, UnknownSeed | StoreUnavailable>
  /** Merges top-level metadata keys (each replaced wholesale), e.g. `{ verify: {...} }`. */
  readonly declareMetadata: (
    seedId: string,
    entries: Readonly<Record<string, unknown>>
  ) => Effect.Effect<void, UnknownSeed | StoreUnavailable>
  /** Opens a seed's blob for reading (plaintext, streamed) with the document it belongs to. */
  readonly readBlob: (seedId: string) => Effect.Effect<SeedBlob, UnknownSeed | StoreUnavailable>
  /**
   * Replaces a seed's blob if `expected` still holds (see the module docs); bumps the generation
   * and returns the updated document. The replaced blob is deleted afterwards.
   */
  readonly writeBlob: <E, R>(
    seedId: string,
    expected: SeedFence,
    blob: Stream.Stream<Uint8Array, E, R>
  ) => Effect.Effect<SeedDoc, SeedWriteRejected | UnknownSeed | StoreUnavailable | E, R>
}>()("optio-codex/SeedStore") {}
