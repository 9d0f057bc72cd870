/**
 * CodexConfigToml: renders a task's `CODEX_HOME/config.toml` with a TOML library (never by
 * string interpolation) from trusted inputs only: the settings an unattended, isolated codex
 * needs, the task's model and its `configOverrides`. Nothing is read back from disk: config.toml
 * is code to codex (`mcp_servers`, `notify` start processes outside the sandbox), so whatever a
 * seed, a snapshot or an earlier run left there is replaced at every launch, never merged.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"
import { stringify } from "smol-toml"
import type { TomlValue } from "../config/Toml.ts"
import { tomlKeyPath } from "../config/Toml.ts"

/**
 * A configOverrides key could not be used.
 * @category errors
 */
export class InvalidCodexConfig extends Schema.TaggedError<InvalidCodexConfig>()("InvalidCodexConfig", {
  detail: Schema.String
}) {
  override get message(): string {
    return `cannot build codex's config.toml: ${this.detail}`
  }
}

/**
 * What a task contributes to config.toml.
 * @category models
 */
export interface CodexConfigSettings {
  /**
   * The workdir, pre-trusted so the TUI never stops at the "Trust this folder?" screen (an
   * explicitly untrusted one stops at a "Folder access" screen instead). Trust lets codex read a
   * project-local `<workdir>/.codex/config.toml`; codex's sandbox keeps the agent from creating
   * `.codex` there (verified), and a restore never brings one back (see `placeRestored`).
   */
  readonly workdir: string
  readonly model?: string | undefined
  readonly reasoningEffort?: string | undefined
  /** Dotted keys (`model_providers.local.base_url`) to TOML values, applied last. */
  readonly overrides?: Readonly<Record<string, TomlValue>> | undefined
}

type Table = { [key: string]: unknown }

/**
 * Renders config.toml from `settings` alone.
 * @category constructors
 */
export const renderCodexConfig = (settings: CodexConfigSettings): Result.Result<string, InvalidCodexConfig> => {
  const table: Table = {}
  // An unattended task must never stop at a prompt or reach out for updates and telemetry.
  setPath(table, ["check_for_update_on_startup"], false)
  // Credentials stay in CODEX_HOME/auth.json where save-back and seed capture can see them.
  setPath(table, ["cli_auth_credentials_store"], "file")
  setPath(table, ["analytics", "enabled"], false)
  setPath(table, ["feedback", "enabled"], false)
  // The TUI's app-server daemon is setsid'd and outlives tmux: one process per task instead.
  setPath(table, ["features", "daemon_auto_start"], false)
  // The shell snapshot sources a file under CODEX_HOME through `bash -c` outside the sandbox;
  // without it every tool command is a login shell inside the sandbox instead. Measured here
  // (bench/shellSnapshot.ts) it saves nothing per command, so it is off.
  setPath(table, ["features", "shell_snapshot"], false)
  setPath(table, ["projects", settings.workdir, "trust_level"], "trusted")
  if (settings.model !== undefined) setPath(table, ["model"], settings.model)
  if (settings.reasoningEffort !== undefined) setPath(table, ["model_reasoning_effort"], settings.reasoningEffort)
  for (const [dotted, value] of Object.entries(settings.overrides ?? {})) {
    const path = tomlKeyPath(dotted)
    if (Result.isFailure(path)) return Result.fail(new InvalidCodexConfig({ detail: path.failure.message }))
    setPath(table, path.success, value)
  }
  return Result.succeed(stringify(table))
}

const setPath = (table: Table, path: ReadonlyArray<string>, value: unknown): void => {
  let cursor = table
  path.slice(0, -1).forEach((key) => {
    // Only a table's own keys are followed: never a prototype's.
    const next = Object.hasOwn(cursor, key) ? cursor[key] : undefined
    if (isTable(next)) {
      cursor = next
      return
    }
    const fresh: Table = {}
    cursor[key] = fresh
    cursor = fresh
  })
  const last = path[path.length - 1]
  if (last === undefined) return
  if (last === "__proto__") return
  const current = Object.hasOwn(cursor, last) ? cursor[last] : undefined
  // A table merges into a table (an override of `features` keeps the task's own feature flags).
  if (isTable(current) && isTable(value)) {
    for (const [key, inner] of Object.entries(value)) setPath(current, [key], inner)
    return
  }
  cursor[last] = value
}

const isTable = (value: unknown): value is Table =>
  typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date)
