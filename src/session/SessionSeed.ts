/**
 * SessionSeed: how a session uses stored codex identities. Consume: lease the seed (by id, from a
 * pool, or through the caller's provider), plant its auth.json and config.toml into the fresh
 * HOME, and start the credential watcher at once (so the lease is renewed from the moment it is
 * held); at teardown, after codex has stopped, save the credentials back one last time — fenced,
 * only while the lease is held — and only then release the lease. Capture (a setup task with
 * `onSeedSaved`): store the task's auth.json as a new seed once codex has stopped.
 *
 * Fixes over the reference: the lease holder is unique per run (`<processId>#<nonce>`, P9); a
 * plain seed id is leased too, so two tasks never share one token lineage (P10); the watcher runs
 * in both modes (P1); a provider may return a bare id (P8); after a lost lease nothing is written
 * (P4); a save-back that keeps failing fails the session loudly and keeps the task dir (with its
 * auth.json) instead of deleting the only copy of a rotated token.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Option, Schema } from "effect"
import type { Scope } from "effect"
import { randomBytes } from "node:crypto"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import { ConfigError } from "../config/ConfigError.ts"
import type { CodexTaskHooks } from "./Hooks.ts"
import { CredWatcher } from "../credentials/CredWatcher.ts"
import type { CredWatch } from "../credentials/CredWatcher.ts"
import { captureSeed, plantSeed } from "../credentials/SeedEngine.ts"
import { Host } from "../host/Host.ts"
import { Lease } from "../lease/Lease.ts"
import type { LeaseGrant, LeaseLost } from "../lease/Lease.ts"
import { describeHeadroom, exhaustionOf } from "../quota/SeedQuota.ts"
import { SeedStore } from "../seeds/SeedStore.ts"
import type { SeedDoc } from "../seeds/SeedStore.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"
import { SnapshotStore } from "../snapshots/SnapshotStore.ts"
import { PersistenceNotConfigured } from "./SessionErrors.ts"
import type { TeardownLog } from "./Teardown.ts"

/**
 * No seed could be leased for the task: the named seed is in use by another task, the pool has
 * no free live seed, or the provider failed.
 * @category errors
 * @since 0.1.0
 */
export class SeedUnavailable extends Schema.TaggedError<SeedUnavailable>()("SeedUnavailable", {
  /** `seed <id>`, `pool <key>` or `seedProvider`. */
  source: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `no seed available from ${this.source}: ${this.detail}`
  }
}

export type SeedSource =
  | { readonly _tag: "Id"; readonly seedId: string }
  | { readonly _tag: "Pool"; readonly poolKey: string }
  | { readonly _tag: "Provider"; readonly provide: NonNullable<CodexTaskHooks["seedProvider"]> }

/** Where a task's seed comes from; undefined when the task uses none. @category constructors */
export const seedSource = (config: CodexTaskConfig, hooks: CodexTaskHooks): SeedSource | undefined =>
  hooks.seedProvider !== undefined
    ? { _tag: "Provider", provide: hooks.seedProvider }
    : config.seedId !== undefined
    ? { _tag: "Id", seedId: config.seedId }
    : config.seedPool !== undefined
    ? { _tag: "Pool", poolKey: config.seedPool }
    : undefined

/**
 * Refuses capture and consume in one task (the captured seed and the consumed one would share a
 * token lineage, P6) and a provider beside `seedId` / `seedPool`. Runs before anything starts.
 * @category validation
 */
