/**
 * A stand-in for the optio dashboard's path to a widget: optio-api's widget proxy and the page
 * that embeds the widget, written from the behaviour it documents (not from its code):
 *
 * - `/api/widget/<database>/<prefix>/<processId>` is stripped from the path and the rest is
 *   forwarded as it is (an empty rest becomes `/`, a trailing slash is kept, `//x` stays `//x`);
 * - every forwarded request, WebSocket handshakes included, carries the upstream's inner auth
 *   (HTTP Basic) and a `Host` rewritten to the upstream; the browser's `Origin` is passed on;
 * - a WebSocket target is resolved against the upstream URL, so `//ws` names a host `ws` and the
 *   handshake fails, as the real proxy's does;
 * - HTML answers get `<base href="<proxy prefix>/">` and a small inline script that rewrites the
 *   address bar to the path without the prefix, injected right after `<head>`; the script's
 *   hash is added to the page's CSP `script-src`; `X-Frame-Options` and `frame-ancestors` are
 *   dropped.
 *
 * `/dashboard/terminal` embeds the published `iframeSrc` in an iframe, as the iframe widget
 * does; `/dashboard/conversation` makes CodexView's calls (`{widgetProxyUrl}events` as an
 * EventSource, `{widgetProxyUrl}send` as a JSON POST) from a page of the dashboard's origin.
 */
import { Effect, Redacted } from "effect"
import { createHash } from "node:crypto"
import { createServer, request as httpRequest } from "node:http"
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http"
import { connect } from "node:net"
import type { Socket } from "node:net"
import type { InnerAuth } from "../../src/task/TaskContext.ts"

/** What the worker published for the widget (what optio-api reads from the process record). */
export interface PublishedWidget {
  readonly upstreamUrl: string
  readonly innerAuth: InnerAuth | undefined
  /** The widget data's `iframeSrc`; undefined for a conversation widget. */
  readonly iframeSrc?: string | undefined
}

export interface WidgetProxy {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  /** The dashboard's widgetProxyUrl for the widget, ending in `/`. */
  readonly widgetProxyUrl: string
  /** The iframe source the dashboard would use (the placeholder substituted). */
  readonly iframeUrl: string
  /** Every path the proxy forwarded, as the upstream received it. */
  readonly forwarded: () => ReadonlyArray<string>
}

export const PROCESS_ID = "0123456789abcdef01234567"
const PROXY_PREFIX = `/api/widget/optio/tasks/${PROCESS_ID}/`
const PREFIX_PATTERN = /^\/api\/widget\/[^/]+\/[^/]+\/[a-f0-9]{24}(?=\/|\?|$)/i

/** How the stand-in misbehaves, to model a loaded dashboard path. */
export interface ProxyConditions {
  /**
   * Milliseconds every non-streaming answer is held before it is passed on, while event streams
   * flow at once: a request's answer and the event stream are separate connections, and on a
   * loaded proxy the answer can lag the stream (measured through optio-api: 49–61 ms).
   */
  readonly answerLagMs?: number
}

/** Starts the stand-in for one published widget; it stops with the scope. */
export const startWidgetProxy = (widget: PublishedWidget, conditions: ProxyConditions = {}) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly proxy: WidgetProxy; readonly close: () => void }, Error>((resume) => {
      const upstream = new URL(widget.upstreamUrl)
      const forwarded: Array<string> = []
      const sockets = new Set<Socket>()
      const withAuth = (headers: IncomingHttpHeaders): IncomingHttpHeaders => {
        const auth = widget.innerAuth
        const out: IncomingHttpHeaders = { ...headers, host: upstream.host }
        delete out["accept-encoding"]
        if (auth?.kind === "basic") {
          out["authorization"] = `Basic ${Buffer.from(`${auth.username}:${Redacted.value(auth.password)}`).toString("base64")}`
        }
        return out
      }
      const server = createServer((request, response) => {
        const target = request.url ?? "/"
        if (target.startsWith("/dashboard/")) return dashboard(target, response, proxy)
        if (target === "/favicon.ico") return void response.writeHead(204).end()
        const match = PREFIX_PATTERN.exec(target)
        if (match === null) return void response.writeHead(404).end("no such widget")
        const rest = target.slice(match[0].length) || "/"
        forwarded.push(rest)
        const outgoing = httpRequest({
          host: upstream.hostname,
          port: upstream.port,
          method: request.method,
          path: rest,
          headers: withAuth(request.headers)
        }, (answer) => {
          const lag = conditions.answerLagMs ?? 0
          const streaming = String(answer.headers["content-type"] ?? "").includes("text/event-stream")
          if (lag === 0 || streaming) return relay(answer, response)
          answer.pause()
          // Simulated network latency of the answer's hop, not a wait for a condition.
          setTimeout(() => relay(answer, response), lag)
        })
        outgoing.on("error", () => {
          if (!response.headersSent) response.writeHead(502)
          response.end("bad gateway")
        })
        request.pipe(outgoing)
      })
      server.on("connection", (socket: Socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
      })
      server.on("upgrade", (request: IncomingMessage, client: Socket, head: Buffer) => {
        client.on("error", () => {})
        const target = request.url ?? "/"
        const match = PREFIX_PATTERN.exec(target)
        const rest = match === null ? undefined : target.slice(match[0].length) || "/"
        // Resolved like a URL against the upstream: `//ws` is a protocol-relative URL to host `ws`.
        const resolved = rest === undefined ? undefined : new URL(rest, widget.upstreamUrl)
        if (resolved === undefined || resolved.host !== upstream.host) {
          client.end("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
          return
        }
        forwarded.push(`${resolved.pathname}${resolved.search}`)
        const toUpstream = connect({ host: upstream.hostname, port: Number(upstream.port) }, () => {
          let head_ = `${request.method} ${resolved.pathname}${resolved.search} HTTP/1.1\r\n`
          for (const [name, value] of Object.entries(withAuth(request.headers))) {
            for (const one of Array.isArray(value) ? value : [value ?? ""]) head_ += `${name}: ${one}\r\n`
          }
          toUpstream.write(`${head_}\r\n`)
          if (head.length > 0) toUpstream.write(head)
          toUpstream.pipe(client)
          client.pipe(toUpstream)
        })
        toUpstream.on("error", () => client.destroy())
        client.on("close", () => toUpstream.destroy())
        toUpstream.on("close", () => client.destroy())
      })
      const proxy: WidgetProxy = {
        origin: "",
        widgetProxyUrl: "",
        iframeUrl: "",
        forwarded: () => [...forwarded]
      }
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        const origin = `http://127.0.0.1:${port}`
        const widgetProxyUrl = `${origin}${PROXY_PREFIX}`
        Object.assign(proxy, {
          origin,
          widgetProxyUrl,
          iframeUrl: (widget.iframeSrc ?? widgetProxyUrl).replaceAll("{widgetProxyUrl}", widgetProxyUrl)
        })
        resume(Effect.succeed({
          proxy,
          close: () => {
            server.close()
            for (const socket of sockets) socket.destroy()
          }
        }))
      })
      server.on("error", (error) => resume(Effect.fail(error)))
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ proxy }) => proxy))

