/**
 * TaskPaths: where one task's files live on its host. Owns the layout and the task-root lookup;
 * creating and filling the directories is `Workdir`'s job.
 *
 * The agent controls every byte under its writable roots — the workdir, /tmp and its TMPDIR — so
 * nothing the worker or codex trusts lives there: codex's home, its config and credentials, the
 * task's HOME (a login shell reads ~/.profile outside the sandbox), the launch link, the pid record
 * and the tmux socket sit in a private directory of the task root, named by a generated id (a
 * hash, never the workdir or a caller id: no shell ever sees caller text in a trusted path).
 *
 * ```
 * <task root>/                root of every task on this host (operator-chosen, validated)
 *   run/<id>/                 0700, worker-owned, outside every writable root (not snapshotted)
 *     home/                   the task's HOME; XDG_CONFIG_HOME=home/.config, XDG_DATA_HOME=home/.local/share
 *       .codex/               CODEX_HOME: config.toml, auth.json, sessions/ (rollouts), …
 *       .local/bin/codex      launch link into the binary cache
 *     pids.json  tmux.conf  tmux.sock
 *     restore/                a snapshot is extracted here, then moved into place
 *   tmp/<id>/                 the task's TMPDIR and XDG_CACHE_HOME (agent-writable: codex's
 *                             sandbox opens $TMPDIR, so it is kept apart from run/<id>)
 *   <processId>/workdir/      the workdir when the caller names none (wiped at every start)
 * <workdir>/                  codex's cwd and the agent's: only what the agent must see
 *   AGENTS.md  optio.log  resume.log  deliverables/  uploads/
 *   bin/                      browser shims (xdg-open, open, …)
 * ```
 * The id is a hash of the workdir path, so a restart of the same task finds its private
 * directory (and a dead run's pid record) again; two workdirs never share one.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { createHash } from "node:crypto"
import type { HostError, HostShape } from "../host/Host.ts"

/**
 * The process id cannot be used as a directory name.
 * @category errors
 */
export class InvalidProcessId extends Schema.TaggedError<InvalidProcessId>()("InvalidProcessId", {
  processId: Schema.String
}) {
  override get message(): string {
    return `process id ${JSON.stringify(this.processId)} is not safe as a path segment: use letters, digits, '.', '_' and '-' only`
  }
}

/**
 * The task root could not be determined on the host.
 * @category errors
 */
export class TaskRootUnresolved extends Schema.TaggedError<TaskRootUnresolved>()("TaskRootUnresolved", {
  host: Schema.String,
  printed: Schema.String
}) {
  override get message(): string {
    return `could not resolve the task root on ${this.host} (the host printed ${JSON.stringify(this.printed)}); set OPTIO_CODEX_TASK_ROOT to an absolute path`
  }
}

/**
 * The task root cannot hold a task's trusted files: a path a shell sees must be plain (codex
 * sources its shell snapshot from a double-quoted CODEX_HOME path) and the tmux socket path must
 * fit a unix socket address.
 * @category errors
 */
export class TaskRootUnsafe extends Schema.TaggedError<TaskRootUnsafe>()("TaskRootUnsafe", {
  taskRoot: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `the task root ${JSON.stringify(this.taskRoot)} cannot be used: ${this.reason}; set OPTIO_CODEX_TASK_ROOT to a short absolute path of letters, digits and . _ - + / only`
  }
}

/**
 * Every path of one task on its host.
 * @category models
 */
export interface TaskPaths {
  readonly processId: string
  /** The task's private, worker-owned directory (`run/<id>`): nothing in it is agent-writable. */
  readonly taskdir: string
  readonly workdir: string
  /** Whether the caller named the workdir (it is then never wiped, chmod'ed nor removed). */
  readonly explicitWorkdir: boolean
  /** What a clean end removes besides `taskdir`: the task-owned workdir's directory, the scratch dir. */
  readonly disposable: ReadonlyArray<string>
  /** The task's TMPDIR (agent-writable, outside `taskdir`). */
  readonly tmpdir: string
  readonly home: string
  readonly codexHome: string
  readonly xdgConfigHome: string
  readonly xdgDataHome: string
  readonly xdgCacheHome: string
  /**
   * The shims on codex's PATH (browser launchers, `lsb_release`), in the private task dir: codex
   * itself runs what it finds on its PATH outside the sandbox, so no PATH entry is agent-writable.
   */
  readonly binDir: string
  readonly launchLink: string
  readonly agentsMd: string
  readonly optioLog: string
  readonly resumeLog: string
  readonly deliverables: string
  readonly uploads: string
  readonly configToml: string
  readonly pidsFile: string
  readonly tmuxConf: string
  readonly tmuxSocket: string
  /** Where a snapshot is extracted before it is moved into the workdir and CODEX_HOME. */
  readonly restoreStaging: string
}

