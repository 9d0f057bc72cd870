/**
 * SessionSnapshot: how a session saves and resumes its workdir. At teardown — once codex has
 * stopped and its credentials are saved back — the workdir is streamed into the SnapshotStore
 * with the codex thread it belongs to and how the run really ended (done, failed or cancelled).
 * On a resume the newest snapshot is restored into the fresh workdir before anything else is
 * written there, and the thread to continue is checked against the restored rollouts: a missing
 * rollout starts a fresh thread and says so, never silently.
 *
 * @since 0.1.0
 */
import { Cause, Effect, Exit, Option } from "effect"
import type { Scope } from "effect"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import { Host } from "../host/Host.ts"
import { effectiveWorkdirExclude } from "../protocol/AgentsMd.ts"
import { SnapshotStore } from "../snapshots/SnapshotStore.ts"
import type { SnapshotDoc, SnapshotEndState } from "../snapshots/SnapshotStore.ts"
import { ALWAYS_EXCLUDED, captureSnapshot, newestRolloutId, placeRestored, restoreSnapshot, rotateOptioLog } from "../snapshots/WorkdirSnapshot.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"
import { PersistenceNotConfigured } from "./SessionErrors.ts"
import type { TeardownLog } from "./Teardown.ts"

/**
 * The snapshot a resumed run starts from.
 * @category models
 */
export interface ResumePoint {
  readonly snapshot: SnapshotDoc
}

/**
 * The snapshot to resume from: only when the worker asks to resume and the task supports it;
 * none (a fresh start, reported) when the process has no snapshot yet.
 * @category constructors
 */
export const findResumePoint = (config: CodexTaskConfig) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    if (!task.resume || !config.supportsResume) return Option.none<ResumePoint>()
    const store = yield* SnapshotStore
    // checkPersistence refused this before anything started; kept so the rule holds on its own.
    if (!store.persistent) return yield* new PersistenceNotConfigured({ feature: "resume", service: SnapshotStore.key })
    const latest = yield* store.latest(task.processId)
    if (Option.isNone(latest)) {
      yield* task.reportProgress(null, "Nothing to resume from (no snapshot of this task): starting fresh")
      return Option.none<ResumePoint>()
    }
    return Option.some<ResumePoint>({ snapshot: latest.value })
  })

/**
 * Restores a snapshot: extracted whole into the private staging dir first (a failed restore
 * leaves an explicit workdir untouched), then the rollouts go to CODEX_HOME and the rest into the
 * (wiped, or explicit) workdir; the old optio.log is moved aside, so a stale DONE or ERROR of the
 * previous run is never read as this run's outcome. Nothing else of the snapshot is trusted:
 * config.toml and credentials are rebuilt from the task's config and its seed.
 * @category constructors
 */
export const restoreResumePoint = (point: ResumePoint, paths: TaskPaths) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    const host = yield* Host
    const captured = point.snapshot.capturedAt.toISOString()
    yield* task.reportProgress(null, `Restoring the workdir from the snapshot of ${captured}…`)
    yield* host.remove(paths.restoreStaging)
    yield* restoreSnapshot(point.snapshot, paths.restoreStaging, {
      onProgress: (bytes) => task.reportProgress(null, `Restoring the workdir: ${formatBytes(bytes)}`)
    })
    yield* placeRestored({ snapshot: point.snapshot, staging: paths.restoreStaging, workdir: paths.workdir, codexHome: paths.codexHome })
    yield* rotateOptioLog(paths.optioLog)
    yield* task.reportProgress(null, `Restored the workdir from the snapshot of ${captured}`)
  }).pipe(Effect.withSpan("CodexSession.restore"))

/**
 * The codex thread a resumed run continues: the snapshot's session id, if its rollout came back
 * with the workdir. Otherwise none, and progress says a fresh thread starts (and why).
 * @category constructors
 */
export const resumableThread = (point: ResumePoint, paths: TaskPaths) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    const host = yield* Host
    const sessionId = point.snapshot.sessionId
    if (sessionId === null || !THREAD_ID.test(sessionId)) {
      yield* task.reportProgress(null, "The snapshot names no codex thread: the workdir is restored, codex starts a fresh thread")
      return Option.none<string>()
    }
    const rollouts = yield* host.glob(`sessions/**/rollout-*-${sessionId}.jsonl`, paths.codexHome).pipe(
      Effect.catch(() => Effect.succeed([] as ReadonlyArray<string>))
    )
    if (rollouts.length === 0) {
      yield* task.reportProgress(null, `The snapshot's codex thread ${sessionId} has no rollout in the restored snapshot: codex starts a fresh thread`)
      return Option.none<string>()
    }
    yield* task.reportProgress(null, `Resuming codex thread ${sessionId}`)
    return Option.some(sessionId)
  })

