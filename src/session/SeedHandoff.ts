/**
 * SeedHandoff: the seed a session is running on now — which can change mid-task when the seed
 * hits its usage limit and the pool hands over another one. It owns the current grant and
 * watcher, quota recording on the current seed (only under its lease), the lease-loss signal that
 * follows hand-offs, and the hand-off steps: lease the next seed of the pool first (so a pool
 * with nothing left fails with `QuotaExhausted` while codex still runs), then — once the caller
 * has stopped codex — save the old seed's credentials back, release it and plant the new one.
 *
 * At teardown the newest rate-limit snapshot codex wrote into CODEX_HOME's rollouts since the
 * current seed was planted is recorded on it (TUI mode has no other report).
 *
 * The new seed's lease release and final save-back are registered on the session's scope like
 * the first seed's, so teardown treats it the same way. Only the new seed's `auth.json` counts:
 * the task's rendered config.toml is put back after planting (codex's configuration never comes
 * from a seed).
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option, Scope, Stream, SubscriptionRef } from "effect"
import { posix } from "node:path"
import type { TeardownLog } from "./Teardown.ts"
import type { SeedDoc } from "../seeds/SeedStore.ts"
import { Host } from "../host/Host.ts"
import type { LeaseGrant, LeaseLost } from "../lease/Lease.ts"
import { latestRolloutObservation, planOfAuthJson, recordQuota } from "../quota/QuotaRecorder.ts"
import type { QuotaStores } from "../quota/QuotaRecorder.ts"
import { describeHeadroom, exhaustionOf } from "../quota/SeedQuota.ts"
import type { PoolHeadroom, QuotaExhausted, QuotaObservation } from "../quota/SeedQuota.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"
import { plantTaskSeed, SeedUnavailable } from "./SessionSeed.ts"
import type { ConsumedSeed } from "./SessionSeed.ts"

interface Current {
  readonly grant: LeaseGrant
  readonly consumed: ConsumedSeed
  /** When it was planted (worker clock): older rollout lines belong to another seed. */
  readonly plantedAtMs: number
}

/**
 * The session's seed slot (see {@link makeSeedSlot}): `poolKey` (none when the task names its
 * seed: no hand-off), `seedId`, `plantedAtMs`, `lost` (the current seed's lease loss, following
 * hand-offs), `record` (a quota observation on the current seed, under its lease), `leaseNext`
 * (hand-off step 1: `QuotaExhausted` when every other seed is exhausted, `SeedUnavailable` when
 * some are merely leased) and `switchTo` (step 2, after codex has stopped).
 * @category models
 * @since 0.1.0
 */
export type SeedSlot = Effect.Success<ReturnType<typeof makeSeedSlot>>

/**
 * Builds the slot around the seed the session leased and planted; records the plan named in
 * its credentials at once.
 * @category constructors
 * @since 0.1.0
 */
