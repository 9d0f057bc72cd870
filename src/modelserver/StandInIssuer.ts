/**
 * StandInIssuer: an offline stand-in for OpenAI's auth issuer (`auth.openai.com`) on loopback, so
 * credential rotation, device-code login and seed verification run against the real codex binary
 * with no network and no account.
 *
 * Owns the issuer's side of the protocol codex 0.169.0 speaks (measured, see platform notes):
 * OIDC discovery, the single-use refresh-token grant (JSON or form-encoded), the device-code flow
 * (`/api/accounts/deviceauth/*` then an `authorization_code` grant) and minting ChatGPT-mode
 * `auth.json` files whose refresh token is live here. Does not own codex's configuration
 * (OfflineCodexConfig) or the model API (ScriptedModelServer).
 *
 * Refresh tokens form lineages: every rotation spends the presented token and issues its
 * successor, and a spent or unknown token is refused with `invalid_grant`, as the real issuer does
 * (openai/codex #15410). Tests script failures with `scriptRefresh`.
 *
 * Import as `import { startStandInIssuer, type StandInIssuer } from "./StandInIssuer.ts"` (the
 * interface names the running issuer, so the module has no namespace export of the same name).
 *
 * @since 0.1.0
 */
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Clock, Deferred, Effect, Option, Schema, Scope } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash, randomBytes } from "node:crypto"
import { serveLoopback } from "../http/LoopbackServer.ts"
import { tokenFingerprint } from "./ModelRequest.ts"

/**
 * What the next refresh-token grant does instead of a normal rotation.
 *
 * - `Rotate`: rotate normally (the same as an empty script).
 * - `Status`: answer `status` with `body` (default an OAuth error object); the presented token is
 *   left as it was (neither spent nor rotated).
 * - `Drop`: close the connection without answering. With `consume: true` the token is rotated
 *   first and the answer lost (the issuer moved on, the client never learns the successor);
 *   otherwise the token is left as it was.
 * @category models
 * @since 0.1.0
 */
export type RefreshOutcome =
  | { readonly _tag: "Rotate" }
  | { readonly _tag: "Status"; readonly status: number; readonly body?: unknown }
  | { readonly _tag: "Drop"; readonly consume?: boolean }

/**
 * One request to `/oauth/token`, as the issuer saw and answered it.
 * @category models
 * @since 0.1.0
 */
export interface TokenRequestRecord {
  /** `grant_type` of the request ("" when absent). */
  readonly grantType: string
  /** The refresh token presented, for refresh-token grants (a stand-in token, not a secret). */
  readonly refreshToken?: string
  /** The request's `content-type` header ("" when absent). */
  readonly contentType: string
  /** Status answered; 0 when the connection was dropped. */
  readonly status: number
  /** `client_id` of the request, when given. */
  readonly clientId?: string
  /** `refresh_reason` codex sends with its refreshes (`unauthorized_recovery`, `proactive_expiry`, ...). */
  readonly refreshReason?: string
  /** The refresh token issued in the answer, when one was. */
  readonly issuedRefreshToken?: string
}

/**
 * A device code the issuer handed out, and whether the user approved it.
 * @category models
 * @since 0.1.0
 */
export interface DeviceCodeRecord {
  readonly userCode: string
  readonly approved: boolean
}

/**
 * A minted ChatGPT-mode auth.json with the tokens in it.
 * @category models
 * @since 0.1.0
 */
export interface MintedAuth {
  /** The auth.json file content (UTF-8 JSON). */
  readonly bytes: Uint8Array
  readonly refreshToken: string
  readonly accessToken: string
}

/**
 * A running stand-in issuer.
 * @category models
 * @since 0.1.0
 */
