/**
 * DeploymentDefaults: the settings an optio deployment sets once in the worker's environment
 * rather than in every task's config (the Python reference read them the same way). Each is only a
 * default: a value in the task's own config wins. What was decided, and from where, is returned as
 * notes so the session can say it in the task's progress.
 *
 * - `OPTIO_WIDGET_TUNNEL_BIND` → `widgetBindHost` (the address every widget upstream binds);
 * - `OPTIO_WIDGET_TUNNEL_HOST` → `widgetAdvertisedHost` (the host the published upstream names).
 *
 * Read through Effect's `Config`, so a worker (or a test) can swap the `ConfigProvider`.
 *
 * @since 0.1.0
 */
import { Config, Effect, Option } from "effect"
import { decodeCodexTaskConfig } from "./CodexTaskConfig.ts"

/**
 * One environment variable that supplies a config field's default.
 * @category models
 */
export interface DeploymentSetting {
  readonly field: string
  readonly variable: string
}

/**
 * The deployment settings read from the environment.
 * @category constants
 */
export const DEPLOYMENT_SETTINGS: ReadonlyArray<DeploymentSetting> = [
  { field: "widgetBindHost", variable: "OPTIO_WIDGET_TUNNEL_BIND" },
  { field: "widgetAdvertisedHost", variable: "OPTIO_WIDGET_TUNNEL_HOST" }
]

/**
 * The task's config input with the environment's defaults filled in, and one note per setting
 * that the environment set (whether it was used or overridden by the config).
 * @category models
 */
export interface WithDeploymentDefaults {
  readonly input: unknown
  readonly notes: ReadonlyArray<string>
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Fills the config fields the task left unset from the deployment's environment. Input that is
 * not an object is passed on untouched (decoding rejects it with the usual message).
 * @category constructors
 */
export const withDeploymentDefaults = (input: unknown): Effect.Effect<WithDeploymentDefaults> =>
  Effect.gen(function*() {
    if (!isRecord(input)) return { input, notes: [] }
    const filled: Record<string, unknown> = { ...input }
    const notes: Array<string> = []
    for (const setting of DEPLOYMENT_SETTINGS) {
      const fromEnv = yield* Config.String(setting.variable).pipe(Config.option, Effect.orElseSucceed(() => Option.none<string>()))
      if (Option.isNone(fromEnv) || fromEnv.value.trim() === "") continue
      if (input[setting.field] !== undefined) {
        notes.push(`${setting.field} ${JSON.stringify(input[setting.field])} from the task config (overrides ${setting.variable}=${JSON.stringify(fromEnv.value)})`)
      } else {
        filled[setting.field] = fromEnv.value
        notes.push(`${setting.field} ${JSON.stringify(fromEnv.value)} from ${setting.variable}`)
      }
    }
    return { input: filled, notes }
  })

/**
 * Decodes a task's config after filling the deployment's defaults; the notes say which source won.
 * @category constructors
 */
export const decodeWithDeploymentDefaults = (input: unknown) =>
  Effect.gen(function*() {
    const filled = yield* withDeploymentDefaults(input)
    return { config: yield* decodeCodexTaskConfig(filled.input), notes: filled.notes }
  })
