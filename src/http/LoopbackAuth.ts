/**
 * LoopbackAuth: the authentication of the worker's own loopback HTTP servers (the web terminal
 * and the conversation listener). One random credential per server, `Redacted` from birth; the
 * dashboard's widget proxy presents it as HTTP Basic `optio:<credential>` (its "inner auth").
 * Also owns the checks that go with it: a strict Basic decoder, per-purpose values derived from
 * the credential (so a browser cookie is never the credential itself), and the Origin rule for
 * browser-held credentials.
 *
 * Why Basic needs no Origin check: neither server ever sends a `WWW-Authenticate` challenge, so
 * no browser is ever prompted for, or caches, the Basic credential; only the proxy (the CSRF
 * boundary in front of the dashboard) and non-browser clients hold it. optio-api may forward the
 * embedding page's Origin with a rewritten Host, so checking Origin there would refuse the
 * dashboard itself. What a browser says of its own request is still honoured: a state-changing
 * request it marks as coming from another site (`Sec-Fetch-Site`) is refused whatever it carries.
 *
 * @since 0.1.0
 */
import { Redacted } from "effect"
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto"

/**
 * The user name of the Basic credential (the password is the per-server credential).
 * @category constants
 */
export const LOOPBACK_USERNAME = "optio"

/**
 * A server's credential and the checks made against it.
 * @category models
 */
export interface LoopbackAuth {
  /** 32 random bytes, base64url. */
  readonly credential: Redacted.Redacted<string>
  /** Whether an `Authorization` header is exactly Basic `optio:<credential>` (nothing before or after). */
  readonly basicMatches: (header: string | undefined) => boolean
  /** Whether `given` is the credential itself (a `?token=` a human pasted). */
  readonly credentialMatches: (given: string | undefined) => boolean
  /** A value derived from the credential for one purpose; knowing it does not reveal the credential. */
  readonly derived: (purpose: string) => Redacted.Redacted<string>
  /** Whether `given` is `derived(purpose)`. */
  readonly derivedMatches: (purpose: string, given: string | undefined) => boolean
}

/**
 * A fresh credential, labelled for `Redacted`'s rendering.
 * @category constructors
 */
export const makeLoopbackAuth = (label: string): LoopbackAuth => {
  const credential = Redacted.make(randomBytes(32).toString("base64url"), { label })
  return loopbackAuthFor(credential)
}

/**
 * The checks for an existing credential.
 * @category constructors
 */
export const loopbackAuthFor = (credential: Redacted.Redacted<string>): LoopbackAuth => {
  const wantedCredential = digest(Buffer.from(Redacted.value(credential), "utf8"))
  const wantedBasic = digest(Buffer.from(`${LOOPBACK_USERNAME}:${Redacted.value(credential)}`, "utf8"))
  const derive = (purpose: string) =>
    createHmac("sha256", Redacted.value(credential)).update(`optio-codex/${purpose}`, "utf8").digest("base64url")
  const matches = (given: string | undefined, wanted: Buffer) =>
    given !== undefined && timingSafeEqual(digest(Buffer.from(given, "utf8")), wanted)
  return {
    credential,
    basicMatches: (header) => {
      const decoded = decodeBasic(header)
      return decoded !== undefined && timingSafeEqual(digest(decoded), wantedBasic)
    },
    credentialMatches: (given) => matches(given, wantedCredential),
    derived: (purpose) => Redacted.make(derive(purpose), { label: `${purpose} (derived)` }),
    derivedMatches: (purpose, given) => matches(given, digest(Buffer.from(derive(purpose), "utf8")))
  }
}

/**
 * The bytes of a Basic header's credentials, or undefined unless the header is exactly
 * `Basic <canonical base64>`: Node's base64 decoder skips junk it does not understand, so the
 * text is re-encoded and must come out the same.
 * @category parsing
 */
export const decodeBasic = (header: string | undefined): Buffer | undefined => {
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(header ?? "")
  const encoded = match?.[1]
  if (encoded === undefined) return undefined
  const decoded = Buffer.from(encoded, "base64")
  return decoded.toString("base64") === encoded ? decoded : undefined
}

/**
 * Whether a request authenticated by a browser-held credential (cookie or token) comes from the
 * server's own page: no `Origin` (a navigation or a non-browser client), or an `Origin` whose
 * host is the `Host` the browser addressed. A page on another port of the same host is a
 * different origin, and is refused.
 * @category checks
 */
export const sameOrigin = (headers: Readonly<Record<string, string | undefined>>): boolean => {
  const origin = headers["origin"]
  if (origin === undefined) return true
  const host = headers["host"]
  if (host === undefined || origin === "null") return false
  try {
    const parsed = new URL(origin)
    return (parsed.protocol === "http:" || parsed.protocol === "https:") && parsed.host === host.toLowerCase()
  } catch {
    return false
  }
}

/**
 * Whether a browser says the request was made by a page of another origin's site or of another
 * origin on this site (`Sec-Fetch-Site: cross-site` / `same-site`; a page on another port of the
 * host is `same-site`). Requests from the dashboard's own page through its proxy are
 * `same-origin`; non-browser clients send nothing.
 * @category checks
 */
export const fromAnotherSite = (headers: Readonly<Record<string, string | undefined>>): boolean => {
  const site = headers["sec-fetch-site"]?.toLowerCase()
  return site === "cross-site" || site === "same-site"
}

/**
 * The path of a request target with every run of leading slashes collapsed to one: a proxy that
 * appends its forwarded path to a prefix ending in `/` can send `//x`, which `new URL` would read
 * as a host. The query is returned apart, undecoded.
 * @category parsing
 */
export const splitTarget = (target: string): { readonly path: string; readonly query: URLSearchParams } => {
  const queryStart = target.indexOf("?")
  const rawPath = queryStart === -1 ? target : target.slice(0, queryStart)
  const query = new URLSearchParams(queryStart === -1 ? "" : target.slice(queryStart + 1))
  return { path: `/${rawPath.replace(/^\/+/, "")}`, query }
}

const digest = (bytes: Uint8Array): Buffer => createHash("sha256").update(bytes).digest()
