/**
 * RemoteProcess: commands and processes on an SSH host (`run`, `spawn`, `spawnPty`,
 * `terminateTree`, `isAlive`) over exec channels of a shared {@link SshConnection}.
 *
 * OpenSSH refuses channel signals for root and closing a non-pty channel leaves the remote
 * process running, so nothing here relies on the channel to stop a process: the launch wrapper
 * reports the pid, and every signal, tree kill and liveness check is a remote shell command
 * (`KIT`). A spawned process is tracked by pid until its scope is released; release runs the
 * tree kill through the live connection, reconnecting (bounded) after a drop, and logs the pids
 * that may remain when even that fails.
 *
 * @since 0.1.0
 */
import { NodeStream } from "@effect/platform-node"
import { Cause, Deferred, Duration, Effect, Exit, Queue, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { constants as osConstants } from "node:os"
import type { ClientChannel } from "ssh2"
import { HostError } from "../Host.ts"
import type { Command, HostProcess, PtyProcess, RunOptions, RunResult, SpawnOptions } from "../Host.ts"
import { makeKitRunner } from "./KitHelper.ts"
import { invalidCommand, launchScript, MarkerScanner, remoteCommandLine } from "./RemoteShell.ts"
import type { Generation, SshConnection } from "./SshConnection.ts"
import { outputCollector } from "../OutputCollector.ts"

const STDERR_TAIL_CHARS = 64 * 1024
const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
const DEFAULT_GRACE = Duration.seconds(5)
const NAP_MILLIS = 50

/** The process operations of a remote host. */
export const makeProcesses = (connection: SshConnection) => {
  const label = connection.label

  const fail = (operation: string, reason: HostError["reason"], detail: string, path?: string) =>
    new HostError({ host: label, operation, reason, detail, ...(path === undefined ? {} : { path }) })

  /** Runs one KIT function to completion (through the connection's shell helpers). */
  const kit = makeKitRunner(connection, (generation, line) =>
    Effect.acquireUseRelease(
      connection.exec(generation, line),
      (channel) => collect(channel, { stdin: "", limit: DEFAULT_MAX_OUTPUT }),
      (channel) => Effect.sync(() => closeChannel(channel))
    ))

  const terminateTree = (pid: number, grace: Duration.Input) =>
    kit("terminate tree", "optio_terminate", [String(pid), String(Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(grace)) / NAP_MILLIS))]).pipe(
      Effect.asVoid,
      Effect.withSpan("RemoteHost.terminateTree", { attributes: { pid } })
    )

  const isAlive = (pid: number) => kit("is alive", "optio_isalive", [String(pid)]).pipe(Effect.map((result) => result.exitCode === 0))

  const signalTree = (pid: number, signal: string) =>
    kit("signal", "optio_signal", [String(pid), signal.replace(/^SIG/, "")]).pipe(Effect.asVoid)

  /** Kills a process tree after its scope ended; never fails, warns with the pids it could not stop. */
  const release = (pid: number, channel: ClientChannel, grace: Duration.Duration) =>
    terminateTree(pid, grace).pipe(
      Effect.andThen(Effect.sync(() => connection.tracked.delete(pid))),
      Effect.catch((error) =>
        Effect.logWarning("RemoteHost: could not stop a remote process tree; these processes may remain", {
          host: label,
          pids: [...connection.tracked],
          reason: error.message
        })
      ),
      Effect.ensuring(Effect.sync(() => closeChannel(channel)))
    )

  /**
   * A start that failed after the process came up (the connection dropped just then) leaves no
   * handle to release: stop the process in the background.
   */
  const abandonOnFailure = <A, E>(launched: Launched, grace: Duration.Duration) => (exit: Exit.Exit<A, E>) => {
    const marker = launched.scanner.marker
    if (Exit.isSuccess(exit) || marker?.kind !== "ready") return Effect.void
    closeChannel(launched.channel)
    return connection.detach(terminateTree(marker.pid, grace).pipe(
      Effect.andThen(Effect.sync(() => connection.tracked.delete(marker.pid))),
      Effect.ignore
    ))
  }

  /** Starts a launch wrapper on a channel and waits for its marker. */
  const launch = (
    operation: string,
    generation: Generation,
    command: Command,
    options: { readonly discardStdout: boolean; readonly pty?: { readonly columns: number; readonly rows: number } }
  ) =>
    Effect.gen(function*() {
      const invalid = invalidCommand(command)
      if (invalid !== undefined) return yield* fail(operation, "BadArgument", invalid, command.argv[0])
      const nonce = randomBytes(8).toString("hex")
      const line = remoteCommandLine(launchScript(command, { nonce, discardStdout: options.discardStdout }))
      const channel = yield* connection.exec(
        generation,
        line,
        options.pty === undefined ? undefined : { term: "xterm-256color", cols: options.pty.columns, rows: options.pty.rows }
      )
      channel.on("error", () => {})
      channel.stderr.on("error", () => {})
      return { channel, scanner: new MarkerScanner(nonce), exit: watchExit(channel) }
    })

  /** Resolves once the marker is seen; fails with the wrapper's verdict or output otherwise. */
  const awaitReady = (operation: string, program: string, launched: Launched, ready: Deferred.Deferred<void>) =>
    Effect.raceFirst(Deferred.await(ready), Deferred.await(launched.exit)).pipe(
      Effect.andThen(Effect.yieldNow),
      Effect.andThen(Effect.suspend(() => {
        const marker = launched.scanner.marker
        if (marker?.kind === "ready") {
          connection.tracked.add(marker.pid)
          return Effect.succeed(marker.pid)
        }
        closeChannel(launched.channel)
        if (marker !== undefined) {
          const reason = marker.kind === "notfound" ? "NotFound" : "PermissionDenied"
          return Effect.fail(fail(operation, reason, `${marker.what === "cwd" ? "working directory" : "program"} ${marker.kind === "notfound" ? "not found" : "not accessible"}`, program))
        }
        const said = launched.scanner.preambleText()
        return Effect.fail(fail(operation, "Unknown", `the remote launch wrapper did not start${said === "" ? "" : `: ${said.slice(-2000)}`}`, program))
      }))
    )

  const run = (command: Command, runOptions: RunOptions = {}) =>
    connection.use("run", (generation) =>
      Effect.acquireUseRelease(
        launch("run", generation, command, { discardStdout: false }),
        (launched) =>
          Effect.gen(function*() {
            const result = yield* collect(launched.channel, {
              stdin: runOptions.stdin ?? "",
              limit: runOptions.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
              scanner: launched.scanner,
              onInterrupt: () => {
                const pid = launched.scanner.marker?.kind === "ready" ? launched.scanner.marker.pid : undefined
                if (pid === undefined) return Effect.void
                const stop = terminateTree(pid, Duration.millis(200)).pipe(Effect.ignore)
                // After a drop the kill needs a reconnect: do not hold the caller's failure for it.
                return generation.isLost() ? connection.detach(stop) : stop
              }
            })
            const marker = launched.scanner.marker
            if (marker?.kind !== "ready") {
              yield* awaitReady("run", command.argv[0], launched, Deferred.makeUnsafe<void>())
            }
            if (result.exitCode === undefined) return yield* fail("run", "Unknown", "the channel closed without an exit status", command.argv[0])
            const done: RunResult = { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, truncated: result.truncated }
            return done
          }),
        (launched) =>
          Effect.sync(() => {
            closeChannel(launched.channel)
            if (launched.scanner.marker?.kind === "ready") connection.tracked.delete(launched.scanner.marker.pid)
          })
      )).pipe(Effect.withSpan("RemoteHost.run", { attributes: { program: command.argv[0] } }))

  const spawn = (command: Command, spawnOptions: SpawnOptions = {}) =>
    Effect.gen(function*() {
      const grace = Duration.fromInputUnsafe(spawnOptions.gracePeriod ?? DEFAULT_GRACE)
      const discardStdout = spawnOptions.stdout === false
      const started = yield* Effect.acquireRelease(
        connection.use("spawn", (generation) =>
          Effect.gen(function*() {
            const launched = yield* launch("spawn", generation, command, { discardStdout })
            const { channel, scanner } = launched
            const ready = yield* Deferred.make<void>()
            const decoder = new TextDecoder()
            const stderr = { tail: "" }
            channel.stderr.on("data", (chunk: Buffer) => {
              const rest = scanner.push(chunk)
              if (scanner.marker !== undefined) Deferred.doneUnsafe(ready, Exit.void)
              if (rest.length > 0) stderr.tail = (stderr.tail + decoder.decode(rest, { stream: true })).slice(-STDERR_TAIL_CHARS)
            })
            if (spawnOptions.stdin !== true) channel.end()
            if (discardStdout) channel.resume()
            const pid = yield* awaitReady("spawn", command.argv[0], launched, ready).pipe(Effect.onExit(abandonOnFailure(launched, grace)))
            return { ...launched, generation, pid, stderr }
          })),
        (started) => release(started.pid, started.channel, grace)
      )
      const { channel, generation, pid, exit } = started
      const lost = (operation: string) => connection.lostError(operation, generation.lostDetail)
      const exitCode = awaitExit(exit, generation, () => lost("wait for exit"))
      const stdout: Stream.Stream<Uint8Array, HostError> = discardStdout
        ? Stream.empty
        : NodeStream.fromReadable<Uint8Array, HostError>({
          evaluate: () => channel,
          closeOnDone: false,
          onError: (error) => generation.isLost() ? lost("read stdout") : fail("read stdout", "Unknown", String(error), command.argv[0])
        }).pipe(Stream.concat(Stream.suspend(() =>
          generation.isLost() && !Deferred.isDoneUnsafe(exit) ? Stream.fail(lost("read stdout")) : Stream.empty
        )))
      const handle: HostProcess = {
        pid,
        stdout,
        stderrTail: Effect.sync(() => started.stderr.tail),
        write: (data) => writeChannel(channel, data, () => generation.isLost() ? lost("write stdin") : fail("write stdin", "BadArgument", "stdin is not open", command.argv[0])),
        endInput: Effect.sync(() => channel.end()),
        exitCode,
        isRunning: Effect.suspend(() => {
          if (Deferred.isDoneUnsafe(exit)) return Effect.succeed(false)
          if (!generation.isLost()) return Effect.succeed(true)
          return isAlive(pid).pipe(Effect.orElseSucceed(() => true))
        }),
        signal: (signal) => signalTree(pid, signal)
      }
      return handle
    }).pipe(Effect.withSpan("RemoteHost.spawn", { attributes: { program: command.argv[0] } }))

  const spawnPty = (command: Command, size: { readonly columns: number; readonly rows: number }) =>
    Effect.gen(function*() {
      const output = yield* Queue.unbounded<string, HostError | Cause.Done>()
      const started = yield* Effect.acquireRelease(
        connection.use("spawn pty", (generation) =>
          Effect.gen(function*() {
            const launched = yield* launch("spawn pty", generation, command, { discardStdout: false, pty: size })
            const { channel, scanner } = launched
            const ready = yield* Deferred.make<void>()
            const decoder = new TextDecoder()
            channel.on("data", (chunk: Buffer) => {
              const rest = scanner.push(chunk)
              if (scanner.marker !== undefined) Deferred.doneUnsafe(ready, Exit.void)
              if (rest.length > 0) Queue.offerUnsafe(output, decoder.decode(rest, { stream: true }))
            })
            channel.once("close", () => {
              const tail = decoder.decode()
              if (tail !== "") Queue.offerUnsafe(output, tail)
              if (generation.isLost() && !Deferred.isDoneUnsafe(launched.exit)) {
                Queue.failCauseUnsafe(output, Cause.fail(connection.lostError("read pty", generation.lostDetail)))
              } else Queue.endUnsafe(output)
            })
            const pid = yield* awaitReady("spawn pty", command.argv[0], launched, ready).pipe(Effect.onExit(abandonOnFailure(launched, Duration.seconds(1))))
            return { ...launched, pid }
          })),
        (started) => release(started.pid, started.channel, Duration.seconds(1))
      )
      const { channel, pid, exit } = started
      const handle: PtyProcess = {
        pid,
        output: Stream.fromQueue(output),
        write: (data) => writeChannel(channel, data, () => fail("write pty", "BadArgument", "the terminal is closed", command.argv[0])),
        resize: (columns, rows) =>
          Effect.try({
            try: () => channel.setWindow(rows, columns, 0, 0),
            catch: (error) => fail("resize pty", "Unknown", String(error), command.argv[0])
          }),
        exitCode: Deferred.await(exit).pipe(Effect.map((code) => code ?? -1))
      }
      return handle
    }).pipe(Effect.withSpan("RemoteHost.spawnPty", { attributes: { program: command.argv[0] } }))

  return { run, spawn, spawnPty, terminateTree, isAlive, kit }
}

