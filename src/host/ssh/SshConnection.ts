/**
 * SshConnection: the one authenticated SSH connection a pool ({@link SshPool}) keeps per
 * `user@host:port`, shared by every RemoteHost layer built on that pool and closed when the last
 * of them is done (the pool is an `RcMap` owned by its layer, so nothing outlives it).
 *
 * Owns connecting (key file or agent, host key verification before anything runs, keepalive),
 * noticing a drop, the bounded reconnect used by the next operation after a drop, opening exec
 * channels and the SFTP session, and the pids of remote processes still tracked (for the
 * `HostConnectionLost` report). It does not know what runs on the host.
 *
 * A connection is a chain of *generations* (one ssh2 client each). An operation runs on the live
 * generation and fails with `ConnectionLost` when that generation drops under it; the next
 * operation reconnects (bounded) and runs on a new generation.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Duration, Effect, Equal, Exit, Hash, Layer, MutableHashMap, RcMap, Redacted, Schedule, Scope } from "effect"
import { readFile } from "node:fs/promises"
import { connect as netConnect } from "node:net"
import type { Client, ClientChannel, ConnectConfig, PseudoTtyOptions, SFTPWrapper } from "ssh2"
import { HostConnectionLost, HostError } from "../Host.ts"
import { loadOptionalPackage } from "../../package/OptionalPackage.ts"
import type { OptionalPackageMissing } from "../../package/OptionalPackage.ts"
import type { HostErrorReason } from "../Host.ts"
import { decide, preferredAlgorithms, readKnownHosts, recordKnownHost } from "./HostKey.ts"
import type { HostKeyChanged, HostKeyPolicy, HostKeyUnknown, HostKeyVerdict } from "./HostKey.ts"

/**
 * Everything needed to open (and re-open) a connection.
 * @category models
 */
export interface SshConnectionOptions {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly identityFile?: string
  readonly passphrase?: Redacted.Redacted<string>
  readonly agent?: string
  readonly hostKey: HostKeyPolicy
  readonly keepaliveInterval: Duration.Duration
  readonly keepaliveCountMax: number
  readonly connectTimeout: Duration.Duration
  readonly reconnect: { readonly attempts: number; readonly delay: Duration.Duration }
}

/**
 * One ssh2 client of a connection; `lost` completes when it drops.
 * @category models
 */
export class Generation {
  readonly serial: number
  readonly client: Client
  readonly lost: Deferred.Deferred<void>
  hostKey: Buffer = Buffer.alloc(0)
  localPort = 0
  lostDetail: string | undefined = undefined
  sftp: Deferred.Deferred<SFTPWrapper, HostError> | undefined = undefined
  constructor(serial: number, client: Client, lost: Deferred.Deferred<void>) {
    this.serial = serial
    this.client = client
    this.lost = lost
  }
  isLost(): boolean {
    return Deferred.isDoneUnsafe(this.lost)
  }
}

/**
 * A shared connection. Obtain it from an {@link SshPool}.
 * @category models
 */
export class SshConnection {
  readonly id: number
  readonly key: string
  readonly label: string
  /** Remote pids of processes spawned through this connection and not yet released. */
  readonly tracked = new Set<number>()
  readonly options: SshConnectionOptions
  /** Background work (reconnects, detached kills) lives here and ends with the connection. */
  readonly scope: Scope.Closeable
  private current: Generation
  private reconnecting: Deferred.Deferred<Generation, HostError> | undefined = undefined
  private closed = false
  private readonly detached = new Set<Deferred.Deferred<void>>()

  private readonly nextSerial: () => number

  constructor(id: number, key: string, options: SshConnectionOptions, first: Generation, scope: Scope.Closeable, nextSerial: () => number) {
    this.id = id
    this.nextSerial = nextSerial
    this.key = key
    this.label = `ssh://${key}`
    this.options = options
    this.current = first
    this.scope = scope
  }

  /** The host key the server presented on the live generation. */
  get hostKey(): Buffer {
    return this.current.hostKey
  }

  /** The client-side TCP port of the live generation (for diagnostics and tests). */
  get localPort(): number {
    return this.current.localPort
  }

