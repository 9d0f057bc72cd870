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

/**
 * Options of `chatgptCodexConfig`.
 * @category models
 */
export interface ChatgptCodexConfigOptions {
  /** The model server's `baseUrl`, e.g. `http://127.0.0.1:PORT/v1`. */
  readonly baseUrl: string
  /**
   * Where codex sends its ChatGPT backend calls (plugins, usage, analytics); default the model
   * server's origin + `/backend-api`, which the scripted server answers with 404s codex tolerates.
   */
  readonly chatgptBaseUrl?: string | undefined
  /** Model codex asks for (default `scripted-model`). */
  readonly model?: string | undefined
  /** Provider id under `[model_providers]` (default `optio-offline-chatgpt`). */
  readonly providerId?: string | undefined
  /** Retries of a failed request (default 1). */
  readonly requestMaxRetries?: number | undefined
  /** Reconnects of a dropped stream (default 1). */
  readonly streamMaxRetries?: number | undefined
}

/**
 * The offline configuration in ChatGPT mode: the provider authenticates with the `auth.json`
 * access token (`requires_openai_auth`), so codex refreshes and rotates credentials as it would
 * against OpenAI. Point its refreshes at a stand-in issuer with the env
 * `CODEX_REFRESH_TOKEN_URL_OVERRIDE` (see StandInIssuer). Credentials stay in the file
 * (`cli_auth_credentials_store = "file"`) so tests and seeds can read them.
 * @category constructors
 */
export const chatgptCodexConfig = (options: ChatgptCodexConfigOptions): { readonly [key: string]: TomlValue } => {
  const providerId = options.providerId ?? "optio-offline-chatgpt"
  return {
    model: options.model ?? "scripted-model",
    model_provider: providerId,
    chatgpt_base_url: options.chatgptBaseUrl ?? `${new URL(options.baseUrl).origin}/backend-api`,
    cli_auth_credentials_store: "file",
    check_for_update_on_startup: false,
    model_providers: {
      [providerId]: {
        name: "optio offline (scripted, ChatGPT auth)",
        base_url: options.baseUrl,
        wire_api: "responses",
        requires_openai_auth: true,
        request_max_retries: options.requestMaxRetries ?? 1,
        stream_max_retries: options.streamMaxRetries ?? 1
      }
    },
    features: { unbounded_connection_retries: false },
    analytics: { enabled: false },
    feedback: { enabled: false }
  }
}

/**
 * Renders the ChatGPT-mode offline configuration as `config.toml` text.
 * @category constructors
 */
export const chatgptCodexConfigToml = (options: ChatgptCodexConfigOptions): string =>
  stringify(chatgptCodexConfig(options))
