/**
 * A conversation task logged in through ChatGPT (a seed) against a scripted model server: codex's
 * provider settings come from the task's config (a seed's config.toml is never merged), and its
 * own refreshes go to the stand-in issuer unless the session points them at the token broker.
 */
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfig } from "../../src/modelserver/OfflineCodexConfig.ts"
import type { StandInIssuer } from "../../src/modelserver/StandInIssuer.ts"

export const chatgptTask = (issuer: StandInIssuer, baseUrl: string, instructions: string, extra: Record<string, unknown> = {}) => {
  const { model: _model, ...configOverrides } = chatgptCodexConfig({ baseUrl, requestMaxRetries: 0 })
  return {
    consumerInstructions: instructions,
    mode: "conversation",
    model: "scripted-model",
    configOverrides,
    env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl },
    ...extra
  }
}

/** The model server's answer to an expired access token: codex reloads auth.json, then refreshes. */
export const expired401 = () =>
  ModelScript.httpError(401, { body: { error: { message: "token expired", type: "invalid_request_error", code: "token_expired" } } })
