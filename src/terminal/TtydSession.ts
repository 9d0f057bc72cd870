/**
 * TtydSession: our own ttyd — serves a task's {@link TmuxSession} as an authenticated web
 * terminal (xterm.js page + WebSocket + a small control API) on an ephemeral port, for as long as
 * the caller's scope is open. Owns the HTTP server, its authentication and the per-viewer
 * `tmux attach` pseudo-terminals; it does not own the tmux session itself.
 *
 * Every request is authenticated with a per-task random credential (fixes the reference's
 * unauthenticated, writable ttyd, P14; see `LoopbackAuth`): HTTP Basic `optio:<credential>` (what
 * the dashboard's proxy sends as the upstream's inner auth), `?token=<credential>` (a human
 * opening the viewer URL), or the cookie that answer sets. The cookie holds a value derived from
 * the credential, never the credential, and is scoped to the viewer's own path
 * (`/v/<view id>/`, host-only, HttpOnly, SameSite=Strict): cookies ignore ports, and a server on
 * another port of the host must not receive it on its ordinary paths. Requests made with the
 * cookie or the token must also come from this server's own origin (a page on another port is
 * another origin).
 *
 * The forwarded path is read leniently (any number of leading slashes, as a proxy that appends it
 * to a prefix ending in `/` sends), and every refused WebSocket upgrade destroys its connection:
 * `@effect/platform-node` only ends it, which a client that keeps its side open turns into a
 * connection the server's close waits for forever. Closing is bounded (see `ConnectionTracker`).
 *
 * @since 0.1.0
 */
import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Context, Duration, Effect, Fiber, FiberSet, Layer, Option, Redacted, Schema, Scope, Stream } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { Socket } from "effect/socket"
import { createServer } from "node:http"
import { destroyUpgradeWhenEnded, trackConnections } from "../http/ConnectionTracker.ts"
import { Host } from "../host/Host.ts"
import type { HostShape } from "../host/Host.ts"
import { fromAnotherSite, LOOPBACK_USERNAME, loopbackAuthFor, makeLoopbackAuth, sameOrigin, splitTarget } from "../http/LoopbackAuth.ts"
import type { LoopbackAuth } from "../http/LoopbackAuth.ts"
import { loadAssets, PAGE_HTML, SECURITY_HEADERS, TerminalAssetsMissing } from "./TerminalPage.ts"
import type { Assets } from "./TerminalPage.ts"
import type { TmuxSession } from "./TmuxSession.ts"

export { TerminalAssetsMissing } from "./TerminalPage.ts"

/**
 * The web terminal's HTTP server could not listen.
 * @category errors
 */