export interface StandInIssuer {
  /** `http://127.0.0.1:PORT`: the issuer base (`--experimental_issuer`, discovery). */
  readonly url: string
  /** `${url}/oauth/token`: the value for `CODEX_REFRESH_TOKEN_URL_OVERRIDE`. */
  readonly tokenUrl: string
  /** `${url}/codex/device`: the verification URL codex prints during device-code login. */
  readonly verificationUrl: string
  /** A ChatGPT-mode auth.json (JSON bytes) whose refresh token is live at this issuer. */
  readonly mintAuthJson: (options?: {
    readonly lastRefresh?: Date
    readonly accessTokenTtlSeconds?: number
  }) => Effect.Effect<MintedAuth>
  /** FIFO of outcomes for the next refresh-token grants; empty = rotate normally. Appends. */
  readonly scriptRefresh: (outcomes: ReadonlyArray<RefreshOutcome>) => Effect.Effect<void>
  /** Every `/oauth/token` request so far, in arrival order. */
  readonly tokenRequests: Effect.Effect<ReadonlyArray<TokenRequestRecord>>
  /** Refresh tokens that a grant would accept right now (one per lineage at most). */
  readonly liveRefreshTokens: Effect.Effect<ReadonlyArray<string>>
  /** Refresh tokens spent by a rotation. */
  readonly spentRefreshTokens: Effect.Effect<ReadonlyArray<string>>
  /** Device codes handed out so far, in order. */
  readonly deviceCodes: Effect.Effect<ReadonlyArray<DeviceCodeRecord>>
  /** Approves a pending device code, as the user would in the browser. */
  readonly approveDeviceCode: (userCode: string) => Effect.Effect<void>
  /** The access tokens issued so far (minted and rotated), newest last. */
  readonly accessTokens: Effect.Effect<ReadonlyArray<string>>
}

/**
 * Options of `startStandInIssuer`.
 * @category models
 * @since 0.1.0
 */
export interface StandInIssuerOptions {
  /** `chatgpt_account_id` of every lineage (default a fixed stand-in id). */
  readonly accountId?: string
  /** `email` claim of every lineage (default `stand-in@example.test`). */
  readonly email?: string
  /** Approve device codes as soon as they are issued (default true). */
  readonly autoApproveDeviceCodes?: boolean
  /** Lifetime of access tokens issued by grants (default 10 days). */
  readonly accessTokenTtlSeconds?: number
}

/**
 * The public client id codex (and optio's verify) sends.
 * @category constants
 * @since 0.1.0
 */
export const CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"

/**
 * Starts a stand-in issuer on an ephemeral loopback port; it stops when the scope closes.
 * @category constructors
 * @since 0.1.0
 */
export const startStandInIssuer: (options?: StandInIssuerOptions) => Effect.Effect<StandInIssuer, never, Scope.Scope> =
  Effect.fn("StandInIssuer.start")(function*(options?: StandInIssuerOptions) {
    const clock = yield* Clock.Clock
    const state: State = {
      clock,
      accountId: options?.accountId ?? "acct-stand-in-0001",
      email: options?.email ?? "stand-in@example.test",
      autoApprove: options?.autoApproveDeviceCodes ?? true,
      grantTtl: options?.accessTokenTtlSeconds ?? DEFAULT_TTL_SECONDS,
      refresh: new Map(),
      script: [],
      requests: [],
      devices: [],
      codes: new Map(),
      accessTokens: []
    }
    // The documents the issuer serves name its own URL, known once it listens.
    const listening = yield* Deferred.make<string>()
    const port = yield* serveLoopback(handle(state, Deferred.await(listening)))
    const url = `http://127.0.0.1:${port}`
    yield* Deferred.succeed(listening, url)
    const issuer: StandInIssuer = {
      url,
      tokenUrl: `${url}/oauth/token`,
      verificationUrl: `${url}/codex/device`,
      mintAuthJson: (mint) =>
        Effect.sync(() => {
          const tokens = issueLineage(state, mint?.accessTokenTtlSeconds ?? DEFAULT_TTL_SECONDS)
          const auth = {
            auth_mode: "chatgpt",
            OPENAI_API_KEY: null,
            tokens: {
              id_token: tokens.id_token,
              access_token: tokens.access_token,
              refresh_token: tokens.refresh_token,
              account_id: state.accountId
            },
            last_refresh: (mint?.lastRefresh ?? new Date(state.clock.currentTimeMillisUnsafe())).toISOString()
          }
          return {
            bytes: new TextEncoder().encode(JSON.stringify(auth, null, 2)),
            refreshToken: tokens.refresh_token,
            accessToken: tokens.access_token
          }
        }),
      scriptRefresh: (outcomes) => Effect.sync(() => void state.script.push(...outcomes)),
      tokenRequests: Effect.sync(() => [...state.requests]),
      liveRefreshTokens: Effect.sync(() => [...state.refresh].flatMap(([token, s]) => s === "live" ? [token] : [])),
      spentRefreshTokens: Effect.sync(() => [...state.refresh].flatMap(([token, s]) => s === "spent" ? [token] : [])),
      deviceCodes: Effect.sync(() => state.devices.map((d) => ({ userCode: d.userCode, approved: d.approved }))),
      approveDeviceCode: (userCode) =>
        Effect.sync(() => {
          for (const device of state.devices) if (device.userCode === userCode) device.approved = true
        }),
      accessTokens: Effect.sync(() => [...state.accessTokens])
    }
    return issuer
  })

