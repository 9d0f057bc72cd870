/**
 * Test clients of the web terminal: HTTP requests with the three kinds of credentials, and a
 * WebSocket viewer that renders what it receives in a headless xterm, like the page does.
 */
import headless from "@xterm/headless"
import { Effect, Redacted } from "effect"
import WebSocket from "ws"
import type { TerminalEndpoint } from "../../src/terminal/TtydSession.ts"
import { waitUntil } from "../support/waitUntil.ts"

/** The Authorization header the dashboard's proxy would send. */
export const basicAuth = (endpoint: TerminalEndpoint, password = Redacted.value(endpoint.credential)) => ({
  authorization: `Basic ${Buffer.from(`${endpoint.innerAuth.username}:${password}`).toString("base64")}`
})

/** Sends an HTTP request to the terminal server. */
export const request = (endpoint: TerminalEndpoint, path: string, init: RequestInit = {}) =>
  Effect.tryPromise(async () => {
    const response = await fetch(new URL(path, endpoint.url), { redirect: "manual", ...init })
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

/** A WebSocket viewer and its rendered screen. */
export interface Viewer {
  /** The screen and scrollback as text, one line per row, trailing blanks trimmed. */
  readonly screen: () => string
  readonly send: (message: unknown) => void
  readonly sendRaw: (data: string | Uint8Array) => void
  readonly closed: () => boolean
}

/** Opens a viewer on `/ws`; closed with the scope. */
export const openViewer = (endpoint: TerminalEndpoint, options: { readonly headers?: Record<string, string>; readonly query?: string; readonly path?: string; readonly columns?: number; readonly rows?: number } = {}) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly viewer: Viewer; readonly socket: WebSocket }, Error>((resume) => {
      const url = new URL(`${options.path ?? "ws"}${options.query ?? ""}`, endpoint.url.replace(/^http/, "ws"))
      const socket = new WebSocket(url, { headers: options.headers ?? basicAuth(endpoint) })
      const term = new headless.Terminal({ cols: options.columns ?? 200, rows: options.rows ?? 50, allowProposedApi: true })
      let closed = false
      socket.on("message", (data, isBinary) => {
        term.write(isBinary ? new Uint8Array(Buffer.from(data.toString())) : data.toString())
      })
      socket.on("close", () => {
        closed = true
      })
      socket.on("unexpected-response", (_request, response) => {
        resume(Effect.fail(new Error(`unexpected response ${response.statusCode}`)))
      })
      socket.on("error", (error) => resume(Effect.fail(error)))
      socket.on("open", () => {
        const viewer: Viewer = {
          screen: () => {
            const buffer = term.buffer.active
            const lines: Array<string> = []
            for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "")
            return lines.join("\n")
          },
          send: (message) => socket.send(JSON.stringify(message)),
          sendRaw: (data) => socket.send(data),
          closed: () => closed
        }
        resume(Effect.succeed({ viewer, socket }))
      })
    }),
    ({ socket }) => Effect.sync(() => socket.terminate())
  ).pipe(Effect.map(({ viewer }) => viewer))

/** Waits until the viewer's screen shows `text`. */
export const viewerShows = (viewer: Viewer, text: string) =>
  waitUntil(`the viewer shows ${JSON.stringify(text)}`, Effect.sync(() => viewer.screen().includes(text) ? true : undefined), "10 seconds")

/** The viewer's own path on the server (`/v/<view id>/`), where its cookie is valid. */
export const viewPathOf = (endpoint: TerminalEndpoint) => new URL(Redacted.value(endpoint.viewerUrl)).pathname

/** The `name=value` of the cookie a token request was answered with. */
export const cookieFrom = (setCookie: string | null) => (setCookie ?? "").split(";")[0] ?? ""

/** Opens the viewer URL (token) and returns the cookie it set, as a `Cookie` header value. */
export const viewerCookie = (endpoint: TerminalEndpoint) =>
  request(endpoint, new URL(Redacted.value(endpoint.viewerUrl)).pathname + new URL(Redacted.value(endpoint.viewerUrl)).search).pipe(
    Effect.map((response) => cookieFrom(response.headers.get("set-cookie")))
  )
