/**
 * LocalHost: the {@link Host} contract on the worker's own machine (Linux). Processes are
 * spawned in their own process group and killed as a whole tree (group, session and escaped
 * descendants, found through `/proc`; see TreeKill.ts) when their scope closes; files go through
 * the platform `FileSystem`, except the guarded opens and glob, which need `node:fs`.
 *
 * @since 0.1.0
 */
import { NodeFileSystem, NodeStream } from "@effect/platform-node"
import * as Pty from "@lydell/node-pty"
import { Cause, Deferred, Duration, Effect, Exit, FileSystem, Layer, Option, Queue, Stream } from "effect"
import type { PlatformError, Scope } from "effect"
// Processes stay on node:child_process: ChildProcessSpawner reports a signal death as a failure (not 128 + n) and
// signals only the process group, on native timers, even after a clean exit; the tree kill (TreeKill.ts) reaches escaped sessions on Clock.
import { spawn as spawnChild } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { constants as osConstants, homedir } from "node:os"
import { dirname, isAbsolute, join } from "node:path"
import type { Readable } from "node:stream"
import { mergeEnv } from "./EnvGlob.ts"
import { makeGuardedFiles } from "./GuardedFiles.ts"
import { Host, HostError } from "./Host.ts"
import { makeHostFacts } from "./HostFacts.ts"
import type { Command, FileInfo, HostErrorReason, HostProcess, HostShape, PtyProcess, RunOptions, RunResult, SpawnOptions } from "./Host.ts"
import { makeProcessTable, signalAll, treeOf } from "./ProcessTree.ts"
import type { ProcessTable, ProcReadError } from "./ProcessTree.ts"
import { terminateTree } from "./TreeKill.ts"
import type { ProcessControl } from "./TreeKill.ts"
import { outputCollector } from "./OutputCollector.ts"
import { makeTail } from "./Tail.ts"
import type { WatchDirectory } from "./Tail.ts"

/**
 * Options of the local host. Both default to the worker process's own values, read once when the
 * layer is built (never later, so tests can pin them).
 * @category models
 * @since 0.1.0
 */
export interface LocalHostOptions {
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly home?: string
}

const LABEL = "local"
const STDERR_TAIL_BYTES = 64 * 1024
const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
const DEFAULT_GRACE = Duration.seconds(5)