export const makeSeedSlot = (options: {
  readonly poolKey: string | undefined
  readonly grant: LeaseGrant
  readonly consumed: ConsumedSeed
  readonly stores: QuotaStores
  readonly paths: TaskPaths
  readonly teardown: TeardownLog
  readonly keepTaskdir: Effect.Effect<void>
}) =>
  Effect.gen(function*() {
    const host = yield* Host
    const task = yield* TaskContext
    const sessionScope = yield* Effect.scope
    const { stores, paths } = options
    const current = yield* SubscriptionRef.make<Current>({
      grant: options.grant,
      consumed: options.consumed,
      plantedAtMs: yield* Clock.currentTimeMillis
    })
    const authPath = posix.join(paths.codexHome, "auth.json")
    const configPath = posix.join(paths.codexHome, "config.toml")

    const record = (observation: QuotaObservation) =>
      SubscriptionRef.get(current).pipe(Effect.flatMap(({ grant }) => recordQuota(stores, grant, observation)), Effect.asVoid)
    const recordPlan = host.readFile(authPath).pipe(
      Effect.map(planOfAuthJson),
      Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (plan) => record({ plan, source: "credentials" }) })),
      Effect.catch((error) => Effect.logWarning(`plan of the planted seed not read: ${error.message}`))
    )
    yield* recordPlan
    // At teardown (codex stopped, the lease still held): what codex wrote into its rollouts since
    // the current seed was planted — the TUI's only report, and the last word in conversation mode.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const { plantedAtMs } = yield* SubscriptionRef.get(current)
        const seen = yield* latestRolloutObservation(paths.codexHome, plantedAtMs)
        if (Option.isSome(seen)) yield* record(seen.value)
      }).pipe(Effect.catch((error) => Effect.logWarning(`quota not read from the rollouts: ${error.message}`)))
    )

    const lost: Effect.Effect<never, LeaseLost> = Effect.gen(function*() {
      while (true) {
        const now = yield* SubscriptionRef.get(current)
        const swapped = SubscriptionRef.changes(current).pipe(
          Stream.filter((next) => next !== now),
          Stream.runHead,
          Effect.asVoid
        )
        yield* Effect.raceFirst(now.consumed.lost, swapped)
      }
    })

    // The current seed is leased by this task, but for the hand-off it counts as what it is: exhausted.
    const leaseNext = (ownUntilMs: number) => Effect.gen(function*() {
      const poolKey = options.poolKey
      if (poolKey === undefined) {
        return yield* new SeedUnavailable({ source: "seed", detail: "the task names its seed: there is no pool to hand off to" })
      }
      const { grant } = yield* SubscriptionRef.get(current)
      const next = yield* Effect.acquireRelease(
        stores.leases.acquire(poolKey, grant.holder).pipe(
          Effect.mapError((error) => new SeedUnavailable({ source: `pool ${poolKey}`, detail: error.message })),
          Effect.flatMap(Option.match({
            onSome: (grant): Effect.Effect<LeaseGrant, QuotaExhausted | SeedUnavailable> => Effect.succeed(grant),
            onNone: (): Effect.Effect<LeaseGrant, QuotaExhausted | SeedUnavailable> =>
              stores.leases.headroom(poolKey).pipe(
                Effect.mapError((error) => new SeedUnavailable({ source: `pool ${poolKey}`, detail: error.message })),
                Effect.flatMap((seen) =>
                  stores.seeds.get(grant.seedId).pipe(
                    Effect.map(Option.match({ onNone: () => seen, onSome: (own) => ownExhausted(seen, own, ownUntilMs) })),
                    Effect.mapError((error) => new SeedUnavailable({ source: `pool ${poolKey}`, detail: error.message }))
                  )
                ),
                Effect.flatMap((headroom) =>
                  Option.match(exhaustionOf(headroom), {
                    onSome: (exhausted): Effect.Effect<never, QuotaExhausted | SeedUnavailable> => Effect.fail(exhausted),
                    onNone: () => Effect.fail(new SeedUnavailable({ source: `pool ${poolKey}`, detail: describeHeadroom(headroom) }))
                  })
                )
              )
          }))
        ),
        (held) =>
          stores.leases.release(held).pipe(
            Effect.catch((error) => Effect.logWarning(`releasing the lease on seed ${held.seedId} failed (its TTL will reclaim it): ${error.message}`))
          )
      ).pipe(Scope.provide(sessionScope))
      return next
    })

    const switchTo = (next: LeaseGrant) =>
      Effect.gen(function*() {
        const old = yield* SubscriptionRef.get(current)
        const saved = yield* old.consumed.watch.finalSaveBack
        if (saved.outcome === "saved") yield* task.reportProgress(null, `Saved the rotated credentials back to seed ${old.grant.seedId}`)
        yield* old.consumed.watch.release
        const rendered = yield* host.readFile(configPath)
        const consumed = yield* plantTaskSeed({ grant: next, services: { seeds: stores.seeds, leases: stores.leases } }, paths, {
          teardown: options.teardown,
          keepTaskdir: options.keepTaskdir
        }).pipe(Scope.provide(sessionScope))
        yield* host.writeFile(configPath, rendered, { mode: 0o600 })
        yield* SubscriptionRef.set(current, { grant: next, consumed, plantedAtMs: yield* Clock.currentTimeMillis })
        yield* recordPlan
        return next.seedId
      })

    return {
      poolKey: Option.fromNullishOr(options.poolKey),
      seedId: SubscriptionRef.get(current).pipe(Effect.map((c) => c.grant.seedId)),
      plantedAtMs: SubscriptionRef.get(current).pipe(Effect.map((c) => c.plantedAtMs)),
      lost,
      record,
      leaseNext,
      switchTo
    }
  })

/** The pool as the hand-off sees it: this task's own seed moved from "leased" to "exhausted". */
const ownExhausted = (headroom: PoolHeadroom, own: SeedDoc, untilMs: number): PoolHeadroom =>
  headroom.leased === 0 ? headroom : {
    ...headroom,
    leased: headroom.leased - 1,
    exhausted: [...headroom.exhausted, { seed: own, untilMs }].sort((a, b) => a.untilMs - b.untilMs)
  }