const SAFE_ID = /^[A-Za-z0-9._-]+$/

/**
 * Lays out a task's paths under `taskRoot`. `workdir` (absolute) overrides
 * `<taskRoot>/<processId>/workdir`.
 * @category constructors
 */
export const taskPaths = (options: {
  readonly processId: string
  readonly taskRoot: string
  readonly workdir?: string | undefined
}): Effect.Effect<TaskPaths, InvalidProcessId | TaskRootUnsafe> => {
  const { processId } = options
  if (!SAFE_ID.test(processId) || processId === "." || processId === "..") {
    return Effect.fail(new InvalidProcessId({ processId }))
  }
  const root = stripSlash(options.taskRoot)
  if (!PLAIN_ROOT.test(root)) {
    return Effect.fail(new TaskRootUnsafe({ taskRoot: options.taskRoot, reason: "it is not an absolute path of plain characters" }))
  }
  const explicit = options.workdir !== undefined
  const workdir = stripSlash(options.workdir ?? `${root}/${processId}/workdir`)
  const id = createHash("sha256").update(`optio-codex task\0${workdir}`).digest("hex").slice(0, 16)
  const taskdir = `${root}/run/${id}`
  const tmuxSocket = `${taskdir}/tmux.sock`
  if (Buffer.byteLength(tmuxSocket) > MAX_SOCKET_PATH) {
    return Effect.fail(new TaskRootUnsafe({
      taskRoot: options.taskRoot,
      reason: `the tmux socket path would be ${Buffer.byteLength(tmuxSocket)} bytes, over the ${MAX_SOCKET_PATH} a unix socket allows`
    }))
  }
  const scratch = `${root}/tmp/${id}`
  const home = `${taskdir}/home`
  const codexHome = `${home}/.codex`
  return Effect.succeed({
    processId,
    taskdir,
    workdir,
    explicitWorkdir: explicit,
    disposable: explicit ? [scratch] : [scratch, `${root}/${processId}`],
    tmpdir: scratch,
    home,
    codexHome,
    xdgConfigHome: `${home}/.config`,
    xdgDataHome: `${home}/.local/share`,
    xdgCacheHome: `${scratch}/cache`,
    binDir: `${taskdir}/bin`,
    launchLink: `${home}/.local/bin/codex`,
    agentsMd: `${workdir}/AGENTS.md`,
    optioLog: `${workdir}/optio.log`,
    resumeLog: `${workdir}/resume.log`,
    deliverables: `${workdir}/deliverables`,
    uploads: `${workdir}/uploads`,
    configToml: `${codexHome}/config.toml`,
    pidsFile: `${taskdir}/pids.json`,
    tmuxConf: `${taskdir}/tmux.conf`,
    tmuxSocket,
    restoreStaging: `${taskdir}/restore`
  })
}

// Absolute, no shell metacharacters, no `..` segment: safe inside double quotes and as a tmux arg.
const PLAIN_ROOT = /^(?!.*(?:^|\/)\.\.(?:\/|$))\/[A-Za-z0-9._+\/-]*$/
// sun_path is 108 bytes on Linux, the terminating NUL included.
const MAX_SOCKET_PATH = 107

/**
 * The task root on the host: `$OPTIO_CODEX_TASK_ROOT`, else `${XDG_DATA_HOME:-$HOME/.local/share}/optio-codex`,
 * evaluated by the host's shell so the host's environment decides.
 * @category constructors
 */
export const taskRootOn = (host: HostShape): Effect.Effect<string, TaskRootUnresolved | HostError> =>
  host.facts.pipe(
    Effect.flatMap((facts) => {
      const root = stripSlash(facts.taskRoot.trim())
      return root.startsWith("/")
        ? Effect.succeed(root)
        : Effect.fail(new TaskRootUnresolved({ host: host.label, printed: facts.taskRoot }))
    })
  )

const stripSlash = (path: string) => path.length > 1 ? path.replace(/\/+$/, "") : path
