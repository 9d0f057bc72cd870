/**
 * MemoryHost: the {@link Host} contract with nothing real behind it, for tests that swap layers.
 * Files live in a map (directories, regular files, symlinks and "other" nodes such as a planted
 * FIFO); processes are scripted by argv: a script says what the process prints, reads, how long it
 * runs and how it exits, and which signals it survives. Time passes only through `Clock`, so a
 * session on this host runs under `TestClock`.
 *
 * Owns the scripted process table and assembles the host (the file tree is `MemoryFiles`); does
 * not own what a real program would do (each test scripts the few programs its code path runs).
 * Tail is the shared {@link makeTail} over the tree's `stat` and guarded range read, as on the
 * live hosts.
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
import { bytesOf, makeMemoryFiles } from "./MemoryFiles.ts"
import { Host, HostError } from "./Host.ts"
import { makeHostFacts } from "./HostFacts.ts"
import type { Command, HostErrorReason, HostProcess, HostShape, PtyProcess, RunResult } from "./Host.ts"
import { outputCollector } from "./OutputCollector.ts"
import { makeTail } from "./Tail.ts"

/**
 * A signal a scripted process can receive.
 * @category models
 * @since 0.1.0
 */
export type Signal = "SIGTERM" | "SIGKILL" | "SIGINT" | "SIGHUP" | "SIGSTOP" | "SIGCONT"

const SIGNAL_NUMBERS: Readonly<Record<Signal, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGSTOP: 19, SIGCONT: 18 }

/**
 * What a scripted process sees while it runs.
 * @category models
 * @since 0.1.0
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
 * @since 0.1.0
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
 * @since 0.1.0
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
 * @since 0.1.0
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
 * @since 0.1.0
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

interface Proc {
  readonly record: { pid: number; argv: ReadonlyArray<string>; env: Readonly<Record<string, string>>; signals: Array<Signal>; exitCode: number | undefined }
  /** Delivers a signal; true when the process died of it. */
  readonly deliver: (signal: Signal) => Effect.Effect<boolean>
  readonly exited: Deferred.Deferred<number>
}


/**
 * Builds a memory host.
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: MemoryHostOptions = {}): Effect.Effect<MemoryHost> =>
  Effect.sync(() => makeUnsafe(options))

/**
 * Builds a memory host synchronously (nothing runs: it only allocates the maps).
 * @category constructors
 * @since 0.1.0
 */
export const makeUnsafe = (options: MemoryHostOptions = {}): MemoryHost => {
  const label = options.label ?? "memory"
  const home = options.home ?? "/home/worker"
  const baseEnv = options.env ?? { PATH: "/usr/bin:/bin", HOME: home }
  const scripts = options.scripts ?? []
  const files = makeMemoryFiles(label)
  // The test-only handles stay off the Host itself.
  const { plantOther: _plantOther, readRegularRange, truncate: _truncate, ...fileOperations } = files
  let nextPid = 1000
  const procs = new Map<number, Proc>()
  const dropped = Deferred.makeUnsafe<never, HostError>()
  const records: Array<Proc["record"]> = []

  const fail = (operation: string, reason: HostErrorReason, path: string, detail?: string) =>
    new HostError({ host: label, operation, reason, path, detail: detail ?? reason })

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
    facts: makeHostFacts(run),
    run,
    spawn,
    spawnPty,
    terminateTree,
    connectionLost: Deferred.await(dropped),
    // In-memory processes run in the worker: its loopback is theirs.
    forwardToLocal: (localPort) => Effect.succeed(localPort),
    isAlive,
    ...fileOperations,
    tail: makeTail({ stat: files.stat, readRange: readRegularRange }, Duration.millis(50))
  }

  return {
    host: shape,
    processes: Effect.sync(() => records.map((record) => ({ ...record, signals: [...record.signals] }))),
    dropConnection: (detail) =>
      Deferred.fail(dropped, new HostError({ host: label, operation: "connection", reason: "ConnectionLost", detail })).pipe(Effect.asVoid),
    plantOther: files.plantOther,
    truncate: files.truncate,
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
 * @since 0.1.0
 */
export const layer = (options?: MemoryHostOptions): Layer.Layer<Host> =>
  Layer.effect(Host, make(options).pipe(Effect.map((memory) => Host.of(memory.host))))

/**
 * Script helpers: a program that prints and exits, and one that runs until signalled.
 * @category constructors
 * @since 0.1.0
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
