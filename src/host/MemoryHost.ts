/**
 * MemoryHost: the {@link Host} contract with nothing real behind it, for tests that swap layers.
 * Files live in a map (directories, regular files, symlinks and "other" nodes such as a planted
 * FIFO); processes are scripted by argv: a script says what the process prints, reads, how long it
 * runs and how it exits, and which signals it survives. Time passes only through `Clock`, so a
 * session on this host runs under `TestClock`.
 *
 * Owns the in-memory file tree and the scripted process table; does not own what a real program
 * would do (each test scripts the few programs its code path runs). Tail is the shared
 * {@link makeTail} over this host's `stat` and guarded range read, as on the live hosts.
 *
 * Gotchas:
 * - A command no script matches fails like a missing program (`NotFound`).
 * - `terminateTree` and `isAlive` know only processes this host spawned or that a test registered
 *   with {@link MemoryHost.adopt} (codex inside a scripted tmux, say).
 * - `connectionLost` never completes unless the test drops the connection
 *   ({@link MemoryHost.dropConnection}), as a remote host's would on a network failure.
 *
 * @since 0.1.0
 */
import { Cause, Deferred, Duration, Effect, Fiber, Layer, Queue, Ref, Stream } from "effect"
import type { Scope } from "effect"
import { mergeEnv } from "./EnvGlob.ts"
import { isStrictlyInside } from "./GuardedFiles.ts"
import { Host, HostError } from "./Host.ts"
import type { Command, FileInfo, GuardedFileOptions, HostErrorReason, HostProcess, HostShape, PtyProcess, RunResult } from "./Host.ts"
import { outputCollector } from "./OutputCollector.ts"
import { makeTail } from "./Tail.ts"

/**
 * A signal a scripted process can receive.
 * @category models
 */
export type Signal = "SIGTERM" | "SIGKILL" | "SIGINT" | "SIGHUP" | "SIGSTOP" | "SIGCONT"

const SIGNAL_NUMBERS: Readonly<Record<Signal, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGSTOP: 19, SIGCONT: 18 }

/**
 * What a scripted process sees while it runs.
 * @category models
 */
export interface ScriptedIo {
  readonly command: Command
  /** The command's environment as the process would get it (host env, allow, remove, env). */
  readonly env: Readonly<Record<string, string>>
  readonly pid: number
  /** The bytes written to its stdin, ending when stdin is closed. */
  readonly stdin: Stream.Stream<Uint8Array>
  readonly stdout: (data: string | Uint8Array) => Effect.Effect<void>
  readonly stderr: (text: string) => Effect.Effect<void>
  /** The host itself, for a program that reads or writes files. */
  readonly host: HostShape
}

/**
 * One scripted program: the commands it answers and what it does.
 * @category models
 */
export interface ProcessScript {
  readonly match: (command: Command) => boolean
  /** Runs the process; its result is the exit code. Interrupted when a signal kills it. */
  readonly run: (io: ScriptedIo) => Effect.Effect<number>
  /** Signals the process survives (SIGKILL always kills). */
  readonly ignores?: ReadonlyArray<Signal>
  /** A fixed pid; otherwise one is allocated. */
  readonly pid?: number
}

/**
 * Options of the memory host.
 * @category models
 */
export interface MemoryHostOptions {
  readonly home?: string
  /** The host's own environment, inherited by every process (then envAllow/envRemove/env). */
  readonly env?: Readonly<Record<string, string>>
  /** Checked in order; the first match runs. */
  readonly scripts?: ReadonlyArray<ProcessScript>
  readonly label?: string
}

/**
 * A process the host has run, as the test sees it.
 * @category models
 */
export interface ProcessRecord {
  readonly pid: number
  readonly argv: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  /** Signals delivered, in order (ignored ones included). */
  readonly signals: ReadonlyArray<Signal>
  readonly exitCode: number | undefined
}

/**
 * The memory host and the handles a test uses to plant files and inspect processes.
 * @category models
 */
