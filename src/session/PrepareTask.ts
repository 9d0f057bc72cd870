/**
 * PrepareTask: the part of a session both modes share — task paths, the restored or fresh
 * workdir, the leased and planted seed, the codex launch link, the resolved sandbox posture, the
 * launch environment and the `beforeExecute` / `afterExecute` hooks — plus the finalizers that
 * must run after codex and every viewer are gone (credential save-back, seed capture, snapshot,
 * lease release, clearing the upstream, removing the task's private files).
 *
 * @since 0.1.0
 */
import { Effect, Fiber, Option, Ref } from "effect"
import type { Duration, Scope } from "effect"
import type { CodexConversation } from "../appserver/CodexConversation.ts"
import { BinaryCache } from "../binary/BinaryCache.ts"
import type { CodexUnavailable } from "../binary/BinaryCache.ts"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import type { CodexTaskHooks, HookContext } from "./Hooks.ts"
import { makeHookContext } from "./HookContext.ts"
import type { AgentChannel } from "./HookContext.ts"
import { resolveSandboxPosture } from "../config/SandboxPosture.ts"
import type { SandboxPosture } from "../config/SandboxPosture.ts"
import { Host } from "../host/Host.ts"
import type { HostError } from "../host/Host.ts"
import { TaskContext } from "../task/TaskContext.ts"
import { taskPaths, taskRootOn } from "../workdir/TaskPaths.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"
import { CODEX_ENV_ALLOW, hostPathOn, launchEnvironment, prepareWorkdir } from "../workdir/Workdir.ts"
import type { LeaseLost } from "../lease/Lease.ts"
import { reapLeftovers } from "./Leftovers.ts"
import { HookFailed } from "./SessionErrors.ts"
import { attachBrokeredSeed, brokerFor, plantBrokeredAuth } from "./SessionBroker.ts"
import type { BrokeredSeed } from "./SessionBroker.ts"
import { leaseTaskSeed, plantTaskSeed, registerSeedCapture } from "./SessionSeed.ts"
import type { ConsumedSeed } from "./SessionSeed.ts"
import { makeSeedSlot } from "./SeedHandoff.ts"
import type { SeedSlot } from "./SeedHandoff.ts"
import { findResumePoint, registerSnapshot, restoreResumePoint, resumableThread, snapshotLeftovers } from "./SessionSnapshot.ts"
import type { TeardownLog } from "./Teardown.ts"

/**
 * Options about where and how a session runs rather than what codex does.
 * @category models
 * @since 0.1.0
 */
export interface SessionOptions {
  readonly hooks?: CodexTaskHooks
  /**
   * An explicit workdir (absolute path on the host). It is neither wiped at start nor removed at
   * the end (a resume extracts the snapshot over what it holds); without it the task gets
   * `<task root>/<process id>/workdir`, wiped at every start.
   */
  readonly workdir?: string
  /**
   * Where the task's trusted files (and a default workdir) live on the host (absolute, plain
   * characters). Default: the host's `$OPTIO_CODEX_TASK_ROOT`, else `${XDG_DATA_HOME:-~/.local/share}/optio-codex`
   * there; for an SSH host the worker's `$OPTIO_CODEX_REMOTE_TASK_ROOT` comes first.
   */
  readonly taskRoot?: string
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
  /** The only inherited variables codex gets besides `env` (`Command.envAllow`). */
  readonly envAllow: ReadonlyArray<string>
  readonly hooks: CodexTaskHooks
  readonly hookContext: HookContext
  /** Bodies attach their way of messaging the agent, which the hooks' `sendToAgent` then uses. */
  readonly attachAgentChannel: (channel: AgentChannel) => Effect.Effect<void>
  /** The codex thread to continue (a resume whose rollout came back); none for a fresh thread. */
  readonly resumeThread: Option.Option<string>
  /** Whether this run restored a snapshot (so the agent gets the resume notice, not the kickoff). */
  readonly resuming: boolean
  /** Fails with `LeaseLost` when the seed's lease is lost; never completes otherwise. */
  readonly leaseLost: Effect.Effect<never, LeaseLost>
  /** The seed the task runs on, with quota recording and hand-off; none without a seed. */
  readonly seedSlot: Option.Option<SeedSlot>
  /** Bodies call it once codex runs: seed capture and the snapshot only follow a launch. */
  readonly markLaunched: Effect.Effect<void>
  /** Conversation mode records its thread id here, for the snapshot. */
  readonly recordThread: (threadId: string) => Effect.Effect<void>
}

/**
 * The preparation both modes share: task dirs, resume restore, the seed, codex link, sandbox
 * posture, launch env, hooks — and the teardown steps that follow codex's stop, registered so the
 * Scope runs them in the order of ARCHITECTURE rule 6: credential save-back, seed capture,
 * snapshot, lease release, task dir removal.
 * @category constructors
 */
