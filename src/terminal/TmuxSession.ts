/**
 * TmuxSession: one task's tmux server on a socket of its own, holding one pane that runs the
 * task's program (the codex TUI). Owns starting that server, querying and driving the pane, and
 * tearing it all down; it does not own serving the pane to browsers (see `TtydSession`).
 *
 * Everything goes through the {@link Host} service, so the same code drives tmux on the worker
 * and on a remote host. Every tmux command is addressed by this task's socket and exact session
 * name, and every kill by this task's pids: another task's tmux is never touched.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Schema, Semaphore } from "effect"
import { Host } from "../host/Host.ts"
import type { Command, HostError, HostShape, RunOptions, RunResult } from "../host/Host.ts"

/**
 * tmux could not start the task's session; `detail` holds tmux's own stderr when it ran.
 * @category errors
 */
export class TmuxStartFailed extends Schema.TaggedError<TmuxStartFailed>()("TmuxStartFailed", {
  socketPath: Schema.String,
  sessionName: Schema.String,
  exitCode: Schema.optionalKey(Schema.Number),
  detail: Schema.String
}) {
  override get message(): string {
    const code = this.exitCode === undefined ? "" : ` (exit ${this.exitCode})`
    return `tmux new-session ${this.sessionName} on ${this.socketPath} failed${code}: ${this.detail.trim()}`
  }
}

/**
 * A tmux command failed or timed out while the server may still be there: a transient failure,
 * never evidence that the pane program exited.
 * @category errors
 */
export class TmuxCommandFailed extends Schema.TaggedError<TmuxCommandFailed>()("TmuxCommandFailed", {
  socketPath: Schema.String,
  operation: Schema.String,
  exitCode: Schema.optionalKey(Schema.Number),
  timedOut: Schema.Boolean,
  stderr: Schema.String
}) {
  override get message(): string {
    const how = this.timedOut ? "timed out" : `exited ${this.exitCode ?? "?"}`
    return `tmux ${this.operation} on ${this.socketPath} ${how}: ${this.stderr.trim()}`
  }
}

/**
 * The tmux server or the task's session no longer exists.
 * @category errors
 */
export class TmuxSessionGone extends Schema.TaggedError<TmuxSessionGone>()("TmuxSessionGone", {
  socketPath: Schema.String,
  sessionName: Schema.String,
  operation: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `tmux session ${this.sessionName} on ${this.socketPath} is gone (${this.operation}): ${this.detail.trim()}`
  }
}

/**
 * A key name outside the allow-list was given to {@link TmuxSession.sendKeys}.
 * @category errors
 */
export class TmuxKeyRejected extends Schema.TaggedError<TmuxKeyRejected>()("TmuxKeyRejected", {
  key: Schema.String
}) {
  override get message(): string {
    return `key name ${JSON.stringify(this.key)} is not allowed (use tmux names such as Enter, Escape, C-c, Up)`
  }
}

/**
 * Every failure of this module.
 * @category errors
 */
export type TmuxError = TmuxStartFailed | TmuxCommandFailed | TmuxSessionGone | TmuxKeyRejected

/**
 * The state of the task's pane. `Gone` means the server or session is missing (its program's
 * exit status is unknown); a failing query is an error, never one of these.
 * @category models
 */
export type PaneStatus =
  | { readonly _tag: "Running" }
  | { readonly _tag: "Exited"; readonly exitCode: number }
  | { readonly _tag: "Gone" }

/**
 * A running tmux session, alive while the scope that started it is open.
 * @category models
 */
