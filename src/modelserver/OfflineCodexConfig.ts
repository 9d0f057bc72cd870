/**
 * OfflineCodexConfig: the CODEX_HOME `config.toml` that points codex 0.169.0 at a scripted model
 * server instead of OpenAI, and the dummy API key its provider reads.
 *
 * Every key below is accepted by `codex exec --strict-config` (checked by a test); codex without
 * `--strict-config` silently ignores keys it does not know, so a typo here would go unnoticed.
 * Owns only this rendering; the per-task config (sandbox, trust, features) belongs to workdir/.
 *
 * @since 0.1.0
 */
import { stringify } from "smol-toml"
import type { TomlValue } from "../config/Toml.ts"

/**
 * Environment variable the offline provider reads its API key from (`env_key`).
 * @category constants
 */
export const OFFLINE_API_KEY_ENV = "OPTIO_OFFLINE_API_KEY"

/**
 * The dummy key; codex only needs the variable to be set and non-empty.
 * @category constants
 */
export const OFFLINE_API_KEY_VALUE = "sk-optio-offline"

/**
 * Options of `offlineCodexConfig`.
 * @category models
 */
export interface OfflineCodexConfigOptions {
  /** The server's `baseUrl`, e.g. `http://127.0.0.1:PORT/v1`. */
  readonly baseUrl: string
  /** Model codex asks for (default `scripted-model`; codex warns that it has no metadata for it). */
  readonly model?: string | undefined
  /** Provider id under `[model_providers]` (default `optio-offline`). */
  readonly providerId?: string | undefined
  /** Variable holding the API key (default `OFFLINE_API_KEY_ENV`). */
  readonly envKey?: string | undefined
  /** Retries of a failed request (default 1; codex's own default is 4). */
  readonly requestMaxRetries?: number | undefined
  /** Reconnects of a dropped stream (default 1; codex's own default is 5). */
  readonly streamMaxRetries?: number | undefined
}

/**
 * The offline configuration as a TOML-ready object, for callers that merge in their own keys.
 * @category constructors
 */
export const offlineCodexConfig = (options: OfflineCodexConfigOptions): { readonly [key: string]: TomlValue } => {
  const providerId = options.providerId ?? "optio-offline"
  return {
    model: options.model ?? "scripted-model",
    model_provider: providerId,
    // The npm launcher would otherwise offer an update; a plain binary still checks the network.
    check_for_update_on_startup: false,
    model_providers: {
      [providerId]: {
        name: "optio offline (scripted)",
        base_url: options.baseUrl,
        wire_api: "responses",
        env_key: options.envKey ?? OFFLINE_API_KEY_ENV,
        // Few retries: a vanished local server should fail the turn in about a second, not hang.
        request_max_retries: options.requestMaxRetries ?? 1,
        stream_max_retries: options.streamMaxRetries ?? 1
      }
    },
    // Without this codex waits "for network" forever when the server is gone.
    features: { unbounded_connection_retries: false },
    analytics: { enabled: false },
    feedback: { enabled: false }
  }
}

/**
 * Renders the offline configuration as `config.toml` text.
 * @category constructors
 */
export const offlineCodexConfigToml = (options: OfflineCodexConfigOptions): string =>
  stringify(offlineCodexConfig(options))

/**
 * The environment the offline provider needs: `{ [envKey]: dummy key }`.
 * @category constructors
 */
export const offlineCodexEnv = (options?: { readonly envKey?: string | undefined }): Record<string, string> => ({
  [options?.envKey ?? OFFLINE_API_KEY_ENV]: OFFLINE_API_KEY_VALUE
})
