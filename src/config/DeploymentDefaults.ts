/**
 * DeploymentDefaults: the settings an optio deployment sets once in the worker's environment
 * rather than in every task's config (the Python reference read them the same way). Each is only a
 * default: what the task's own config (or the session's options) says wins. What was decided, and
 * from where, is returned as notes so the session can say it in the task's progress.
 *
 * - `OPTIO_WIDGET_TUNNEL_BIND` → `widgetBindHost` (the address every widget upstream binds);
 * - `OPTIO_WIDGET_TUNNEL_HOST` → `widgetAdvertisedHost` (the host the published upstream names);
 * - `CODEX_REFRESH_TOKEN_URL_OVERRIDE` → `env.CODEX_REFRESH_TOKEN_URL_OVERRIDE` (codex's token
 *   endpoint; codex itself no longer inherits the worker's environment, so it is passed on here);
 * - `OPTIO_CODEX_REMOTE_TASK_ROOT` → the task root on an SSH host (`SessionOptions.taskRoot`
 *   overrides it; a local host keeps its own `OPTIO_CODEX_TASK_ROOT`).
 *
 * Read through Effect's `Config`, so a worker (or a test) can swap the `ConfigProvider`.
 *
 * @since 0.1.0
 */
import { Config, Effect, Option } from "effect"
import { decodeCodexTaskConfig } from "./CodexTaskConfig.ts"

/**
 * One environment variable that supplies a config field's default (`path` into the config input).
 * @category models
 */
export interface DeploymentSetting {
  readonly path: readonly [string] | readonly [string, string]
  readonly variable: string
}

/**
 * The config defaults read from the environment.
 * @category constants
 */
export const DEPLOYMENT_SETTINGS: ReadonlyArray<DeploymentSetting> = [
  { path: ["widgetBindHost"], variable: "OPTIO_WIDGET_TUNNEL_BIND" },
  { path: ["widgetAdvertisedHost"], variable: "OPTIO_WIDGET_TUNNEL_HOST" },
  { path: ["env", "CODEX_REFRESH_TOKEN_URL_OVERRIDE"], variable: "CODEX_REFRESH_TOKEN_URL_OVERRIDE" }
]

/** The variable naming the task root on SSH hosts. */
export const REMOTE_TASK_ROOT_VARIABLE = "OPTIO_CODEX_REMOTE_TASK_ROOT"

/**
 * The task's config input with the environment's defaults filled in, one note per setting that
 * the environment set (whether it was used or overridden), and the remote task root, if set.
 * @category models
 */
export interface WithDeploymentDefaults {
  readonly input: unknown
  readonly notes: ReadonlyArray<string>
  readonly remoteTaskRoot: Option.Option<string>
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const fromEnvironment = (variable: string) =>
  Config.String(variable).pipe(
    Config.option,
    Effect.map(Option.filter((value: string) => value.trim() !== "")),
    Effect.orElseSucceed(() => Option.none<string>())
  )

/**
 * Fills the config fields the task left unset from the deployment's environment. Input that is
 * not an object is passed on untouched (decoding rejects it with the usual message).
 * @category constructors
 */
export const withDeploymentDefaults = (input: unknown): Effect.Effect<WithDeploymentDefaults> =>
  Effect.gen(function*() {
    const remoteTaskRoot = yield* fromEnvironment(REMOTE_TASK_ROOT_VARIABLE)
    if (!isRecord(input)) return { input, notes: [], remoteTaskRoot }
    const filled: Record<string, unknown> = { ...input }
    const notes: Array<string> = []
    for (const setting of DEPLOYMENT_SETTINGS) {
      const fromEnv = yield* fromEnvironment(setting.variable)
      if (Option.isNone(fromEnv)) continue
      const [field, key] = setting.path
      const parent = key === undefined ? input : input[field]
      const name = key === undefined ? field : `${field}.${key}`
      const given = isRecord(parent) ? parent[key ?? field] : undefined
      if (given !== undefined) {
        notes.push(`${name} from the task config (overrides ${setting.variable})`)
        continue
      }
      if (key === undefined) filled[field] = fromEnv.value
      else filled[field] = { ...(isRecord(input[field]) ? input[field] : {}), [key]: fromEnv.value }
      // Field values may be endpoints with credentials in them: name the source, not the value.
      notes.push(key === undefined ? `${name} ${JSON.stringify(fromEnv.value)} from ${setting.variable}` : `${name} from ${setting.variable}`)
    }
    return { input: filled, notes, remoteTaskRoot }
  })

/**
 * Decodes a task's config after filling the deployment's defaults; the notes say which source won.
 * @category constructors
 */
export const decodeWithDeploymentDefaults = (input: unknown) =>
  Effect.gen(function*() {
    const filled = yield* withDeploymentDefaults(input)
    return { config: yield* decodeCodexTaskConfig(filled.input), notes: filled.notes, remoteTaskRoot: filled.remoteTaskRoot }
  })