/**
 * Decodes the payload of a JWT without checking its signature; undefined when it is not one.
 * @category constructors
 * @since 0.1.0
 */
export const decodeJwtPayload = (jwt: string): Record<string, unknown> | undefined => {
  const payload = jwt.split(".")[1]
  if (payload === undefined) return undefined
  return Option.getOrUndefined(decodeJsonObject(Buffer.from(payload, "base64url").toString("utf8")))
}

// ---------------------------------------------------------------------------------------------

const DEFAULT_TTL_SECONDS = 10 * 24 * 60 * 60

interface DeviceCode {
  readonly deviceAuthId: string
  readonly userCode: string
  approved: boolean
  /** Set once the code was handed out as an authorization code. */
  authorizationCode: string | undefined
}

interface AuthorizationCode {
  readonly codeVerifier: string
  redeemed: boolean
}

/** Mutated only inside synchronous sections, so each request's read-modify-write is atomic. */
interface State {
  readonly accountId: string
  readonly email: string
  readonly autoApprove: boolean
  readonly grantTtl: number
  readonly refresh: Map<string, "live" | "spent">
  readonly script: Array<RefreshOutcome>
  readonly requests: Array<TokenRequestRecord>
  readonly devices: Array<DeviceCode>
  readonly codes: Map<string, AuthorizationCode>
  readonly accessTokens: Array<string>
  /** The issuer's Clock (token `iat`/`exp`), so tests on TestClock mint tokens at test time. */
  readonly clock: Clock.Clock
}

interface TokenSet {
  readonly id_token: string
  readonly access_token: string
  readonly refresh_token: string
}

type Reply =
  | { readonly _tag: "Json"; readonly status: number; readonly body: unknown }
  | { readonly _tag: "Html"; readonly status: number; readonly body: string }
  | { readonly _tag: "Drop" }

const json = (status: number, body: unknown): Reply => ({ _tag: "Json", status, body })

const handle = (state: State, issuerUrl: Effect.Effect<string>) =>
  Effect.gen(function*() {
    const url = yield* issuerUrl
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = request.url.split("?")[0] ?? request.url
    const contentType = request.headers["content-type"] ?? ""
    const text = request.method === "POST" ? yield* request.text.pipe(Effect.orElseSucceed(() => "")) : ""
    const params = parseBody(text, contentType)
    const reply = route(state, url, request.method, path, params, contentType)
    if (reply._tag === "Drop") {
      // Without an answer the client sees a transport error, as when the issuer is unreachable.
      NodeHttpServerRequest.toIncomingMessage(request).socket.destroy()
      return HttpServerResponse.empty({ status: 502 })
    }
    if (reply._tag === "Html") return HttpServerResponse.html(reply.body).pipe(HttpServerResponse.setStatus(reply.status))
    return HttpServerResponse.jsonUnsafe(reply.body, { status: reply.status })
  }).pipe(Effect.withSpan("StandInIssuer.request"))

