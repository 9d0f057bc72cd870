/**
 * AuthJson: the facts optio relies on about codex's `auth.json` (spec §2, §7.5, §7.6) — whether a
 * file holds usable credentials, its fingerprint, its `last_refresh` stamp, and how a token refresh
 * response is folded back into it. Pure functions over bytes and parsed JSON; reading the file and
 * storing it belong to `SeedEngine` and `CredWatcher`.
 *
 * **One validity predicate.** {@link isUsableAuth} is THE predicate: the credential watcher, the
 * capture gate and verify all use it, so a file one of them accepts is never rejected by another
 * (fixes the reference's divergent predicates, P21).
 *
 * **Unknown fields are opaque.** Codex adds fields over time (`tokens.oauth_provenance`,
 * `tokens.login_owner_id`, `auth_mode` values, …); every rewrite here keeps them untouched.
 *
 * @since 0.1.0
 */
import { Option } from "effect"
import { createHash } from "node:crypto"

/**
 * A parsed `auth.json`: a JSON object.
 * @category models
 * @since 0.1.0
 */
export type AuthObject = Readonly<Record<string, unknown>>

/**
 * What an `auth.json` authenticates with.
 * - `ChatGpt`: ChatGPT tokens (a rotating, single-use refresh token when `refreshToken` is some).
 * - `ApiKey`: an `OPENAI_API_KEY` and no usable tokens; nothing rotates.
 * - `Unusable`: logged out or malformed.
 * @category models
 * @since 0.1.0
 */
export type AuthShape =
  | { readonly _tag: "ChatGpt"; readonly refreshToken: Option.Option<string>; readonly lastRefresh: Option.Option<Date> }
  | { readonly _tag: "ApiKey" }
  | { readonly _tag: "Unusable" }

const utf8 = new TextDecoder("utf-8", { fatal: true })

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const nonEmptyString = (value: unknown): value is string => typeof value === "string" && value !== ""

/**
 * Parses `auth.json` bytes: strict UTF-8, JSON, and a top-level object; none otherwise.
 * @category constructors
 * @since 0.1.0
 */
export const parseAuthJson = (bytes: Uint8Array): Option.Option<AuthObject> => {
  try {
    const parsed: unknown = JSON.parse(utf8.decode(bytes))
    return isRecord(parsed) ? Option.some(parsed) : Option.none()
  } catch {
    return Option.none()
  }
}

const tokensOf = (value: AuthObject): Option.Option<Readonly<Record<string, unknown>>> => {
  const tokens = value["tokens"]
  return isRecord(tokens) ? Option.some(tokens) : Option.none()
}

const hasUsableTokens = (value: AuthObject): boolean =>
  Option.match(tokensOf(value), {
    onNone: () => false,
    onSome: (tokens) => nonEmptyString(tokens["refresh_token"]) || nonEmptyString(tokens["access_token"])
  })

/**
 * Whether a parsed `auth.json` holds usable credentials: ChatGPT shape (`tokens` is an object with a
 * non-empty string `refresh_token` or `access_token`) or API-key shape (a non-empty string
 * `OPENAI_API_KEY`). `{}`, `tokens: {}` and `OPENAI_API_KEY: ""` are not usable.
 * @category guards
 * @since 0.1.0
 */
export const isUsableAuth = (value: unknown): boolean =>
  isRecord(value) && (hasUsableTokens(value) || nonEmptyString(value["OPENAI_API_KEY"]))

/**
 * Classifies a parsed `auth.json` (see {@link AuthShape}). Tokens win over an API key: when both
 * are present codex uses the tokens, which are what rotate.
 * @category constructors
 * @since 0.1.0
 */
export const authShape = (value: unknown): AuthShape => {
  if (!isRecord(value)) return { _tag: "Unusable" }
  if (hasUsableTokens(value)) {
    const tokens = Option.getOrElse(tokensOf(value), () => ({} as Readonly<Record<string, unknown>>))
    const refresh = tokens["refresh_token"]
    return {
      _tag: "ChatGpt",
      refreshToken: nonEmptyString(refresh) ? Option.some(refresh) : Option.none(),
      lastRefresh: parseLastRefresh(value["last_refresh"])
    }
  }
  return nonEmptyString(value["OPENAI_API_KEY"]) ? { _tag: "ApiKey" } : { _tag: "Unusable" }
}

