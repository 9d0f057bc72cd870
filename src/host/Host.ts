/**
 * Host: the machine codex runs on. Owns process execution and file access there, and nothing
 * else: callers above `host/` never touch `node:child_process`, `node:fs` or SSH directly, so the
 * same session code runs on the worker (`LocalHost`) and on a remote machine (`RemoteHost`).
 *
 * The contract is deliberately small and portable: commands are argv arrays (never shell text),
 * environment overrides are layered onto the host's own environment — or, with `envAllow`, onto
 * an allowlisted few of its variables only — and paths are absolute POSIX paths on the host.
 *
 * @since 0.1.0
 */
import { Context, Effect, Schema } from "effect"
import type { Duration, Scope, Stream } from "effect"
import * as MemoryHost from "./MemoryHost.ts"
import type { HostFacts } from "./HostFacts.ts"

/**
 * Why a host operation failed, normalized across local and remote hosts.
 * @category models
 */
export const HostErrorReason = Schema.Literals([
  "NotFound",
  "PermissionDenied",
  "AlreadyExists",
  "NotADirectory",
  "BadArgument",
  "ConnectionLost",
  // Refusals of the guarded file operations (paths the agent could have touched):
  /** The last path component is a symbolic link. */
  "SymlinkRefused",
  /** The path names a FIFO, socket, device or directory, not a regular file. */
  "NotRegularFile",
  /** The file is bigger than the caller's cap (nothing beyond the cap was read or written). */
  "TooLarge",
  /** The opened file does not lie inside the directory the caller required. */
  "OutsideRoot",
  /** The operation did not finish within its timeout. */
  "TimedOut",
  "Unknown"
])
export type HostErrorReason = typeof HostErrorReason.Type

/**
 * The connection to a host dropped (an SSH keepalive timeout, a closed socket) while an operation
 * was in flight, or could not be re-established. Carried as the `cause` of a `HostError` with
 * reason `ConnectionLost`; `pids` are the remote processes this worker still tracked at that
 * moment, which may remain on the host if no later reconnect can stop them.
 * @category errors
 * @since 0.1.0
 */
export class HostConnectionLost extends Schema.TaggedError<HostConnectionLost>()("HostConnectionLost", {
  host: Schema.String,
  operation: Schema.String,
  detail: Schema.String,
  pids: Schema.Array(Schema.Number)
}) {
  override get message(): string {
    const pids = this.pids.length === 0 ? "" : `; remote processes that may remain: ${this.pids.join(", ")}`
    return `SSH connection to ${this.host} lost during ${this.operation}: ${this.detail}${pids}`
  }
}

/**
 * A host operation (spawn, file access, …) failed.
 * @category errors
 * @since 0.1.0
 */