export interface TmuxSession {
  readonly socketPath: string
  readonly sessionName: string
  /** The size the window was created with (viewers may resize it later). */
  readonly columns: number
  readonly rows: number
  /** The argv that attaches a tmux client to this session, for a viewer's pseudo-terminal. */
  readonly attachCommand: Command
  /** The pid of the pane program (recorded at start; the pane is never respawned). */
  readonly panePid: Effect.Effect<number>
  /** The pid of this task's tmux server. */
  readonly serverPid: Effect.Effect<number>
  /** Whether the pane program runs, exited (with its status) or the session is gone. */
  readonly status: Effect.Effect<PaneStatus, TmuxCommandFailed | HostError>
  /**
   * Waits until the pane program exited and returns its exit status (128 + signal for a signal
   * death). Transient query failures are retried a few times before they fail the wait.
   */
  readonly awaitExit: (pollInterval: Duration.Input) => Effect.Effect<number, TmuxSessionGone | TmuxCommandFailed | HostError>
  /** The last `lines` lines of the pane (scrollback included), also after the program exited. */
  readonly capture: (lines: number) => Effect.Effect<string, TmuxSessionGone | TmuxCommandFailed | HostError>
  /** Pastes `text` literally (bracketed when the program asked for it), then presses Enter. */
  readonly sendText: (text: string) => Effect.Effect<void, TmuxSessionGone | TmuxCommandFailed | HostError>
  /** Presses keys by tmux name (`Enter`, `Escape`, `C-c`, `Up`, `F5`, `y`, …). */
  readonly sendKeys: (keys: ReadonlyArray<string>) => Effect.Effect<void, TmuxKeyRejected | TmuxSessionGone | TmuxCommandFailed | HostError>
}

/**
 * Options of `Tmux.start`.
 * @category models
 */
export interface TmuxSessionOptions {
  /** The task's own socket path (keep it short: unix socket paths are limited to ~100 bytes). */
  readonly socketPath: string
  /** Default `optio`. Letters, digits, `_` and `-` only. */
  readonly sessionName?: string
  /**
   * The pane program, exec'd with exactly this argv (after a one-line start gate, see below); its
   * env/envRemove/envAllow become the tmux server's environment and so the pane's (with
   * `envAllow` the server holds nothing of the worker's environment).
   */
  readonly command: Command
  /** Default 200. */
  readonly columns?: number
  /** Default 50. */
  readonly rows?: number
  /** Where the tmux config is written (a file the caller owns, e.g. in the task dir). */
  readonly configPath: string
  /** How long the pane program gets between SIGTERM and SIGKILL at release. Default 5 seconds. */
  readonly gracePeriod?: Duration.Input
  /** Bound of each tmux command. Default 5 seconds. */
  readonly commandTimeout?: Duration.Input
  /** Pause between a paste and its Enter, so the program has ingested the paste. Default 150 ms. */
  readonly pasteSettle?: Duration.Input
  /** The tmux program on the host. Default `tmux` (looked up on the host's PATH). */
  readonly tmuxPath?: string
}

/**
 * The tmux key names {@link TmuxSession.sendKeys} accepts: named keys and single letters or
 * digits, with up to three `C-`/`M-`/`S-` modifiers. Anything else (`;`, shell text, tmux
 * command words) is rejected before tmux sees it.
 * @category constants
 */
export const ALLOWED_KEY = /^(?:[CMS]-){0,3}(?:Enter|Escape|Tab|BTab|BSpace|Space|Up|Down|Left|Right|Home|End|PageUp|PageDown|PgUp|PgDn|PPage|NPage|IC|DC|Insert|Delete|F(?:[1-9]|1[0-2])|[A-Za-z0-9])$/

/**
 * The tmux configuration of a task's server. `remain-on-exit` is set here, before the pane
 * exists, because setting it after `new-session` races a program that exits at once. The prefix
 * and all root/prefix bindings are removed so a web viewer cannot open a shell window or run
 * tmux commands: viewers only type into the pane.
 * @category constants
 */
export const TMUX_CONFIG = [
  "# Written by optio-codex for one task's tmux server; rewritten at every start.",
  "set -g remain-on-exit on",
  "set -g status off",
  "set -g history-limit 50000",
  "set -g window-size latest",
  "set -g prefix None",
  "set -g prefix2 None",
  "set -g mouse off",
  "set -s escape-time 10",
  "unbind-key -a -T prefix",
  "unbind-key -a -T root",
  ""
].join("\n")

