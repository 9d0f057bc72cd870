/**
 * Hooks: the caller-supplied functions of a codex task, kept apart from the data config, and the
 * {@link HookContext} they receive.
 *
 * `CodexTaskConfig` is a decoded, frozen value that can be logged, stored and compared;
 * functions cannot, so they travel beside it as {@link CodexTaskHooks}. When each hook runs is the
 * session's business; the context's operations run on the session's Host and report through its
 * TaskContext, so a hook needs nothing else from its caller.
 *
 * @since 0.1.0
 */
import type { Duration, Effect, Option } from "effect"
import type { HostError, RunResult } from "../host/Host.ts"
import type { LeaseGrant } from "../lease/Lease.ts"

/**
 * A download a hook asked for did not complete (the target is removed).
 * @category models
 * @since 0.1.0
 */
export interface DownloadFailure {
  readonly _tag: "DownloadFailed"
  readonly url: string
  readonly target: string
  readonly detail: string
}

/**
 * What a hook can see and do of the running task (the reference's `hook_ctx`).
 * @category models
 * @since 0.1.0
 */
export interface HookContext {
  /** The task's process id. */
  readonly processId: string
  /** Absolute path of the task's workdir on the host (codex's cwd). */
  readonly workdir: string
  /** A progress report on the task (either part may be null). */
  readonly reportProgress: (percent: number | null, message: string | null) => Effect.Effect<void>
  /**
   * Sends a `System: ` message to the agent. Never fails: false (and a progress line) when there is
   * no agent to talk to yet (before codex started) or the message could not be delivered.
   */
  readonly sendToAgent: (message: string) => Effect.Effect<boolean>
  /**
   * Runs a command on the host (argv, never shell text) in the workdir unless `cwd` says otherwise;
   * a non-zero exit is a result, not a failure.
   */
  readonly runOnHost: (
    argv: readonly [string, ...Array<string>],
    options?: { readonly cwd?: string; readonly env?: Readonly<Record<string, string>>; readonly timeout?: Duration.Input }
  ) => Effect.Effect<RunResult, HostError>
  /** Copies a file from the worker's machine to the host (the same machine for a local host). */
  readonly copyFile: (workerPath: string, hostPath: string, options?: { readonly mode?: number }) => Effect.Effect<void, HostError>
  /** Reads a file on the host (a relative path is the workdir's). */
  readonly readFromHost: (path: string) => Effect.Effect<Uint8Array, HostError>
  /** {@link readFromHost} decoded as UTF-8. */
  readonly readTextFromHost: (path: string) => Effect.Effect<string, HostError>
  /**
   * Downloads `url` onto the host with the host's `curl` (so the bytes land where codex runs).
   * `target` is absolute, `~/…` (the host user's home) or relative to the workdir without `..`;
   * progress reports the start and the end; a failed or interrupted download leaves no file.
   */
  readonly downloadFile: (url: string, target: string) => Effect.Effect<string, DownloadFailure | HostError>
}

/**
 * A deliverable as `onDeliverable` sees it.
 * @category models
 * @since 0.1.0
 */
export interface DeliverableInfo {
  /** The path relative to `deliverables/` (what the reference passed). */
  readonly relativePath: string
  /** The absolute path on the host. */
  readonly absolutePath: string
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
  /**
   * Sees each deliverable the agent publishes: `path` is relative to `deliverables/` (as in the
   * reference), `deliverable` has both forms. `Some(reply)` is sent back to the agent.
   */
  readonly onDeliverable?: (
    ctx: HookContext,
    path: string,
    text: string,
    deliverable: DeliverableInfo
  ) => Effect.Effect<Option.Option<string>, unknown>
  /**
   * Picks the seed for the task, given the lease holder id; used instead of `seedId` / `seedPool`.
   * Return a seed id (the session then leases that seed itself) or a grant the provider already
   * took for `holder` (e.g. from `Lease.acquire` on its own pool), which the session adopts. A
   * lease already held by this task's process id (a provider written for the Python reference)
   * is adopted too.
   */
  readonly seedProvider?: (holder: string) => Effect.Effect<string | LeaseGrant, unknown>
  /**
   * Told about a captured seed; setting it turns on seed capture at teardown (a setup task). Not
   * allowed together with a seed to consume: two seeds would share one token lineage.
   */
  readonly onSeedSaved?: (seedId: string, info: Option.Option<string>) => Effect.Effect<void, unknown>
}
