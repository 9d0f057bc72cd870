/**
 * Real codex 0.169.0 in ChatGPT mode against the stand-in issuer and the scripted model server:
 * codex rotates its single-use refresh token at the issuer and rewrites auth.json atomically.
 * These are the fixtures the credential and seed tests rely on.
 *
 * Measured here: codex's unauthorized recovery first reloads auth.json from disk and retries;
 * only a second consecutive 401 makes it refresh (`refresh_reason: "unauthorized_recovery"`). So a
 * scripted rotation is two 401s in a row. An access token that expires within ~5 minutes makes it
 * refresh before the request (`proactive_expiry`) with no 401 at all.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { tokenFingerprint } from "../../src/modelserver/ModelRequest.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfigToml } from "../../src/modelserver/OfflineCodexConfig.ts"
import type { RecordedRequest } from "../../src/modelserver/ScriptedModelServer.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import type { StandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { codexExec, offlineCodexDirs } from "../support/offlineCodex.ts"

interface AuthFile {
  readonly auth_mode: string
  readonly tokens: { readonly access_token: string; readonly refresh_token: string; readonly id_token: string; readonly account_id: string }
  readonly last_refresh: string
}

const readAuth = (path: string): AuthFile => JSON.parse(readFileSync(path, "utf8")) as AuthFile

const expired401 = () =>
  ModelScript.httpError(401, { body: { error: { message: "token expired", type: "invalid_request_error", code: "token_expired" } } })

/** Codex's unauthorized recovery reloads from disk on the first 401 and refreshes on the second. */
const rotation = () => [expired401(), expired401()]

/** A ChatGPT-mode CODEX_HOME with a minted auth.json, and codex's refreshes pointed at `issuer`. */
const chatgptHome = (name: string, issuer: StandInIssuer, baseUrl: string, mint?: { readonly accessTokenTtlSeconds?: number }) =>
  Effect.gen(function*() {
    const base = yield* offlineCodexDirs(name, { baseUrl })
    const dirs = { ...base, env: { ...base.env, CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl } }
    writeFileSync(join(dirs.codexHome, "config.toml"), chatgptCodexConfigToml({ baseUrl, requestMaxRetries: 0 }))
    const minted = yield* issuer.mintAuthJson(mint)
    const authPath = join(dirs.codexHome, "auth.json")
    writeFileSync(authPath, minted.bytes, { mode: 0o600 })
    return { dirs, minted, authPath }
  })

const responses = (requests: ReadonlyArray<RecordedRequest>) => requests.filter((r) => r.path === "/v1/responses")

