/**
 * CredWatcher: keeps a running task's codex credentials and its seed in step (spec §6). While a
 * session runs, it polls `auth.json` and saves every rotation back into the seed (fenced by the
 * seed generation and the lease grant), and it renews the lease on its own cadence. At teardown
 * the session calls `finalSaveBack` (after codex has stopped) and then `release`. It does not own
 * when the session starts or stops, nor what happens to the session on a lost lease — it only
 * reports the loss through `lost`.
 *
 * Fixes over the reference: both fibers start at once in the caller's scope, so the lease is
 * renewed from the moment it is watched (P7); a failing tick (read error, store blip) is logged and
 * retried on the next tick, never fatal (P2, P3); renewal never waits behind a slow save; after the
 * lease is lost nothing is written, not even by the final save-back (P4); the final save-back
 * retries and then fails loudly instead of being logged and forgotten.
 *
 * **Gotchas**
 *
 * - Codex replaces `auth.json` by renaming a new file over it, so the path is polled (never an
 *   inode). A torn or half-written file is simply not usable yet and is picked up next tick.
 * - Without a lease (`lease: none`) `lost` never completes.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Duration, Effect, Fiber, Layer, Option, Ref, Schedule, Schema, Semaphore } from "effect"
import type { Scope } from "effect"
import type { Host } from "../host/Host.ts"
import { Lease, LeaseLost } from "../lease/Lease.ts"
import type { LeaseGrant } from "../lease/Lease.ts"
import type { SeedDoc, SeedStore, SeedWriteRejected } from "../seeds/SeedStore.ts"
import { authShape, parseAuthJson } from "./AuthJson.ts"
import { readCredentials, saveCredentials } from "./SeedEngine.ts"
import { HANDLE_PREFIX } from "./TokenHandle.ts"

/**
 * What to watch: the planted seed, the held lease and the live `auth.json`.
 * @category models
 * @since 0.1.0
 */
export interface CredWatchSpec {
  /** The doc the planted blob was read under (its generation is the first fence). */
  readonly seed: SeedDoc
  /** Held grant, or none. */
  readonly lease: Option.Option<LeaseGrant>
  /** `<codexHome>/auth.json` on the Host in context. */
  readonly authPath: string
  /** Fingerprint of the planted auth.json. */
  readonly baseline: Option.Option<string>
}

/**
 * The outcome of the final save-back.
 * @category models
 * @since 0.1.0
 */
export type FinalSaveBack = {
  readonly outcome: "saved" | "unchanged" | "skipped-lease-lost"
  /** The seed generation the watcher last knew (after the save, when one happened). */
  readonly generation: number
}

/**
 * The final save-back kept failing; the rotated credentials exist only in `authPath` now.
 * @category errors
 * @since 0.1.0
 */
export class CredentialSaveBackFailed extends Schema.TaggedError<CredentialSaveBackFailed>()("CredentialSaveBackFailed", {
  seedId: Schema.String,
  authPath: Schema.String,
  attempts: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `saving ${this.authPath} back into seed ${this.seedId} failed after ${this.attempts} attempt(s): ${this.reason}` +
      ` — the only current copy of the credentials is that file`
  }
}

/**
 * A running watch.
 * @category models
 * @since 0.1.0
 */
export interface CredWatch {
  /** Fails with LeaseLost once the lease is lost (never succeeds). The session races its body with it. */
  readonly lost: Effect.Effect<never, LeaseLost>
  /**
   * Stops polling and renewing, then — only while the lease is still held — saves auth.json back
   * once more if it changed since the last save; retries with backoff; then fails loudly with
   * {@link CredentialSaveBackFailed}. When the lease was lost: no write at all, succeeds with
   * outcome `skipped-lease-lost`. Idempotent.
   */
  readonly finalSaveBack: Effect.Effect<FinalSaveBack, CredentialSaveBackFailed>
  /** Releases the lease if still held (after the final save-back). Never fails (logs). */
  readonly release: Effect.Effect<void>
  /** Generations saved so far, for tests/progress. */
  readonly saves: Effect.Effect<number>
}

