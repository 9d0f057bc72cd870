/**
 * LoopbackServer: an HTTP server on an ephemeral 127.0.0.1 port for the scope's lifetime, for the
 * small JSON endpoints the worker serves to processes on this machine (the token broker, the
 * stand-in issuer). Closing cuts every connection after a short grace, so a client holding one
 * open never holds the close up.
 *
 * @since 0.1.0
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Duration, Effect } from "effect"
import type { Scope } from "effect"
import type { HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { trackConnections } from "./ConnectionTracker.ts"

/**
 * Serves `handler` on 127.0.0.1 until the scope closes; the port it got. The server failing to
 * listen is a defect: an ephemeral loopback port is always there to take.
 * @category constructors
 */
export const serveLoopback = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<number, never, Scope.Scope | Exclude<R, HttpServerRequest.HttpServerRequest>> =>
  Effect.gen(function*() {
    const nodeServer = createServer()
    const connections = trackConnections(nodeServer)
    const server = yield* NodeHttpServer.make(() => nodeServer, {
      host: "127.0.0.1",
      port: 0,
      gracefulShutdownTimeout: Duration.seconds(1)
    }).pipe(Effect.orDie)
    yield* server.serve(handler)
    // Runs before the server's own close, which would wait for every connection forever.
    yield* Effect.addFinalizer(() => connections.close(Duration.seconds(1)))
    return server.address._tag === "UnixPathAddress" ? 0 : server.address.port
  })