/**
 * The SHA-256 hex digest of the raw bytes (byte-exact, not of normalized JSON); none unless the
 * bytes are a UTF-8 JSON object with usable credentials.
 * @category constructors
 * @since 0.1.0
 */
export const credentialFingerprint = (bytes: Uint8Array): Option.Option<string> =>
  Option.filter(parseAuthJson(bytes), isUsableAuth).pipe(
    Option.map(() => createHash("sha256").update(bytes).digest("hex"))
  )

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?$/

/**
 * Parses `last_refresh` (spec §7.6): a number is epoch milliseconds when above 1e12, else epoch
 * seconds; a string is RFC 3339 with any fraction length (nanoseconds included; digits past the
 * millisecond are dropped), `Z` or an offset, and no offset meaning UTC. None otherwise.
 * @category constructors
 * @since 0.1.0
 */
export const parseLastRefresh = (value: unknown): Option.Option<Date> => {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return Option.none()
    const date = new Date(value > 1e12 ? value : value * 1000)
    return Number.isNaN(date.getTime()) ? Option.none() : Option.some(date)
  }
  if (typeof value !== "string") return Option.none()
  const match = RFC3339.exec(value.trim())
  if (match === null) return Option.none()
  const [, year, month, day, hour, minute, second, fraction, zone] = match
  const millis = (fraction ?? "").padEnd(3, "0").slice(0, 3)
  const offset = zone === undefined || zone === "Z" || zone === "z"
    ? "Z"
    : zone.includes(":") ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`
  const date = new Date(`${year}-${month}-${day}T${hour}:${minute}:${second}.${millis}${offset}`)
  return Number.isNaN(date.getTime()) ? Option.none() : Option.some(date)
}

/**
 * Renders a `last_refresh` stamp: ISO 8601 UTC with millisecond precision and `Z` (codex accepts it).
 * @category constructors
 */
export const formatLastRefresh = (date: Date): string => date.toISOString()

/**
 * The tokens a refresh grant returned; `access_token` is required, the rest optional.
 * @category models
 * @since 0.1.0
 */
export interface RefreshedTokens {
  readonly accessToken: string
  readonly refreshToken: Option.Option<string>
  readonly idToken: Option.Option<string>
}

/**
 * Reads a token endpoint's JSON answer; none unless it carries a non-empty string `access_token`.
 * @category constructors
 */
export const refreshedTokens = (body: unknown): Option.Option<RefreshedTokens> => {
  if (!isRecord(body) || !nonEmptyString(body["access_token"])) return Option.none()
  const refresh = body["refresh_token"]
  const id = body["id_token"]
  return Option.some({
    accessToken: body["access_token"],
    refreshToken: nonEmptyString(refresh) ? Option.some(refresh) : Option.none(),
    idToken: nonEmptyString(id) ? Option.some(id) : Option.none()
  })
}

/**
 * Folds a refresh into an `auth.json` (spec §7.5): `tokens.access_token` replaced, `refresh_token`
 * and `id_token` replaced when returned, `last_refresh` set to `now`; every other field kept as is.
 * @category constructors
 * @since 0.1.0
 */
export const applyTokenRefresh = (auth: AuthObject, refreshed: RefreshedTokens, now: Date): AuthObject => {
  const tokens = Option.getOrElse(tokensOf(auth), () => ({} as Readonly<Record<string, unknown>>))
  return {
    ...auth,
    tokens: {
      ...tokens,
      access_token: refreshed.accessToken,
      ...Option.match(refreshed.refreshToken, { onNone: () => ({}), onSome: (token) => ({ refresh_token: token }) }),
      ...Option.match(refreshed.idToken, { onNone: () => ({}), onSome: (token) => ({ id_token: token }) })
    },
    last_refresh: formatLastRefresh(now)
  }
}

/**
 * Serializes an `auth.json` object as codex writes it (pretty JSON, UTF-8).
 * @category constructors
 */
export const encodeAuthJson = (auth: AuthObject): Uint8Array => new TextEncoder().encode(JSON.stringify(auth, null, 2))
