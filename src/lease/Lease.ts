/**
 * Lease: exclusive, expiring use of a pooled seed (spec §5). It owns acquisition (the free live
 * seed with the most quota headroom, exhausted seeds skipped until their reset, round-robin by last
 * lease time among equals — see `quota/SeedQuota.ts`), renewal and release, all on the STORE's clock (MongoDB
 * server time, SQLite's clock inside the transaction, the Effect `Clock` in memory), so workers
 * with skewed clocks agree on who holds what. It does not own the renewal cadence or what happens
 * on loss (the session's credential watcher), nor the seeds themselves (`SeedStore`).
 *
 * **Epochs.** Every grant carries an epoch, strictly increasing per seed. A grant is valid only
 * while the seed's recorded lease has the same holder and epoch and has not expired; renewals and
 * fenced seed writes check exactly that, atomically. So a holder whose lease expired, was taken or
 * was granted again — even to the same holder string (a zombie run of the same process) — can
 * neither renew nor write the seed again.
 *
 * **Gotchas**
 *
 * - `acquire` does not wait: an exhausted pool yields none; `headroom` says why. Waiting is the
 *   caller's policy.
 * - The ranking reads the pool, then leases the best candidate with one conditional update (free,
 *   still in the pool, not dead); a candidate taken meanwhile is skipped for the next. Quota is a
 *   hint read at that moment, the lease itself stays atomic.
 * - An expired grant is not revived by `renew` (it fails with `LeaseLost` `expired`); acquire again.
 * - Stored documents keep the reference layout (`lease: {holder, expiresAt}`, `lastLeasedAt`) plus
 *   a top-level `leaseEpoch` counter, so Python workers can share a pool.
 *
 * @since 0.1.0
 */
import { Context, Duration, Schema } from "effect"
import type { Effect, Option, Scope } from "effect"
import type { StoreUnavailable } from "../persistence/StoreError.ts"
import type { PoolHeadroom } from "../quota/SeedQuota.ts"

/**
 * The reference's fixed lease time-to-live (spec §5.1).
 * @category constants
 */
export const LEASE_TTL: Duration.Duration = Duration.seconds(60)

/**
 * A granted lease. Pass it to `renew`, `release` and as the fence of seed writes.
 * @category models
 */
export interface LeaseGrant {
  readonly seedId: string
  readonly holder: string
  /** Strictly increasing per seed across all grants. */
  readonly epoch: number
  /** Expiry on the store's clock. */
  readonly expiresAt: Date
}

/**
 * Options of `acquire` and `renew`.
 * @category models
 */
export interface LeaseOptions {
  /** Time to live of the grant or renewal; default {@link LEASE_TTL}. */
  readonly ttl?: Duration.Input | undefined
}

/**
 * The lease is no longer held; `reason` says how it was lost.
 * - `taken`: someone acquired the seed since (a later epoch).
 * - `released`: the lease was released (or cleared by another worker).
 * - `expired`: the lease ran out on the store's clock before this renewal.
 * - `seed-missing`: the seed was deleted.
 * @category errors
 */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  seedId: Schema.String,
  holder: Schema.String,
  epoch: Schema.Number,
  reason: Schema.Literals(["taken", "released", "expired", "seed-missing"])
}) {
  override get message(): string {
    return `lease on seed ${this.seedId} (holder ${this.holder}, epoch ${this.epoch}) lost: ${this.reason}`
  }
}

/**
 * Leases on pooled seeds. Every method fails with `StoreUnavailable` when the backend does.
 * @category services
 * @since 0.1.0
 */
export class Lease extends Context.Service<Lease, {
  /**
   * False only for `Store.layerNone` (a worker without a store): nothing is kept, and a task that
   * needs a store (a seed, seed capture, resume) is refused before it starts.
   */
  readonly persistent: boolean
  /**
   * Leases the free seed of `poolKey` that is not dead with the most quota headroom (seeds with an
   * exhausted window are skipped until its reset; equals round-robin by last lease); none when
   * every seed is leased, dead, exhausted, or the pool is empty.
   */
  readonly acquire: (
    poolKey: string,
    holder: string,
    options?: LeaseOptions
  ) => Effect.Effect<Option.Option<LeaseGrant>, StoreUnavailable>
  /**
   * Leases one specific seed by id — pooled or not, dead or not — with the same epoch and expiry
   * rules as `acquire`; none when the seed is unknown or someone holds a live lease on it.
   */
  readonly acquireSeed: (
    seedId: string,
    holder: string,
    options?: LeaseOptions
  ) => Effect.Effect<Option.Option<LeaseGrant>, StoreUnavailable>
  /** `acquire`, released when the scope closes. */
  readonly acquireScoped: (
    poolKey: string,
    holder: string,
    options?: LeaseOptions
  ) => Effect.Effect<Option.Option<LeaseGrant>, StoreUnavailable, Scope.Scope>
  /** Extends a live grant from now (store clock); the returned grant has the new expiry. */
  readonly renew: (grant: LeaseGrant, options?: LeaseOptions) => Effect.Effect<LeaseGrant, LeaseLost | StoreUnavailable>
  /** How the pool stands now (store clock): the lease order, exhausted seeds and until when. */
  readonly headroom: (poolKey: string) => Effect.Effect<PoolHeadroom, StoreUnavailable>
  /** Clears the lease if it is still this grant's; false when it no longer was. */
  readonly release: (grant: LeaseGrant) => Effect.Effect<boolean, StoreUnavailable>
}>()("optio-codex/Lease") {}
