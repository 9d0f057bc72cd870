/**
 * Hooks: the caller-supplied functions of a codex task, kept apart from the data config.
 *
 * `CodexTaskConfig` is a decoded, frozen value that can be logged, stored and compared;
 * functions cannot, so they travel beside it as {@link CodexTaskHooks}. This module owns
 * only the types. When each hook runs is the session's business, and `HookContext` is a
 * placeholder that the session will extend with host primitives.
 *
 * @since 0.1.0
 */
import type { Effect, Option } from "effect"
import type { LeaseGrant } from "../lease/Lease.ts"

/**
 * What a hook can see of the running task. Minimal for now; the session extends it.
 * @category models
 * @since 0.1.0
 */
export interface HookContext {
  /** Absolute path of the task's workdir on the host (codex's cwd). */
  readonly workdir: string
}

/**
 * Optional callbacks of a codex task. Failures are reported by the session, not swallowed.
 * @category models
 * @since 0.1.0
 */
export interface CodexTaskHooks {
  /** Runs once the workdir is prepared, before codex starts. */
  readonly beforeExecute?: (ctx: HookContext) => Effect.Effect<void, unknown>
  /** Runs after the session body ends, whatever the outcome. */
  readonly afterExecute?: (ctx: HookContext) => Effect.Effect<void, unknown>
  /** Sees each deliverable the agent publishes; `Some(reply)` is sent back to the agent. */
  readonly onDeliverable?: (ctx: HookContext, path: string, text: string) => Effect.Effect<Option.Option<string>, unknown>
  /**
   * Picks the seed for the task, given the lease holder id; used instead of `seedId` / `seedPool`.
   * Return a seed id (the session then leases that seed itself) or a grant the provider already
   * took for `holder` (e.g. from `Lease.acquire` on its own pool), which the session adopts.
   */
  readonly seedProvider?: (holder: string) => Effect.Effect<string | LeaseGrant, unknown>
  /**
   * Told about a captured seed; setting it turns on seed capture at teardown (a setup task). Not
   * allowed together with a seed to consume: two seeds would share one token lineage.
   */
  readonly onSeedSaved?: (seedId: string, info: Option.Option<string>) => Effect.Effect<void, unknown>
}
