/**
 * The stand-in issuer over real HTTP: discovery, single-use rotation (JSON and form bodies),
 * scripted refresh outcomes, and the device-code flow. Real codex against it is proven in
 * test/credentials/codexRotation.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { TestClock } from "effect/testing"
import { CODEX_CLIENT_ID, decodeJwtPayload, startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"

const post = (url: string, body: Record<string, string>, form = false) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": form ? "application/x-www-form-urlencoded" : "application/json" },
      body: form ? new URLSearchParams(body).toString() : JSON.stringify(body)
    })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  })

/** A POST whose connection may be dropped: Failure when fetch rejects. */
const postResult = (url: string, body: Record<string, string>) =>
  Effect.result(Effect.tryPromise(() =>
    fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      .then((r) => r.status)
  ))

const refresh = (tokenUrl: string, token: string) =>
  post(tokenUrl, { client_id: CODEX_CLIENT_ID, grant_type: "refresh_token", refresh_reason: "unauthorized_recovery", refresh_token: token })

describe("StandInIssuer", () => {
  it.live("serves discovery with its own token endpoint", () =>
    Effect.scoped(Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const body = yield* Effect.promise(() =>
        fetch(`${issuer.url}/.well-known/openid-configuration`).then((r) => r.json() as Promise<Record<string, unknown>>)
      )
      assert.strictEqual(body["issuer"], issuer.url)
      assert.strictEqual(body["token_endpoint"], issuer.tokenUrl)
      assert.strictEqual(issuer.tokenUrl, `${issuer.url}/oauth/token`)
    })))

  it.live("mints a ChatGPT-mode auth.json whose tokens carry the claims codex needs", () =>
    Effect.scoped(Effect.gen(function*() {
      const issuer = yield* startStandInIssuer({ accountId: "acct-42", email: "ann@example.test" })
      const lastRefresh = new Date("2026-01-02T03:04:05.000Z")
      const minted = yield* issuer.mintAuthJson({ lastRefresh, accessTokenTtlSeconds: 120 })
      const auth = JSON.parse(new TextDecoder().decode(minted.bytes)) as {
        auth_mode: string
        OPENAI_API_KEY: null
        tokens: { id_token: string; access_token: string; refresh_token: string; account_id: string }
        last_refresh: string
      }
      assert.strictEqual(auth.auth_mode, "chatgpt")
      assert.isNull(auth.OPENAI_API_KEY)
      assert.strictEqual(auth.last_refresh, "2026-01-02T03:04:05.000Z")
      assert.strictEqual(auth.tokens.refresh_token, minted.refreshToken)
      assert.strictEqual(auth.tokens.access_token, minted.accessToken)
      assert.strictEqual(auth.tokens.account_id, "acct-42")
      assert.lengthOf(auth.tokens.id_token.split("."), 3)
      const id = decodeJwtPayload(auth.tokens.id_token)
      assert.strictEqual(id?.["email"], "ann@example.test")
      const claims = id?.["https://api.openai.com/auth"] as Record<string, unknown>
      assert.strictEqual(claims["chatgpt_account_id"], "acct-42")
      assert.isString(claims["chatgpt_user_id"])
      assert.isString(claims["chatgpt_plan_type"])
      const access = decodeJwtPayload(minted.accessToken)
      const exp = access?.["exp"] as number
      assert.approximately(exp - Date.now() / 1000, 120, 5)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [minted.refreshToken])
    })))

  it.effect("token times come from the issuer's Clock (TestClock here), never the wall clock", () =>
    Effect.scoped(Effect.gen(function*() {
      const at = Date.UTC(2030, 0, 2, 3, 4, 5)
      yield* TestClock.setTime(at)
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson({ accessTokenTtlSeconds: 120 })
      const access = decodeJwtPayload(minted.accessToken)
      assert.strictEqual(access?.["iat"], at / 1000)
      assert.strictEqual(access?.["exp"], at / 1000 + 120)
      const auth = JSON.parse(new TextDecoder().decode(minted.bytes)) as { readonly last_refresh: string }
      assert.strictEqual(auth.last_refresh, new Date(at).toISOString())
    })))

  it.live("rotates a refresh token once: the successor is live, the spent one is refused", () =>
    Effect.scoped(Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson()
      const first = yield* refresh(issuer.tokenUrl, minted.refreshToken)
      assert.strictEqual(first.status, 200)
      const next = first.body["refresh_token"] as string
      assert.notStrictEqual(next, minted.refreshToken)
      assert.isString(first.body["access_token"])
      assert.lengthOf(String(first.body["id_token"]).split("."), 3)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [next])
      assert.deepStrictEqual(yield* issuer.spentRefreshTokens, [minted.refreshToken])

      const replay = yield* refresh(issuer.tokenUrl, minted.refreshToken)
      assert.strictEqual(replay.status, 400)
      assert.deepStrictEqual(replay.body, { error: "invalid_grant", error_description: "refresh token was already used" })
      const unknown = yield* refresh(issuer.tokenUrl, "rt_never_issued")
      assert.strictEqual(unknown.status, 400)
      assert.strictEqual(unknown.body["error"], "invalid_grant")

      // optio's own verify sends the grant form-encoded.
      const form = yield* post(issuer.tokenUrl, { grant_type: "refresh_token", refresh_token: next, client_id: CODEX_CLIENT_ID }, true)
      assert.strictEqual(form.status, 200)
      const records = yield* issuer.tokenRequests
      assert.deepStrictEqual(records.map((r) => [r.grantType, r.status, r.contentType.split(";")[0]]), [
        ["refresh_token", 200, "application/json"],
        ["refresh_token", 400, "application/json"],
        ["refresh_token", 400, "application/json"],
        ["refresh_token", 200, "application/x-www-form-urlencoded"]
      ])
      assert.strictEqual(records[0]?.refreshToken, minted.refreshToken)
      assert.strictEqual(records[0]?.refreshReason, "unauthorized_recovery")
      assert.strictEqual(records[0]?.issuedRefreshToken, next)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [String(form.body["refresh_token"])])
    })))

  it.live("plays scripted outcomes in order, then rotates normally", () =>
    Effect.scoped(Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson()
      yield* issuer.scriptRefresh([
        { _tag: "Status", status: 401, body: { error: { code: "refresh_token_expired" } } },
        { _tag: "Status", status: 503 },
        { _tag: "Drop" },
        { _tag: "Rotate" }
      ])
      const expired = yield* refresh(issuer.tokenUrl, minted.refreshToken)
      assert.deepStrictEqual(expired, { status: 401, body: { error: { code: "refresh_token_expired" } } })
      assert.strictEqual((yield* refresh(issuer.tokenUrl, minted.refreshToken)).status, 503)
      const dropped = yield* postResult(issuer.tokenUrl, { grant_type: "refresh_token", refresh_token: minted.refreshToken })
      assert.isTrue(Result.isFailure(dropped), "a dropped connection is a transport error")
      // None of those touched the lineage.
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [minted.refreshToken])
      const rotated = yield* refresh(issuer.tokenUrl, minted.refreshToken)
      assert.strictEqual(rotated.status, 200)
      const after = yield* refresh(issuer.tokenUrl, rotated.body["refresh_token"] as string)
      assert.strictEqual(after.status, 200, "an empty script rotates")
      assert.deepStrictEqual((yield* issuer.tokenRequests).map((r) => r.status), [401, 503, 0, 200, 200])
    })))

  it.live("a consuming drop rotates but loses the answer", () =>
    Effect.scoped(Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const minted = yield* issuer.mintAuthJson()
      yield* issuer.scriptRefresh([{ _tag: "Drop", consume: true }])
      const dropped = yield* postResult(issuer.tokenUrl, { grant_type: "refresh_token", refresh_token: minted.refreshToken })
      assert.isTrue(Result.isFailure(dropped))
      const [record] = yield* issuer.tokenRequests
      assert.deepStrictEqual(yield* issuer.spentRefreshTokens, [minted.refreshToken])
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [String(record?.issuedRefreshToken)])
      assert.strictEqual((yield* refresh(issuer.tokenUrl, minted.refreshToken)).status, 400)
    })))

  it.live("device-code flow: pending until approved, then an authorization code starts a new lineage", () =>
    Effect.scoped(Effect.gen(function*() {
      const issuer = yield* startStandInIssuer({ autoApproveDeviceCodes: false })
      const started = yield* post(`${issuer.url}/api/accounts/deviceauth/usercode`, { client_id: CODEX_CLIENT_ID })
      assert.strictEqual(started.status, 200)
      assert.strictEqual(started.body["interval"], "1")
      const userCode = started.body["user_code"] as string
      assert.match(userCode, /^[A-Z0-9]{4}-[A-Z0-9]{4}$/)
      const poll = { device_auth_id: started.body["device_auth_id"] as string, user_code: userCode }
      assert.strictEqual((yield* post(`${issuer.url}/api/accounts/deviceauth/token`, poll)).status, 403)
      assert.deepStrictEqual(yield* issuer.deviceCodes, [{ userCode, approved: false }])

      yield* issuer.approveDeviceCode(userCode)
      const granted = yield* post(`${issuer.url}/api/accounts/deviceauth/token`, poll)
      assert.strictEqual(granted.status, 200)
      const exchange = {
        grant_type: "authorization_code",
        code: granted.body["authorization_code"] as string,
        redirect_uri: `${issuer.url}/deviceauth/callback`,
        client_id: CODEX_CLIENT_ID,
        code_verifier: granted.body["code_verifier"] as string
      }
      const tokens = yield* post(issuer.tokenUrl, exchange, true)
      assert.strictEqual(tokens.status, 200)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [String(tokens.body["refresh_token"])])
      assert.strictEqual((yield* post(issuer.tokenUrl, exchange, true)).status, 400, "a code is redeemed once")
      const unknownCode = yield* post(issuer.tokenUrl, { ...exchange, code: "ac_unknown" }, true)
      assert.strictEqual(unknownCode.status, 400)
    })))

  it.live("auto-approves device codes by default and approves through the verification page", () =>
    Effect.scoped(Effect.gen(function*() {
      const auto = yield* startStandInIssuer()
      const started = yield* post(`${auto.url}/api/accounts/deviceauth/usercode`, { client_id: CODEX_CLIENT_ID })
      const poll = { device_auth_id: started.body["device_auth_id"] as string, user_code: started.body["user_code"] as string }
      assert.strictEqual((yield* post(`${auto.url}/api/accounts/deviceauth/token`, poll)).status, 200)

      const manual = yield* startStandInIssuer({ autoApproveDeviceCodes: false })
      const code = (yield* post(`${manual.url}/api/accounts/deviceauth/usercode`, {})).body["user_code"] as string
      const pageStatus = yield* Effect.promise(() =>
        fetch(manual.verificationUrl, { method: "POST", body: new URLSearchParams({ user_code: code }) }).then((r) => r.status)
      )
      assert.strictEqual(pageStatus, 200)
      assert.deepStrictEqual(yield* manual.deviceCodes, [{ userCode: code, approved: true }])
    })))
})