export class TerminalServeFailed extends Schema.TaggedError<TerminalServeFailed>()("TerminalServeFailed", {
  bindHost: Schema.String,
  port: Schema.Number,
  detail: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  override get message(): string {
    return `the web terminal could not listen on ${this.bindHost}:${this.port}: ${this.detail}`
  }
}

/**
 * Every failure of {@link TtydSession.serve}.
 * @category errors
 */
export type TerminalError = TerminalServeFailed | TerminalAssetsMissing

/**
 * The user name of the Basic credential (the password is the per-task credential).
 * @category constants
 */
export const TERMINAL_USERNAME = LOOPBACK_USERNAME

/**
 * Where a served terminal is reachable and how to authenticate to it.
 * @category models
 */
export interface TerminalEndpoint {
  /** `http://advertisedHost:port/`, without any credential (the widget upstream). */
  readonly url: string
  readonly port: number
  /** The per-task credential: 32 random bytes, base64url. */
  readonly credential: Redacted.Redacted<string>
  /** What the dashboard proxy adds to every proxied request. */
  readonly innerAuth: { readonly kind: "basic"; readonly username: typeof TERMINAL_USERNAME; readonly password: Redacted.Redacted<string> }
  /**
   * The viewer's own path on this server (`url` + `v/<view id>/`) with `?token=<credential>`, for
   * a human's browser; redacted because it is a secret.
   */
  readonly viewerUrl: Redacted.Redacted<string>
  /**
   * The widget's iframe source; the dashboard substitutes the literal placeholder with its
   * widget proxy URL, which already ends in `/` (appending another would make the proxy forward
   * `//`).
   */
  readonly iframeSrc: typeof IFRAME_SRC
}

/**
 * Options of {@link TtydSession.serve}.
 * @category models
 */
export interface ServeOptions {
  /** Interface to listen on. Default `127.0.0.1` (loopback only). */
  readonly bindHost?: string
  /** Host name put into `url` (what the dashboard's proxy connects to). Default `127.0.0.1`. */
  readonly advertisedHost?: string
  /** Default 0: an ephemeral port. */
  readonly port?: number
}

/**
 * Serves tmux sessions as web terminals.
 * @category services
 * @since 0.1.0
 */
export class TtydSession extends Context.Service<TtydSession, {
  /** Serves `tmux` until the scope closes; every viewer gets its own `tmux attach` PTY. */
  readonly serve: (
    tmux: TmuxSession,
    options?: ServeOptions
  ) => Effect.Effect<TerminalEndpoint, TerminalError, Scope.Scope>
}>()("optio-codex/TtydSession") {
  /** The live web terminal; each viewer's `tmux attach` runs on the Host the layer was built with. */
  static readonly layer: Layer.Layer<TtydSession, never, Host> = Layer.effect(
    TtydSession,
    Effect.gen(function*() {
      const host = yield* Host
      return TtydSession.of({ serve: (tmux, options) => serve(host, tmux, options) })
    })
  )

  /** Serves nothing: every call returns the same endpoint on port `port`, with credential `credential`. */
  static readonly layerTest = (options: { readonly port?: number; readonly credential?: string } = {}) =>
    Layer.succeed(TtydSession, TtydSession.of({
      serve: (_tmux, serveOptions = {}) =>
        Effect.succeed(endpointOf(serveOptions.advertisedHost ?? "127.0.0.1", options.port ?? 7681, Redacted.make(options.credential ?? "test-credential")))
    }))
}

/**
 * What the session publishes as the widget's iframe source.
 * @category constants
 */
export const IFRAME_SRC = "{widgetProxyUrl}"

/** How long closing lets in-flight requests finish before cutting every connection. */
const SHUTDOWN_GRACE = Duration.millis(500)

// --- the server ------------------------------------------------------------------------------

const serve = Effect.fn("TtydSession.serve")(function*(host: HostShape, tmux: TmuxSession, options: ServeOptions = {}) {
  const bindHost = options.bindHost ?? "127.0.0.1"
  const requestedPort = options.port ?? 0
  const assets = yield* loadAssets
  const loopback = makeLoopbackAuth("terminal credential")

  // Closing order matters: the server's WebSocket endpoint waits, when it closes, until every
  // WebSocket is gone, so the viewers (their own fibers, ending each socket and `tmux attach`)
  // must be stopped first. The server therefore lives in a child scope closed after `viewers`.
  const serverScope = yield* Scope.fork(yield* Effect.scope, "sequential")
  const nodeServer = createServer()
  const connections = trackConnections(nodeServer)
  const server = yield* NodeHttpServer.make(() => nodeServer, {
    host: bindHost,
    port: requestedPort,
    // A graceful close would wait for in-flight requests; interrupting them is what ends them.
    disablePreemptiveShutdown: true,
    // Keystrokes and resizes are tiny; ws would otherwise buffer messages of up to 100 MiB.
    websocket: { maxPayload: 1024 * 1024 }
  }).pipe(
    Scope.provide(serverScope),
    Effect.mapError((error) => new TerminalServeFailed({ bindHost, port: requestedPort, detail: error.message, cause: error }))
  )
  const viewers = yield* FiberSet.make<void>()
  if (server.address._tag === "UnixPathAddress") {
    return yield* new TerminalServeFailed({ bindHost, port: requestedPort, detail: "bound to a unix socket" })
  }
  const port = server.address.port
  const auth = makeAuth(loopback, `optio_terminal_${port}`)

  yield* server.serve(handle({ host, tmux, assets, auth, viewers }).pipe(
    Effect.provideService(HttpServerRequest.MaxBodySize, ByteSize.mebibytes(1))
  )).pipe(Scope.provide(serverScope))
  // Added last, so it runs first: the server's own close waits for every connection to end.
  yield* Scope.addFinalizer(serverScope, connections.close(SHUTDOWN_GRACE))
  const endpoint = endpointOf(options.advertisedHost ?? "127.0.0.1", port, loopback.credential)
  yield* Effect.logInfo("web terminal listening", { url: endpoint.url, bindHost })
  return endpoint
})

interface Served {
  readonly host: HostShape
  readonly tmux: TmuxSession
  readonly assets: Assets
  readonly auth: Auth
  readonly viewers: FiberSet.FiberSet<void>
}

const handle = (context: Served) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.headers["upgrade"] !== undefined) destroyUpgradeWhenEnded(request.source)
    const target = splitTarget(request.url)
    const inView = context.auth.viewPath(target.path)
    const via = context.auth.check(request, target.query, inView !== undefined)
    if (via === undefined) return unauthorized
    if (via !== "basic" && !sameOrigin(request.headers)) return foreignOrigin
    if (request.method.toUpperCase() === "POST" && fromAnotherSite(request.headers)) return foreignOrigin
    // The cookie lives in the viewer's path only: a token URL elsewhere moves there first.
    if (via === "token" && inView === undefined && request.method.toUpperCase() === "GET" && request.headers["upgrade"] === undefined) {
      return HttpServerResponse.empty({ status: 303, headers: { ...SECURITY_HEADERS, location: context.auth.viewLocation(target.path), "set-cookie": context.auth.cookie } })
    }
    const response = yield* route(context, request, inView ?? target.path)
    const secured = HttpServerResponse.setHeaders(response, SECURITY_HEADERS)
    return via === "token" ? HttpServerResponse.setHeader(secured, "set-cookie", context.auth.cookie) : secured
  })

