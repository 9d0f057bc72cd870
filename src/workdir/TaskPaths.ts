/**
 * TaskPaths: where one task's files live on its host. Owns the layout and the task-root lookup;
 * creating and filling the directories is `Workdir`'s job.
 *
 * ```
 * <taskdir>/                  0700, the task's private area (not snapshotted)
 *   tmp/                      the task's TMPDIR
 *   tmux.conf
 * <workdir>/                  codex's cwd: <taskdir>/workdir, or an explicit directory
 *   AGENTS.md  optio.log  resume.log  deliverables/  uploads/
 *   bin/                      browser shims (xdg-open, open, …)
 *   home/                     the task's HOME
 *     .codex/                 CODEX_HOME
 *     .config/ .local/share/ .cache/
 *     .local/bin/codex        launch link into the binary cache
 * ```
 * With an explicit workdir the private area is `<workdir>/.optio`, so nothing outside the
 * directory the caller named is touched.
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
 * Every path of one task on its host.
 * @category models
 */
export interface TaskPaths {
  readonly processId: string
  readonly taskdir: string
  readonly workdir: string
  /** Whether the caller named the workdir (it is then never wiped nor removed). */
  readonly explicitWorkdir: boolean
  readonly tmpdir: string
  readonly home: string
  readonly codexHome: string
  readonly xdgConfigHome: string
  readonly xdgDataHome: string
  readonly xdgCacheHome: string
  readonly binDir: string
  readonly launchLink: string
  readonly agentsMd: string
  readonly optioLog: string
  readonly resumeLog: string
  readonly deliverables: string
  readonly uploads: string
  readonly configToml: string
  readonly tmuxConf: string
  /** tmux sockets live in /tmp: a socket path must stay under ~108 bytes whatever the task root. */
  readonly tmuxSocket: string
}

const SAFE_ID = /^[A-Za-z0-9._-]+$/

/**
 * Lays out a task's paths. `workdir` (absolute) overrides `<taskRoot>/<processId>/workdir`.
 * @category constructors
 */
export const taskPaths = (options: {
  readonly processId: string
  readonly taskRoot: string
  readonly workdir?: string | undefined
}): Effect.Effect<TaskPaths, InvalidProcessId> => {
  const { processId } = options
  if (!SAFE_ID.test(processId) || processId === "." || processId === "..") {
    return Effect.fail(new InvalidProcessId({ processId }))
  }
  const explicit = options.workdir !== undefined
  const workdir = stripSlash(options.workdir ?? `${stripSlash(options.taskRoot)}/${processId}/workdir`)
  const taskdir = explicit ? `${workdir}/.optio` : `${stripSlash(options.taskRoot)}/${processId}`
  const home = `${workdir}/home`
  return Effect.succeed({
    processId,
    taskdir,
    workdir,
    explicitWorkdir: explicit,
    tmpdir: `${taskdir}/tmp`,
    home,
    codexHome: `${home}/.codex`,
    xdgConfigHome: `${home}/.config`,
    xdgDataHome: `${home}/.local/share`,
    xdgCacheHome: `${home}/.cache`,
    binDir: `${workdir}/bin`,
    launchLink: `${home}/.local/bin/codex`,
    agentsMd: `${workdir}/AGENTS.md`,
    optioLog: `${workdir}/optio.log`,
    resumeLog: `${workdir}/resume.log`,
    deliverables: `${workdir}/deliverables`,
    uploads: `${workdir}/uploads`,
    configToml: `${home}/.codex/config.toml`,
    tmuxConf: `${taskdir}/tmux.conf`,
    tmuxSocket: `/tmp/optio-cx-${createHash("sha256").update(workdir).digest("hex").slice(0, 16)}.sock`
  })
}

/**
 * The task root on the host: `$OPTIO_CODEX_TASK_ROOT`, else `${XDG_DATA_HOME:-$HOME/.local/share}/optio-codex`,
 * evaluated by the host's shell so the host's environment decides.
 * @category constructors
 */
export const taskRootOn = (host: HostShape): Effect.Effect<string, TaskRootUnresolved | HostError> =>
  host.run({ argv: ["sh", "-c", "printf %s \"${OPTIO_CODEX_TASK_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/optio-codex}\""] }).pipe(
    Effect.flatMap((printed) => {
      const root = stripSlash(printed.stdout.trim())
      return printed.exitCode === 0 && root.startsWith("/")
        ? Effect.succeed(root)
        : Effect.fail(new TaskRootUnresolved({ host: host.label, printed: printed.stdout }))
    })
  )

const stripSlash = (path: string) => path.length > 1 ? path.replace(/\/+$/, "") : path