export const checkSeedHooks = (config: CodexTaskConfig, hooks: CodexTaskHooks): Effect.Effect<void, ConfigError> => {
  const consumes = hooks.seedProvider !== undefined || config.seedId !== undefined || config.seedPool !== undefined
  if (hooks.onSeedSaved !== undefined && consumes) {
    return Effect.fail(
      new ConfigError({
        field: "hooks.onSeedSaved",
        message: "hooks.onSeedSaved (capture a new seed) cannot be combined with a seed to consume " +
          "(seedId, seedPool or hooks.seedProvider): the two seeds would share one single-use token lineage"
      })
    )
  }
  if (hooks.seedProvider !== undefined && (config.seedId !== undefined || config.seedPool !== undefined)) {
    return Effect.fail(
      new ConfigError({
        field: "hooks.seedProvider",
        message: "hooks.seedProvider replaces seedId and seedPool: set only one of them"
      })
    )
  }
  return Effect.void
}

/** The lease holder of one run: the process id plus a nonce, so a zombie earlier run never matches (P9). */
const runHolder = (processId: string): string => `${processId}#${randomBytes(6).toString("hex")}`

// The reference renews and releases by holder = process id: under `compat: "python-0.1"` a run
// leases as the process id, so Python workers on the same store see (and honour) its lease.
const holderFor = (config: CodexTaskConfig, processId: string): string =>
  config.compat === "python-0.1" ? processId : runHolder(processId)

/**
 * Refuses, before anything starts, a task that needs a store on a worker that keeps nothing
 * (`Store.layerNone`): consuming or capturing a seed, or resuming.
 * @category validation
 */
export const checkPersistence = (config: CodexTaskConfig, hooks: CodexTaskHooks) =>
  Effect.gen(function*() {
    const seeds = yield* SeedStore
    const snapshots = yield* SnapshotStore
    const task = yield* TaskContext
    if (seedSource(config, hooks) !== undefined && !seeds.persistent) {
      return yield* new PersistenceNotConfigured({ feature: "seeds", service: SeedStore.key })
    }
    if (hooks.onSeedSaved !== undefined && !seeds.persistent) {
      return yield* new PersistenceNotConfigured({ feature: "seed capture", service: SeedStore.key })
    }
    if (task.resume && config.supportsResume && !snapshots.persistent) {
      return yield* new PersistenceNotConfigured({ feature: "resume", service: SnapshotStore.key })
    }
  })

/**
 * The stores a seeded session uses.
 * @category models
 */
interface SeedServices {
  readonly seeds: Context.Service.Shape<typeof SeedStore>
  readonly leases: Context.Service.Shape<typeof Lease>
}

// A lease this task already holds — taken by a provider written for the Python reference (holder =
// the process id), or by one that used the holder it was handed — is adopted, not refused as busy:
// renewing it with its own holder and epoch proves it is still live and fences it from here on.
const adoptHeldLease = (seed: SeedDoc, owners: ReadonlyArray<string>, services: SeedServices) =>
  Effect.gen(function*() {
    const lease = seed.lease
    if (lease === undefined || !owners.includes(lease.holder)) return Option.none<LeaseGrant>()
    const held: LeaseGrant = { seedId: seed.seedId, holder: lease.holder, epoch: lease.epoch, expiresAt: lease.expiresAt }
    return yield* services.leases.renew(held).pipe(
      Effect.map(Option.some),
      Effect.catchTag("LeaseLost", () => Effect.succeed(Option.none<LeaseGrant>()))
    )
  })

/** How often a waiting pool lease looks again (sooner when a reset comes first). */
const POOL_POLL_MS = 5_000

/**
 * Leases from a pool, waiting up to `waitSeconds` when nothing is leasable: the progress says why
 * and until when (once per change of reason), and it looks again every few seconds or at the
 * earliest reset. Then: `QuotaExhausted` when every seed is exhausted, else `SeedUnavailable`.
 */