export interface MemoryHost {
  readonly host: HostShape
  /** Every process started so far, oldest first. */
  readonly processes: Effect.Effect<ReadonlyArray<ProcessRecord>>
  /** Plants a node the live hosts would create with an OS call (a FIFO, a socket). */
  readonly plantOther: (path: string) => Effect.Effect<void, HostError>
  /** Truncates a file in place (same identity), as `: > file` would. */
  readonly truncate: (path: string) => Effect.Effect<void, HostError>
  /** Fails `connectionLost` (and so a session racing it) with a `ConnectionLost` HostError. */
  readonly dropConnection: (detail: string) => Effect.Effect<void>
  /** Registers a process this host did not spawn (e.g. codex in a scripted tmux pane). */
  readonly adopt: (pid: number, onSignal: (signal: Signal) => Effect.Effect<boolean>) => Effect.Effect<void>
}

type Node =
  | { readonly type: "File"; data: Uint8Array; mode: number; readonly id: number }
  | { readonly type: "Directory"; mode: number; readonly id: number }
  | { readonly type: "SymbolicLink"; readonly target: string; readonly id: number }
  | { readonly type: "Other"; readonly id: number }

interface Proc {
  readonly record: { pid: number; argv: ReadonlyArray<string>; env: Readonly<Record<string, string>>; signals: Array<Signal>; exitCode: number | undefined }
  /** Delivers a signal; true when the process died of it. */
  readonly deliver: (signal: Signal) => Effect.Effect<boolean>
  readonly exited: Deferred.Deferred<number>
}

const encoder = new TextEncoder()
const bytesOf = (data: string | Uint8Array) => typeof data === "string" ? encoder.encode(data) : data

/**
 * Builds a memory host.
 * @category constructors
 */
export const make = (options: MemoryHostOptions = {}): Effect.Effect<MemoryHost> =>
  Effect.sync(() => makeUnsafe(options))

/**
 * Builds a memory host synchronously (nothing runs: it only allocates the maps).
 * @category constructors
 */