/**
 * Starts the task's tmux session: clears whatever a previous run left on the socket, writes the
 * config, runs `new-session` with the command's environment, and registers the teardown (stop
 * the pane program gracefully, `kill-server`, kill the server's tree, remove the socket).
 * @category constructors
 */
export const startTmuxSessionOn = Effect.fn("TmuxSession.start")(function*(host: HostShape, options: TmuxSessionOptions) {
  const sessionName = options.sessionName ?? "optio"
  const columns = options.columns ?? 200
  const rows = options.rows ?? 50
  const socketPath = options.socketPath
  const fail = (detail: string, exitCode?: number) =>
    new TmuxStartFailed({ socketPath, sessionName, detail, ...(exitCode === undefined ? {} : { exitCode }) })
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(sessionName)) {
    return yield* fail("the session name must be 1-64 letters, digits, '_' or '-'")
  }
  if (!validSize(columns) || !validSize(rows)) return yield* fail(`invalid size ${columns}x${rows}`)

  const tmux = makeTmux(host, {
    socketPath,
    sessionName,
    tmuxPath: options.tmuxPath ?? "tmux",
    timeout: Duration.fromInputUnsafe(options.commandTimeout ?? "5 seconds")
  })
  const grace = Duration.fromInputUnsafe(options.gracePeriod ?? "5 seconds")

  // A worker that crashed leaves its server (and codex) on the same socket; a relaunch would
  // otherwise fail with "duplicate session".
  yield* clearStale(host, tmux, grace)
  yield* host.writeFile(options.configPath, TMUX_CONFIG, { mode: 0o600 })

  const pids = yield* Effect.acquireRelease(
    Effect.gen(function*() {
      const result = yield* tmux.run("new-session", [
        "-f", options.configPath,
        "new-session", "-d", "-s", sessionName, "-x", String(columns), "-y", String(rows),
        ...(options.command.cwd === undefined ? [] : ["-c", options.command.cwd]),
        "--", ...paneArgv(tmux, options.command.argv)
      ], {
        ...(options.command.env === undefined ? {} : { env: options.command.env }),
        envRemove: [...(options.command.envRemove ?? []), ...NESTING_VARS],
        ...(options.command.envAllow === undefined ? {} : { envAllow: options.command.envAllow })
      }).pipe(Effect.mapError((error) => error._tag === "HostError" ? error : fail(error.message)))
      if (result.exitCode !== 0) return yield* fail(result.stderr || result.stdout, result.exitCode)
      const listed = yield* tmux.run("list-panes", ["list-panes", "-t", tmux.window, "-F", "#{pane_pid} #{pid}"]).pipe(
        Effect.mapError((error) => error._tag === "HostError" ? error : fail(error.message))
      )
      const [pane, server] = (listed.stdout.split("\n")[0] ?? "").trim().split(" ").map(Number)
      if (listed.exitCode !== 0 || !isPid(pane) || !isPid(server)) {
        // tmux can exit 0 although its server failed (e.g. the socket could not be created).
        const detail = [result.stderr, listed.stderr || listed.stdout].map((text) => text.trim()).filter((text) => text !== "")
        return yield* fail(`the new session has no pane: ${detail.join("; ")}`, listed.exitCode)
      }
      return { pane, server }
    }).pipe(Effect.onError(() => teardown(host, tmux, { panes: [], server: undefined }, grace))),
    (pids) => teardown(host, tmux, { panes: [pids.pane], server: pids.server }, grace)
  )

  const settle = Duration.fromInputUnsafe(options.pasteSettle ?? "150 millis")
  const sends = yield* Semaphore.make(1)

  // One look at the pane: Undecided when tmux has seen the pane's output close but not (yet) its
  // exit status.
  const queryPane = tmux.run("list-panes", [
    "list-panes", "-t", tmux.window, "-F", "#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}|#{pid}"
  ]).pipe(Effect.flatMap((result) => {
    if (result.exitCode !== 0) {
      if (isGone(result.stderr)) return Effect.succeed<PaneQuery>({ _tag: "Gone" })
      return Effect.fail(new TmuxCommandFailed({
        socketPath, operation: "list-panes", exitCode: result.exitCode, timedOut: false, stderr: result.stderr
      }))
    }
    const [dead = "", code = "", signal = "", server = ""] = (result.stdout.split("\n")[0] ?? "").split("|")
    if (dead.trim() !== "1") return Effect.succeed<PaneQuery>({ _tag: "Running" })
    if (code.trim() !== "") return Effect.succeed<PaneQuery>({ _tag: "Exited", exitCode: Number(code) })
    if (signal.trim() !== "") return Effect.succeed<PaneQuery>({ _tag: "Exited", exitCode: 128 + Number(signal) })
    return Effect.succeed<PaneQuery>({ _tag: "Undecided", server: Number(server) })
  }))

  // tmux 3.3a sometimes misses the SIGCHLD of a pane program (seen here in about 1 of 10 quick
  // exits): the pane reads as dead, the program stays a zombie and its status never arrives.
  // Another SIGCHLD makes the server reap it; until then the program counts as running.
  const status: TmuxSession["status"] = queryPane.pipe(
    Effect.flatMap((first) => {
      if (first._tag !== "Undecided") return Effect.succeed(first)
      return nudgeReaper(host, first.server).pipe(Effect.andThen(queryPane))
    }),
    Effect.map((state): PaneStatus => state._tag === "Undecided" ? { _tag: "Running" } : state)
  )

  const awaitExit = Effect.fn("TmuxSession.awaitExit")(function*(pollInterval: Duration.Input) {
    let failures = 0
    while (true) {
      const result = yield* Effect.result(status)
      if (result._tag === "Success") {
        failures = 0
        const state = result.success
        if (state._tag === "Exited") return state.exitCode
        if (state._tag === "Gone") {
          return yield* new TmuxSessionGone({ socketPath, sessionName, operation: "await exit", detail: "no server or session" })
        }
      } else {
        failures += 1
        if (failures >= MAX_CONSECUTIVE_QUERY_FAILURES) return yield* result.failure
        yield* Effect.logDebug("tmux status query failed; retrying", { error: result.failure.message })
      }
      yield* Effect.sleep(pollInterval)
    }
  })

  const capture = Effect.fn("TmuxSession.capture")(function*(lines: number) {
    const count = Math.max(1, Math.min(Math.floor(lines), 1_000_000))
    const result = yield* tmux.checked("capture-pane", ["capture-pane", "-p", "-J", "-t", tmux.window, "-S", `-${count}`])
    const kept = result.stdout.split("\n").map((line) => line.trimEnd())
    while (kept.length > 0 && kept[kept.length - 1] === "") kept.pop()
    return kept.slice(-count).join("\n")
  })

  const sendText = Effect.fn("TmuxSession.sendText")(function*(text: string) {
    yield* sends.withPermit(Effect.gen(function*() {
      if (text !== "") {
        // The text travels on stdin, never as an argument: no tmux or shell parsing, no size cap.
        yield* tmux.checked("load-buffer", ["load-buffer", "-b", PASTE_BUFFER, "-"], { stdin: text })
        yield* tmux.checked("paste-buffer", ["paste-buffer", "-p", "-d", "-b", PASTE_BUFFER, "-t", tmux.window])
        yield* Effect.sleep(settle)
      }
      yield* tmux.checked("send-keys", ["send-keys", "-t", tmux.window, "Enter"])
    }))
  })

  const sendKeys = Effect.fn("TmuxSession.sendKeys")(function*(keys: ReadonlyArray<string>) {
    const rejected = keys.find((key) => !ALLOWED_KEY.test(key))
    if (rejected !== undefined) return yield* new TmuxKeyRejected({ key: rejected })
    if (keys.length === 0) return
    yield* sends.withPermit(tmux.checked("send-keys", ["send-keys", "-t", tmux.window, ...keys]))
  })

  const session: TmuxSession = {
    socketPath,
    sessionName,
    columns,
    rows,
    attachCommand: {
      argv: [tmux.program, "-u", "-S", socketPath, "attach-session", "-t", `=${sessionName}`],
      envRemove: NESTING_VARS
    },
    panePid: Effect.succeed(pids.pane),
    serverPid: Effect.succeed(pids.server),
    status: status.pipe(Effect.withSpan("TmuxSession.status")),
    awaitExit,
    capture,
    sendText,
    sendKeys
  }
  return session
})