export class HostError extends Schema.TaggedError<HostError>()("HostError", {
  host: Schema.String,
  operation: Schema.String,
  reason: HostErrorReason,
  path: Schema.optionalKey(Schema.String),
  detail: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  override get message(): string {
    const where = this.path === undefined ? "" : ` ${this.path}`
    return `${this.operation}${where} on ${this.host} failed (${this.reason}): ${this.detail}`
  }

  /**
   * The {@link HostConnectionLost} behind this error when the host's connection dropped, so code
   * above `host/` can tell a lost host from a failed operation without knowing how hosts connect.
   */
  get connectionLost(): HostConnectionLost | undefined {
    return this.reason === "ConnectionLost" && this.cause instanceof HostConnectionLost ? this.cause : undefined
  }
}

/**
 * A host error as a session reports it: a dropped connection as its {@link HostConnectionLost},
 * anything else unchanged.
 * @category getters
 * @since 0.1.0
 */
export const classifyConnectionLoss = (error: HostError): HostError | HostConnectionLost => error.connectionLost ?? error

/**
 * A command that had to succeed exited non-zero.
 * @category errors
 * @since 0.1.0
 */
export class CommandFailed extends Schema.TaggedError<CommandFailed>()("CommandFailed", {
  host: Schema.String,
  command: Schema.String,
  exitCode: Schema.Number,
  stderrTail: Schema.String
}) {
  override get message(): string {
    const tail = this.stderrTail.trim()
    return `${this.command} on ${this.host} exited ${this.exitCode}${tail === "" ? "" : `: ${tail}`}`
  }
}

/**
 * A command to run on a host. `argv[0]` is the program (looked up on the host's PATH when it has
 * no slash); nothing is ever interpreted by a shell unless the program is one.
 * @category models
 * @since 0.1.0
 */
export interface Command {
  readonly argv: readonly [string, ...Array<string>]
  /** Working directory on the host; defaults to the host's own default (its home locally). */
  readonly cwd?: string
  /** Variables layered onto the host's inherited environment (after `envAllow` and `envRemove`). */
  readonly env?: Readonly<Record<string, string>>
  /** Glob patterns (`*`, `?`, `[…]`) of inherited variable NAMES removed before `env` applies. */
  readonly envRemove?: ReadonlyArray<string>
  /**
   * An exact environment: when set, only inherited variables whose NAME matches one of these
   * globs are kept (then `envRemove`, then `env`); nothing else of the host's (or the worker's)
   * environment reaches the process. `[]` keeps nothing: the environment is exactly `env`.
   */
  readonly envAllow?: ReadonlyArray<string>
}

/**
 * Options for {@link HostShape.run}.
 * @category models
 */
export interface RunOptions {
  /** Bytes fed to the command's stdin, which is then closed. Without it stdin is empty. */
  readonly stdin?: string | Uint8Array
  /** Output kept per stream; the rest is dropped and `truncated` set. Default 16 MiB. */
  readonly maxOutputBytes?: number
}

/**
 * The outcome of a command run to completion. A non-zero exit is not a failure.
 * @category models
 */
export interface RunResult {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
  readonly truncated: boolean
}

/**
 * Options for {@link HostShape.spawn}.
 * @category models
 */
export interface SpawnOptions {
  /** Whether the process gets a writable stdin (`write` / `endInput`). Default false. */
  readonly stdin?: boolean
  /** Whether stdout is piped to {@link HostProcess.stdout}; false discards it. Default true. */
  readonly stdout?: boolean
  /** How long release waits after SIGTERM before SIGKILL. Default 5 seconds. */
  readonly gracePeriod?: Duration.Input
}

/**
 * A long-lived process on a host, alive while the scope that spawned it is open.
 * @category models
 */
export interface HostProcess {
  readonly pid: number
  /**
   * The process's stdout, readable once. Consume it: an unread pipe eventually blocks the process
   * (spawn with `stdout: false` when nothing will read it).
   */
  readonly stdout: Stream.Stream<Uint8Array, HostError>
  /** The last bytes (up to 64 KiB) the process wrote to stderr, which is always drained. */
  readonly stderrTail: Effect.Effect<string>
  /** Writes to stdin (requires `stdin: true`). */
  readonly write: (data: string | Uint8Array) => Effect.Effect<void, HostError>
  /** Closes stdin; the process sees EOF. */
  readonly endInput: Effect.Effect<void>
  /** Waits for exit; a signal death is reported as 128 + signal number, like a shell does. */
  readonly exitCode: Effect.Effect<number, HostError>
  readonly isRunning: Effect.Effect<boolean>
  /** Sends a signal to the process's whole tree (its group and escaped descendants). */
  readonly signal: (signal: "SIGTERM" | "SIGKILL" | "SIGINT" | "SIGHUP" | "SIGSTOP" | "SIGCONT") => Effect.Effect<void, HostError>
}

/**
 * A process attached to a pseudo-terminal on a host (a terminal viewer's `tmux attach`).
 * @category models
 */
export interface PtyProcess {
  readonly pid: number
  /** Terminal output as text, readable once; buffered until read. Ends when the process exits. */
  readonly output: Stream.Stream<string, HostError>
  readonly write: (data: string) => Effect.Effect<void, HostError>
  readonly resize: (columns: number, rows: number) => Effect.Effect<void, HostError>
  readonly exitCode: Effect.Effect<number>
}

/**
 * A change of a followed file: new bytes, or a reset because the file was truncated or replaced
 * (log rotation), after which reading restarts at offset 0.
 * @category models
 */
export type TailChunk =
  | { readonly _tag: "Data"; readonly bytes: Uint8Array }
  | { readonly _tag: "Reset" }

/**
 * Options for {@link HostShape.tail}.
 * @category models
 */
export interface TailOptions {
  /** When this completes, the tail reads to end of file one last time and ends (final drain). */
  readonly until?: Effect.Effect<void>
  /** How often the file is polled. Default 50 millis locally. */
  readonly pollInterval?: Duration.Input
}

/**
 * Minimal file metadata.
 * @category models
 */
export interface FileInfo {
  readonly type: "File" | "Directory" | "SymbolicLink" | "Other"
  readonly size: number
  readonly mode: number
  /** An identity that changes when the path is replaced (inode locally). */
  readonly identity: string
}

/**
 * Options shared by the guarded file operations ({@link HostShape.readRegularFile},
 * {@link HostShape.appendRegularFile}, {@link HostShape.createRegularFile}).
 * @category models
 */
export interface GuardedFileOptions {
  /**
   * How long opening and checking may take (a read: the whole read; a remote write: each write
   * request); then `TimedOut`. Default 10 seconds. Streamed content may take as long as its stream.
   */
  readonly timeout?: Duration.Input
  /**
   * A directory, already resolved (no symlinks), that the opened file must lie strictly inside;
   * checked on the opened handle, so a directory swapped for a symlink cannot redirect it.
   */
  readonly within?: string
}

/**
 * The host contract. Every method fails with a typed {@link HostError}.
 * @category services
 * @since 0.1.0
 */
export interface HostShape {
  /** A label for messages, e.g. `local` or `ssh://user@host:22`. */
  readonly label: string
  /** The host user's home directory (the real one, never a task's isolated HOME). */
  readonly home: Effect.Effect<string, HostError>
  /** PATH, default task root and zstd, as the host's shell tells them; asked once (see HostFacts). */
  readonly facts: Effect.Effect<HostFacts, HostError>
  /** Runs a command to completion and collects its output. Non-zero exit is not a failure. */
  readonly run: (command: Command, options?: RunOptions) => Effect.Effect<RunResult, HostError>
  /**
   * Starts a long-lived process in its own process group. Closing the scope sends SIGTERM to
   * its whole tree, waits `gracePeriod`, then sends SIGKILL.
   */
  readonly spawn: (command: Command, options?: SpawnOptions) => Effect.Effect<HostProcess, HostError, Scope.Scope>
  /** Starts a process on a pseudo-terminal of the given size; closing the scope kills its tree. */
  readonly spawnPty: (
    command: Command,
    size: { readonly columns: number; readonly rows: number }
  ) => Effect.Effect<PtyProcess, HostError, Scope.Scope>
  /**
   * Stops the process tree rooted at `pid` (its group, session and descendants): SIGTERM, up to
   * `gracePeriod` for it to exit, then SIGKILL. For processes this host did not spawn itself,
   * such as codex inside tmux. Succeeds when nothing is left.
   */
  readonly terminateTree: (pid: number, gracePeriod: Duration.Input) => Effect.Effect<void, HostError>
  /**
   * Fails with a `ConnectionLost` HostError when the connection in use at the time of the call
   * drops (a session races its body against it); never completes on a local host.
   */
  readonly connectionLost: Effect.Effect<never, HostError>
  /**
   * Makes `127.0.0.1:<returned port>` on this host reach `127.0.0.1:localPort` of the worker for
   * the scope's lifetime (a remote port forward over SSH; the same port locally). Absent on a host
   * that cannot.
   */
  readonly forwardToLocal?: ((localPort: number) => Effect.Effect<number, HostError, Scope.Scope>) | undefined
  /** Whether a process with this pid is alive (zombies are not). */
  readonly isAlive: (pid: number) => Effect.Effect<boolean, HostError>
  readonly readFile: (path: string) => Effect.Effect<Uint8Array, HostError>
  /** Reads up to `length` bytes at `offset`; fewer (or none) at end of file. */
  readonly readRange: (path: string, offset: number, length: number) => Effect.Effect<Uint8Array, HostError>
  /** Writes a file atomically (temp file in the same directory, then rename) with `mode`. */
  readonly writeFile: (path: string, data: string | Uint8Array, options?: { readonly mode?: number }) => Effect.Effect<void, HostError>
  /** Appends to a file, creating it when missing. */
  readonly appendFile: (path: string, data: string | Uint8Array) => Effect.Effect<void, HostError>
  /**
   * Reads a file the agent could have touched: the path is opened once without following a
   * final symlink (`SymlinkRefused`) and without ever blocking (a FIFO is `NotRegularFile`, not a
   * hang); the opened handle must be a regular file (`NotRegularFile`) of at most `maxBytes`
   * (`TooLarge`, nothing read), inside `within` when given (`OutsideRoot`); the bytes come from
   * that handle.
   */
  readonly readRegularFile: (
    path: string,
    options: GuardedFileOptions & { readonly maxBytes: number }
  ) => Effect.Effect<Uint8Array, HostError>
  /**
   * Appends to a file the agent could have touched, creating it (with `mode`, default 0644)
   * when missing; never through a final symlink, never to anything but a regular file, never
   * blocking.
   */
  readonly appendRegularFile: (
    path: string,
    data: string | Uint8Array,
    options?: GuardedFileOptions & { readonly mode?: number }
  ) => Effect.Effect<void, HostError>
  /**
   * Creates a new file exclusively (`AlreadyExists` when anything, a symlink included, is at
   * the path), checks the created handle (inside `within` when given), then streams `content`
   * into it, at most `maxBytes` (`TooLarge`). On any failure the created file is removed, so
   * nothing partial stays behind. Returns the bytes written.
   */
  readonly createRegularFile: <E, R>(
    path: string,
    content: Stream.Stream<Uint8Array, E, R>,
    options?: GuardedFileOptions & { readonly mode?: number; readonly maxBytes?: number }
  ) => Effect.Effect<number, HostError | E, R>
  readonly exists: (path: string) => Effect.Effect<boolean, HostError>
  /** Metadata of the path itself (a symlink is reported as a symlink). */
  readonly stat: (path: string) => Effect.Effect<FileInfo, HostError>
  /** Resolves symlinks and `..` on the host. */
  readonly realPath: (path: string) => Effect.Effect<string, HostError>
  /** Creates a directory and its parents; succeeds when it exists. */
  readonly makeDirectory: (path: string, options?: { readonly mode?: number }) => Effect.Effect<void, HostError>
  readonly readDirectory: (path: string) => Effect.Effect<ReadonlyArray<string>, HostError>
  /** Removes a file or a whole tree; succeeds when nothing is there. */
  readonly remove: (path: string) => Effect.Effect<void, HostError>
  readonly rename: (from: string, to: string) => Effect.Effect<void, HostError>
  readonly chmod: (path: string, mode: number) => Effect.Effect<void, HostError>
  /** Points `linkPath` at `target`, atomically replacing whatever link was there. */
  readonly symlink: (target: string, linkPath: string) => Effect.Effect<void, HostError>
  /** Absolute paths of the files matching a glob (`*`, `**`, `?`) under `cwd`, sorted. */
  readonly glob: (pattern: string, cwd: string) => Effect.Effect<ReadonlyArray<string>, HostError>
  /** Follows a growing file from its start; see {@link TailOptions} for the final drain. */
  readonly tail: (path: string, options?: TailOptions) => Stream.Stream<TailChunk, HostError>
  /**
   * Places a file from the worker's own filesystem on the host (a copy, or a hard link when the
   * worker is the host and both sides share a filesystem), atomically, with `mode`.
   */
  readonly importFile: (workerPath: string, hostPath: string, options?: { readonly mode?: number }) => Effect.Effect<void, HostError>
}

/**
 * The machine codex runs on.
 * @category services
 * @since 0.1.0
 */
export class Host extends Context.Service<Host, HostShape>()("optio-codex/Host") {
  /** Files in memory, processes scripted by argv (see MemoryHost); for tests on swapped layers. */
  static readonly layerMemory = (options?: MemoryHost.MemoryHostOptions) => MemoryHost.layer(options)
}

/**
 * Runs a command and fails with {@link CommandFailed} unless it exits 0.
 * @category combinators
 */
export const runChecked = Effect.fnUntraced(function*(command: Command, options?: RunOptions) {
  const host = yield* Host
  const result = yield* host.run(command, options)
  if (result.exitCode !== 0) {
    return yield* new CommandFailed({
      host: host.label,
      command: command.argv[0],
      exitCode: result.exitCode,
      stderrTail: result.stderr.slice(-2000)
    })
  }
  return result
})