/**
 * Builds the local host.
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: LocalHostOptions = {}): Effect.Effect<HostShape> =>
  Effect.gen(function*() {
    return makeWith(options, yield* makeProcessTable, yield* FileSystem.FileSystem)
  }).pipe(Effect.provide(NodeFileSystem.layer))

const makeWith = (options: LocalHostOptions, processes: ProcessTable, files: FileSystem.FileSystem): HostShape => {
  const baseEnv = options.env ?? { ...process.env }
  const home = options.home ?? homedir()
  const control = processControl(processes)
  const killTree = (root: number | undefined, grace: Duration.Input) => root === undefined ? Effect.void : terminateTree(control, root, grace)
  /** For finalizers, which cannot fail: a kill that could not see the whole tree is logged loudly. */
  const killTreeOrWarn = (root: number | undefined, grace: Duration.Input) =>
    killTree(root, grace).pipe(
      Effect.catch((error) => Effect.logWarning(`could not stop the process tree of ${root}; processes may remain: ${error.detail}`))
    )

  const start = (command: Command, stdio: { readonly stdin: boolean; readonly stdout: boolean }) =>
    Effect.callback<ChildProcess, HostError>((resume) => {
      const [program, ...args] = command.argv
      if (command.argv.some((arg) => arg.includes("\u0000"))) {
        resume(Effect.fail(hostError("spawn", "BadArgument", "an argument contains a NUL byte", program)))
        return
      }
      const child = spawnChild(program, args, {
        cwd: command.cwd ?? home,
        env: mergeEnv(baseEnv, command.envRemove ?? [], command.env ?? {}, command.envAllow),
        detached: true,
        stdio: [stdio.stdin ? "pipe" : "ignore", stdio.stdout ? "pipe" : "ignore", "pipe"]
      })
      // A pipe whose other end is gone emits `error` (EPIPE on a write into a codex that died):
      // without a listener Node turns it into an uncaught exception that ends the worker. Write
      // failures are reported through the write's callback, reads through the stream consumer.
      for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.on("error", ignoreStreamError)
      holdOutput(child)
      child.once("spawn", () => resume(Effect.succeed(child)))
      child.once("error", (error) => resume(Effect.fail(fromNodeError("spawn", program, error))))
    })

  const exitOf = (child: ChildProcess) =>
    Effect.callback<number>((resume) => {
      const done = () => resume(Effect.succeed(exitCodeOf(child)))
      if (child.exitCode !== null || child.signalCode !== null) done()
      else child.once("exit", done)
    })

  const run = (command: Command, runOptions: RunOptions = {}) =>
    Effect.gen(function*() {
      const limit = runOptions.maxOutputBytes ?? DEFAULT_MAX_OUTPUT
      const child = yield* start(command, { stdin: true, stdout: true })
      const stdout = collect(child.stdout, limit)
      const stderr = collect(child.stderr, limit)
      releaseOutput(child.stdout)
      releaseOutput(child.stderr)
      child.stdin?.end(runOptions.stdin ?? "")
      const exitCode = yield* exitOf(child).pipe(
        Effect.onInterrupt(() => killTreeOrWarn(child.pid, Duration.millis(200)))
      )
      // A daemon started by the command may keep the pipes open: wait briefly, never forever.
      yield* closedOrTimeout(child, Duration.millis(200))
      const result: RunResult = {
        exitCode,
        stdout: stdout.text(),
        stderr: stderr.text(),
        truncated: stdout.truncated() || stderr.truncated()
      }
      return result
    }).pipe(Effect.withSpan("LocalHost.run", { attributes: { program: command.argv[0] } }))

  const spawn = (command: Command, spawnOptions: SpawnOptions = {}) =>
    Effect.gen(function*() {
      const grace = Duration.fromInputUnsafe(spawnOptions.gracePeriod ?? DEFAULT_GRACE)
      const child = yield* Effect.acquireRelease(
        start(command, { stdin: spawnOptions.stdin === true, stdout: spawnOptions.stdout !== false }),
        (child) =>
          killTreeOrWarn(child.pid, grace).pipe(
            // A pipe nobody read is still held (see holdOutput): close it with the process.
            Effect.ensuring(Effect.sync(() => {
              child.stdout?.destroy()
              child.stderr?.destroy()
            }))
          )
      )
      let stderrTail = ""
      child.stderr?.on("data", (chunk: Buffer) => {
        stderrTail = (stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES)
      })
      releaseOutput(child.stderr)
      const exited = yield* Deferred.make<number>()
      yield* exitOf(child).pipe(Effect.flatMap((code) => Deferred.succeed(exited, code)), Effect.forkScoped)
      const childStdout = child.stdout
      const stdout: Stream.Stream<Uint8Array, HostError> = childStdout === null
        ? Stream.empty
        : NodeStream.fromReadable<Uint8Array, HostError>({
          // The reader attaches its own listener right after this; until then the hold keeps
          // what the child wrote.
          evaluate: () => {
            releaseOutput(childStdout)
            return childStdout
          },
          onError: (error) => fromNodeError("read stdout", command.argv[0], error)
        })
      const handle: HostProcess = {
        pid: child.pid ?? -1,
        stdout,
        stderrTail: Effect.sync(() => stderrTail),
        write: (data) => writeStdin(child, data, command.argv[0]),
        endInput: Effect.sync(() => child.stdin?.end()),
        exitCode: Deferred.await(exited),
        isRunning: Deferred.isDone(exited).pipe(Effect.map((done) => !done)),
        signal: (signal) => {
          const pid = child.pid
          return pid === undefined ? Effect.void : processes.read.pipe(
            Effect.mapError(procError("signal")),
            Effect.flatMap((table) => Effect.sync(() => signalAll(treeOf(table, pid), signal)))
          )
        }
      }
      return handle
    }).pipe(Effect.withSpan("LocalHost.spawn", { attributes: { program: command.argv[0] } }))

  /** A FileSystem call, its PlatformError as a HostError of this host. */
  const onFs = <A>(operation: string, path: string, effect: Effect.Effect<A, PlatformError.PlatformError, Scope.Scope>) =>
    Effect.scoped(effect).pipe(Effect.mapError((error) => fromPlatformError(operation, path, error)))

  const stat = (path: string) =>
    onFs("stat", path, files.lstat(path)).pipe(Effect.map((info): FileInfo => ({
      type: info.type === "File" ? "File" : info.type === "Directory" ? "Directory" : info.type === "SymbolicLink" ? "SymbolicLink" : "Other",
      size: Number(info.size),
      mode: info.mode & 0o7777,
      identity: `${info.dev}:${Option.getOrElse(info.ino, () => 0n)}`
    })))

  const readRange = (path: string, offset: number, length: number) =>
    onFs("read", path, Effect.flatMap(files.open(path, { flag: "r" }), (file) => file.readAlloc(length, { position: BigInt(offset) }))).pipe(
      Effect.map(Option.getOrElse(() => new Uint8Array(0)))
    )

  /** Runs `effect`; when it fails, removes `temp` (best effort) and fails the same way. */
  const removingOnFailure = <A>(temp: string, effect: Effect.Effect<A, PlatformError.PlatformError, Scope.Scope>) =>
    effect.pipe(Effect.onError(() => files.remove(temp, { force: true }).pipe(Effect.ignore)))

  const writeFile = (path: string, data: string | Uint8Array, writeOptions: { readonly mode?: number } = {}) => {
    const temp = siblingTemp(path)
    const mode = writeOptions.mode ?? 0o644
    return onFs("write", path, removingOnFailure(temp, files.writeFile(temp, bytesOf(data), { flag: "wx", mode }).pipe(
      Effect.andThen(files.chmod(temp, mode)), // the umask must not widen or narrow the mode
      Effect.andThen(files.rename(temp, path))
    )))
  }

  const symlink = (target: string, linkPath: string) => {
    const temp = siblingTemp(linkPath)
    return onFs("symlink", linkPath, files.symlink(target, temp).pipe(
      Effect.andThen(removingOnFailure(temp, files.rename(temp, linkPath)))
    ))
  }

  const importFile = (workerPath: string, hostPath: string, importOptions: { readonly mode?: number } = {}) => {
    const temp = siblingTemp(hostPath)
    return onFs("import", hostPath, Effect.gen(function*() {
      const source = yield* files.stat(workerPath)
      const mode = importOptions.mode ?? source.mode & 0o7777
      yield* removingOnFailure(temp, Effect.gen(function*() {
        // A hard link shares the inode, so it is only used when the mode already matches.
        const linked = (source.mode & 0o7777) === mode && (yield* files.link(workerPath, temp).pipe(Effect.as(true), Effect.orElseSucceed(() => false)))
        if (!linked) {
          yield* files.copyFile(workerPath, temp)
          yield* files.chmod(temp, mode)
        }
        yield* files.rename(temp, hostPath)
      }))
    }))
  }

  // A pseudo-terminal has no platform service: node-pty.
  const spawnPty = (command: Command, size: { readonly columns: number; readonly rows: number }) =>
    Effect.gen(function*() {
      const [program, ...args] = command.argv
      const pty = yield* Effect.acquireRelease(
        Effect.try({
          try: () =>
            Pty.spawn(program, args, {
              name: "xterm-256color",
              cols: size.columns,
              rows: size.rows,
              cwd: command.cwd ?? home,
              env: mergeEnv(baseEnv, command.envRemove ?? [], { TERM: "xterm-256color", ...command.env }, command.envAllow)
            }),
          catch: (error) => fromNodeError("spawn pty", program, error)
        }),
        (pty) => killTreeOrWarn(pty.pid, Duration.seconds(1))
      )
      const exited = yield* Deferred.make<number>()
      const output = yield* Queue.unbounded<string, Cause.Done>()
      const subscriptions = [
        pty.onData((data) => Queue.offerUnsafe(output, data)),
        pty.onExit(({ exitCode, signal }) => {
          Deferred.doneUnsafe(exited, Exit.succeed(signal !== undefined && signal > 0 ? 128 + signal : exitCode))
          Queue.endUnsafe(output)
        })
      ]
      yield* Effect.addFinalizer(() => Effect.sync(() => subscriptions.forEach((subscription) => subscription.dispose())))
      const handle: PtyProcess = {
        pid: pty.pid,
        output: Stream.fromQueue(output),
        write: (data) => Effect.try({ try: () => pty.write(data), catch: (error) => fromNodeError("write pty", program, error) }),
        resize: (columns, rows) =>
          Effect.try({ try: () => pty.resize(columns, rows), catch: (error) => fromNodeError("resize pty", program, error) }),
        exitCode: Deferred.await(exited)
      }
      return handle
    })

  // inotify through the platform's watch: installed when its stream runs, ready at `onReady`,
  // closed after the first event (or with the scope).
  const watchDirectory: WatchDirectory = (directory) =>
    Effect.gen(function*() {
      const ready = yield* Deferred.make<void, string>()
      const changed = yield* Deferred.make<void>()
      yield* files.watch(directory, { onReady: () => Deferred.doneUnsafe(ready, Effect.void) }).pipe(
        Stream.take(1),
        Stream.runDrain,
        Effect.ignore,
        Effect.ensuring(Effect.andThen(Deferred.fail(ready, "the watch ended before it was ready"), Deferred.succeed(changed, undefined))),
        Effect.forkScoped
      )
      yield* Deferred.await(ready)
      return Deferred.await(changed)
    })

  // Guarded opens stay on node:fs (GuardedFiles.ts): O_NOFOLLOW|O_NONBLOCK and the /proc/self/fd check of the opened handle.
  const guarded = makeGuardedFiles(LABEL)

  return {
    label: LABEL,
    home: Effect.succeed(home),
    facts: makeHostFacts(run),
    run,
    spawn,
    spawnPty,
    terminateTree: killTree,
    connectionLost: Effect.never,
    // The worker's loopback is this host's loopback.
    forwardToLocal: (localPort) => Effect.succeed(localPort),
    isAlive: (pid) => processes.alive([pid]).pipe(Effect.map((alive) => alive.length > 0), Effect.mapError(procError("is alive"))),
    readFile: (path) => onFs("read", path, files.readFile(path)),
    readRange,
    writeFile,
    appendFile: (path, data) => onFs("append", path, files.writeFile(path, bytesOf(data), { flag: "a" })),
    readRegularFile: guarded.readRegularFile,
    appendRegularFile: guarded.appendRegularFile,
    createRegularFile: guarded.createRegularFile,
    exists: (path) => files.lstat(path).pipe(Effect.as(true), Effect.orElseSucceed(() => false)),
    stat,
    realPath: (path) => onFs("realpath", path, files.realPath(path)),
    makeDirectory: (path, dirOptions = {}) =>
      onFs("mkdir", path, files.makeDirectory(path, { recursive: true, mode: dirOptions.mode ?? 0o755 }).pipe(
        Effect.andThen(dirOptions.mode === undefined ? Effect.void : files.chmod(path, dirOptions.mode))
      )),
    readDirectory: (path) => onFs("readdir", path, files.readDirectory(path)).pipe(Effect.map((names) => names.sort())),
    remove: (path) => onFs("remove", path, files.remove(path, { recursive: true, force: true })),
    rename: (from, to) => onFs("rename", from, files.rename(from, to)),
    chmod: (path, mode) => onFs("chmod", path, files.chmod(path, mode)),
    symlink,
    // FileSystem has no glob: node:fs's.
    glob: (pattern, cwd) =>
      Effect.tryPromise({
        try: () => Array.fromAsync(fs.glob(pattern, { cwd })),
        catch: (error) => fromNodeError("glob", join(cwd, pattern), error)
      }).pipe(Effect.map((matches) => matches.map((match) => isAbsolute(match) ? match : join(cwd, match)).sort())),
    tail: makeTail({ stat, readRange: guarded.readRegularRange, watchDirectory }, Duration.millis(50)),
    importFile
  }
}