  /** The live generation, reconnecting (bounded, shared by concurrent callers) after a drop. */
  readonly generation: Effect.Effect<Generation, HostError> = Effect.suspend(() => {
    if (this.closed) return Effect.fail(this.lostError("connect", "the connection was closed"))
    if (!this.current.isLost()) return Effect.succeed(this.current)
    const pending = this.reconnecting
    if (pending !== undefined) return Deferred.await(pending)
    const deferred = Deferred.makeUnsafe<Generation, HostError>()
    this.reconnecting = deferred
    const attempt = this.reconnectLoop().pipe(
      Effect.exit,
      Effect.flatMap((exit) =>
        Effect.sync(() => {
          if (Exit.isSuccess(exit)) this.current = exit.value
        }).pipe(Effect.andThen(Deferred.done(deferred, exit)))
      ),
      // Closing the connection interrupts a reconnect: its waiters must not hang.
      Effect.ensuring(Effect.suspend(() => {
        this.reconnecting = undefined
        return Deferred.fail(deferred, this.lostError("reconnect", "the connection was closed"))
      }))
    )
    return Effect.forkIn(attempt, this.scope).pipe(Effect.andThen(Deferred.await(deferred)))
  })

  /**
   * Runs `f` on the live generation. If that generation drops before `f` is done, `f` is
   * interrupted and the result is a `ConnectionLost` failure.
   */
  use<A>(operation: string, f: (generation: Generation) => Effect.Effect<A, HostError>): Effect.Effect<A, HostError> {
    return this.generation.pipe(Effect.flatMap((generation) =>
      Effect.raceFirst(
        f(generation),
        Deferred.await(generation.lost).pipe(Effect.andThen(Effect.fail(this.lostError(operation, generation.lostDetail))))
      ).pipe(Effect.mapError((error) =>
        error.reason !== "ConnectionLost" && generation.isLost() ? this.lostError(operation, generation.lostDetail) : error
      ))
    ))
  }

  /** A `HostError` with reason `ConnectionLost` whose cause is a {@link HostConnectionLost}. */
  lostError(operation: string, detail = "connection lost"): HostError {
    return new HostError({
      host: this.label,
      operation,
      reason: "ConnectionLost",
      detail,
      cause: new HostConnectionLost({ host: this.label, operation, detail, pids: [...this.tracked] })
    })
  }

  /** Opens an exec channel running `command` (with a pty when given). */
  exec(generation: Generation, command: string, pty?: PseudoTtyOptions): Effect.Effect<ClientChannel, HostError> {
    const open = Effect.callback<ClientChannel, HostError>((resume) => {
      let abandoned = false
      try {
        generation.client.exec(command, pty === undefined ? {} : { pty }, (error, channel) => {
          if (error !== undefined && error !== null) return resume(Effect.fail(this.channelError("exec", error)))
          // The caller was interrupted while the channel was opening: nobody will close it.
          if (abandoned) return channel.close()
          resume(Effect.succeed(channel))
        })
      } catch (error) {
        resume(Effect.fail(this.channelError("exec", error)))
      }
      return Effect.sync(() => {
        abandoned = true
      })
    })
    // OpenSSH caps sessions per connection (MaxSessions, 10 by default): wait for a free one.
    return open.pipe(Effect.retry({
      while: (error) => error.reason === "Unknown" && /open failure/i.test(error.detail) && !generation.isLost(),
      schedule: Schedule.spaced("50 millis"),
      times: 200
    }))
  }

