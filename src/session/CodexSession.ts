/**
 * CodexSession: one codex task as one scoped program. Resources are acquired in order — task
 * dirs, codex link, codex itself (the TUI in tmux, or `codex app-server`), the viewer server (web
 * terminal or conversation listener), the published upstream — and the Scope releases them in
 * reverse: viewers are cut off first (no more operator input), then codex is stopped gracefully
 * (SIGTERM, a bounded wait, SIGKILL for its whole tree), then the upstream is cleared and the
 * task's private files are removed. Cancelling a task is interrupting this program's fiber; the
 * session then ends as interrupted, never as a failure.
 *
 * How a session ends when something breaks (each case has a test in test/faults/):
 * - codex dies (crash, SIGKILL): `CodexExitedEarly` with its exit status and, for a signal death,
 *   the signal's name ("codex TUI was killed by SIGKILL (exit status 137)");
 * - the TUI's tmux server dies: `CodexExitedEarly` with `exitCode: null` ("terminal went away");
 * - codex app-server hangs (stopped, deadlocked) while its process lives: each request fails with
 *   `AppServerRequestTimedOut` (30 s by default, `appServerRequestTimeout`), and a liveness probe
 *   (`thread/loaded/list` every 10 s, 10 s timeout, 3 misses in a row; `appServerLiveness`) fails
 *   the session with `AppServerUnresponsive` at most failures × (interval + timeout) = 60 s after
 *   codex's last answer; teardown then resumes it (SIGCONT) and stops it within `stopGracePeriod`
 *   per step (EOF, SIGTERM) before the host's SIGKILL;
 * - the seed's lease is lost (taken over after an expiry, the seed deleted): `LeaseLost`, within
 *   one renewal interval; the credential save-back is skipped, the snapshot is `cancelled`;
 * - a teardown step fails (credentials not saved back after retries, the snapshot not stored):
 *   `TeardownFailed` beside the session's own outcome, and unsaved credentials keep the task dir;
 * - the worker itself dies (no finalizer runs): the session recorded its processes in
 *   `<taskdir>/pids.json` at launch, and the next start of the same task reaps them before it
 *   touches the workdir and reports "reaped leftovers of a previous run: …" (see Leftovers).
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import { decodeWithDeploymentDefaults, REMOTE_TASK_ROOT_VARIABLE } from "../config/DeploymentDefaults.ts"
import { classifyConnectionLoss, Host } from "../host/Host.ts"
import { runConversationBody } from "./ConversationBody.ts"
import { checkPersistence, checkSeedHooks } from "./SessionSeed.ts"
import { concludeSession, makeTeardownLog } from "./Teardown.ts"
import { prepareTask } from "./PrepareTask.ts"
import type { SessionOptions } from "./PrepareTask.ts"
import { runTuiBody } from "./TuiBody.ts"
import { TaskContext } from "../task/TaskContext.ts"

export type { SessionOptions } from "./PrepareTask.ts"
export type { SessionResult } from "./LogWatch.ts"

/**
 * Runs one codex task to completion. Invalid config fails before anything starts.
 * @category constructors
 * @since 0.1.0
 */
export const runCodexSession = (input: unknown, options: SessionOptions = {}) =>
  Effect.gen(function*() {
    const decoded = yield* decodeWithDeploymentDefaults(input)
    const config = decoded.config
    yield* checkSeedHooks(config, options.hooks ?? {})
    yield* checkPersistence(config, options.hooks ?? {})
    const withRoot = withDeploymentTaskRoot(options, decoded)
    yield* reportDeploymentNotes(withRoot.notes)
    options = withRoot.options
    const teardown = yield* makeTeardownLog
    const session = Effect.gen(function*() {
      const prepared = yield* prepareTask(config, options, teardown)
      const host = yield* Host
      const body = Effect.gen(function*() {
        return config.mode === "conversation" ? yield* runConversationBody(prepared) : yield* runTuiBody(prepared)
      })
      // A dropped SSH connection ends the session at once (within the keepalive bound), as a typed
      // HostConnectionLost; teardown then reconnects to stop codex and tmux on the remote. A lost
      // seed lease ends it as LeaseLost: from then on nothing writes the seed.
      return yield* body.pipe(
        Effect.raceFirst(host.connectionLost),
        Effect.raceFirst(prepared.leaseLost),
        Effect.catchTag("HostError", (error) => Effect.fail(classifyConnectionLoss(error)))
      )
    }).pipe(Effect.scoped)
    return yield* concludeSession(yield* Effect.exit(session), teardown)
  }).pipe(Effect.withSpan("CodexSession.run"))

/**
 * The session options with the deployment's remote task root filled in (SSH hosts only; an
 * explicit `taskRoot` wins), and the notes that say so.
 */
export const withDeploymentTaskRoot = (
  options: SessionOptions,
  decoded: { readonly config: CodexTaskConfig; readonly notes: ReadonlyArray<string>; readonly remoteTaskRoot: Option.Option<string> }
): { readonly options: SessionOptions; readonly notes: ReadonlyArray<string> } => {
  if (decoded.config.ssh === undefined || Option.isNone(decoded.remoteTaskRoot)) return { options, notes: decoded.notes }
  if (options.taskRoot !== undefined) {
    return { options, notes: [...decoded.notes, `task root from the session options (overrides ${REMOTE_TASK_ROOT_VARIABLE})`] }
  }
  return {
    options: { ...options, taskRoot: decoded.remoteTaskRoot.value },
    notes: [...decoded.notes, `task root ${JSON.stringify(decoded.remoteTaskRoot.value)} from ${REMOTE_TASK_ROOT_VARIABLE}`]
  }
}

/** Says in the task's progress which deployment settings came from the environment. */
export const reportDeploymentNotes = (notes: ReadonlyArray<string>) =>
  notes.length === 0
    ? Effect.void
    : TaskContext.use((task) => task.reportProgress(null, `Deployment settings: ${notes.join("; ")}`))