/** Passes an upstream answer on; HTML gets the base and the address-bar script. */
const relay = (answer: IncomingMessage, response: ServerResponse) => {
  const headers: IncomingHttpHeaders = { ...answer.headers }
  delete headers["x-frame-options"]
  const csp = headers["content-security-policy"]
  if (typeof csp === "string") headers["content-security-policy"] = withoutFrameAncestors(csp)
  if (!String(headers["content-type"] ?? "").includes("text/html")) {
    response.writeHead(answer.statusCode ?? 502, headers)
    answer.pipe(response)
    return
  }
  const chunks: Array<Buffer> = []
  answer.on("data", (chunk: Buffer) => chunks.push(chunk))
  answer.on("end", () => {
    const script = `(function(){var p=location.pathname,x=${JSON.stringify(PROXY_PREFIX.slice(0, -1))};` +
      `if(p.indexOf(x)===0){history.replaceState(null,"",(p.slice(x.length)||"/")+location.search+location.hash);}})();`
    const injected = `<base href="${PROXY_PREFIX}"><script>${script}</script>`
    const html = Buffer.concat(chunks).toString("utf8")
    const open = /<head(\s[^>]*)?>/i.exec(html)
    const body = Buffer.from(open === null ? injected + html : html.replace(open[0], open[0] + injected), "utf8")
    const policy = headers["content-security-policy"]
    if (typeof policy === "string") {
      headers["content-security-policy"] = withScriptHash(policy, createHash("sha256").update(script, "utf8").digest("base64"))
    }
    headers["content-length"] = String(body.byteLength)
    delete headers["content-encoding"]
    response.writeHead(answer.statusCode ?? 502, headers)
    response.end(body)
  })
}

const directives = (csp: string) => csp.split(";").map((part) => part.trim()).filter((part) => part !== "")

const withoutFrameAncestors = (csp: string) =>
  directives(csp).filter((part) => !part.toLowerCase().startsWith("frame-ancestors")).join("; ")

const withScriptHash = (csp: string, hash: string) => {
  const parts = directives(csp)
  const index = parts.findIndex((part) => /^script-src(\s|$)/i.test(part))
  if (index === -1) parts.push(`script-src 'sha256-${hash}'`)
  else parts[index] = `${parts[index]} 'sha256-${hash}'`
  return parts.join("; ")
}

/** The dashboard's own pages: the iframe widget, and CodexView's calls. */
const dashboard = (target: string, response: ServerResponse, proxy: WidgetProxy) => {
  if (target === "/dashboard/terminal") {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" })
    response.end(`<!doctype html><html><body style="margin:0">` +
      `<iframe id="widget" src="${proxy.iframeUrl}" style="width:1000px;height:600px;border:0"></iframe></body></html>`)
    return
  }
  if (target === "/dashboard/conversation") {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" })
    response.end(`<!doctype html><html><body><script>
      const base = ${JSON.stringify(proxy.widgetProxyUrl)};
      window.received = [];
      window.opened = false;
      const events = new EventSource(base + "events");
      events.onopen = () => { window.opened = true; };
      events.onmessage = (message) => { window.received.push(message.data); };
      window.send = (text) => fetch(base + "send", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ text })
      }).then((answer) => answer.status);
    </script></body></html>`)
    return
  }
  response.writeHead(404).end()
}