  /** The generation's SFTP session, opened on first use. */
  sftp(generation: Generation): Effect.Effect<SFTPWrapper, HostError> {
    const existing = generation.sftp
    if (existing !== undefined) return Deferred.await(existing)
    const deferred = Deferred.makeUnsafe<SFTPWrapper, HostError>()
    generation.sftp = deferred
    const open = Effect.callback<SFTPWrapper, HostError>((resume) => {
      try {
        generation.client.sftp((error, sftp) => {
          if (error !== undefined && error !== null) return resume(Effect.fail(this.channelError("sftp", error)))
          // A session the server ends is opened afresh by the next file operation.
          sftp.once("close", () => {
            if (generation.sftp === deferred) generation.sftp = undefined
          })
          resume(Effect.succeed(sftp))
        })
      } catch (error) {
        resume(Effect.fail(this.channelError("sftp", error)))
      }
    })
    // Opened apart from the caller, so one caller's interruption does not fail the others.
    const opening = open.pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (!Exit.isSuccess(exit) && generation.sftp === deferred) generation.sftp = undefined
        }).pipe(Effect.andThen(Deferred.done(deferred, exit)))
      )
    )
    return Effect.forkIn(opening, this.scope).pipe(Effect.andThen(Deferred.await(deferred)))
  }

  /**
   * Runs cleanup work (a kill after a drop) in the background. Closing the connection waits for
   * it, up to 10 seconds, before interrupting it.
   */
  detach(effect: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const done = Deferred.makeUnsafe<void>()
      this.detached.add(done)
      const finish = Effect.sync(() => {
        this.detached.delete(done)
        Deferred.doneUnsafe(done, Exit.void)
      })
      return Effect.forkIn(effect.pipe(Effect.ensuring(finish)), this.scope).pipe(Effect.asVoid)
    })
  }

  /** Closes the live client and stops background work; later operations fail. */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    const waitDetached = Effect.forEach([...this.detached], Deferred.await, { discard: true }).pipe(Effect.timeoutOption("10 seconds"))
    return waitDetached.pipe(Effect.andThen(Effect.suspend(() => this.shutdown)))
  })

  private readonly shutdown: Effect.Effect<void> = Effect.suspend(() => {
    this.closed = true
    const generation = this.current
    return Scope.close(this.scope, Exit.void).pipe(
      Effect.andThen(Effect.sync(() => generation.client.end())),
      Effect.andThen(Deferred.await(generation.lost).pipe(Effect.timeoutOrElse({
        duration: "1 second",
        orElse: () => Effect.sync(() => generation.client.destroy())
      })))
    )
  })

  private reconnectLoop(): Effect.Effect<Generation, HostError> {
    const { attempts, delay } = this.options.reconnect
    let last = "no attempt made"
    const once = connectOnce(this.options, this.label, this.nextSerial()).pipe(
      Effect.catchTags({
        HostKeyUnknown: (error) => Effect.fail(this.lostError("reconnect", error.message)),
        HostKeyChanged: (error) => Effect.fail(this.lostError("reconnect", error.message))
      }),
      Effect.tapError((error) => Effect.sync(() => {
        last = error.detail
      }))
    )
    return once.pipe(
      Effect.map(([generation]) => generation),
      Effect.retry({
        while: (error) => !/host key/i.test(error.detail),
        schedule: Schedule.spaced(delay),
        times: Math.max(0, attempts - 1)
      }),
      Effect.mapError(() => this.lostError("reconnect", `could not reconnect after ${attempts} attempt(s): ${last}`))
    )
  }

  private channelError(operation: string, error: unknown): HostError {
    const detail = error instanceof Error ? error.message : String(error)
    const lost = this.current.isLost() || /not connected|no response from server/i.test(detail)
    return lost ? this.lostError(operation, detail) : new HostError({ host: this.label, operation, reason: "Unknown", detail, cause: error })
  }
}

/**
 * Why a connection could not be acquired: an untrusted host key, no connection, or the optional
 * `ssh2` package not installed.
 * @category errors
 */
export type SshConnectError = HostKeyUnknown | HostKeyChanged | HostError | OptionalPackageMissing

/**
 * One open connection of a pool (for diagnostics and tests).
 * @category models
 * @since 0.1.0
 */
export interface SshConnectionInfo {
  readonly key: string
  readonly id: number
  /** The scopes (RemoteHost layers) holding it. */
  readonly users: number
  /** The client-side TCP port of its live generation. */
  readonly localPort: number
}

/**
 * The connections of one pool.
 * @category models
 * @since 0.1.0
 */
export interface SshPoolShape {
  /**
   * The pool's connection for `options` (`user@host:port`), connecting on first use; the scope's
   * release drops this user's reference and the connection closes when none are left. A caller
   * joining an existing connection has the host key checked against its own policy too.
   */
  readonly acquire: (options: SshConnectionOptions) => Effect.Effect<SshConnection, SshConnectError, Scope.Scope>
  readonly connections: Effect.Effect<ReadonlyArray<SshConnectionInfo>>
}