// --- helpers -------------------------------------------------------------------------------

const PASTE_BUFFER = "optio-send"
const MAX_CONSECUTIVE_QUERY_FAILURES = 5
// A worker started inside tmux must not make our clients think they are nested.
const NESTING_VARS: ReadonlyArray<string> = ["TMUX", "TMUX_PANE"]
const KILL_SERVER_BACKSTOP = Duration.seconds(1)

type PaneQuery = PaneStatus | { readonly _tag: "Undecided"; readonly server: number }

// Sends SIGCHLD to the tmux server (through the host's shell builtin, so no `kill` binary is
// needed); best-effort, since the next poll retries anyway.
const nudgeReaper = (host: HostShape, server: number) =>
  isPid(server)
    ? host.run({ argv: ["/bin/sh", "-c", "kill -s CHLD \"$1\"", "sh", String(server)] }).pipe(
      Effect.timeout("2 seconds"),
      Effect.ignore
    )
    : Effect.void

const validSize = (n: number) => Number.isInteger(n) && n >= 1 && n <= 10_000
const isPid = (n: number | undefined): n is number => n !== undefined && Number.isInteger(n) && n > 0

// What tmux prints when the server or the session is not there (tmux 3.x wording).
const isGone = (stderr: string) =>
  /no server running on|error connecting to .*\((No such file or directory|Connection refused)\)|can't find session/.test(stderr)