/**
 * Cadences and retry policy of the watcher.
 * @category models
 * @since 0.1.0
 */
export interface CredWatcherSettings {
  /** How often auth.json is read. Default 5 seconds. */
  readonly pollInterval?: Duration.Input | undefined
  /** How often the lease is renewed. Default 10 seconds. */
  readonly renewInterval?: Duration.Input | undefined
  /** TTL asked for on each renewal. Default 60 seconds. */
  readonly leaseTtl?: Duration.Input | undefined
  /** Attempts of the final save-back. Default 5. */
  readonly saveBackAttempts?: number | undefined
  /** First delay between final save-back attempts, doubled each time. Default 200 millis. */
  readonly saveBackBackoff?: Duration.Input | undefined
}

interface WatchState {
  readonly generation: number
  readonly baseline: Option.Option<string>
  readonly grant: Option.Option<LeaseGrant>
  readonly lost: Option.Option<LeaseLost>
  readonly saves: number
}

const short = (fingerprint: string) => fingerprint.slice(0, 12)

const holdsBrokerHandle = (bytes: Uint8Array): boolean =>
  Option.match(Option.map(parseAuthJson(bytes), authShape), {
    onNone: () => false,
    onSome: (shape) => shape._tag === "ChatGpt" && Option.exists(shape.refreshToken, (token) => token.startsWith(HANDLE_PREFIX))
  })

