/**
 * ConnectionTracker: follows a Node HTTP server's connections and their in-flight requests, for
 * the two things Effect's server adapter does not offer the listener: waiting until a response
 * has been written out (the send gate), and a shutdown that does not sit on connections nobody
 * will ever close (idle keep-alives, connections that never sent a request) until its timeout.
 *
 * @since 0.1.0
 */
import { Duration, Effect } from "effect"
import type { Server, ServerResponse } from "node:http"
import { Socket as NetSocket } from "node:net"
import type { Socket } from "node:net"

/** How long ended connections may take to flush before they are destroyed. */
const FORCE_CLOSE_AFTER = Duration.millis(250)

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
  let onAllClosed: (() => void) | undefined
  const busy = () => [...inFlight.values()].some((count) => count > 0)
  const settle = () => {
    if (onIdle !== undefined && !busy()) onIdle()
  }
  server.on("connection", (socket: Socket) => {
    inFlight.set(socket, 0)
    socket.once("close", () => {
      inFlight.delete(socket)
      settle()
      if (onAllClosed !== undefined && inFlight.size === 0) onAllClosed()
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

  /**
   * Stops accepting, waits up to `grace` for in-flight requests, then ends every connection, and
   * destroys what is still open a short while later: a client that keeps its side of a connection
   * open (or stops reading) must not hold the close up.
   */
  const close = (grace: Duration.Input) =>
    Effect.callback<void>((resume) => {
      server.close()
      onIdle = () => resume(Effect.void)
      settle()
    }).pipe(
      Effect.timeoutOrElse({ duration: grace, orElse: () => Effect.void }),
      Effect.andThen(Effect.callback<void>((resume) => {
        onIdle = undefined
        if (inFlight.size === 0) return resume(Effect.void)
        onAllClosed = () => resume(Effect.void)
        // `destroySoon` (not `destroy`) so the last bytes of a finished response still go out.
        for (const socket of inFlight.keys()) socket.destroySoon()
      })),
      Effect.timeoutOrElse({ duration: FORCE_CLOSE_AFTER, orElse: () => Effect.void }),
      Effect.ensuring(Effect.sync(() => {
        onIdle = undefined
        onAllClosed = undefined
        for (const socket of inFlight.keys()) socket.destroy()
      }))
    )

  return { responseFinished, close }
}

/**
 * Destroys an upgrade request's connection once its answer is out. `@effect/platform-node`
 * (4.1.0) answers an upgrade it does not accept (a refusal, a 404) by ending the socket only,
 * which leaves the connection open for as long as the client keeps its side open; a WebSocket
 * that was accepted ends its socket when it closes, and is destroyed then too.
 * @category constructors
 */
export const destroyUpgradeWhenEnded = (source: unknown): void => {
  const socket = (source as { readonly socket?: unknown }).socket
  if (socket instanceof NetSocket) socket.once("finish", () => socket.destroy())
}