export const makeUnsafe = (options: MemoryHostOptions = {}): MemoryHost => {
  const label = options.label ?? "memory"
  const home = options.home ?? "/home/worker"
  const baseEnv = options.env ?? { PATH: "/usr/bin:/bin", HOME: home }
  const scripts = options.scripts ?? []
  const nodes = new Map<string, Node>([["/", { type: "Directory", mode: 0o755, id: 0 }]])
  let nextId = 1
  let nextPid = 1000
  const procs = new Map<number, Proc>()
  const dropped = Deferred.makeUnsafe<never, HostError>()
  const records: Array<Proc["record"]> = []

  const fail = (operation: string, reason: HostErrorReason, path: string, detail?: string) =>
    new HostError({ host: label, operation, reason, path, detail: detail ?? reason })

  // --- paths ---------------------------------------------------------------------------------

  const normalize = (path: string): string => {
    const parts: Array<string> = []
    for (const part of path.split("/")) {
      if (part === "" || part === ".") continue
      if (part === "..") parts.pop()
      else parts.push(part)
    }
    return `/${parts.join("/")}`
  }
  const parentOf = (path: string) => normalize(`${path}/..`)
  const nameOf = (path: string) => path.split("/").pop() ?? ""

  /** The real path of `path`, following symlinks in every component (or all but the last). */
  const resolve = (path: string, followLast: boolean, depth = 0): string | HostErrorReason => {
    if (depth > 40) return "BadArgument"
    const parts = normalize(path).split("/").filter((part) => part !== "")
    let current = "/"
    for (let i = 0; i < parts.length; i++) {
      const next = normalize(`${current}/${parts[i]}`)
      const node = nodes.get(next)
      const last = i === parts.length - 1
      if (node?.type === "SymbolicLink" && (!last || followLast)) {
        const target = node.target.startsWith("/") ? node.target : `${current}/${node.target}`
        const resolved = resolve(target, true, depth + 1)
        if (isReason(resolved)) return resolved
        current = resolved
        continue
      }
      if (!last && node !== undefined && node.type !== "Directory") return "NotADirectory"
      current = next
    }
    return current
  }
  const resolved = (operation: string, path: string, followLast: boolean): Effect.Effect<string, HostError> => {
    const real = resolve(path, followLast)
    return isReason(real) ? Effect.fail(fail(operation, real, path)) : Effect.succeed(real)
  }
  const lookup = (operation: string, path: string, followLast: boolean): Effect.Effect<{ readonly real: string; readonly node: Node }, HostError> =>
    resolved(operation, path, followLast).pipe(Effect.flatMap((real) => {
      const node = nodes.get(real)
      return node === undefined ? Effect.fail(fail(operation, "NotFound", path)) : Effect.succeed({ real, node })
    }))
  /** The resolved parent directory of a path that is about to be created. */
  const parentDir = (operation: string, path: string): Effect.Effect<string, HostError> =>
    lookup(operation, parentOf(path), true).pipe(Effect.flatMap(({ real, node }) =>
      node.type === "Directory" ? Effect.succeed(real) : Effect.fail(fail(operation, "NotADirectory", path))
    ))
  const put = (path: string, node: Node) => {
    nodes.set(path, node)
  }
  const newFile = (data: Uint8Array, mode: number): Node => ({ type: "File", data, mode, id: nextId++ })

  // --- files ---------------------------------------------------------------------------------

  const stat = (path: string) =>
    lookup("stat", path, false).pipe(Effect.map(({ node }): FileInfo => ({
      type: node.type,
      size: node.type === "File" ? node.data.length : node.type === "SymbolicLink" ? node.target.length : 0,
      mode: node.type === "File" || node.type === "Directory" ? node.mode : 0o777,
      identity: String(node.id)
    })))

  const readFile = (path: string) =>
    lookup("read", path, true).pipe(Effect.flatMap(({ node }) =>
      node.type === "File" ? Effect.succeed(node.data.slice()) : Effect.fail(fail("read", "BadArgument", path, "not a file"))
    ))

  const writeFile = (path: string, data: string | Uint8Array, writeOptions: { readonly mode?: number } = {}) =>
    Effect.gen(function*() {
      const dir = yield* parentDir("write", path)
      const target = normalize(`${dir}/${nameOf(path)}`)
      if (nodes.get(target)?.type === "Directory") return yield* fail("write", "BadArgument", path, "is a directory")
      // Like a rename over the path: a symlink there is replaced, never followed.
      put(target, newFile(bytesOf(data).slice(), writeOptions.mode ?? 0o644))
    })

  const appendTo = (operation: string, path: string, data: string | Uint8Array, followLast: boolean, mode: number) =>
    Effect.gen(function*() {
      const real = yield* resolved(operation, path, followLast)
      const node = nodes.get(real)
      if (node === undefined) {
        yield* parentDir(operation, real)
        put(real, newFile(bytesOf(data).slice(), mode))
        return
      }
      if (node.type === "SymbolicLink") return yield* fail(operation, "SymlinkRefused", path)
      if (node.type !== "File") return yield* fail(operation, "NotRegularFile", path)
      const added = bytesOf(data)
      const joined = new Uint8Array(node.data.length + added.length)
      joined.set(node.data)
      joined.set(added, node.data.length)
      node.data = joined
    })

  /** A regular file reached without a final symlink, inside `within` when given. */
  const regularFile = (operation: string, path: string, within: string | undefined) =>
    Effect.gen(function*() {
      const { real, node } = yield* lookup(operation, path, false)
      if (node.type === "SymbolicLink") return yield* fail(operation, "SymlinkRefused", path)
      if (node.type !== "File") return yield* fail(operation, "NotRegularFile", path)
      if (within !== undefined && !isStrictlyInside(real, within)) return yield* fail(operation, "OutsideRoot", path)
      return node
    })

  const readRange = (path: string, offset: number, length: number) =>
    readFile(path).pipe(Effect.map((data) => data.slice(offset, offset + length)))
  const readRegularRange = (path: string, offset: number, length: number) =>
    regularFile("read", path, undefined).pipe(Effect.map((node) => node.type === "File" ? node.data.slice(offset, offset + length) : new Uint8Array(0)))

  const readRegularFile = (path: string, guard: GuardedFileOptions & { readonly maxBytes: number }) =>
    regularFile("read", path, guard.within).pipe(Effect.flatMap((node) => {
      if (node.type !== "File") return Effect.fail(fail("read", "NotRegularFile", path))
      if (node.data.length > guard.maxBytes) return Effect.fail(fail("read", "TooLarge", path, `${node.data.length} bytes is more than ${guard.maxBytes}`))
      return Effect.succeed(node.data.slice())
    }))

  const appendRegularFile = (path: string, data: string | Uint8Array, guard?: GuardedFileOptions & { readonly mode?: number }) =>
    Effect.gen(function*() {
      const real = yield* resolved("append", path, false)
      if (guard?.within !== undefined && !isStrictlyInside(real, guard.within)) return yield* fail("append", "OutsideRoot", path)
      yield* appendTo("append", real, data, false, guard?.mode ?? 0o644)
    })

  const createRegularFile = <E, R>(
    path: string,
    content: Stream.Stream<Uint8Array, E, R>,
    guard?: GuardedFileOptions & { readonly mode?: number; readonly maxBytes?: number }
  ): Effect.Effect<number, HostError | E, R> =>
    Effect.gen(function*() {
      const real = yield* resolved("create", path, false)
      if (nodes.has(real)) return yield* fail("create", "AlreadyExists", path)
      yield* parentDir("create", real)
      if (guard?.within !== undefined && !isStrictlyInside(real, guard.within)) return yield* fail("create", "OutsideRoot", path)
      const node = newFile(new Uint8Array(0), guard?.mode ?? 0o644)
      put(real, node)
      const limit = guard?.maxBytes ?? Number.POSITIVE_INFINITY
      return yield* content.pipe(
        Stream.runFoldEffect(() => 0, (written, chunk): Effect.Effect<number, HostError> => {
          const total = written + chunk.byteLength
          if (total > limit) return Effect.fail(fail("create", "TooLarge", path, `more than the limit of ${limit} bytes`))
          return appendTo("create", real, chunk, false, 0o644).pipe(Effect.as(total))
        }),
        // Nothing partial stays behind, and only the node we created is removed.
        Effect.onError(() => Effect.sync(() => nodes.get(real) === node && nodes.delete(real)))
      )
    })

  const makeDirectory = (path: string, dirOptions: { readonly mode?: number } = {}) =>
    Effect.gen(function*() {
      let current = "/"
      for (const part of normalize(path).split("/").filter((p) => p !== "")) {
        const real = yield* resolved("mkdir", `${current}/${part}`, true)
        const node = nodes.get(real)
        if (node === undefined) put(real, { type: "Directory", mode: dirOptions.mode ?? 0o755, id: nextId++ })
        else if (node.type !== "Directory") return yield* fail("mkdir", "AlreadyExists", path)
        current = real
      }
      const last = nodes.get(current)
      if (dirOptions.mode !== undefined && last?.type === "Directory") last.mode = dirOptions.mode
    })

  const childrenOf = (dir: string) => {
    const prefix = dir === "/" ? "/" : `${dir}/`
    return [...nodes.keys()].filter((key) => key.startsWith(prefix) && key !== dir)
  }

  const readDirectory = (path: string) =>
    lookup("readdir", path, true).pipe(Effect.flatMap(({ real, node }) => {
      if (node.type !== "Directory") return Effect.fail(fail("readdir", "NotADirectory", path))
      const prefix = real === "/" ? "/" : `${real}/`
      return Effect.succeed(childrenOf(real).map((key) => key.slice(prefix.length)).filter((rest) => !rest.includes("/")).sort())
    }))

  const remove = (path: string) =>
    resolved("remove", path, false).pipe(Effect.map((real) => {
      if (real === "/") return
      for (const child of childrenOf(real)) nodes.delete(child)
      nodes.delete(real)
    }))

  const rename = (from: string, to: string) =>
    Effect.gen(function*() {
      const source = yield* lookup("rename", from, false)
      const dir = yield* parentDir("rename", to)
      const target = normalize(`${dir}/${nameOf(to)}`)
      const moved = [source.real, ...childrenOf(source.real)]
      for (const child of childrenOf(target)) nodes.delete(child)
      for (const key of moved) {
        const node = nodes.get(key)
        nodes.delete(key)
        if (node !== undefined) put(target + key.slice(source.real.length), node)
      }
    })

  const chmod = (path: string, mode: number) =>
    lookup("chmod", path, true).pipe(Effect.flatMap(({ node }) => {
      if (node.type === "File" || node.type === "Directory") node.mode = mode
      return Effect.void
    }))

  const symlink = (target: string, linkPath: string) =>
    parentDir("symlink", linkPath).pipe(Effect.map((dir) => put(normalize(`${dir}/${nameOf(linkPath)}`), { type: "SymbolicLink", target, id: nextId++ })))

  const glob = (pattern: string, cwd: string) =>
    resolved("glob", cwd, true).pipe(Effect.map((real) => {
      const matcher = globToRegExp(pattern)
      const prefix = real === "/" ? "/" : `${real}/`
      return childrenOf(real)
        .filter((key) => nodes.get(key)?.type === "File" && matcher.test(key.slice(prefix.length)))
        .map((key) => `${real === "/" ? "" : cwd.replace(/\/+$/, "")}/${key.slice(prefix.length)}`)
        .sort()
    }))

  // --- processes -----------------------------------------------------------------------------

  const scriptFor = (command: Command) => {
    const script = scripts.find((candidate) => candidate.match(command))
    return script === undefined
      ? Effect.fail(fail("spawn", "NotFound", command.argv[0], `no scripted program for ${JSON.stringify(command.argv)}`))
      : Effect.succeed(script)
  }

  /** Starts a scripted process in `scope`; it lives until its script ends or a signal kills it. */
  const startProcess = (command: Command, scope: Scope.Scope) =>
    Effect.gen(function*() {
      const script = yield* scriptFor(command)
      const pid = script.pid ?? nextPid++
      const env = mergeEnv(baseEnv, command.envRemove ?? [], command.env ?? {}, command.envAllow)
      const stdin = yield* Queue.unbounded<Uint8Array, Cause.Done>()
      const stdout = yield* Queue.unbounded<Uint8Array, Cause.Done>()
      const stderr = yield* Ref.make("")
      const exited = yield* Deferred.make<number>()
      const record: Proc["record"] = { pid, argv: command.argv, env, signals: [], exitCode: undefined }
      records.push(record)
      const finish = (code: number) =>
        Deferred.succeed(exited, code).pipe(
          Effect.tap((first) => Effect.sync(() => {
            if (first) record.exitCode = code
          })),
          Effect.andThen(Queue.end(stdout))
        )
      const io: ScriptedIo = {
        command,
        env,
        pid,
        stdin: Stream.fromQueue(stdin),
        stdout: (data) => Queue.offer(stdout, bytesOf(data)).pipe(Effect.asVoid),
        stderr: (text) => Ref.update(stderr, (tail) => (tail + text).slice(-64 * 1024)),
        host: shape
      }
      const fiber = yield* script.run(io).pipe(Effect.flatMap(finish), Effect.forkIn(scope))
      const deliver = (signal: Signal) =>
        Effect.gen(function*() {
          record.signals.push(signal)
          if (signal === "SIGSTOP" || signal === "SIGCONT") return false
          if (yield* Deferred.isDone(exited)) return true
          if (signal !== "SIGKILL" && (script.ignores ?? []).includes(signal)) return false
          yield* finish(128 + SIGNAL_NUMBERS[signal])
          yield* Fiber.interrupt(fiber)
          return true
        })
      const proc: Proc = { record, deliver, exited }
      procs.set(pid, proc)
      return { proc, stdin, stdout, stderr }
    })

  const stopTree = (proc: Proc, grace: Duration.Input) =>
    Effect.gen(function*() {
      if (yield* proc.deliver("SIGTERM")) return
      yield* Deferred.await(proc.exited).pipe(
        Effect.timeoutOrElse({ duration: grace, orElse: () => proc.deliver("SIGKILL") }),
        Effect.asVoid
      )
    })

  const run = (command: Command, runOptions: { readonly stdin?: string | Uint8Array; readonly maxOutputBytes?: number } = {}) =>
    Effect.scoped(Effect.gen(function*() {
      const scope = yield* Effect.scope
      const { proc, stdin, stdout, stderr } = yield* startProcess(command, scope)
      yield* Queue.offer(stdin, bytesOf(runOptions.stdin ?? ""))
      yield* Queue.end(stdin)
      const limit = runOptions.maxOutputBytes ?? 16 * 1024 * 1024
      const out = outputCollector(limit)
      yield* Stream.fromQueue(stdout).pipe(Stream.runForEach((chunk) => Effect.sync(() => out.push(Buffer.from(chunk)))))
      const exitCode = yield* Deferred.await(proc.exited).pipe(Effect.onInterrupt(() => proc.deliver("SIGKILL")))
      const err = outputCollector(limit)
      err.push(Buffer.from(yield* Ref.get(stderr)))
      const result: RunResult = { exitCode, stdout: out.text(), stderr: err.text(), truncated: out.truncated() || err.truncated() }
      return result
    }))

  const spawn = (command: Command, spawnOptions: { readonly stdin?: boolean; readonly stdout?: boolean; readonly gracePeriod?: Duration.Input } = {}) =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const grace = spawnOptions.gracePeriod ?? Duration.seconds(5)
      const { proc, stdin, stdout, stderr } = yield* Effect.acquireRelease(
        startProcess(command, scope),
        ({ proc }) => stopTree(proc, grace)
      )
      if (spawnOptions.stdin !== true) yield* Queue.end(stdin)
      const handle: HostProcess = {
        pid: proc.record.pid,
        stdout: spawnOptions.stdout === false ? Stream.empty : Stream.fromQueue(stdout),
        stderrTail: Ref.get(stderr),
        write: (data) =>
          Queue.offer(stdin, bytesOf(data)).pipe(Effect.flatMap((accepted) =>
            accepted ? Effect.void : Effect.fail(fail("write stdin", "BadArgument", command.argv[0], "stdin is not open"))
          )),
        endInput: Queue.end(stdin).pipe(Effect.asVoid),
        exitCode: Deferred.await(proc.exited),
        isRunning: Deferred.isDone(proc.exited).pipe(Effect.map((done) => !done)),
        signal: (signal) => proc.deliver(signal).pipe(Effect.asVoid)
      }
      return handle
    })

  const spawnPty = (command: Command, _size: { readonly columns: number; readonly rows: number }) =>
    Effect.gen(function*() {
      const proc = yield* spawn(command, { stdin: true })
      const pty: PtyProcess = {
        pid: proc.pid,
        output: proc.stdout.pipe(Stream.decodeText()),
        write: proc.write,
        resize: () => Effect.void,
        exitCode: proc.exitCode.pipe(Effect.orElseSucceed(() => -1))
      }
      return pty
    })

  const terminateTree = (pid: number, grace: Duration.Input) =>
    Effect.suspend(() => {
      const proc = procs.get(pid)
      return proc === undefined ? Effect.void : stopTree(proc, grace)
    })

  const isAlive = (pid: number) =>
    Effect.suspend(() => {
      const proc = procs.get(pid)
      return proc === undefined ? Effect.succeed(false) : Deferred.isDone(proc.exited).pipe(Effect.map((done) => !done))
    })

  const shape: HostShape = {
    label,
    home: Effect.succeed(home),
    run,
    spawn,
    spawnPty,
    terminateTree,
    connectionLost: Deferred.await(dropped),
    isAlive,
    readFile,
    readRange,
    writeFile,
    appendFile: (path, data) => appendTo("append", path, data, true, 0o644),
    readRegularFile,
    appendRegularFile,
    createRegularFile,
    exists: (path) => lookup("exists", path, false).pipe(Effect.as(true), Effect.catch(() => Effect.succeed(false))),
    stat,
    realPath: (path) => lookup("realpath", path, true).pipe(Effect.map(({ real }) => real)),
    makeDirectory,
    readDirectory,
    remove,
    rename,
    chmod,
    symlink,
    glob,
    tail: makeTail({ stat, readRange: readRegularRange }, Duration.millis(50)),
    // The worker's filesystem is this same map: an import is a copy.
    importFile: (from, to, importOptions = {}) =>
      Effect.gen(function*() {
        const { node } = yield* lookup("import", from, true)
        if (node.type !== "File") return yield* fail("import", "BadArgument", from, "not a file")
        yield* writeFile(to, node.data, { mode: importOptions.mode ?? node.mode })
      })
  }

  return {
    host: shape,
    processes: Effect.sync(() => records.map((record) => ({ ...record, signals: [...record.signals] }))),
    dropConnection: (detail) =>
      Deferred.fail(dropped, new HostError({ host: label, operation: "connection", reason: "ConnectionLost", detail })).pipe(Effect.asVoid),
    plantOther: (path) => parentDir("plant", path).pipe(Effect.map((dir) => put(normalize(`${dir}/${nameOf(path)}`), { type: "Other", id: nextId++ }))),
    truncate: (path) =>
      lookup("truncate", path, true).pipe(Effect.flatMap(({ node }) => {
        if (node.type === "File") node.data = new Uint8Array(0)
        return Effect.void
      })),
    adopt: (pid, onSignal) =>
      Effect.gen(function*() {
        const exited = yield* Deferred.make<number>()
        const record: Proc["record"] = { pid, argv: [`adopted:${pid}`], env: {}, signals: [], exitCode: undefined }
        records.push(record)
        procs.set(pid, {
          record,
          exited,
          deliver: (signal) =>
            Effect.gen(function*() {
              record.signals.push(signal)
              if (yield* Deferred.isDone(exited)) return true
              const died = signal === "SIGKILL" || (yield* onSignal(signal))
              if (died) {
                record.exitCode = 128 + SIGNAL_NUMBERS[signal]
                yield* Deferred.succeed(exited, record.exitCode)
              }
              return died
            })
        })
      })
  }
}

