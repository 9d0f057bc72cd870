/**
 * Leftovers: what a task's processes leave behind when the worker dies without running its
 * teardown (SIGKILL, OOM kill, a lost machine). Scopes cannot help then — no finalizer runs — and
 * codex's TUI runs under a daemonized tmux server that outlives the worker. So the session
 * records what it launched in `<taskdir>/pids.json` (through the Host, so it works remotely too),
 * and the next start of the same task (same process id / workdir) reaps what is still there
 * before it touches the workdir, and says so in progress.
 *
 * The record is trusted input to a kill and a delete, so it lives only in the private task dir,
 * outside every root the agent can write; a `pids.json` anywhere in the workdir is never read.
 * Even so the reaper only ever acts on this task's own socket path, never on a path the record
 * names.
 *
 * Owns the file's format, the identity check and the reaping; does not own snapshotting the
 * leftovers' state (that belongs to the snapshot store, which cannot see this run's files yet),
 * nor a host-wide listing (`doctor`).
 *
 * Gotchas:
 * - A pid alone is not an identity (pids are reused): each entry carries the process's start
 *   time from `/proc/<pid>/stat`, and only a process whose start time still matches is killed.
 * - An entry recorded on another host (`host` differs from this Host's label) is left alone.
 * - The file is removed with the task dir at the end of a clean run, so it exists only while a
 *   session runs or after one died.
 * - The private dir is reached by the same generated id as at the dead run's start, so the reaper
 *   finds it without reading anything the agent wrote.
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Schema } from "effect"
import { Host } from "../host/Host.ts"
import type { HostShape } from "../host/Host.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"

/**
 * One launched process: its role (`codex TUI`, `tmux server`, `codex app-server`), pid and start
 * time (`/proc/<pid>/stat` field 22, clock ticks since boot; empty when unreadable).
 * @category models
 */
export const LaunchedProcess = Schema.Struct({
  role: Schema.String,
  pid: Schema.Number,
  startTime: Schema.String
})
export type LaunchedProcess = typeof LaunchedProcess.Type

/**
 * The content of `<taskdir>/pids.json`.
 * @category models
 */
export const PidsFile = Schema.Struct({
  version: Schema.Literal(1),
  /** The Host's label (`local`, `ssh://…`) the processes run on. */
  host: Schema.String,
  recordedAtMs: Schema.Number,
  processes: Schema.Array(LaunchedProcess),
  /** The task's tmux socket, when the TUI runs. */
  tmuxSocket: Schema.optionalKey(Schema.String),
  /** Which task (for `doctor`: the private dir's name is a hash). */
  processId: Schema.optionalKey(Schema.String),
  workdir: Schema.optionalKey(Schema.String)
})
export type PidsFile = typeof PidsFile.Type

/**
 * Reads a `pids.json` text; none when it is not one.
 * @category decoding
 */
export const decodePidsFile = Schema.decodeUnknownOption(Schema.fromJsonString(PidsFile))
const encodePidsFile = Schema.encodeSync(Schema.fromJsonString(PidsFile))

/**
 * Where the file lives.
 * @category constructors
 */
export const pidsFileOf = (paths: TaskPaths) => paths.pidsFile

/**
 * Records the processes a session launched (replacing what an earlier step of this session
 * recorded). Best effort: a failure is logged, never fatal.
 * @category constructors
 */
export const recordLaunch = (paths: TaskPaths, launched: {
  readonly processes: ReadonlyArray<{ readonly role: string; readonly pid: number }>
  readonly tmuxSocket?: string
}) =>
  Effect.gen(function*() {
    const host = yield* Host
    const processes = yield* Effect.forEach(launched.processes, (entry) =>
      startTimeOf(host, entry.pid).pipe(Effect.map((startTime): LaunchedProcess => ({ ...entry, startTime: startTime ?? "" }))))
    const file: PidsFile = {
      version: 1,
      host: host.label,
      recordedAtMs: yield* Clock.currentTimeMillis,
      processes,
      ...(launched.tmuxSocket === undefined ? {} : { tmuxSocket: launched.tmuxSocket }),
      processId: paths.processId,
      workdir: paths.workdir
    }
    yield* host.writeFile(pidsFileOf(paths), `${encodePidsFile(file)}\n`, { mode: 0o600 })
  }).pipe(
    // A slow remote host must not hold the session up for a backstop.
    Effect.timeoutOrElse({ duration: RECORD_BOUND, orElse: () => Effect.logWarning("recording the task's pids timed out") }),
    Effect.catch((error) => Effect.logWarning("could not record the task's pids", { error: error.message })),
    Effect.withSpan("CodexSession.recordLaunch")
  )