/**
 * How a run ended, for the snapshot record: success is `done`; a cancel (interruption) or a
 * lost lease is `cancelled`; anything else `failed`.
 * @category constructors
 */
export const endStateOf = (exit: Exit.Exit<unknown, unknown>): SnapshotEndState => {
  if (Exit.isSuccess(exit)) return "done"
  if (Cause.hasInterruptsOnly(exit.cause)) return "cancelled"
  const error = Cause.squash(exit.cause)
  return typeof error === "object" && error !== null && "_tag" in error && error._tag === "LeaseLost" ? "cancelled" : "failed"
}

/**
 * The patterns a snapshot leaves out: codex's binaries and sqlite indexes always, then the task's
 * own list (or the default). Credentials never travel: only the rollouts of CODEX_HOME are
 * archived (see `captureSnapshot`), and a seeded task's auth.json lives in its seed.
 * @category constructors
 */
export const snapshotExcludes = (config: CodexTaskConfig): ReadonlyArray<string> => [
  ...ALWAYS_EXCLUDED,
  ...effectiveWorkdirExclude(config.workdirExclude ?? null)
]

/**
 * Registers the teardown snapshot (when the task supports resume and a SnapshotStore is
 * provided): after codex has stopped and, being registered earlier, after the credential
 * save-back and seed capture. Skipped when codex never launched, so the last good snapshot stays
 * the newest.
 * @category constructors
 */
export const registerSnapshot = (
  config: CodexTaskConfig,
  paths: TaskPaths,
  options: {
    readonly launched: Effect.Effect<boolean>
    readonly threadId: Effect.Effect<Option.Option<string>>
    readonly teardown: TeardownLog
  }
): Effect.Effect<void, never, Scope.Scope | Host | SnapshotStore | TaskContext> =>
  Effect.gen(function*() {
    if (!config.supportsResume || !(yield* SnapshotStore).persistent) return
    const task = yield* TaskContext
    yield* Effect.addFinalizer((exit) =>
      Effect.gen(function*() {
        if (!(yield* options.launched)) return
        yield* options.teardown.step(
          "snapshot",
          Effect.gen(function*() {
            yield* task.reportProgress(null, "Saving a snapshot of the workdir…")
            const doc = yield* saveWorkdir(config, paths, {
              endState: endStateOf(exit),
              threadId: yield* options.threadId,
              onProgress: (bytes) => task.reportProgress(null, `Saving a snapshot of the workdir: ${formatBytes(bytes)}`)
            })
            yield* task.reportProgress(null, `Saved a snapshot of the workdir (${doc.endState}, thread ${doc.sessionId ?? "none"})`)
            yield* task.markHasSavedState
          })
        )
      })
    )
  })

// codex thread ids are UUIDs; anything else in a stored document is not looked up on the host.
const THREAD_ID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/**
 * Saves what a previous run that died without its teardown (worker SIGKILL, OOM) left in the
 * workdir, as a `failed` snapshot, before the new run wipes it: a resume then continues from
 * there. Best effort: a failure is reported in progress and the start goes on.
 * @category constructors
 */
export const snapshotLeftovers = (config: CodexTaskConfig, paths: TaskPaths) =>
  Effect.gen(function*() {
    if (!config.supportsResume || !(yield* SnapshotStore).persistent) return
    const host = yield* Host
    const task = yield* TaskContext
    if (!(yield* host.exists(paths.codexHome).pipe(Effect.orElseSucceed(() => false)))) return
    yield* saveWorkdir(config, paths, { endState: "failed", threadId: Option.none() }).pipe(
      Effect.tap((doc) => task.reportProgress(null, `Saved a snapshot of what the previous run left (thread ${doc.sessionId ?? "none"})`)),
      Effect.tap(() => task.markHasSavedState),
      Effect.catch((error) => task.reportProgress(null, `Could not snapshot what the previous run left: ${error.message}`))
    )
  }).pipe(Effect.withSpan("CodexSession.snapshotLeftovers"))

// One snapshot of the task's workdir; the thread is the known one, else the newest rollout's.
const saveWorkdir = (
  config: CodexTaskConfig,
  paths: TaskPaths,
  options: {
    readonly endState: SnapshotEndState
    readonly threadId: Option.Option<string>
    readonly onProgress?: (bytes: number) => Effect.Effect<void>
  }
) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    const sessionId = Option.isSome(options.threadId)
      ? options.threadId.value
      : Option.getOrNull(yield* newestRolloutId(paths.codexHome).pipe(Effect.orElseSucceed(() => Option.none<string>())))
    return yield* captureSnapshot({
      workdir: paths.workdir,
      processId: task.processId,
      endState: options.endState,
      sessionId,
      exclude: snapshotExcludes(config),
      codexHome: paths.codexHome,
      codec: config.snapshotCompression,
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress })
    })
  })

const formatBytes = (bytes: number): string =>
  bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : `${Math.round(bytes / 1024)} KiB`
