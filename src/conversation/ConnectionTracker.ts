/**
 * ConnectionTracker: follows a Node HTTP server's connections and their in-flight requests, for
 * the two things Effect's server adapter does not offer the listener: waiting until a response
 * has been written out (the send gate), and a shutdown that does not sit on connections nobody
 * will ever close (idle keep-alives, connections that never sent a request) until its timeout.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Duration } from "effect"
import type { Server, ServerResponse } from "node:http"
import type { Socket } from "node:net"

/**
 * Follows a Node server's connections and their in-flight requests. Node hands every request to
 * this tracker before Effect's handler (listeners run in registration order), so a route can
 * wait until its response has been written out, and closing can end connections that would
 * otherwise keep `server.close()` waiting (idle keep-alives, connections that never sent a
 * request). Install it before the server's own request handler.
 * @category constructors
 */
export const trackConnections = (server: Server) => {
  const inFlight = new Map<Socket, number>()
  const responses = new WeakMap<object, ServerResponse>()
  let onIdle: (() => void) | undefined
  const busy = () => [...inFlight.values()].some((count) => count > 0)
  const settle = () => {
    if (onIdle !== undefined && !busy()) onIdle()
  }
  server.on("connection", (socket: Socket) => {
    inFlight.set(socket, 0)
    socket.once("close", () => {
      inFlight.delete(socket)
      settle()
    })
  })
  server.on("request", (request, response) => {
    responses.set(request, response)
    const socket = request.socket
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1)
    response.once("close", () => {
      const count = inFlight.get(socket)
      if (count !== undefined) inFlight.set(socket, count - 1)
      settle()
    })
  })

  /** Completes once the response to `source` (a request's Node object) has been written or torn down. */
  const responseFinished = (source: object) =>
    Effect.callback<void>((resume) => {
      const response = responses.get(source)
      if (response === undefined || response.writableFinished || response.destroyed) {
        resume(Effect.void)
        return
      }
      const done = () => resume(Effect.void)
      response.once("finish", done)
      response.once("close", done)
      return Effect.sync(() => {
        response.off("finish", done)
        response.off("close", done)
      })
    })

  /** Stops accepting, waits up to `grace` for in-flight requests, then ends every connection. */
  const close = (grace: Duration.Input) =>
    Effect.callback<void>((resume) => {
      server.close()
      onIdle = () => resume(Effect.void)
      settle()
    }).pipe(
      Effect.timeoutOrElse({ duration: grace, orElse: () => Effect.void }),
      // `end` (not `destroy`) so the last bytes of a finished response still go out.
      Effect.ensuring(Effect.sync(() => {
        onIdle = undefined
        for (const socket of inFlight.keys()) socket.end()
      }))
    )

  return { responseFinished, close }
}