/**
 * The local host as a layer.
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: LocalHostOptions): Layer.Layer<Host> => Layer.effect(Host, Effect.map(make(options), Host.of))

// --- helpers -------------------------------------------------------------------------------

const exitCodeOf = (child: ChildProcess): number => {
  if (child.exitCode !== null) return child.exitCode
  const signal = child.signalCode
  return signal === null ? -1 : 128 + (osConstants.signals[signal] ?? 0)
}

/** The escalation's view of this machine: `/proc` for the table, kill(2) for signals. */
const processControl = (processes: ProcessTable): ProcessControl<HostError> => ({
  table: processes.read.pipe(Effect.mapError(procError("terminate tree"))),
  alive: (pids) => processes.alive(pids).pipe(Effect.mapError(procError("terminate tree"))),
  signal: (pids, signal) => Effect.sync(() => signalAll(pids, signal))
})

const procError = (operation: string) => (error: ProcReadError): HostError => fromNodeError(operation, error.path, error.cause)

const ignoreStreamError = (): void => {}

/**
 * When a child exits, Node resumes every output pipe of it that has no `readable` listener
 * (child_process's flushStdio), and resumed data with no `data` listener is dropped. A fast child
 * (tar archiving a small workdir) can exit before its reader attaches, which stored an empty
 * snapshot as a successful one. So each output pipe is held from the spawn on, paused and
 * buffering (and so pushing back on the child, as a pipe should), until its reader takes over.
 */
