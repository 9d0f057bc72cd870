/**
 * PrepareTask: the part of a session both modes share — task paths, the prepared workdir, the
 * codex launch link, the resolved sandbox posture, the launch environment and the
 * `beforeExecute` / `afterExecute` hooks — plus the finalizers that must run after codex and
 * every viewer are gone (clear the upstream, remove the task's private files).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Duration, Scope } from "effect"
import type { CodexConversation } from "../appserver/CodexConversation.ts"
import { BinaryCache } from "../binary/BinaryCache.ts"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import type { CodexTaskHooks, HookContext } from "../config/Hooks.ts"
import { resolveSandboxPosture } from "../config/SandboxPosture.ts"
import type { SandboxPosture } from "../config/SandboxPosture.ts"
import { Host } from "../host/Host.ts"
import { TaskContext } from "../task/TaskContext.ts"
import { taskPaths, taskRootOn } from "../workdir/TaskPaths.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"
import { hostPathOn, launchEnvironment, prepareWorkdir } from "../workdir/Workdir.ts"
import { reapLeftovers } from "./Leftovers.ts"
import { HookFailed } from "./SessionErrors.ts"

/**
 * Options about where and how a session runs rather than what codex does.
 * @category models
 */
export interface SessionOptions {
  readonly hooks?: CodexTaskHooks
  /**
   * An explicit workdir (absolute path on the host). It is neither wiped at start nor removed at
   * the end; without it the task gets `<task root>/<process id>/workdir`.
   */
  readonly workdir?: string
  /** How long codex gets to exit after SIGTERM before SIGKILL. Default 5 seconds. */
  readonly stopGracePeriod?: Duration.Input
  /**
   * Conversation mode: how the session checks that codex app-server still answers while it waits
   * for the outcome (a process that hangs never exits, so its exit alone cannot end the session).
   * A probe every `interval` (default 10 s), each with `timeout` (default 10 s); `failures`
   * (default 3) unanswered probes in a row fail the session with `AppServerUnresponsive`, at most
   * failures × (interval + timeout) — 60 s by default — after codex's last answer.
   */
  readonly appServerLiveness?: {
    readonly interval?: Duration.Input
    readonly timeout?: Duration.Input
    readonly failures?: number
  }
  /** Conversation mode: timeout of each request to codex app-server. Default 30 seconds. */
  readonly appServerRequestTimeout?: Duration.Input
  /**
   * Conversation mode: called once the conversation is live, in a fiber of the session's scope
   * (the CLI's terminal chat uses it). Its failure is reported, never fatal.
   */
  readonly onConversation?: (conversation: CodexConversation) => Effect.Effect<void, unknown, Scope.Scope>
}

/**
 * Everything a mode's body needs from the shared preparation.
 * @category models
 */
export interface PreparedTask {
  readonly config: CodexTaskConfig
  readonly options: SessionOptions
  readonly paths: TaskPaths
  readonly posture: SandboxPosture
  readonly env: Readonly<Record<string, string>>
  readonly hooks: CodexTaskHooks
  readonly hookContext: HookContext
}

/**
 * The preparation both modes share: task dirs, codex link, sandbox posture, launch env, hooks.
 * @category constructors
 */
export const prepareTask = Effect.fnUntraced(function*(config: CodexTaskConfig, options: SessionOptions) {
  const task = yield* TaskContext
  const host = yield* Host
  const hooks = options.hooks ?? {}
  const paths = yield* taskPaths({
    processId: task.processId,
    taskRoot: options.workdir === undefined ? yield* taskRootOn(host) : "",
    workdir: options.workdir
  })
  // A worker that died mid-session (SIGKILL, OOM) left codex and its tmux server running: stop
  // them before the workdir is touched (see Leftovers).
  yield* reapLeftovers(paths, options.stopGracePeriod ?? "5 seconds")
  // Registered first, so it runs last: after codex and every viewer are gone.
  yield* Effect.addFinalizer(() => host.remove(paths.taskdir).pipe(Effect.ignore))
  yield* task.reportProgress(null, "Preparing the workdir…")
  yield* prepareWorkdir(config, paths).pipe(Effect.withSpan("CodexSession.prepare"))

  yield* task.reportProgress(null, "Locating codex…")
  const binaries = yield* BinaryCache
  yield* binaries.linkForTask(paths.launchLink, (message) => task.reportProgress(null, message))
  const posture = resolveSandboxPosture(config, yield* host.home)
  const env = launchEnvironment(config, paths, yield* hostPathOn)
  const hookContext: HookContext = { workdir: paths.workdir }
  if (hooks.beforeExecute !== undefined) {
    yield* hooks.beforeExecute(hookContext).pipe(Effect.mapError((cause) => new HookFailed({ hook: "beforeExecute", cause })))
  }
  // Registered before codex and the viewer server start, so it runs after both are gone.
  yield* Effect.addFinalizer(() => Effect.andThen(task.clearWidgetUpstream, task.clearWidgetData))
  const prepared: PreparedTask = { config, options, paths, posture, env, hooks, hookContext }
  return prepared
})

/**
 * Runs the `afterExecute` hook (codex still alive, workdir intact); its failure is reported.
 * @category constructors
 */
export const afterExecute = (prepared: PreparedTask) =>
  Effect.gen(function*() {
    const hook = prepared.hooks.afterExecute
    if (hook === undefined) return
    const task = yield* TaskContext
    yield* hook(prepared.hookContext).pipe(
      Effect.catch((cause) => task.reportProgress(null, new HookFailed({ hook: "afterExecute", cause }).message))
    )
  })
