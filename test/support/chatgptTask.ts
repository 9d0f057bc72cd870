/**
 * A conversation task logged in through ChatGPT (a seed) against a scripted model server: codex's
 * provider settings come from the task's config (a seed's config.toml is never merged), and its
 * own refreshes go to the stand-in issuer unless the session points them at the token broker.
 */
import { Effect, Stream } from "effect"
import { AUTH_MEMBER, CONFIG_MEMBER, packSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfig, chatgptCodexConfigToml } from "../../src/modelserver/OfflineCodexConfig.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
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

/** A seed holding a minted ChatGPT login and the ChatGPT-mode offline config (in `poolKey`, if given). */
export const mintedSeed = (issuer: StandInIssuer, baseUrl: string, poolKey?: string) =>
  Effect.gen(function*() {
    const minted = yield* issuer.mintAuthJson()
    const seeds = yield* SeedStore
    const seed = yield* seeds.create({
      blob: Stream.succeed(packSeedArchive([
        { name: AUTH_MEMBER, bytes: minted.bytes, mode: 0o600 },
        { name: CONFIG_MEMBER, bytes: new TextEncoder().encode(chatgptCodexConfigToml({ baseUrl, requestMaxRetries: 0 })), mode: 0o600 }
      ])),
      ...(poolKey === undefined ? {} : { poolKey })
    })
    return { seed, minted }
  })