/** An `RcMap` key: equal per `user@host:port`; carries the options the first user connects with. */
class ConnectionKey implements Equal.Equal {
  readonly key: string
  readonly options: SshConnectionOptions
  constructor(options: SshConnectionOptions) {
    this.key = `${options.user}@${options.host}:${options.port}`
    this.options = options
  }
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof ConnectionKey && that.key === this.key
  }
  [Hash.symbol](): number {
    return Hash.string(this.key)
  }
}

/**
 * A pool of shared connections, closed (every connection with it) when the scope closes.
 * @category constructors
 * @since 0.1.0
 */
export const makeSshPool: Effect.Effect<SshPoolShape, never, Scope.Scope> = Effect.gen(function*() {
  let serials = 0
  const nextSerial = () => ++serials
  const open = new Map<string, SshConnection>()
  const map = yield* RcMap.make({
    lookup: (key: ConnectionKey) =>
      Effect.acquireRelease(
        openConnection(key.options, key.key, nextSerial).pipe(Effect.tap((connection) => Effect.sync(() => open.set(key.key, connection)))),
        (connection) => Effect.sync(() => open.delete(key.key)).pipe(Effect.andThen(connection.close))
      )
  })
  const acquire = (options: SshConnectionOptions) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        // The reference lives in a scope of its own: a failed acquire drops it at once, so the
        // next caller connects afresh instead of meeting a cached failure.
        const reference = yield* Scope.fork(yield* Effect.scope)
        const acquired = yield* restore(
          RcMap.get(map, new ConnectionKey(options)).pipe(
            Effect.tap((connection) => connection.options === options ? Effect.void : verifyJoiner(options, connection)),
            Scope.provide(reference)
          )
        ).pipe(Effect.exit)
        if (Exit.isFailure(acquired)) yield* Scope.close(reference, acquired)
        return yield* acquired
      })
    )
  const connections = Effect.sync(() =>
    [...open].map(([key, connection]): SshConnectionInfo => {
      const entry = map.state._tag === "Open" ? MutableHashMap.get(map.state.map, new ConnectionKey(connection.options)) : undefined
      return { key, id: connection.id, users: entry?._tag === "Some" ? entry.value.refCount : 0, localPort: connection.localPort }
    })
  )
  return { acquire, connections }
})

/**
 * The SSH connection pool a worker shares among its RemoteHost layers.
 * @category services
 * @since 0.1.0
 */
export class SshPool extends Context.Service<SshPool, SshPoolShape>()("optio-codex/SshPool") {
  /** A pool that lives, with its connections, as long as the layer. */
  static readonly layer: Layer.Layer<SshPool> = Layer.effect(SshPool, makeSshPool)
}

// --- internals -----------------------------------------------------------------------------

const openConnection = (options: SshConnectionOptions, key: string, nextSerial: () => number) =>
  Effect.gen(function*() {
    yield* loadSsh2
    const serial = nextSerial()
    const [first, verdict] = yield* connectOnce(options, `ssh://${key}`, serial)
    if (verdict._tag === "New" && options.hostKey.knownHostsFile !== undefined) {
      yield* recordKnownHost(options.hostKey.knownHostsFile, options.host, options.port, first.hostKey).pipe(
        Effect.onError(() => Effect.sync(() => first.client.end()))
      )
    }
    return new SshConnection(serial, key, options, first, yield* Scope.make(), nextSerial)
  })

const verifyJoiner = (options: SshConnectionOptions, connection: SshConnection) =>
  Effect.gen(function*() {
    const entries = options.hostKey.fingerprint === undefined ? yield* readKnownHosts(options.hostKey.knownHostsFile) : []
    const verdict = decide(options.hostKey, entries, connection.hostKey)
    if (verdict._tag === "Unknown" || verdict._tag === "Changed") return yield* verdict.error
    if (verdict._tag === "New" && options.hostKey.knownHostsFile !== undefined) {
      yield* recordKnownHost(options.hostKey.knownHostsFile, options.host, options.port, connection.hostKey)
    }
  })