const route = (context: Served, request: HttpServerRequest.HttpServerRequest, path: string) =>
  Effect.gen(function*() {
    const method = request.method.toUpperCase()
    if (path === "/control") {
      if (method !== "POST") return methodNotAllowed("POST")
      return yield* control(context.tmux)
    }
    if (method !== "GET" && method !== "HEAD") return methodNotAllowed("GET")
    if (path === "/") return HttpServerResponse.text(PAGE_HTML, { contentType: "text/html; charset=utf-8" })
    if (path === "/health") return HttpServerResponse.jsonUnsafe({ ok: true })
    if (path === "/ws") {
      if ((request.headers["upgrade"] ?? "").toLowerCase() !== "websocket") {
        return HttpServerResponse.text("expected a WebSocket upgrade", { status: 400 })
      }
      const running = yield* FiberSet.run(context.viewers, viewer(context, request))
      yield* Fiber.join(running).pipe(Effect.onInterrupt(() => Fiber.interrupt(running)))
      return HttpServerResponse.empty()
    }
    const asset = context.assets.get(path)
    if (asset !== undefined) return HttpServerResponse.uint8Array(asset.body, { contentType: asset.contentType })
    return HttpServerResponse.text("not found", { status: 404 })
  })

// --- operator control ----------------------------------------------------------------------

const ControlRequest = Schema.Union([
  Schema.Struct({ text: Schema.String }),
  Schema.Struct({ keys: Schema.Array(Schema.String) })
])

const control = (tmux: TmuxSession) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const body = yield* request.json.pipe(Effect.option)
    const decoded = Option.flatMap(body, Schema.decodeUnknownOption(ControlRequest))
    if (Option.isNone(decoded)) return jsonError(400, "expected JSON {\"text\": string} or {\"keys\": string[]}")
    const command = decoded.value
    const sent = yield* Effect.result("text" in command ? tmux.sendText(command.text) : tmux.sendKeys(command.keys))
    if (sent._tag === "Success") return HttpServerResponse.jsonUnsafe({ ok: true })
    const error = sent.failure
    if (error._tag === "TmuxKeyRejected") return jsonError(400, error.message)
    if (error._tag === "TmuxSessionGone") return jsonError(410, error.message)
    yield* Effect.logWarning("terminal control failed", { error: error.message })
    return jsonError(502, error.message)
  })

// --- viewers: one WebSocket, one `tmux attach` on a PTY ---------------------------------------

const ClientMessage = Schema.Union([
  Schema.Struct({ type: Schema.Literal("input"), data: Schema.String }),
  Schema.Struct({
    type: Schema.Literal("resize"),
    columns: Schema.Int.check(Schema.isBetween({ minimum: 2, maximum: 1000 })),
    rows: Schema.Int.check(Schema.isBetween({ minimum: 2, maximum: 500 }))
  })
])
const decodeClientMessage = Schema.decodeUnknownOption(Schema.fromJsonString(ClientMessage))

