/**
 * Workdir: prepares one task's directories on its host before codex starts — the private task
 * dir (HOME, CODEX_HOME, `config.toml`, the shims on codex's PATH), the TMPDIR, and in the workdir
 * `AGENTS.md`, a fresh `optio.log` and the `resume.log` line — and computes the exact environment
 * codex is launched with. It does not start anything.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Result } from "effect"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import { Host } from "../host/Host.ts"
import { composeAgentsMd } from "../protocol/AgentsMd.ts"
import { BROWSER_SHIM_NAMES, browserShimScript } from "../protocol/BrowserShim.ts"
import { renderCodexConfig } from "./CodexConfigToml.ts"
import { LSB_RELEASE_SHIM_NAME, lsbReleaseShimScript } from "./LsbReleaseShim.ts"
import type { TaskPaths } from "./TaskPaths.ts"

/**
 * Creates and fills the task's directories. The private task dir and the TMPDIR start empty at
 * every start (nothing an earlier run left there is trusted or merged); a task-owned workdir is
 * wiped too, while an explicit one is kept as it is (never chmod'ed) and only the files the task
 * owns in it are rewritten. `afterWipe` runs once the empty private dir and workdir exist and
 * before anything else is written (a snapshot restore, a planted seed); config.toml is rendered
 * afterwards from trusted inputs only.
 * @category constructors
 */
export const prepareWorkdir = Effect.fn("Workdir.prepare")(function*<E = never, R = never>(
  config: CodexTaskConfig,
  paths: TaskPaths,
  options: {
    readonly afterWipe?: Effect.Effect<void, E, R>
    /** Files the agent already knew that this start rewrote (a resume): named in resume.log. */
    readonly refreshed?: ReadonlyArray<string>
  } = {}
) {
  const host = yield* Host
  yield* host.remove(paths.taskdir)
  yield* host.makeDirectory(paths.taskdir, { mode: 0o700 })
  yield* host.remove(paths.tmpdir)
  yield* host.makeDirectory(paths.tmpdir, { mode: 0o700 })
  if (paths.explicitWorkdir) {
    yield* host.makeDirectory(paths.workdir)
  } else {
    yield* host.remove(paths.workdir)
    yield* host.makeDirectory(paths.workdir, { mode: 0o700 })
  }
  yield* host.makeDirectory(paths.codexHome, { mode: 0o700 })
  if (options.afterWipe !== undefined) yield* options.afterWipe
  for (const dir of [paths.xdgConfigHome, paths.xdgDataHome, paths.xdgCacheHome, `${paths.home}/.local/bin`, paths.binDir, paths.deliverables]) {
    yield* host.makeDirectory(dir)
  }

  const rendered = renderCodexConfig({
    workdir: paths.workdir,
    model: config.model,
    reasoningEffort: config.reasoningEffort,
    overrides: config.configOverrides
  })
  if (Result.isFailure(rendered)) return yield* rendered.failure
  yield* host.writeFile(paths.configToml, rendered.success, { mode: 0o600 })

  yield* host.writeFile(paths.agentsMd, composeAgentsMd({
    instructions: config.consumerInstructions,
    hostProtocol: config.hostProtocol,
    supportsResume: config.supportsResume,
    workdirExclude: config.workdirExclude ?? null,
    fileDownload: config.fileDownload
  }), { mode: 0o600 })
  yield* host.writeFile(paths.optioLog, "", { mode: 0o600 })
  const shim = browserShimScript(paths.optioLog)
  for (const name of BROWSER_SHIM_NAMES) yield* host.writeFile(`${paths.binDir}/${name}`, shim, { mode: 0o755 })
  const lsbShim = lsbReleaseShimScript(yield* host.facts)
  if (lsbShim !== undefined) yield* host.writeFile(`${paths.binDir}/${LSB_RELEASE_SHIM_NAME}`, lsbShim, { mode: 0o755 })
  if (config.supportsResume) {
    const now = new Date(yield* Clock.currentTimeMillis).toISOString().replace(/\.\d{3}Z$/, "Z")
    const refreshed = options.refreshed ?? []
    // The agent owns the workdir: never append through a symlink or into a FIFO it left there.
    yield* host.appendRegularFile(paths.resumeLog, `${now}${refreshed.length === 0 ? "" : ` REFRESHED:${refreshed.join(",")}`}\n`, { timeout: "10 seconds" }).pipe(
      Effect.catchIf(
        (error) => error.reason === "SymlinkRefused" || error.reason === "NotRegularFile" || error.reason === "TimedOut",
        (error) => Effect.logWarning(`resume.log not written: ${error.reason} (${error.detail})`)
      )
    )
  }
})

/**
 * The only variables of the host's own environment a codex process inherits (with
 * `Command.envAllow`): locale and terminal type. Everything else codex gets is set explicitly by
 * {@link launchEnvironment}; the worker's secrets never reach it, nor the agent.
 * @category constants
 */
export const CODEX_ENV_ALLOW: ReadonlyArray<string> = ["LANG", "LANGUAGE", "LC_*", "TERM"]

/**
 * The environment codex runs with (on top of {@link CODEX_ENV_ALLOW}): the isolation variables,
 * the caller's `env` on top, and a PATH composed for the host — the launch link's dir and the
 * shims first, then the caller's PATH if it set one, else the host's own (never the worker's,
 * which is wrong on a remote host).
 * @category constructors
 */
export const launchEnvironment = (
  config: CodexTaskConfig,
  paths: TaskPaths,
  hostPath: string
): Record<string, string> => {
  const { PATH: callerPath, ...callerEnv } = config.env ?? {}
  return {
    HOME: paths.home,
    CODEX_HOME: paths.codexHome,
    XDG_CONFIG_HOME: paths.xdgConfigHome,
    XDG_DATA_HOME: paths.xdgDataHome,
    XDG_CACHE_HOME: paths.xdgCacheHome,
    TMPDIR: paths.tmpdir,
    BROWSER: `${paths.binDir}/xdg-open`,
    ...callerEnv,
    PATH: `${paths.home}/.local/bin:${paths.binDir}:${callerPath ?? hostPath}`
  }
}

/**
 * The host's own PATH, as its shell sees it; the Host asks once (a shell round trip per task start
 * otherwise — ~14 ms locally, an SSH exec remotely).
 * @category constructors
 */
export const hostPathOn = Effect.gen(function*() {
  const host = yield* Host
  return (yield* host.facts).path
})