// The pane runs a tiny gate before the program. tmux 3.3a loses the whole output of a program
// that runs to completion before the server has started reading its pane (2 of 60 launches under
// load here); a round trip through the server from inside the pane comes after that point, so
// the program's first byte is never early. The gate also sidesteps tmux running a one-argument
// command through `sh -c`: argv is passed as positional parameters and exec'd verbatim, never
// parsed, and the program keeps the pane's pid.
const PANE_GATE = "\"$1\" -S \"$2\" wait-for -S optio-pane-started >/dev/null 2>&1; shift 2; exec \"$@\""

const paneArgv = (tmux: TmuxClient, argv: Command["argv"]): ReadonlyArray<string> =>
  ["/bin/sh", "-c", PANE_GATE, "optio-pane", tmux.program, tmux.socketPath, ...argv]

interface TmuxClient {
  readonly program: string
  readonly socketPath: string
  /** The target of the session's window (and its active pane), matched exactly by name. */
  readonly window: string
  /** Runs `tmux -u -S socket ARGS`, bounded by the command timeout; exit status left to the caller. */
  readonly run: (
    operation: string,
    args: ReadonlyArray<string>,
    extra?: {
      readonly env?: Readonly<Record<string, string>>
      readonly envRemove?: ReadonlyArray<string>
      readonly envAllow?: ReadonlyArray<string>
      readonly stdin?: string
    }
  ) => Effect.Effect<RunResult, TmuxCommandFailed | HostError>
  /** Like `run`, but a non-zero exit fails: gone when tmux says so, a command failure otherwise. */
  readonly checked: (
    operation: string,
    args: ReadonlyArray<string>,
    extra?: { readonly stdin?: string }
  ) => Effect.Effect<RunResult, TmuxSessionGone | TmuxCommandFailed | HostError>
}

