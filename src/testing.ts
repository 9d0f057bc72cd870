/**
 * optio-codex/testing: what a worker needs to test its own code by swapping layers — a recording
 * `TaskContext`, in-memory stores, the local host with the session's services, a scripted model
 * server that stands in for OpenAI's model API (so a real codex runs offline, with no account and
 * no network), the script language it plays, and a stand-in for OpenAI's auth issuer.
 *
 * None of this is in the main entry, which keeps only the runtime API.
 *
 * @since 0.1.0
 */
// First: see EvalFilename (`node -e` and @effect/platform-node).
import { restoreEvalFilename } from "./package/EvalFilename.ts"
import { Layer } from "effect"
import type { BinaryCacheOptions } from "./binary/BinaryCache.ts"
import type { CredWatcherSettings } from "./credentials/CredWatcher.ts"
import { DEMO_MODEL, DEMO_PROMPT, demoScript, demoTaskSettings } from "./cli/OfflineDemo.ts"
import type { Host } from "./host/Host.ts"
import * as LocalHost from "./host/LocalHost.ts"
import type { Lease } from "./lease/Lease.ts"
import type { ModelScript } from "./modelserver/ModelScript.ts"
import type { SeedStore } from "./seeds/SeedStore.ts"
import type { SnapshotStore } from "./snapshots/SnapshotStore.ts"
import { BlobCrypto } from "./store/BlobCrypto.ts"
import { Store } from "./store/Store.ts"
import type { MemoryStoreState } from "./store/Store.ts"
import { TaskContext, TaskRecorder } from "./task/TaskContext.ts"
import type { TaskIdentity } from "./task/TaskContext.ts"
import { layerCodexServices } from "./session/SessionServices.ts"
import type { CodexSessionServices } from "./session/SessionServices.ts"

export { ModelScript } from "./modelserver/ModelScript.ts"
export { ScriptedModelServer } from "./modelserver/ScriptedModelServer.ts"
export type {
  AwaitRequestsTimeout,
  ModelServerError,
  RecordedRequest,
  ScriptedModelServerHandle,
  ScriptedModelServerOptions
} from "./modelserver/ScriptedModelServer.ts"
export { ScriptedQuota } from "./modelserver/ScriptedQuota.ts"
export type { AccountQuota, ScriptedQuotas, ScriptedWindow } from "./modelserver/ScriptedQuota.ts"
export { CODEX_CLIENT_ID, startStandInIssuer } from "./modelserver/StandInIssuer.ts"
export type { MintedAuth, RefreshOutcome, StandInIssuer, StandInIssuerOptions } from "./modelserver/StandInIssuer.ts"
export { MemoryStoreState } from "./store/Store.ts"
export * as MemoryHost from "./host/MemoryHost.ts"
export { makeScriptedTmux } from "./terminal/Tmux.ts"
export type { ScriptedPane, ScriptedTmux, ScriptedTmuxOptions } from "./terminal/Tmux.ts"
export type { ScriptedAppServer, ScriptedAppServerOptions, ScriptedCodex } from "./appserver/AppServerClient.ts"
export { makeScriptedAppServer } from "./appserver/AppServerClient.ts"
export { TaskRecorder } from "./task/TaskContext.ts"
export type { TaskRecord } from "./task/TaskContext.ts"

/**
 * A `TaskContext` that records every call (progress, widget upstreams, widget data, browser-open
 * and attention requests); read the record with `TaskRecorder.current`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TaskContext } from "optio-codex"
 * import { layerRecordingTaskContext, TaskRecorder } from "optio-codex/testing"
 *
 * const program = Effect.gen(function*() {
 *   const context = yield* TaskContext
 *   yield* context.reportProgress(50, "half way")
 *   return (yield* (yield* TaskRecorder).current).progress
 * }).pipe(Effect.provide(layerRecordingTaskContext({ processId: "task-1" })))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerRecordingTaskContext = (identity: TaskIdentity): Layer.Layer<TaskContext | TaskRecorder> =>
  TaskContext.layerRecording(identity)

/**
 * Seeds, leases and snapshots in memory, stored in plaintext. Pass one `state` to several layers
 * (or runs) so they see the same data.
 * @category layers
 * @since 0.1.0
 */
export const layerMemoryStores = (
  options: { readonly state?: MemoryStoreState | undefined } = {}
): Layer.Layer<SeedStore | Lease | SnapshotStore> =>
  Store.layerMemory(options).pipe(Layer.provide(BlobCrypto.layerPlaintext))

/**
 * The `Host` a test runs on: this machine (tests drive real processes rather than a fake host).
 * @category layers
 * @since 0.1.0
 */
export const layerTestHost: Layer.Layer<Host> = LocalHost.layer()

/**
 * Options of {@link layerSessionServices}.
 * @category models
 * @since 0.1.0
 */
export interface SessionServicesOptions {
  /** Whether the recording context asks the run to resume (default false). */
  readonly resume?: boolean | undefined
  /** Shared memory-store state, so several runs (or the test itself) see one store. */
  readonly state?: MemoryStoreState | undefined
  /** Where the codex binary is cached (default as `BinaryCache.layer`). */
  readonly binaryCache?: BinaryCacheOptions | undefined
  /** The credential watcher's cadences (default as `CredWatcher.layer`). */
  readonly credWatcher?: CredWatcherSettings | undefined
}

/**
 * Everything `runCodexSession` needs, for a test on this machine: a recording `TaskContext`, the
 * pinned codex binary from the installed `@openai/codex` package, the web terminal, the
 * conversation listener and in-memory stores, all on the local host. Pair it with
 * {@link offlineTaskSettings} and a `ScriptedModelServer` to run a real session offline.
 * @category layers
 * @since 0.1.0
 */
export const layerSessionServices = (
  processId: string,
  options: SessionServicesOptions = {}
): Layer.Layer<CodexSessionServices | TaskRecorder> =>
  Layer.mergeAll(
    layerRecordingTaskContext({ processId, resume: options.resume ?? false }),
    layerCodexServices({ binaryCache: options.binaryCache, credWatcher: options.credWatcher })
  ).pipe(Layer.provideMerge(Layer.merge(layerMemoryStores({ state: options.state }), layerTestHost)))

/**
 * The model name a `ScriptedModelServer` answers to by default.
 * @category constants
 * @since 0.1.0
 */
export const OFFLINE_MODEL: string = DEMO_MODEL

/**
 * Task settings (`model`, `configOverrides`, `env`) that point codex at a `ScriptedModelServer`
 * at `baseUrl` (its `baseUrl` field) instead of OpenAI: spread them into a task's configuration.
 * @category constructors
 * @since 0.1.0
 */
export const offlineTaskSettings = demoTaskSettings

/**
 * The offline demo's script: the model has codex write `hello.txt`, report `DONE` on the
 * optio.log channel, then says so.
 * @category constants
 * @since 0.1.0
 */
export const offlineDemoScript: ModelScript.Script = demoScript

/**
 * The offline demo's prompt (the scripted model follows its script whatever the prompt says).
 * @category constants
 * @since 0.1.0
 */
export const OFFLINE_DEMO_PROMPT: string = DEMO_PROMPT

restoreEvalFilename()