export const prepareTask = Effect.fnUntraced(function*(config: CodexTaskConfig, options: SessionOptions, teardown: TeardownLog) {
  const task = yield* TaskContext
  const host = yield* Host
  const hooks = options.hooks ?? {}
  // The trusted files live under the task root even with an explicit workdir (see TaskPaths).
  const paths = yield* taskPaths({
    processId: task.processId,
    taskRoot: options.taskRoot ?? (yield* taskRootOn(host)),
    workdir: options.workdir
  })
  // A worker that died mid-session (SIGKILL, OOM) left codex and its tmux server running: stop
  // them before the workdir is touched (see Leftovers).
  const previousRunDied = yield* reapLeftovers(paths, options.stopGracePeriod ?? "5 seconds")
  if (previousRunDied) yield* snapshotLeftovers(config, paths)
  // Registered first, so it runs last: after codex and every viewer are gone. Kept when it holds
  // the only copy of credentials that could not be saved back.
  const keepTaskdir = yield* Ref.make(false)
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      if (yield* Ref.get(keepTaskdir)) {
        yield* task.reportProgress(null, `Kept ${paths.taskdir}: its auth.json holds credentials that were not saved back`)
        return
      }
      for (const dir of [paths.taskdir, ...paths.disposable]) yield* host.remove(dir).pipe(Effect.ignore)
    })
  )
  const launched = yield* Ref.make(false)
  const threadId = yield* Ref.make(Option.none<string>())

  const resumePoint = yield* findResumePoint(config)
  // Broker mode: the broker leases the seed; the task gets a handle instead of the refresh token.
  const broker = yield* brokerFor(config, hooks)
  const brokered = Option.isSome(broker) ? Option.some(yield* attachBrokeredSeed(broker.value, config, hooks)) : Option.none<BrokeredSeed>()
  const leased = Option.isSome(broker) ? Option.none<never>() : yield* leaseTaskSeed(config, hooks)
  yield* registerSnapshot(config, paths, { launched: Ref.get(launched), threadId: Ref.get(threadId), teardown })
  yield* registerSeedCapture(hooks, paths, { launched: Ref.get(launched), teardown })

  yield* task.reportProgress(null, "Preparing the workdir…")
  let consumed: ConsumedSeed | undefined
  let seedSlot: SeedSlot | undefined
  const restoreAndPlant = Effect.gen(function*() {
    if (Option.isSome(resumePoint)) yield* restoreResumePoint(resumePoint.value, paths)
    if (Option.isSome(brokered)) yield* plantBrokeredAuth(brokered.value, paths)
    if (Option.isSome(leased)) {
      consumed = yield* plantTaskSeed(leased.value, paths, {
        teardown,
        keepTaskdir: Ref.set(keepTaskdir, true)
      })
      seedSlot = yield* makeSeedSlot({
        poolKey: hooks.seedProvider === undefined && config.seedId === undefined ? config.seedPool : undefined,
        grant: leased.value.grant,
        consumed,
        stores: leased.value.services,
        paths,
        teardown,
        keepTaskdir: Ref.set(keepTaskdir, true)
      })
    }
  })
  const binaries = yield* BinaryCache
  const placeCodex = Effect.all([
    task.reportProgress(null, "Locating codex…").pipe(
      Effect.andThen(binaries.linkForTask(paths.launchLink, (message) => task.reportProgress(null, message)))
    ),
    // A fresh home starts from the primed template; a resumed one must let codex rebuild its
    // databases from the restored rollouts.
    Option.isNone(resumePoint) ? binaries.primeCodexHome(paths.codexHome) : Effect.succeed(false)
  ], { concurrency: "unbounded", discard: true })
  // The launch link and the template home go in as soon as the private dir is empty again,
  // overlapping the rest of the preparation (issue 19): the template holds no config.toml or
  // credentials and is copied without overwriting, so the order of the writes does not matter.
  let placingCodex: Fiber.Fiber<void, CodexUnavailable | HostError> | undefined
  yield* prepareWorkdir(config, paths, {
    afterWipe: Effect.forkChild(placeCodex, { startImmediately: true }).pipe(
      Effect.tap((fiber) => Effect.sync(() => { placingCodex = fiber })),
      Effect.andThen(restoreAndPlant)
    ),
    // A resumed agent must re-read what was rewritten since its last look (P37).
    refreshed: Option.isSome(resumePoint) ? ["AGENTS.md"] : []
  }).pipe(Effect.withSpan("CodexSession.prepare"))
  if (placingCodex !== undefined) yield* Fiber.join(placingCodex)
  const resumeThread = Option.isSome(resumePoint) ? yield* resumableThread(resumePoint.value, paths) : Option.none<string>()
  const posture = resolveSandboxPosture(config, yield* host.home)
  const env = {
    ...launchEnvironment(config, paths, yield* hostPathOn),
    ...Option.match(brokered, { onNone: () => ({}), onSome: (seed) => seed.env })
  }
  const hooksOn = yield* makeHookContext({ processId: task.processId, workdir: paths.workdir, host, task })
  const hookContext: HookContext = hooksOn.context
  if (hooks.beforeExecute !== undefined) {
    yield* hooks.beforeExecute(hookContext).pipe(Effect.mapError((cause) => new HookFailed({ hook: "beforeExecute", cause })))
  }
  // Registered before codex and the viewer server start, so it runs after both are gone.
  yield* Effect.addFinalizer(() => Effect.andThen(task.clearWidgetUpstream, task.clearWidgetData))
  const prepared: PreparedTask = {
    config,
    options,
    paths,
    posture,
    env,
    envAllow: CODEX_ENV_ALLOW,
    hooks,
    hookContext,
    attachAgentChannel: hooksOn.attachAgentChannel,
    resumeThread,
    resuming: Option.isSome(resumePoint),
    // File mode: the slot follows hand-offs to other seeds; broker mode: the broker's lease.
    leaseLost: seedSlot !== undefined ? seedSlot.lost : Option.isSome(brokered) ? brokered.value.lost : Effect.never,
    seedSlot: Option.fromNullishOr(seedSlot),
    markLaunched: Ref.set(launched, true),
    recordThread: (id) => Ref.set(threadId, Option.some(id))
  }
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