const route = (
  state: State,
  url: string,
  method: string,
  path: string,
  params: Readonly<Record<string, string>>,
  contentType: string
): Reply => {
  if (method === "GET" && path === "/.well-known/openid-configuration") {
    return json(200, {
      issuer: url,
      authorization_endpoint: `${url}/oauth/authorize`,
      token_endpoint: `${url}/oauth/token`,
      device_authorization_endpoint: `${url}/api/accounts/deviceauth/usercode`,
      jwks_uri: `${url}/.well-known/jwks.json`,
      response_types_supported: ["code"],
      grant_types_supported: ["authorization_code", "refresh_token"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: ["RS256"]
    })
  }
  if (method === "POST" && path === "/oauth/token") return tokenGrant(state, params, contentType)
  if (method === "POST" && path === "/api/accounts/deviceauth/usercode") {
    const device: DeviceCode = {
      deviceAuthId: `deviceauth_${randomToken(12)}`,
      userCode: userCode(),
      approved: state.autoApprove,
      authorizationCode: undefined
    }
    state.devices.push(device)
    // codex 0.169.0 parses `interval` as a string.
    return json(200, { device_auth_id: device.deviceAuthId, user_code: device.userCode, interval: "1" })
  }
  if (method === "POST" && path === "/api/accounts/deviceauth/token") {
    const device = state.devices.find((d) => d.deviceAuthId === params["device_auth_id"])
    if (device === undefined) return json(404, { error: "unknown_device_auth_id" })
    if (!device.approved) return json(403, { error: "authorization_pending" })
    const codeVerifier = randomToken(32)
    const authorizationCode = device.authorizationCode ?? `ac_${randomToken(16)}`
    device.authorizationCode = authorizationCode
    state.codes.set(authorizationCode, { codeVerifier, redeemed: false })
    return json(200, {
      authorization_code: authorizationCode,
      code_challenge: createHash("sha256").update(codeVerifier).digest("base64url"),
      code_verifier: codeVerifier
    })
  }
  if (path === "/codex/device") {
    // A minimal approval page, so a person can finish a login against the stand-in by hand.
    const code = params["user_code"]
    if (method === "POST" && code !== undefined) {
      const device = state.devices.find((d) => d.userCode === code.trim().toUpperCase())
      if (device !== undefined) device.approved = true
      return { _tag: "Html", status: device === undefined ? 404 : 200, body: page(device === undefined ? "Unknown code." : "Approved. You can close this page.") }
    }
    return {
      _tag: "Html",
      status: 200,
      body: page(`<form method="post"><input name="user_code" placeholder="ABCD-EFGH"><button>Approve</button></form>`)
    }
  }
  return json(404, { error: "not_found", error_description: `no route for ${method} ${path}` })
}

const tokenGrant = (state: State, params: Readonly<Record<string, string>>, contentType: string): Reply => {
  const grantType = params["grant_type"] ?? ""
  const base = {
    grantType,
    contentType,
    ...(params["client_id"] === undefined ? {} : { clientId: params["client_id"] }),
    ...(params["refresh_reason"] === undefined ? {} : { refreshReason: params["refresh_reason"] })
  }
  const record = (reply: Reply, extra: Partial<TokenRequestRecord> = {}): Reply => {
    const status = reply._tag === "Drop" ? 0 : reply.status
    state.requests.push({ ...base, ...extra, status })
    return reply
  }
  if (grantType === "refresh_token") {
    const presented = params["refresh_token"] ?? ""
    const extra = { refreshToken: presented }
    const outcome = state.script.shift() ?? { _tag: "Rotate" }
    if (outcome._tag === "Status") {
      return record(json(outcome.status, outcome.body ?? { error: "scripted_error", error_description: `scripted status ${outcome.status}` }), extra)
    }
    if (outcome._tag === "Drop" && outcome.consume !== true) return record({ _tag: "Drop" }, extra)
    if (state.refresh.get(presented) !== "live") {
      return record(
        json(400, {
          error: "invalid_grant",
          error_description: state.refresh.has(presented) ? "refresh token was already used" : "refresh token is unknown"
        }),
        extra
      )
    }
    state.refresh.set(presented, "spent")
    const tokens = issueTokens(state, state.grantTtl)
    const issued = { ...extra, issuedRefreshToken: tokens.refresh_token }
    if (outcome._tag === "Drop") return record({ _tag: "Drop" }, issued)
    return record(json(200, { ...tokens, token_type: "Bearer", expires_in: state.grantTtl }), issued)
  }
  if (grantType === "authorization_code") {
    const code = state.codes.get(params["code"] ?? "")
    if (code === undefined || code.redeemed) {
      return record(json(400, { error: "invalid_grant", error_description: "authorization code is invalid or was already used" }))
    }
    if (params["code_verifier"] !== undefined && params["code_verifier"] !== code.codeVerifier) {
      return record(json(400, { error: "invalid_grant", error_description: "code_verifier does not match" }))
    }
    code.redeemed = true
    const tokens = issueLineage(state, state.grantTtl)
    return record(json(200, { ...tokens, token_type: "Bearer", expires_in: state.grantTtl }), { issuedRefreshToken: tokens.refresh_token })
  }
  return record(json(400, { error: "unsupported_grant_type", error_description: `grant_type ${grantType || "(none)"} is not supported` }))
}

/** Starts a new lineage: its first refresh token is live. */
const issueLineage = (state: State, ttlSeconds: number): TokenSet => issueTokens(state, ttlSeconds)

const issueTokens = (state: State, ttlSeconds: number): TokenSet => {
  const now = Math.floor(state.clock.currentTimeMillisUnsafe() / 1000)
  const auth = {
    chatgpt_plan_type: "plus",
    // codex 0.169.0 exits right after a refresh when the id token lacks chatgpt_user_id.
    chatgpt_user_id: `user-${tokenFingerprint(state.email)}`,
    chatgpt_account_id: state.accountId,
    user_id: `user-${tokenFingerprint(state.email)}`
  }
  const idToken = jwt({
    iss: "stand-in",
    aud: [CODEX_CLIENT_ID],
    sub: `stand-in|${state.email}`,
    iat: now,
    exp: now + 60 * 60,
    email: state.email,
    email_verified: true,
    "https://api.openai.com/auth": auth,
    "https://api.openai.com/profile": { email: state.email, email_verified: true }
  })
  const accessToken = jwt({
    iss: "stand-in",
    aud: ["https://api.openai.com/v1"],
    sub: `stand-in|${state.email}`,
    iat: now,
    exp: now + ttlSeconds,
    jti: randomToken(8),
    "https://api.openai.com/auth": auth
  })
  const refreshToken = `rt_${randomToken(24)}`
  state.refresh.set(refreshToken, "live")
  state.accessTokens.push(accessToken)
  return { id_token: idToken, access_token: accessToken, refresh_token: refreshToken }
}

const jwt = (payload: Record<string, unknown>): string => {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
  // codex reads the claims without checking the signature; any non-empty segment will do.
  return `${encode({ alg: "RS256", typ: "JWT", kid: "stand-in" })}.${encode(payload)}.${randomToken(16)}`
}

const randomToken = (bytes: number): string => randomBytes(bytes).toString("base64url")

const userCode = (): string => {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
  const chars = [...randomBytes(8)].map((b) => alphabet[b % alphabet.length] ?? "A")
  return `${chars.slice(0, 4).join("")}-${chars.slice(4).join("")}`
}

const page = (body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>Stand-in issuer</title></head><body>${body}</body></html>`

const decodeJsonObject = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Record(Schema.String, Schema.Unknown)))

/** Token requests come as JSON (codex's refresh) or form-encoded (login, verify); values are kept as strings. */
const parseBody = (text: string, contentType: string): Readonly<Record<string, string>> => {
  if (text === "") return {}
  const asJson = contentType.includes("json") || text.trimStart().startsWith("{")
  if (asJson) {
    const object = Option.getOrUndefined(decodeJsonObject(text)) ?? {}
    const out: Record<string, string> = {}
    for (const [key, value] of Object.entries(object)) {
      if (typeof value === "string") out[key] = value
      else if (typeof value === "number" || typeof value === "boolean") out[key] = String(value)
    }
    return out
  }
  return Object.fromEntries(new URLSearchParams(text))
}