// --- channel helpers -----------------------------------------------------------------------

interface Launched {
  readonly channel: ClientChannel
  readonly scanner: MarkerScanner
  readonly exit: Deferred.Deferred<number | undefined>
}

/** Exit status of a channel: `undefined` when it closed without one (e.g. the connection dropped). */
const watchExit = (channel: ClientChannel): Deferred.Deferred<number | undefined> => {
  const exit = Deferred.makeUnsafe<number | undefined>()
  channel.once("exit", (code: number | null, signal?: string) => {
    Deferred.doneUnsafe(exit, Exit.succeed(code ?? 128 + signalNumber(signal)))
  })
  channel.once("close", () => Deferred.doneUnsafe(exit, Exit.succeed(undefined)))
  return exit
}

const awaitExit = (exit: Deferred.Deferred<number | undefined>, generation: Generation, lost: () => HostError): Effect.Effect<number, HostError> => {
  const resolved = Deferred.await(exit).pipe(Effect.flatMap((code) => code === undefined ? Effect.fail(lost()) : Effect.succeed(code)))
  return Effect.suspend(() =>
    Deferred.isDoneUnsafe(exit)
      ? resolved
      : Effect.raceFirst(resolved, Deferred.await(generation.lost).pipe(Effect.andThen(Effect.suspend(() => Deferred.isDoneUnsafe(exit) ? resolved : Effect.fail(lost())))))
  )
}