/**
 * The memory host as a layer; a test that needs the control handles builds it with {@link make}
 * and provides `Layer.succeed(Host, memory.host)`.
 * @category layers
 */
export const layer = (options?: MemoryHostOptions): Layer.Layer<Host> =>
  Layer.effect(Host, make(options).pipe(Effect.map((memory) => Host.of(memory.host))))

/**
 * Script helpers: a program that prints and exits, and one that runs until signalled.
 * @category constructors
 */
export const script = {
  /** Matches commands whose argv starts with `prefix` (a string matches argv[0] alone). */
  argv: (...prefix: ReadonlyArray<string>) => (command: Command) => prefix.every((part, index) => command.argv[index] === part),
  exits: (
    match: (command: Command) => boolean,
    exitCode: number,
    output: { readonly stdout?: string; readonly stderr?: string } = {}
  ): ProcessScript => ({
    match,
    run: (io) =>
      Effect.gen(function*() {
        if (output.stdout !== undefined) yield* io.stdout(output.stdout)
        if (output.stderr !== undefined) yield* io.stderr(output.stderr)
        return exitCode
      })
  }),
  hangs: (match: (command: Command) => boolean, ignores: ReadonlyArray<Signal> = []): ProcessScript => ({
    match,
    ignores,
    run: () => Effect.never
  })
} as const

// --- helpers -------------------------------------------------------------------------------

const isReason = (value: string): value is HostErrorReason => !value.startsWith("/")

// `**/` spans any number of directories; `*` and `?` stay within one.
const globToRegExp = (pattern: string): RegExp => {
  let source = ""
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] ?? ""
    if (char === "*" && pattern[i + 1] === "*") {
      source += pattern[i + 2] === "/" ? "(?:[^/]*/)*" : ".*"
      i += pattern[i + 2] === "/" ? 2 : 1
    } else if (char === "*") source += "[^/]*"
    else if (char === "?") source += "[^/]"
    else source += char.replace(/[.+^${}()|[\]\\/]/g, (c) => `\\${c}`)
  }
  return new RegExp(`^${source}$`)
}