const OUTPUT_HOLD = (): void => {}
const holdOutput = (child: ChildProcess): void => {
  for (const stream of [child.stdout, child.stderr]) stream?.on("readable", OUTPUT_HOLD)
}
/** Hands a held pipe to the reader that has just attached (a `data` listener, or a stream reader). */
const releaseOutput = (stream: Readable | null): void => {
  stream?.off("readable", OUTPUT_HOLD)
}

/** Waits until the child's pipes are closed, or `limit`: a daemon it started may hold them open. */
const closedOrTimeout = (child: ChildProcess, limit: Duration.Duration) =>
  Effect.callback<void>((resume) => {
    const streams = [child.stdout, child.stderr].filter((stream) => stream !== null && !stream.readableEnded)
    if (streams.length === 0) return resume(Effect.void)
    const closed = () => resume(Effect.void)
    child.once("close", closed)
    return Effect.sync(() => child.off("close", closed))
  }).pipe(Effect.timeoutOrElse({ duration: limit, orElse: () => Effect.void }))

const collect = (stream: Readable | null, limit: number) => {
  const collector = outputCollector(limit)
  stream?.on("data", (chunk: Buffer) => collector.push(chunk))
  return collector
}

const writeStdin = (child: ChildProcess, data: string | Uint8Array, program: string) =>
  Effect.callback<void, HostError>((resume) => {
    const stdin = child.stdin
    if (stdin === null || stdin.destroyed || stdin.writableEnded) {
      resume(Effect.fail(hostError("write stdin", "BadArgument", "stdin is not open", program)))
      return
    }
    stdin.write(data, (error) => {
      resume(error === null || error === undefined ? Effect.void : Effect.fail(fromNodeError("write stdin", program, error)))
    })
  })