const leaseFromPool = (poolKey: string, holder: string, services: SeedServices, waitSeconds: number) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    const deadline = (yield* Clock.currentTimeMillis) + waitSeconds * 1000
    let said = ""
    while (true) {
      const grant = yield* services.leases.acquire(poolKey, holder)
      if (Option.isSome(grant)) return grant.value
      const headroom = yield* services.leases.headroom(poolKey)
      const why = describeHeadroom(headroom)
      const now = yield* Clock.currentTimeMillis
      if (now >= deadline) {
        yield* task.reportProgress(null, `No seed leased: ${why}`)
        const exhausted = exhaustionOf(headroom)
        if (Option.isSome(exhausted)) return yield* exhausted.value
        return yield* new SeedUnavailable({
          source: `pool ${poolKey}`,
          detail: headroom.leased + headroom.exhausted.length > 0 ? why : "every live seed of the pool is leased (or the pool is empty)"
        })
      }
      if (why !== said) {
        yield* task.reportProgress(null, `Waiting for a seed until ${new Date(deadline).toISOString().slice(11, 19)} UTC: ${why}`)
        said = why
      }
      const reset = headroom.exhausted[0]?.untilMs ?? Infinity
      yield* Effect.sleep(Duration.millis(Math.max(1, Math.min(deadline - now, POOL_POLL_MS, reset - now))))
    }
  })

const leaseSeed = (source: SeedSource, holder: string, processId: string, services: SeedServices, waitSeconds: number) =>
  Effect.gen(function*() {
    const byId = (seedId: string) =>
      services.leases.acquireSeed(seedId, holder).pipe(
        Effect.flatMap(Option.match({
          onNone: () =>
            services.seeds.get(seedId).pipe(Effect.flatMap(Option.match({
              onNone: () => Effect.fail(new SeedUnavailable({ source: `seed ${seedId}`, detail: "no such seed" })),
              onSome: (seed) =>
                adoptHeldLease(seed, [holder, processId], services).pipe(Effect.flatMap(Option.match({
                  onSome: Effect.succeed,
                  onNone: () =>
                    Effect.fail(
                      new SeedUnavailable({
                        source: `seed ${seedId}`,
                        detail: seed.lease === undefined
                          ? "it could not be leased"
                          : `it is leased by ${seed.lease.holder} until ${seed.lease.expiresAt.toISOString()}`
                      })
                    )
                })))
            })))
          ,
          onSome: Effect.succeed
        }))
      )
    switch (source._tag) {
      case "Id":
        return yield* byId(source.seedId)
      case "Pool":
        return yield* leaseFromPool(source.poolKey, holder, services, waitSeconds)
      case "Provider": {
        const chosen = yield* source.provide(holder).pipe(
          Effect.mapError((cause) => new SeedUnavailable({ source: "seedProvider", detail: cause instanceof Error ? cause.message : String(cause) }))
        )
        if (typeof chosen === "string") return yield* byId(chosen)
        if (chosen.holder !== holder && chosen.holder !== processId) {
          return yield* new SeedUnavailable({
            source: "seedProvider",
            detail: `the provider returned a lease held by ${JSON.stringify(chosen.holder)}, not by this run (${JSON.stringify(holder)})`
          })
        }
        return chosen
      }
    }
  })

/**
 * What consuming a seed set up: the watcher whose `lost` the session races its body against.
 * @category models
 */
export interface ConsumedSeed {
  readonly seedId: string
  readonly watch: CredWatch
  readonly lost: Effect.Effect<never, LeaseLost>
}

/**
 * Step 1 of consuming: leases the task's seed (none when the task uses no seed). The lease is
 * released when the scope closes — registered now, so it runs after every later finalizer (the
 * final save-back, seed capture and the snapshot).
 * @category constructors
 */
export const leaseTaskSeed = (config: CodexTaskConfig, hooks: CodexTaskHooks) =>
  Effect.gen(function*() {
    const source = seedSource(config, hooks)
    if (source === undefined) return Option.none<{ readonly grant: LeaseGrant; readonly services: SeedServices }>()
    const services: SeedServices = { seeds: yield* SeedStore, leases: yield* Lease }
    const task = yield* TaskContext
    const holder = holderFor(config, task.processId)
    const grant = yield* Effect.acquireRelease(
      leaseSeed(source, holder, task.processId, services, config.seedPoolWaitSeconds ?? 0),
      (held) =>
        services.leases.release(held).pipe(
          Effect.catch((error) => Effect.logWarning(`releasing the lease on seed ${held.seedId} failed (its TTL will reclaim it): ${error.message}`))
        )
    )
    yield* task.reportProgress(null, `Leased seed ${grant.seedId}`)
    return Option.some({ grant, services })
  })