const signalNumber = (name: string | undefined): number =>
  Object.entries(osConstants.signals).find(([signal]) => signal === name)?.[1] ?? 0

/** Feeds stdin, collects stdout/stderr (bounded), waits for the exit status and a prompt close. */
const collect = (
  channel: ClientChannel,
  options: {
    readonly stdin: string | Uint8Array
    readonly limit: number
    readonly scanner?: MarkerScanner
    readonly onInterrupt?: () => Effect.Effect<void>
  }
) =>
  Effect.gen(function*() {
    const exit = watchExit(channel)
    const closed = Deferred.makeUnsafe<void>()
    channel.once("close", () => Deferred.doneUnsafe(closed, Exit.void))
    channel.on("error", () => {})
    const stdout = outputCollector(options.limit)
    const stderr = outputCollector(options.limit)
    channel.on("data", (chunk: Buffer) => stdout.push(chunk))
    channel.stderr.on("data", (chunk: Buffer) => stderr.push(options.scanner === undefined ? chunk : options.scanner.push(chunk)))
    channel.end(options.stdin)
    const exitCode = yield* Deferred.await(exit).pipe(Effect.onInterrupt(() => options.onInterrupt?.() ?? Effect.void))
    // A daemon started by the command may keep the output open: wait briefly, never forever.
    yield* Deferred.await(closed).pipe(Effect.timeoutOption("200 millis"))
    return { exitCode, stdout: stdout.text(), stderr: stderr.text(), truncated: stdout.truncated() || stderr.truncated() }
  })

const writeChannel = (channel: ClientChannel, data: string | Uint8Array, closedError: () => HostError) =>
  Effect.callback<void, HostError>((resume) => {
    if (!channel.writable) {
      resume(Effect.fail(closedError()))
      return
    }
    channel.write(data, (error: Error | null | undefined) => {
      resume(error === null || error === undefined ? Effect.void : Effect.fail(closedError()))
    })
  })

const closeChannel = (channel: ClientChannel) => {
  try {
    channel.close()
  } catch {
    // already closed, or the connection is gone
  }
}