const viewer = (context: Served, request: HttpServerRequest.HttpServerRequest) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* request.upgrade
    const writer = yield* socket.writer
    const reader = yield* socket.reader
    const pty = yield* Effect.result(context.host.spawnPty(context.tmux.attachCommand, {
      columns: context.tmux.columns,
      rows: context.tmux.rows
    }))
    if (pty._tag === "Failure") {
      yield* Effect.logWarning("web terminal viewer could not attach", { error: pty.failure.message })
      return yield* writer.write(new Socket.CloseEvent(1011, "terminal unavailable"))
    }
    const terminal = pty.success
    const toBrowser = terminal.output.pipe(
      Stream.runForEach((text) => writer.write(text)),
      Effect.andThen(writer.write(new Socket.CloseEvent(1000, "terminal closed")))
    )
    const decoder = new TextDecoder()
    const fromBrowser = reader.pull.pipe(
      Effect.flatMap((messages) =>
        Effect.forEach(messages, (message) => {
          const parsed = decodeClientMessage(typeof message === "string" ? message : decoder.decode(message))
          if (Option.isNone(parsed)) return Effect.void // garbage is ignored, never fatal
          const command = parsed.value
          return command.type === "input" ? terminal.write(command.data) : terminal.resize(command.columns, command.rows)
        }, { discard: true })
      ),
      Effect.forever
    )
    // Whichever side ends first ends the viewer; the scope then kills its `tmux attach`.
    yield* Effect.raceFirst(toBrowser, fromBrowser).pipe(
      Effect.catch((error) =>
        Socket.isSocketError(error) && error.reason._tag === "SocketCloseError"
          ? Effect.void
          : Effect.logDebug("web terminal viewer ended", { error: error.message })
      )
    )
  })).pipe(Effect.catch((error) => Effect.logDebug("web terminal upgrade failed", { error: error.message })))

// --- authentication --------------------------------------------------------------------------

interface Auth {
  /** How the request authenticated, or undefined when it did not; the cookie counts only in the view path. */
  readonly check: (request: HttpServerRequest.HttpServerRequest, query: URLSearchParams, inView: boolean) => "basic" | "token" | "cookie" | undefined
  /** The route of a path under the viewer's own path (`/v/<view id>/…`), or undefined outside it. */
  readonly viewPath: (path: string) => string | undefined
  /** Where a route lives in the viewer's own path (token URLs are opened directly, never through a proxy). */
  readonly viewLocation: (route: string) => string
  /** The Set-Cookie value that lets the page's own requests authenticate. */
  readonly cookie: string
}

const makeAuth = (loopback: LoopbackAuth, cookieName: string): Auth => {
  const viewPrefix = `/v/${viewIdOf(loopback)}/`
  return {
    // The cookie name carries the port: two tasks on one host must not overwrite each other's.
    cookie: `${cookieName}=${Redacted.value(loopback.derived(COOKIE_PURPOSE))}; HttpOnly; SameSite=Strict; Path=${viewPrefix}`,
    viewPath: (path) => path.startsWith(viewPrefix) ? path.slice(viewPrefix.length - 1) : undefined,
    viewLocation: (route) => `${viewPrefix}${route.slice(1)}`,
    check: (request, query, inView) => {
      if (loopback.basicMatches(request.headers["authorization"])) return "basic"
      if (loopback.credentialMatches(query.get("token") ?? undefined)) return "token"
      if (inView && loopback.derivedMatches(COOKIE_PURPOSE, request.cookies[cookieName])) return "cookie"
      return undefined
    }
  }
}

const COOKIE_PURPOSE = "terminal cookie"

/** Not secret (it is in the viewer's URL); derived so that the endpoint can be rebuilt from the credential. */
const viewIdOf = (loopback: LoopbackAuth) => Redacted.value(loopback.derived("terminal view")).slice(0, 22)

// No `WWW-Authenticate`: a browser prompted for the Basic credential would cache it and attach it
// to requests from any origin (see LoopbackAuth).
const unauthorized = HttpServerResponse.text("authentication required: open the viewer URL (with its token) or go through the dashboard", {
  status: 401,
  headers: SECURITY_HEADERS
})

const foreignOrigin = HttpServerResponse.text("cross-origin requests are refused", { status: 403, headers: SECURITY_HEADERS })

const methodNotAllowed = (allowed: string) => HttpServerResponse.text("method not allowed", { status: 405, headers: { allow: allowed } })

const jsonError = (status: number, error: string) => HttpServerResponse.jsonUnsafe({ ok: false, error }, { status })

const endpointOf = (advertisedHost: string, port: number, credential: Redacted.Redacted<string>): TerminalEndpoint => {
  const hostPart = advertisedHost.includes(":") && !advertisedHost.startsWith("[") ? `[${advertisedHost}]` : advertisedHost
  const url = `http://${hostPart}:${port}/`
  const viewId = viewIdOf(loopbackAuthFor(credential))
  return {
    url,
    port,
    credential,
    innerAuth: { kind: "basic", username: TERMINAL_USERNAME, password: credential },
    viewerUrl: Redacted.make(`${url}v/${viewId}/?token=${encodeURIComponent(Redacted.value(credential))}`, { label: "terminal viewer url" }),
    iframeSrc: IFRAME_SRC
  }
}