/**
 * Step 2 of consuming: plants the leased seed into the task's CODEX_HOME and starts the watcher.
 * Only the credentials count: config.toml is rendered afterwards from the task's config.
 * Registers the final save-back (runs once codex has stopped, before the lease is released).
 * @category constructors
 */
export const plantTaskSeed = (
  leased: { readonly grant: LeaseGrant; readonly services: SeedServices },
  paths: TaskPaths,
  options: { readonly teardown: TeardownLog; readonly keepTaskdir: Effect.Effect<void> }
) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    const watcher = yield* CredWatcher
    const { grant } = leased
    // The seed's config.toml lands too, but the session renders its own over it (never merged).
    const planted = yield* plantSeed(grant.seedId, paths.codexHome)
    const watch = yield* watcher.watch({
      seed: planted.seed,
      lease: Option.some(grant),
      authPath: `${paths.codexHome}/auth.json`,
      baseline: planted.baseline
    })
    // Registered after the lease, so it runs before the release; after codex stops (codex starts later).
    yield* Effect.addFinalizer(() =>
      options.teardown.step(
        "credential save-back",
        watch.finalSaveBack.pipe(
          Effect.tap((saved) =>
            saved.outcome === "saved"
              ? task.reportProgress(null, `Saved the rotated credentials back to seed ${grant.seedId}`)
              : saved.outcome === "skipped-lease-lost"
              ? task.reportProgress(null, `The lease on seed ${grant.seedId} was lost: credentials not saved back`)
              : Effect.void
          ),
          // The rotated token exists only in this task's auth.json now: keep the task dir.
          Effect.tapError(() => options.keepTaskdir)
        )
      )
    )
    yield* task.reportProgress(null, `Planted seed ${grant.seedId}`)
    return { seedId: grant.seedId, watch, lost: watch.lost }
  })

/**
 * Registers seed capture for a setup task (`onSeedSaved`): once codex has stopped, a usable
 * auth.json becomes a new seed and the hook is told its id. Skipped when codex never launched.
 * @category constructors
 */
export const registerSeedCapture = (
  hooks: CodexTaskHooks,
  paths: TaskPaths,
  options: { readonly launched: Effect.Effect<boolean>; readonly teardown: TeardownLog; readonly poolKey?: string | undefined }
): Effect.Effect<void, never, Scope.Scope | Host | SeedStore | TaskContext> =>
  Effect.gen(function*() {
    const onSeedSaved = hooks.onSeedSaved
    if (onSeedSaved === undefined) return
    const task = yield* TaskContext
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        if (!(yield* options.launched)) return
        yield* options.teardown.step(
          "seed capture",
          Effect.gen(function*() {
            const captured = yield* captureSeed({
              codexHome: paths.codexHome,
              processId: task.processId,
              ...(options.poolKey === undefined ? {} : { poolKey: options.poolKey })
            })
            if (Option.isNone(captured)) {
              yield* task.reportProgress(null, "No seed captured: codex has no usable login (auth.json)")
              return
            }
            const seedId = captured.value.seedId
            yield* task.reportProgress(null, `Captured seed ${seedId}`)
            // P15: the seed exists whatever the hook does; say so when it fails.
            yield* onSeedSaved(seedId, Option.none()).pipe(
              Effect.mapError((cause) =>
                new Error(`seed ${seedId} was stored, but onSeedSaved failed: ${cause instanceof Error ? cause.message : String(cause)}`)
              )
            )
          })
        )
      })
    )
  })
