/**
 * RemoteForward: a remote port forward over an existing SSH connection, so a process on the remote
 * host reaches a loopback service of the worker (the token broker) at `127.0.0.1:<port>` there.
 * The server binds the port on its loopback only; each connection to it arrives as a channel and
 * is piped to `127.0.0.1:<localPort>` here. After a reconnect the same remote port is asked for
 * again (what was handed out keeps working); when the server refuses it, the forward is logged as
 * broken and clients there see refused connections.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Scope } from "effect"
import { connect } from "node:net"
import type { Socket } from "node:net"
import type { Client, ClientChannel, TcpConnectionDetails } from "ssh2"
import { HostError } from "../Host.ts"
import type { Generation, SshConnection } from "./SshConnection.ts"

const BIND_ADDRESS = "127.0.0.1"

const bind = (connection: SshConnection, generation: Generation, port: number) =>
  Effect.callback<number, HostError>((resume) => {
    generation.client.forwardIn(BIND_ADDRESS, port, (error, bound) => {
      if (error) {
        resume(Effect.fail(new HostError({ host: connection.label, operation: "remote port forward", reason: "Unknown", detail: error.message })))
      } else {
        resume(Effect.succeed(port === 0 ? bound : port))
      }
    })
  })

/** Pipes every forwarded connection to `remotePort` into `127.0.0.1:localPort`; the stop function also cuts open ones. */
const relay = (client: Client, remotePort: number, localPort: number) => {
  const open = new Set<Socket>()
  const onConnection = (details: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void) => {
    if (details.destPort !== remotePort) return
    const socket = connect(localPort, "127.0.0.1")
    open.add(socket)
    socket.once("error", () => reject())
    socket.once("connect", () => {
      const channel = accept()
      channel.pipe(socket).pipe(channel)
      channel.once("close", () => socket.destroy())
      socket.once("close", () => channel.close())
    })
    socket.once("close", () => open.delete(socket))
  }
  client.on("tcp connection", onConnection)
  return () => {
    client.off("tcp connection", onConnection)
    for (const socket of open) socket.destroy()
  }
}

/**
 * Forwards `127.0.0.1:<returned port>` on the remote host to `127.0.0.1:localPort` here, for the
 * scope's lifetime.
 * @category constructors
 */
export const forwardRemoteToLocal = (connection: SshConnection, localPort: number): Effect.Effect<number, HostError, Scope.Scope> =>
  Effect.gen(function*() {
    const first = yield* connection.generation
    const remotePort = yield* bind(connection, first, 0)
    let current = first
    let stopRelay = relay(first.client, remotePort, localPort)
    const scope = yield* Effect.scope
    // Follow reconnects: each new generation gets the same port bound again.
    const follow = Effect.gen(function*() {
      while (true) {
        yield* Deferred.await(current.lost)
        stopRelay()
        const next = yield* connection.generation
        const bound = yield* Effect.result(bind(connection, next, remotePort))
        if (bound._tag === "Failure") {
          yield* Effect.logWarning(`the remote port forward ${remotePort} could not be restored after a reconnect: ${bound.failure.message}`)
          return
        }
        current = next
        stopRelay = relay(next.client, remotePort, localPort)
      }
    }).pipe(Effect.catch(() => Effect.void))
    yield* Effect.forkIn(follow, scope)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopRelay()
        if (!current.isLost()) current.client.unforwardIn(BIND_ADDRESS, remotePort, () => undefined)
      })
    )
    return remotePort
  })