const make = Effect.fnUntraced(function*(settings: CredWatcherSettings) {
  // Captured when the layer is built: `watch` needs nothing but the Scope the watch lives in.
  const context = yield* Effect.context<Host | SeedStore | Lease>()
  const leases = yield* Lease
  const pollInterval = Duration.fromInputUnsafe(settings.pollInterval ?? "5 seconds")
  const renewInterval = Duration.fromInputUnsafe(settings.renewInterval ?? "10 seconds")
  const leaseTtl = settings.leaseTtl ?? "60 seconds"
  const attempts = Math.max(1, settings.saveBackAttempts ?? 5)
  const backoff = Duration.fromInputUnsafe(settings.saveBackBackoff ?? "200 millis")

  const watch = (spec: CredWatchSpec): Effect.Effect<CredWatch, never, Scope.Scope> =>
    Effect.gen(function*() {
      const seedId = spec.seed.seedId
      const state = yield* Ref.make<WatchState>({
        generation: spec.seed.generation,
        baseline: spec.baseline,
        grant: spec.lease,
        lost: Option.none(),
        saves: 0
      })
      const lostSignal = yield* Deferred.make<never, LeaseLost>()
      const saveLock = yield* Semaphore.make(1)
      const annotate = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.annotateLogs(effect, { seedId, authPath: spec.authPath })

      const markLost = (error: LeaseLost) =>
        Effect.gen(function*() {
          const first = yield* Ref.modify(state, (s) => [Option.isNone(s.lost), Option.isNone(s.lost) ? { ...s, lost: Option.some(error) } : s])
          if (!first) return
          yield* Effect.logWarning(`lease lost (${error.reason}); credentials will no longer be saved back`)
          yield* Deferred.fail(lostSignal, error)
        })

      /** A fenced write was refused because of the lease: find out precisely how it was lost. */
      const leaseRefused = (grant: LeaseGrant, rejected: SeedWriteRejected) =>
        rejected.reason === "lease-expired"
          ? markLost(new LeaseLost({ seedId, holder: grant.holder, epoch: grant.epoch, reason: "expired" }))
          : leases.renew(grant, { ttl: leaseTtl }).pipe(
            Effect.flatMap((renewed) => Ref.update(state, (s) => ({ ...s, grant: Option.some(renewed) }))),
            Effect.catchTag("LeaseLost", markLost),
            Effect.catchTag("StoreUnavailable", () =>
              markLost(new LeaseLost({ seedId, holder: grant.holder, epoch: grant.epoch, reason: "taken" })))
          )

      type SaveResult =
        | { readonly _tag: "Saved"; readonly generation: number }
        | { readonly _tag: "Unchanged"; readonly generation: number }
        | { readonly _tag: "LeaseLost"; readonly generation: number }

      /**
       * One save-back step, whole or not at all (uninterruptible, under the lock): reads auth.json,
       * writes it fenced when it changed, and records the new generation and baseline.
       */
      const saveOnce = saveLock.withPermits(1)(Effect.uninterruptible(Effect.gen(function*() {
        const before = yield* Ref.get(state)
        if (Option.isSome(before.lost)) return { _tag: "LeaseLost", generation: before.generation } as SaveResult
        const read = yield* readCredentials(spec.authPath)
        if (Option.isNone(read)) return { _tag: "Unchanged", generation: before.generation } as SaveResult
        const credentials = read.value
        if (Option.isSome(before.baseline) && before.baseline.value === credentials.fingerprint) {
          return { _tag: "Unchanged", generation: before.generation } as SaveResult
        }
        // A broker handle is never a refresh token: saving it would overwrite the seed's real one.
        if (holdsBrokerHandle(credentials.bytes)) {
          yield* Effect.logWarning("auth.json holds a token-broker handle, not a refresh token: not saved back")
          return { _tag: "Unchanged", generation: before.generation } as SaveResult
        }
        const fence = {
          generation: before.generation,
          lease: Option.getOrUndefined(Option.map(before.grant, (grant) => ({ holder: grant.holder, epoch: grant.epoch })))
        }
        const outcome = yield* saveCredentials({ seedId, fence, authBytes: credentials.bytes }).pipe(
          Effect.map(Option.some),
          Effect.catchTag("SeedWriteRejected", (rejected) =>
            Option.isSome(before.grant) && (rejected.reason === "lease-lost" || rejected.reason === "lease-expired")
              ? Effect.as(leaseRefused(before.grant.value, rejected), Option.none<SeedDoc>())
              : Effect.fail(rejected))
        )
        if (Option.isNone(outcome)) {
          const after = yield* Ref.get(state)
          return (Option.isSome(after.lost) ? { _tag: "LeaseLost", generation: after.generation } : { _tag: "Unchanged", generation: after.generation }) as SaveResult
        }
        const generation = outcome.value.generation
        yield* Ref.update(state, (s) => ({ ...s, generation, baseline: Option.some(credentials.fingerprint), saves: s.saves + 1 }))
        yield* Effect.logInfo(`auth.json saved back (fingerprint ${short(credentials.fingerprint)}, generation ${generation})`)
        return { _tag: "Saved", generation } as SaveResult
      })))

      const pollTick = saveOnce.pipe(
        Effect.asVoid,
        Effect.catchCause((cause) => Effect.logWarning("credential save-back failed; retrying next tick", cause))
      )

      const renewTick = Effect.gen(function*() {
        const current = yield* Ref.get(state)
        if (Option.isSome(current.lost) || Option.isNone(current.grant)) return
        const renewed = yield* leases.renew(current.grant.value, { ttl: leaseTtl }).pipe(
          Effect.map(Option.some),
          Effect.catchTag("LeaseLost", (error) => Effect.as(markLost(error), Option.none<LeaseGrant>()))
        )
        if (Option.isSome(renewed)) yield* Ref.update(state, (s) => ({ ...s, grant: renewed }))
      }).pipe(
        Effect.catchCause((cause) => Effect.logWarning("lease renewal failed; retrying next tick", cause))
      )

      const loop = (tick: Effect.Effect<void, never, Host | SeedStore | Lease>, every: Duration.Duration) =>
        tick.pipe(Effect.repeat(Schedule.spaced(every)), Effect.provide(context), annotate, Effect.forkScoped)

      // Renewal first: it must not wait for anything (P7).
      const renewFiber = Option.isSome(spec.lease) ? Option.some(yield* loop(renewTick, renewInterval)) : Option.none()
      const pollFiber = yield* loop(pollTick, pollInterval)

      const stop = Effect.gen(function*() {
        yield* Fiber.interrupt(pollFiber)
        if (Option.isSome(renewFiber)) yield* Fiber.interrupt(renewFiber.value)
      })

      const failed = (attempt: number, reason: string) =>
        new CredentialSaveBackFailed({ seedId, authPath: spec.authPath, attempts: attempt, reason })

      const finalOnce = Effect.gen(function*() {
        yield* stop
        const counter = yield* Ref.make(0)
        const result = yield* Ref.update(counter, (n) => n + 1).pipe(
          Effect.andThen(saveOnce),
          Effect.tapError((error) => Effect.logWarning(`final credential save-back attempt failed: ${error.message}`)),
          Effect.retry({
            schedule: Schedule.exponential(backoff),
            times: attempts - 1,
            // A refused write (stale generation, not entitled) will be refused again.
            while: (error) => error._tag !== "SeedWriteRejected"
          }),
          Effect.catch((error) => Effect.flatMap(Ref.get(counter), (n) => Effect.fail(failed(n, error.message)))),
          Effect.catchDefect((defect) =>
            Effect.flatMap(Ref.get(counter), (n) => Effect.fail(failed(n, defect instanceof Error ? defect.message : String(defect)))))
        )
        const outcome: FinalSaveBack = {
          outcome: result._tag === "Saved" ? "saved" : result._tag === "LeaseLost" ? "skipped-lease-lost" : "unchanged",
          generation: result.generation
        }
        if (outcome.outcome === "skipped-lease-lost") yield* Effect.logWarning("final credential save-back skipped: the lease was lost")
        return outcome
      }).pipe(Effect.provide(context), annotate, Effect.withSpan("CredWatcher.finalSaveBack", { attributes: { seedId } }))

      const finalSaveBack = yield* Effect.cached(finalOnce)

      const releaseOnce = Effect.gen(function*() {
        yield* stop
        const current = yield* Ref.get(state)
        if (Option.isSome(current.lost) || Option.isNone(current.grant)) return
        const released = yield* leases.release(current.grant.value).pipe(
          Effect.catch((error) => Effect.as(Effect.logWarning(`lease release failed (its TTL will reclaim it): ${error.message}`), false))
        )
        if (!released) yield* Effect.logWarning("the lease was no longer held at release")
      }).pipe(annotate, Effect.catchCause((cause) => Effect.logWarning("lease release failed", cause)))

      return {
        lost: Deferred.await(lostSignal),
        finalSaveBack,
        release: yield* Effect.cached(releaseOnce),
        saves: Effect.map(Ref.get(state), (s) => s.saves)
      }
    })

  return CredWatcher.of({ watch })
})

/**
 * The credential watcher service.
 * @category services
 * @since 0.1.0
 */
export class CredWatcher extends Context.Service<CredWatcher, {
  readonly watch: (spec: CredWatchSpec) => Effect.Effect<CredWatch, never, Scope.Scope>
}>()("optio-codex/CredWatcher") {
  /**
   * Defaults: poll every 5 s, renew every 10 s, lease TTL 60 s, final save-back 5 attempts from
   * 200 ms. Watches auth.json on the Host, and saves into the SeedStore, the layer was built with.
   */
  static readonly layer: Layer.Layer<CredWatcher, never, Host | SeedStore | Lease> = Layer.effect(CredWatcher, make({}))
  /** The watcher with other cadences (tests shrink them). */
  static readonly layerWith = (settings: CredWatcherSettings): Layer.Layer<CredWatcher, never, Host | SeedStore | Lease> =>
    Layer.effect(CredWatcher, make(settings))
}