const makeTmux = (
  host: HostShape,
  config: { readonly socketPath: string; readonly sessionName: string; readonly tmuxPath: string; readonly timeout: Duration.Duration }
): TmuxClient => {
  const run: TmuxClient["run"] = (operation, args, extra = {}) => {
    const runOptions: RunOptions = extra.stdin === undefined ? {} : { stdin: extra.stdin }
    return host.run({
      argv: [config.tmuxPath, "-u", "-S", config.socketPath, ...args],
      ...(extra.env === undefined ? {} : { env: extra.env }),
      envRemove: extra.envRemove ?? NESTING_VARS,
      ...(extra.envAllow === undefined ? {} : { envAllow: extra.envAllow })
    }, runOptions).pipe(
      Effect.timeoutOrElse({
        duration: config.timeout,
        orElse: () =>
          Effect.fail(new TmuxCommandFailed({ socketPath: config.socketPath, operation, timedOut: true, stderr: "" }))
      })
    )
  }
  const checked: TmuxClient["checked"] = (operation, args, extra = {}) =>
    Effect.gen(function*() {
      const result = yield* run(operation, args, extra)
      if (result.exitCode === 0) return result
      if (isGone(result.stderr)) {
        return yield* new TmuxSessionGone({
          socketPath: config.socketPath, sessionName: config.sessionName, operation, detail: result.stderr
        })
      }
      return yield* new TmuxCommandFailed({
        socketPath: config.socketPath, operation, exitCode: result.exitCode, timedOut: false, stderr: result.stderr
      })
    })
  return { program: config.tmuxPath, socketPath: config.socketPath, window: `=${config.sessionName}:`, run, checked }
}

// Stops whatever a previous run left on this socket, the same way a release would.
const clearStale = (host: HostShape, tmux: TmuxClient, grace: Duration.Duration) =>
  Effect.gen(function*() {
    const panes = yield* tmux.run("list-panes", ["list-panes", "-a", "-F", "#{pane_pid}"]).pipe(
      Effect.map((result) => result.exitCode === 0 ? result.stdout.split("\n").map(Number).filter(isPid) : []),
      Effect.orElseSucceed((): ReadonlyArray<number> => [])
    )
    const server = yield* tmux.run("display-message", ["display-message", "-p", "#{pid}"]).pipe(
      Effect.map((result) => {
        const pid = Number(result.stdout.trim())
        return result.exitCode === 0 && isPid(pid) ? pid : undefined
      }),
      Effect.orElseSucceed(() => undefined)
    )
    if (panes.length > 0 || server !== undefined) {
      yield* Effect.logWarning("clearing a stale tmux server on the task's socket", { panes, server })
    }
    yield* teardown(host, tmux, { panes, server }, grace)
  })

// Teardown in the order that lets the program end cleanly (P2): the pane program gets SIGTERM
// and the grace period before anything else, then the server goes, then a backstop kill of the
// server's tree, then the socket file. Each step is bounded and a failure never skips the next.
const teardown = (
  host: HostShape,
  tmux: TmuxClient,
  pids: { readonly panes: ReadonlyArray<number>; readonly server: number | undefined },
  grace: Duration.Duration
) =>
  Effect.gen(function*() {
    const step = <E>(name: string, bound: Duration.Duration, effect: Effect.Effect<unknown, E>) =>
      effect.pipe(
        Effect.timeoutOrElse({ duration: bound, orElse: () => Effect.fail(`timed out after ${Duration.format(bound)}`) }),
        Effect.catchCause((cause) => Effect.logWarning(`tmux teardown step '${name}' failed`, cause))
      )
    // A pane whose program already exited is still signalled: members of its session may remain.
    yield* step(
      "stop pane program",
      Duration.sum(grace, Duration.seconds(5)),
      Effect.forEach(pids.panes, (pid) => host.terminateTree(pid, grace), { discard: true, concurrency: "unbounded" })
    )
    yield* step("kill-server", Duration.seconds(10), tmux.run("kill-server", ["kill-server"]))
    if (pids.server !== undefined) {
      yield* step("kill server tree", Duration.seconds(5), host.terminateTree(pids.server, KILL_SERVER_BACKSTOP))
    }
    yield* step("remove socket", Duration.seconds(5), host.remove(tmux.socketPath))
  }).pipe(Effect.withSpan("TmuxSession.teardown"))