const siblingTemp = (path: string) => join(dirname(path), `.${path.split("/").pop() ?? "file"}.tmp-${randomBytes(6).toString("hex")}`)

const hostError = (operation: string, reason: HostErrorReason, detail: string, path?: string) =>
  new HostError({ host: LABEL, operation, reason, detail, ...(path === undefined ? {} : { path }) })

const REASONS: Readonly<Record<string, HostErrorReason>> = {
  ENOENT: "NotFound",
  EACCES: "PermissionDenied",
  EPERM: "PermissionDenied",
  EEXIST: "AlreadyExists",
  ENOTDIR: "NotADirectory",
  ENOTEMPTY: "AlreadyExists",
  EISDIR: "BadArgument",
  EINVAL: "BadArgument",
  ENAMETOOLONG: "BadArgument"
}

/** A PlatformError keeps the Node error behind it: its errno decides the reason, as for direct Node calls. */
const fromPlatformError = (operation: string, path: string, error: PlatformError.PlatformError): HostError =>
  error.reason._tag === "BadArgument"
    ? hostError(operation, "BadArgument", error.message, path)
    : fromNodeError(operation, path, error.reason.cause ?? error)

const bytesOf = (data: string | Uint8Array): Uint8Array => typeof data === "string" ? new TextEncoder().encode(data) : data

const fromNodeError = (operation: string, path: string, error: unknown): HostError => {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "UNKNOWN"
  const detail = error instanceof Error ? error.message : String(error)
  return new HostError({ host: LABEL, operation, path, reason: REASONS[code] ?? "Unknown", detail, cause: error })
}