/**
 * Reaps what a previous run of this task left: every recorded process whose identity still
 * matches gets SIGTERM, `grace`, then SIGKILL (its whole tree); the tmux server on the recorded
 * socket is killed and the socket removed; the file is removed. Reports what it did through
 * TaskContext progress. Never fails: a leftover that cannot be reaped is reported. Yields whether
 * a previous run of this task on this host ended without its teardown (its workdir is then worth
 * a snapshot before the new run wipes it).
 * @category constructors
 */
export const reapLeftovers = (paths: TaskPaths, grace: Duration.Input) =>
  Effect.gen(function*() {
    const host = yield* Host
    const task = yield* TaskContext
    const path = pidsFileOf(paths)
    if (!(yield* host.exists(path))) return false
    const text = new TextDecoder().decode(yield* host.readFile(path))
    const recorded = decodePidsFile(text.trim())
    if (recorded._tag === "None") {
      yield* task.reportProgress(null, `ignored an unreadable ${path} left by a previous run`)
      yield* host.remove(path)
      return true
    }
    const file = recorded.value
    if (file.host !== host.label) {
      // Someone else's machine: its processes are not ours to judge from here.
      yield* task.reportProgress(
        null,
        `a previous run left processes on ${file.host}, not on ${host.label}: not reaped (${describe(file.processes)})`
      )
      return false
    }
    const reaped: Array<string> = []
    const gone: Array<string> = []
    for (const entry of file.processes) {
      const current = yield* startTimeOf(host, entry.pid)
      const same = current !== undefined && entry.startTime !== "" && current === entry.startTime
      if (!same || !(yield* host.isAlive(entry.pid))) {
        gone.push(`${entry.role} (pid ${entry.pid})`)
        continue
      }
      yield* host.terminateTree(entry.pid, grace)
      reaped.push(`${entry.role} (pid ${entry.pid})`)
    }
    // Only this task's own socket: a recorded path is a hint that there was one, never a target.
    if (file.tmuxSocket !== undefined) {
      const socket = paths.tmuxSocket
      const killed = yield* host.run({ argv: ["tmux", "-S", socket, "kill-server"], envRemove: ["TMUX", "TMUX_PANE"] }).pipe(
        Effect.timeoutOption(TMUX_KILL_BOUND),
        Effect.map((result) => result._tag === "Some" && result.value.exitCode === 0),
        Effect.orElseSucceed(() => false)
      )
      if (killed) reaped.push(`the tmux server on ${socket}`)
      const info = yield* host.stat(socket).pipe(Effect.option)
      if (info._tag === "Some" && info.value.type === "Other") {
        yield* host.remove(socket)
        reaped.push(`the socket ${socket}`)
      }
    }
    yield* host.remove(path)
    const alreadyGone = gone.length === 0 ? "" : `; already gone: ${gone.join(", ")}`
    yield* task.reportProgress(
      null,
      reaped.length === 0
        ? `a previous run of this task ended without teardown; nothing of it was left running${alreadyGone}`
        : `reaped leftovers of a previous run: ${reaped.join(", ")}${alreadyGone}`
    )
    return true
  }).pipe(
    Effect.catch((error) =>
      TaskContext.use((task) => task.reportProgress(null, `could not reap the leftovers of a previous run: ${error.message}`)).pipe(
        Effect.as(false)
      )
    ),
    Effect.withSpan("CodexSession.reapLeftovers")
  )

const TMUX_KILL_BOUND = Duration.seconds(5)
const RECORD_BOUND = Duration.seconds(10)
const STAT_BOUND = Duration.seconds(5)

const describe = (processes: ReadonlyArray<LaunchedProcess>) =>
  processes.map((entry) => `${entry.role} pid ${entry.pid}`).join(", ")

/**
 * The kernel start time of `pid` (from `/proc/<pid>/stat`), which tells a recorded process from a
 * later one that reused its pid; undefined when it cannot be read.
 * `/proc/<pid>/stat` is "pid (comm) state ppid …"; comm may hold spaces and parentheses, so
 * fields are counted from the last ")": the start time is the 20th field after it.
 * @category constructors
 */
export const startTimeOf = (host: HostShape, pid: number) =>
  host.readFile(`/proc/${pid}/stat`).pipe(
    Effect.map((bytes) => {
      const stat = new TextDecoder().decode(bytes)
      const field = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
      return field !== undefined && /^\d+$/.test(field) ? field : undefined
    }),
    Effect.timeoutOption(STAT_BOUND),
    Effect.map((found) => found._tag === "Some" ? found.value : undefined),
    Effect.orElseSucceed(() => undefined)
  )
