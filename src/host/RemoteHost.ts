/**
 * RemoteHost: the {@link Host} contract on a machine reached over SSH (ssh2). The remote needs a
 * POSIX `sh`, `ps`, `awk`, `find` and an SFTP subsystem; nothing is installed there.
 *
 * Owns the translation of the contract onto one SSH connection per `user@host:port`, taken from
 * an {@link SshPool} (`ssh/SshConnection.ts`): commands become quoted `sh -c` scripts whose launch wrapper reports
 * the pid (`ssh/RemoteShell.ts`, `ssh/RemoteProcess.ts`), files go through SFTP
 * (`ssh/RemoteFiles.ts`) except the guarded operations on files the agent could have touched,
 * which run a checked `sh` script (`ssh/RemoteGuardedFiles.ts`: SFTP cannot refuse a symlink or
 * open a FIFO without blocking), small process/file helpers run in long-lived shell helpers
 * (`ssh/KitHelper.ts`), and host keys are verified before anything runs (`ssh/HostKey.ts`).
 *
 * **Gotchas**
 * - `env` is layered onto the remote login environment (sshd's, plus what the login shell
 *   exports); names that are not POSIX shell identifiers cannot be set (BadArgument) or removed.
 * - Stopping a process never relies on the channel: OpenSSH refuses channel signals for root and
 *   a closed non-pty channel leaves the process running. Signals and tree kills are remote `kill`
 *   commands on the pids the launch wrapper reported.
 * - After a drop, operations in flight (and process handles' `exitCode`, `stdout`) fail with
 *   reason `ConnectionLost` (cause: {@link HostConnectionLost}); the next operation reconnects,
 *   bounded by `reconnect`, so teardown can still stop what runs remotely.
 * - OpenSSH limits sessions per connection (`MaxSessions`, 10 by default); every running
 *   command, spawned process, terminal, the SFTP session and up to two shell helpers hold one.
 *   Opening more waits.
 * - {@link layer} owns a pool of its own (its connection closes with it). Layers built with
 *   {@link layerShared} share the {@link SshPool} the worker provides, one connection per
 *   `user@host:port`: a layer joining it has the host key checked against its own policy, but
 *   runs with the credentials of the layer that opened it.
 * - The login shell must accept POSIX single-quoted words (sh, bash, dash, zsh, ksh); every exec
 *   pays its rc-file start-up, which is why helper calls reuse long-lived shells.
 *
 * @since 0.1.0
 */
import { Deferred, Duration, Effect, Layer } from "effect"
import type { Redacted, Scope } from "effect"
import { Host, HostConnectionLost, HostError } from "./Host.ts"
import { makeHostFacts } from "./HostFacts.ts"
import type { HostShape } from "./Host.ts"
import { HostKeyChanged, HostKeyUnknown } from "./ssh/HostKey.ts"
import { makeFiles } from "./ssh/RemoteFiles.ts"
import { makeProcesses } from "./ssh/RemoteProcess.ts"
import { makeSshPool, SshPool } from "./ssh/SshConnection.ts"
import type { SshConnectionInfo, SshPoolShape } from "./ssh/SshConnection.ts"
import { forwardRemoteToLocal } from "./ssh/RemoteForward.ts"
import type { OptionalPackageMissing } from "../package/OptionalPackage.ts"
import { makeTail } from "./Tail.ts"

export { HostConnectionLost, HostKeyChanged, HostKeyUnknown, makeSshPool, SshPool }
export type { SshConnectionInfo, SshPoolShape }

/**
 * How to reach and trust an SSH host.
 * @category models
 * @since 0.1.0
 */
export interface RemoteHostOptions {
  readonly host: string
  /** Default 22. */
  readonly port?: number
  readonly user: string
  /** A private key file on the worker. */
  readonly identityFile?: string
  /** Passphrase of an encrypted `identityFile`. */
  readonly passphrase?: Redacted.Redacted<string>
  /** An ssh-agent socket path (`SSH_AUTH_SOCK`) on the worker. */
  readonly agent?: string
  /** An OpenSSH known_hosts file on the worker. */
  readonly knownHostsFile?: string
  /** A pinned host key fingerprint, `SHA256:…` as `ssh-keygen -lf` prints it; decides alone. */
  readonly hostKeyFingerprint?: string
  /**
   * `strict` (default) refuses unknown keys; `accept-new` records an unknown key in
   * `knownHostsFile` on first contact. Both refuse a changed key.
   */
  readonly hostKeyPolicy?: "strict" | "accept-new"
  /** Default 5 seconds. A drop is noticed within `keepaliveInterval * keepaliveCountMax`. */
  readonly keepaliveInterval?: Duration.Input
  /** Default 3. */
  readonly keepaliveCountMax?: number
  /** Handshake and authentication deadline. Default 10 seconds. */
  readonly connectTimeout?: Duration.Input
  /** Reconnects after a drop: tries and the pause between them. Default 3 tries, 1 second apart. */
  readonly reconnect?: { readonly attempts: number; readonly delay: Duration.Input }
}