// ssh2 is an optional peer dependency: only workers with SSH hosts install it.
const loadSsh2 = loadOptionalPackage("ssh2", "An SSH host (RemoteHost)", () => import("ssh2"))

const connectOnce = (
  options: SshConnectionOptions,
  label: string,
  serial: number
): Effect.Effect<readonly [Generation, HostKeyVerdict], HostKeyUnknown | HostKeyChanged | HostError> =>
  Effect.gen(function*() {
    const entries = options.hostKey.fingerprint === undefined ? yield* readKnownHosts(options.hostKey.knownHostsFile) : []
    const privateKey = options.identityFile === undefined ? undefined : yield* Effect.tryPromise({
      try: () => readFile(options.identityFile ?? ""),
      catch: (error) => connectError(label, `cannot read identity file ${options.identityFile}`, "BadArgument", error)
    })
    // openConnection loaded ssh2 (and reported its absence) before the first attempt; Node caches it.
    const { Client } = yield* Effect.orDie(loadSsh2)
    const lost = yield* Deferred.make<void>()
    return yield* Effect.callback<readonly [Generation, HostKeyVerdict], HostKeyUnknown | HostKeyChanged | HostError>((resume) => {
      let verdict: HostKeyVerdict | undefined
      let settled = false
      const settle = (effect: Effect.Effect<readonly [Generation, HostKeyVerdict], HostKeyUnknown | HostKeyChanged | HostError>) => {
        if (settled) return
        settled = true
        resume(effect)
      }
      const socket = netConnect({ host: options.host, port: options.port })
      socket.setNoDelay(true)
      const client = new Client()
      const generation = new Generation(serial, client, lost)
      client.on("error", (error: Error & { readonly level?: string }) => {
        generation.lostDetail ??= error.message
        if (verdict?._tag === "Unknown" || verdict?._tag === "Changed") settle(Effect.fail(verdict.error))
        else settle(Effect.fail(connectError(label, error.message, error.level === "client-authentication" ? "PermissionDenied" : "ConnectionLost", error)))
        socket.destroy()
      })
      client.on("close", () => {
        generation.lostDetail ??= "connection closed by the server"
        Deferred.doneUnsafe(lost, Exit.void)
        settle(Effect.fail(connectError(label, "connection closed during the handshake", "ConnectionLost")))
      })
      client.once("ready", () => {
        generation.localPort = socket.localPort ?? 0
        settle(verdict === undefined ? Effect.fail(connectError(label, "no host key was verified", "Unknown")) : Effect.succeed([generation, verdict] as const))
      })
      const config: ConnectConfig = {
        sock: socket,
        username: options.user,
        ...(privateKey === undefined ? {} : { privateKey }),
        ...(options.passphrase === undefined ? {} : { passphrase: Redacted.value(options.passphrase) }),
        ...(options.agent === undefined ? {} : { agent: options.agent }),
        readyTimeout: Duration.toMillis(options.connectTimeout),
        keepaliveInterval: Duration.toMillis(options.keepaliveInterval),
        keepaliveCountMax: options.keepaliveCountMax,
        algorithms: { serverHostKey: preferredAlgorithms(options.hostKey, entries) },
        hostVerifier: (key: Buffer): boolean => {
          generation.hostKey = key
          verdict = decide(options.hostKey, entries, key)
          return verdict._tag === "Trusted" || verdict._tag === "New"
        }
      }
      try {
        client.connect(config)
      } catch (error) {
        // ssh2 parses the private key synchronously: a wrong passphrase or a bad key lands here.
        socket.destroy()
        settle(Effect.fail(connectError(label, `cannot use the identity: ${error instanceof Error ? error.message : String(error)}`, "BadArgument", error)))
      }
      return Effect.sync(() => {
        if (settled) return
        settled = true
        socket.destroy()
      })
    })
  })

const connectError = (label: string, detail: string, reason: HostErrorReason, cause?: unknown) =>
  new HostError({ host: label, operation: "connect", reason, detail, ...(cause === undefined ? {} : { cause }) })
