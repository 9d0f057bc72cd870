/**
 * SandboxPosture: what codex's sandbox allows for a task, and how each codex surface is told.
 *
 * Owns the resolution from a validated config plus the host's real home directory (codex
 * itself runs with an isolated `$HOME`, so `~` must be expanded here) and the renderers for
 * the TUI, `codex exec`, `codex app-server` and `thread/start`, plus the user's own `-c`
 * overrides. Pure: no I/O, resolved once per run and rendered to every surface.
 *
 * The settings that decide what the agent can reach are pinned on every codex command line
 * (`-c`, which outranks every config file codex reads), on top of the trusted config.toml:
 * sandbox mode, writable roots, network, and what tool commands inherit (codex's default: its
 * own — allowlisted — environment minus names with KEY, SECRET or TOKEN).
 *
 * @since 0.1.0
 */
import type { CodexTaskConfig, SandboxMode } from "./CodexTaskConfig.ts"
import { effectiveSandboxMode } from "./CodexTaskConfig.ts"
import type { TomlValue } from "./Toml.ts"
import { tomlString, tomlValue } from "./Toml.ts"

/**
 * The resolved sandbox: mode, extra writable roots and network, as codex will apply them.
 * @category models
 * @since 0.1.0
 */
export interface SandboxPosture {
  readonly mode: SandboxMode
  /** Absolute, `~`-expanded, without trailing `/` (except `/` itself); workspace-write only. */
  readonly writableRoots: ReadonlyArray<string>
  /** Network for sandboxed tool commands; only ever true under workspace-write. */
  readonly networkAccess: boolean
}

// "/x//" -> "/x", but "/" (or "//") stays "/" rather than becoming "" ([P17]).
const stripTrailingSlashes = (path: string): string => /^\/+$/.test(path) ? "/" : path.replace(/\/+$/, "")

const expandHome = (path: string, home: string): string => {
  if (path === "~") return home
  if (!path.startsWith("~/")) return path
  return `${home === "/" ? "" : home}/${path.slice(2)}`
}

/**
 * Resolves the posture for a validated config; `hostHome` is the real home of the host user.
 *
 * **Gotchas** `hostHome` should be absolute; it is used as given apart from trailing `/`.
 * `~user` forms are left untouched (the config decoder already rejects them).
 * @category constructors
 * @since 0.1.0
 */
export const resolveSandboxPosture = (
  config: Pick<CodexTaskConfig, "sandbox" | "fsIsolation" | "extraAllowedDirs" | "networkAccess">,
  hostHome: string,
): SandboxPosture => {
  const mode = effectiveSandboxMode(config)
  const workspaceWrite = mode === "workspace-write"
  const home = stripTrailingSlashes(hostHome)
  const writableRoots = workspaceWrite
    ? (config.extraAllowedDirs ?? [])
      .filter((dir) => dir.mode === "rw")
      .map((dir) => stripTrailingSlashes(expandHome(dir.path, home)))
    : []
  return Object.freeze({
    mode,
    writableRoots: Object.freeze(writableRoots),
    networkAccess: config.networkAccess && workspaceWrite,
  })
}

/**
 * The `-c` pairs that pin the posture whatever a config file says: mode, writable roots (none
 * but the workdir's defaults outside workspace-write), network, and what tool commands inherit.
 * @category rendering
 */
export const sandboxConfigOverrides = (posture: SandboxPosture): Array<string> => [
  "-c",
  `sandbox_mode=${tomlString(posture.mode)}`,
  "-c",
  `sandbox_workspace_write.writable_roots=[${posture.writableRoots.map(tomlString).join(", ")}]`,
  "-c",
  `sandbox_workspace_write.network_access=${posture.networkAccess}`,
  "-c",
  "shell_environment_policy.inherit=\"all\"",
  "-c",
  "shell_environment_policy.ignore_default_excludes=false"
]

/**
 * Sandbox flags for the interactive TUI: `--sandbox <mode>` then the overrides.
 * @category rendering
 */
export const tuiSandboxArgs = (posture: SandboxPosture): Array<string> => [
  "--sandbox",
  posture.mode,
  ...sandboxConfigOverrides(posture),
]

/**
 * Sandbox flags for `codex exec`, which takes the same `--sandbox` flag as the TUI.
 * @category rendering
 */
export const execSandboxArgs = (posture: SandboxPosture): Array<string> => tuiSandboxArgs(posture)

/**
 * Sandbox flags for `codex app-server`: overrides only, it has no `--sandbox` flag.
 * @category rendering
 */
export const appServerSandboxArgs = (posture: SandboxPosture): Array<string> => sandboxConfigOverrides(posture)

/**
 * The `sandbox` field of an app-server `thread/start` request (kebab-case mode).
 * @category rendering
 */
export const threadStartSandbox = (posture: SandboxPosture): SandboxMode => posture.mode

/**
 * Renders the user's `configOverrides` as `-c key=value` pairs, in key order.
 *
 * **Gotchas** keys are written as given; `decodeCodexTaskConfig` has already checked them.
 * @category rendering
 */
export const configOverrideArgs = (overrides: Readonly<Record<string, TomlValue>>): Array<string> =>
  Object.entries(overrides).flatMap(([key, value]) => ["-c", `${key}=${tomlValue(value)}`])
