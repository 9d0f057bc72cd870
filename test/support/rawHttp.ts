/**
 * HTTP as a misbehaving or proxying client writes it: request targets sent byte for byte (`//x`,
 * which `fetch` would read as a host), and a kept-alive connection whose owner never closes it.
 */
import { Effect } from "effect"
import { request as httpRequest } from "node:http"
import { connect } from "node:net"
import type { Socket } from "node:net"

/** One request with `target` exactly as given; resolves with the status and body. */
export const rawRequest = (
  port: number,
  target: string,
  options: { readonly method?: string; readonly headers?: Record<string, string>; readonly body?: string } = {}
) =>
  Effect.callback<{ readonly status: number; readonly body: string; readonly headers: Record<string, unknown> }, Error>((resume) => {
    const request = httpRequest({ host: "127.0.0.1", port, method: options.method ?? "GET", path: target, headers: options.headers, agent: false }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: response.headers })))
    })
    request.on("error", (error) => resume(Effect.fail(error)))
    request.end(options.body)
  })

/** A connection that keeps its own side open whatever the server does, until the scope closes. */
export interface HeldConnection {
  readonly socket: Socket
  /** Everything the server sent so far. */
  readonly received: () => string
  /**
   * Whether the server has closed its whole connection. A server that only ends its side sends a
   * FIN and keeps reading, so this writes another byte: a destroyed connection answers with a
   * reset, which closes this side too.
   */
  readonly closedByServer: () => boolean
}

/** Opens a held connection and writes `bytes`. */
export const holdConnection = (port: number, bytes: string) =>
  Effect.acquireRelease(
    Effect.callback<HeldConnection, Error>((resume) => {
      const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true })
      let received = ""
      let closed = false
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1")
      })
      socket.on("close", () => {
        closed = true
      })
      socket.on("error", () => {})
      socket.once("connect", () => {
        socket.write(bytes)
        resume(Effect.succeed({
          socket,
          received: () => received,
          closedByServer: () => {
            if (!closed && socket.readableEnded && socket.writable) socket.write("\r\n")
            return closed
          }
        }))
      })
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    (held) => Effect.sync(() => held.socket.destroy())
  )

/** An unauthenticated WebSocket upgrade on a kept-alive connection, then another request on it. */
export const upgradeThenRequest = (path = "/ws") =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" +
  "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