describe("codex rotates ChatGPT credentials against the stand-in issuer", () => {
  it.live("a 401 from the model rotates the refresh token and rewrites auth.json atomically", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([...rotation(), ModelScript.text("Rotated and answered.")])
      const { dirs, minted, authPath } = yield* chatgptHome("rotation-once", issuer, server.baseUrl)
      const inodeBefore = statSync(authPath).ino

      // --strict-config also proves codex accepts every key of the ChatGPT-mode config.
      const exit = yield* codexExec(dirs, ["--strict-config", "--skip-git-repo-check", "--sandbox", "read-only", "Say hi"]).pipe(
        Effect.timeout("60 seconds")
      )
      assert.strictEqual(exit.code, 0, `${exit.stderr}\n${exit.stdout}`)
      assert.include(exit.stdout, "Rotated and answered.")

      const after = readAuth(authPath)
      assert.strictEqual(after.auth_mode, "chatgpt")
      assert.notStrictEqual(after.tokens.refresh_token, minted.refreshToken)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [after.tokens.refresh_token])
      assert.deepStrictEqual(yield* issuer.spentRefreshTokens, [minted.refreshToken])
      assert.notStrictEqual(statSync(authPath).ino, inodeBefore, "codex renames a new file over auth.json")
      assert.strictEqual(statSync(authPath).mode & 0o777, 0o600)

      const [grant] = yield* issuer.tokenRequests
      assert.deepInclude(grant, { grantType: "refresh_token", refreshToken: minted.refreshToken, refreshReason: "unauthorized_recovery", status: 200 })
      assert.strictEqual(grant?.contentType, "application/json")
      // The answered request carried the rotated access token; the refused ones the minted one.
      const calls = responses(yield* server.requests)
      assert.deepStrictEqual(calls.map((r) => r.bearerFingerprint), [
        tokenFingerprint(minted.accessToken),
        tokenFingerprint(minted.accessToken),
        tokenFingerprint(after.tokens.access_token)
      ])
      assert.strictEqual(calls[2]?.headers["chatgpt-account-id"], after.tokens.account_id)
    }))

  it.live("a second 401 later in the same codex process rotates again", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([
        ...rotation(),
        ModelScript.execCommand("echo between-rotations"),
        ...rotation(),
        ModelScript.text("Rotated twice.")
      ])
      const { dirs, minted, authPath } = yield* chatgptHome("rotation-twice", issuer, server.baseUrl)
      const exit = yield* codexExec(dirs, ["--skip-git-repo-check", "--sandbox", "read-only", "Run a command"]).pipe(
        Effect.timeout("60 seconds")
      )
      assert.strictEqual(exit.code, 0, `${exit.stderr}\n${exit.stdout}`)
      assert.include(exit.stdout, "Rotated twice.")

      const grants = yield* issuer.tokenRequests
      assert.deepStrictEqual(grants.map((g) => [g.grantType, g.status]), [["refresh_token", 200], ["refresh_token", 200]])
      assert.strictEqual(grants[0]?.refreshToken, minted.refreshToken)
      assert.strictEqual(grants[1]?.refreshToken, grants[0]?.issuedRefreshToken, "the second grant uses the first successor")
      const after = readAuth(authPath)
      assert.strictEqual(after.tokens.refresh_token, grants[1]?.issuedRefreshToken)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [after.tokens.refresh_token])
      assert.sameMembers([...(yield* issuer.spentRefreshTokens)], [minted.refreshToken, String(grants[0]?.issuedRefreshToken)])
      const last = responses(yield* server.requests).at(-1)
      assert.strictEqual(last?.bearerFingerprint, tokenFingerprint(after.tokens.access_token))
    }))

  it.live("an access token about to expire is refreshed before the first request", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([ModelScript.text("Fresh token.")])
      const { dirs, minted, authPath } = yield* chatgptHome("rotation-proactive", issuer, server.baseUrl, { accessTokenTtlSeconds: 60 })
      const exit = yield* codexExec(dirs, ["--skip-git-repo-check", "--sandbox", "read-only", "Say hi"]).pipe(
        Effect.timeout("60 seconds")
      )
      assert.strictEqual(exit.code, 0, `${exit.stderr}\n${exit.stdout}`)
      const grants = yield* issuer.tokenRequests
      assert.isAtLeast(grants.length, 1)
      assert.deepInclude(grants[0], { refreshToken: minted.refreshToken, refreshReason: "proactive_expiry", status: 200 })
      const after = readAuth(authPath)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [after.tokens.refresh_token])
      const calls = responses(yield* server.requests)
      assert.lengthOf(calls, 1)
      assert.strictEqual(calls[0]?.bearerFingerprint, tokenFingerprint(after.tokens.access_token))
    }))

  it.live("a spent refresh token fails the turn and leaves auth.json alone", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const server = yield* ScriptedModelServer.start([...rotation(), ModelScript.text("never reached")])
      const { dirs, minted, authPath } = yield* chatgptHome("rotation-spent", issuer, server.baseUrl)
      // Another holder of the same lineage rotates first: this copy is now dead.
      const stolen = yield* Effect.promise(() =>
        fetch(issuer.tokenUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ grant_type: "refresh_token", refresh_token: minted.refreshToken })
        }).then((r) => r.status)
      )
      assert.strictEqual(stolen, 200)
      const before = readFileSync(authPath, "utf8")
      const exit = yield* codexExec(dirs, ["--skip-git-repo-check", "--sandbox", "read-only", "Say hi"]).pipe(
        Effect.timeout("60 seconds")
      )
      assert.notInclude(exit.stdout, "never reached")
      const grants = yield* issuer.tokenRequests
      assert.deepInclude(grants.at(-1), { refreshToken: minted.refreshToken, status: 400 })
      assert.strictEqual(readFileSync(authPath, "utf8"), before)
    }))
})