/**
 * Failures of building a remote host: an untrusted host key, no connection, or the optional
 * `ssh2` package not installed.
 * @category errors
 * @since 0.1.0
 */
export type RemoteHostError = HostKeyUnknown | HostKeyChanged | HostError | OptionalPackageMissing

/**
 * Connects (or joins the pool's connection) and builds the host. The connection reference is
 * released when the scope closes.
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: RemoteHostOptions): Effect.Effect<HostShape, RemoteHostError, SshPool | Scope.Scope> =>
  Effect.gen(function*() {
    const pool = yield* SshPool
    const port = options.port ?? 22
    if (options.hostKeyPolicy === "accept-new" && options.knownHostsFile === undefined && options.hostKeyFingerprint === undefined) {
      return yield* new HostError({
        host: `ssh://${options.user}@${options.host}:${port}`,
        operation: "connect",
        reason: "BadArgument",
        detail: "hostKeyPolicy accept-new needs a knownHostsFile to record the key in"
      })
    }
    const connection = yield* pool.acquire({
      host: options.host,
      port,
      user: options.user,
      ...(options.identityFile === undefined ? {} : { identityFile: options.identityFile }),
      ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
      ...(options.agent === undefined ? {} : { agent: options.agent }),
      hostKey: {
        host: options.host,
        port,
        mode: options.hostKeyPolicy ?? "strict",
        ...(options.knownHostsFile === undefined ? {} : { knownHostsFile: options.knownHostsFile }),
        ...(options.hostKeyFingerprint === undefined ? {} : { fingerprint: options.hostKeyFingerprint })
      },
      keepaliveInterval: Duration.fromInputUnsafe(options.keepaliveInterval ?? "5 seconds"),
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
      connectTimeout: Duration.fromInputUnsafe(options.connectTimeout ?? "10 seconds"),
      reconnect: {
        attempts: options.reconnect?.attempts ?? 3,
        delay: Duration.fromInputUnsafe(options.reconnect?.delay ?? "1 second")
      }
    })
    const processes = makeProcesses(connection)
    const files = makeFiles(connection, processes.kit)
    let home: string | undefined
    const shape: HostShape = {
      label: connection.label,
      home: Effect.suspend(() =>
        home !== undefined ? Effect.succeed(home) : processes.kit("home", "optio_home", []).pipe(
          Effect.flatMap((result) => {
            if (!result.stdout.startsWith("/")) {
              return Effect.fail(new HostError({ host: connection.label, operation: "home", reason: "Unknown", detail: `the remote home directory is not absolute: ${JSON.stringify(result.stdout)}` }))
            }
            home = result.stdout
            return Effect.succeed(result.stdout)
          })
        )
      ),
      run: processes.run,
      facts: makeHostFacts(processes.run),
      spawn: processes.spawn,
      spawnPty: processes.spawnPty,
      terminateTree: processes.terminateTree,
      isAlive: processes.isAlive,
      forwardToLocal: (localPort) => forwardRemoteToLocal(connection, localPort),
      connectionLost: Effect.flatMap(connection.generation, (generation) =>
        Deferred.await(generation.lost).pipe(
          Effect.andThen(Effect.fail(connection.lostError("session", generation.lostDetail)))
        )),
      ...files,
      tail: makeTail({ stat: files.stat, readRange: files.readRegularRange }, Duration.millis(200))
    }
    return shape
  })

/**
 * The remote host as a layer on the worker's {@link SshPool}: layers for the same
 * `user@host:port` share one connection, released with the last of their scopes.
 * @category layers
 * @since 0.1.0
 */
export const layerShared = (options: RemoteHostOptions): Layer.Layer<Host, RemoteHostError, SshPool> =>
  Layer.effect(Host, make(options).pipe(Effect.map((shape) => Host.of(shape))))

/**
 * The remote host as a layer with a connection of its own, closed with the layer's scope.
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: RemoteHostOptions): Layer.Layer<Host, RemoteHostError> =>
  layerShared(options).pipe(Layer.provide(Layer.fresh(SshPool.layer)))

/**
 * The {@link HostConnectionLost} behind a `ConnectionLost` host error, if any (kept for callers
 * of 0.1.0; `HostError.connectionLost` in Host.ts is the classification itself).
 * @category getters
 * @since 0.1.0
 */
export const connectionLostOf = (error: HostError): HostConnectionLost | undefined => error.connectionLost
