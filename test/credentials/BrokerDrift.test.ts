/**
 * Drift guard for the token broker: the codex mechanism it relies on, checked on the pinned codex
 * binary (real `codex exec`, the scripted model server, the stand-in issuer behind the broker).
 * If any of these change in a codex upgrade, these tests fail:
 *
 * - codex sends its refresh to `CODEX_REFRESH_TOKEN_URL_OVERRIDE`, and that env wins over the
 *   issuer auth.json names (`tokens.oauth_provenance.issuer`, which the agent cannot write either);
 * - the request is a JSON POST with the refresh token in `refresh_token` (the broker reads the
 *   handle there) and codex accepts `{access_token, id_token, refresh_token}` back, keeping the
 *   handle as its refresh token and using the new access token at once;
 * - a 401 `{"error":{"code":"refresh_token_expired"}}` fails the turn and leaves auth.json alone.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { PINNED_CODEX_VERSION } from "../../src/binary/BinaryCache.ts"
import { AUTH_MEMBER, packSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import { tokenFingerprint } from "../../src/modelserver/ModelRequest.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfigToml } from "../../src/modelserver/OfflineCodexConfig.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { codexExec, offlineCodexDirs } from "../support/offlineCodex.ts"

const expired401 = () =>
  ModelScript.httpError(401, { body: { error: { message: "token expired", type: "invalid_request_error", code: "token_expired" } } })

const env = () =>
  TokenBroker.layer({}).pipe(Layer.provideMerge(Layer.mergeAll(Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)), FetchHttpClient.layer)))

/** A seed whose auth.json names `decoy` as its issuer; the broker is told the real one. */
const brokeredHome = (name: string, baseUrl: string, options: { readonly revoked?: boolean } = {}) =>
  Effect.gen(function*() {
    const issuer = yield* startStandInIssuer()
    const decoy = yield* startStandInIssuer()
    const minted = yield* issuer.mintAuthJson()
    const auth = JSON.parse(new TextDecoder().decode(minted.bytes)) as { tokens: Record<string, unknown> }
    auth.tokens["oauth_provenance"] = { issuer: decoy.url, client_id: "app_EMoamEEZ73f0CkXaXp7hrann" }
    const store = yield* SeedStore
    const seed = yield* store.create({
      blob: Stream.succeed(packSeedArchive([{ name: AUTH_MEMBER, bytes: new TextEncoder().encode(JSON.stringify(auth)), mode: 0o600 }]))
    })
    const broker = yield* TokenBroker
    const attach = Effect.map(broker.attach({ seedId: seed.seedId, upstreamTokenUrl: issuer.tokenUrl }), Option.getOrThrow)
    // A revoked handle: its task detached (as at teardown, or after a lost lease).
    const task = options.revoked === true ? yield* Effect.scoped(attach) : yield* attach
    const base = yield* offlineCodexDirs(name, { baseUrl })
    const dirs = { ...base, env: { ...base.env, CODEX_REFRESH_TOKEN_URL_OVERRIDE: broker.tokenUrl } }
    writeFileSync(join(dirs.codexHome, "config.toml"), chatgptCodexConfigToml({ baseUrl, requestMaxRetries: 0 }))
    const authPath = join(dirs.codexHome, "auth.json")
    writeFileSync(authPath, Redacted.value(task.authJson), { mode: 0o600 })
    return { issuer, decoy, minted, task, dirs, authPath, broker }
  })

describe(`drift guard: the token-broker mechanism on codex ${PINNED_CODEX_VERSION}`, () => {
  it.live("codex refreshes at CODEX_REFRESH_TOKEN_URL_OVERRIDE (over the auth.json issuer) with the handle, and takes the broker's answer", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([expired401(), expired401(), ModelScript.text("Brokered and answered.")])
      const { issuer, decoy, minted, task, dirs, authPath, broker } = yield* brokeredHome("drift-broker", server.baseUrl)
      const exit = yield* codexExec(dirs, ["--skip-git-repo-check", "--sandbox", "read-only", "Say hi"]).pipe(Effect.timeout("60 seconds"))
      assert.strictEqual(exit.code, 0, `${exit.stderr}\n${exit.stdout}`)
      assert.include(exit.stdout, "Brokered and answered.")
      assert.deepStrictEqual(yield* decoy.tokenRequests, [], "the env override wins over tokens.oauth_provenance.issuer")
      const grants = yield* issuer.tokenRequests
      assert.strictEqual(grants.length, 1, "the broker refreshed upstream once")
      assert.strictEqual(grants[0]?.refreshToken, minted.refreshToken)
      assert.strictEqual((yield* broker.stats).served, 1, "codex's refresh reached the broker and was answered")
      const after = JSON.parse(readFileSync(authPath, "utf8")) as { tokens: Record<string, unknown> }
      assert.strictEqual(after.tokens["refresh_token"], Redacted.value(task.handle), "codex keeps the handle")
      const newAccess = (yield* issuer.accessTokens).at(-1)!
      assert.strictEqual(after.tokens["access_token"], newAccess)
      const calls = (yield* server.requests).filter((r) => r.path === "/v1/responses")
      assert.strictEqual(calls.at(-1)?.bearerFingerprint, tokenFingerprint(newAccess))
      assert.notInclude(readFileSync(authPath, "utf8"), minted.refreshToken)
    }).pipe(Effect.scoped, Effect.provide(env())))

  it.live("the broker's refusal (401 refresh_token_expired) fails the turn and leaves auth.json alone", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([expired401(), expired401(), ModelScript.text("never reached")])
      const { issuer, authPath, broker, dirs } = yield* brokeredHome("drift-refused", server.baseUrl, { revoked: true })
      const before = readFileSync(authPath, "utf8")
      const exit = yield* codexExec(dirs, ["--skip-git-repo-check", "--sandbox", "read-only", "Say hi"]).pipe(Effect.timeout("60 seconds"))
      assert.notInclude(exit.stdout, "never reached")
      assert.notStrictEqual(exit.code, 0)
      assert.strictEqual((yield* broker.stats).refused, 1, "codex asked the broker exactly once and gave up")
      assert.deepStrictEqual(yield* issuer.tokenRequests, [])
      assert.strictEqual(readFileSync(authPath, "utf8"), before)
    }).pipe(Effect.scoped, Effect.provide(env())))
})
