/**
 * SessionErrors: how a codex session can end other than with `DONE`. Cancellation is not among
 * them: a cancelled session ends by interruption.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The agent wrote `ERROR[: message]` to optio.log.
 * @category errors
 * @since 0.1.0
 */
export class AgentReportedError extends Schema.TaggedError<AgentReportedError>()("AgentReportedError", {
  agentMessage: Schema.NullOr(Schema.String)
}) {
  override get message(): string {
    return this.agentMessage ?? "the agent reported ERROR"
  }
}

/**
 * codex exited (or its terminal went away) before the agent wrote `DONE`. The message names the
 * process that ended and, for a signal death (status 128 + n), the signal (`SIGKILL` for 137).
 * @category errors
 * @since 0.1.0
 */
export class CodexExitedEarly extends Schema.TaggedError<CodexExitedEarly>()("CodexExitedEarly", {
  /** codex's exit status (128 + n for signal n); null when the terminal vanished and the status is unknown. */
  exitCode: Schema.NullOr(Schema.Number),
  /** The last lines codex showed, for the operator to see why. */
  paneTail: Schema.String,
  /** Which codex process ended: `codex app-server` or `codex TUI`. */
  process: Schema.optionalKey(Schema.String),
  /** True when codex never came up (no first screen, no `initialize` answer); `paneTail` is then its last output. */
  atLaunch: Schema.optionalKey(Schema.Boolean)
}) {
  /** The signal that killed codex (`SIGKILL`, …), when its status says it died of one. */
  get signal(): string | undefined {
    return this.exitCode !== null && this.exitCode > 128 ? SIGNAL_NAMES[this.exitCode - 128] ?? `signal ${this.exitCode - 128}` : undefined
  }

  override get message(): string {
    const what = this.process ?? "codex"
    const signal = this.signal
    const status = this.exitCode === null
      ? `${what}'s terminal went away (the tmux server or session is gone; exit status unknown)`
      : signal === undefined
      ? `${what} exited with status ${this.exitCode}`
      : `${what} was killed by ${signal} (exit status ${this.exitCode})`
    return this.atLaunch === true
      ? `${status} at launch; its last output:\n${this.paneTail}`
      : `${status} before the agent wrote DONE; last screen lines:\n${this.paneTail}`
  }
}

// Linux signal numbers of the deaths worth naming; others are reported by number.
const SIGNAL_NAMES: Readonly<Record<number, string>> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM"
}

/**
 * Conversation mode: codex app-server stopped answering (stopped, deadlocked, starved) while its
 * process is still there. The session probes it with a cheap request every `intervalMs`, each
 * with a `probeTimeoutMs` timeout, and gives up after `failedProbes` unanswered probes in a row;
 * so a hang ends the session at most `boundMs` = failedProbes × (intervalMs + probeTimeoutMs)
 * after codex's last answer (then teardown stops codex: SIGCONT, EOF, SIGTERM, SIGKILL).
 * @category errors
 * @since 0.1.0
 */
export class AppServerUnresponsive extends Schema.TaggedError<AppServerUnresponsive>()("AppServerUnresponsive", {
  pid: Schema.Number,
  /** The probe request (`thread/loaded/list`). */
  method: Schema.String,
  failedProbes: Schema.Number,
  probeTimeoutMs: Schema.Number,
  intervalMs: Schema.Number,
  boundMs: Schema.Number
}) {
  override get message(): string {
    return `codex app-server (pid ${this.pid}) stopped answering: ${this.failedProbes} liveness probes in a row ` +
      `(${this.method}, ${this.probeTimeoutMs} ms timeout each, one every ${this.intervalMs} ms) went unanswered, ` +
      `so the session gave up at most ${this.boundMs} ms after codex's last answer`
  }
}

/**
 * The requested mode is not available in this build.
 * @category errors
 */
export class ModeNotSupported extends Schema.TaggedError<ModeNotSupported>()("ModeNotSupported", {
  mode: Schema.String
}) {
  override get message(): string {
    return `mode ${JSON.stringify(this.mode)} is not supported yet; use mode "iframe"`
  }
}

/**
 * A caller-supplied hook failed.
 * @category errors
 * @since 0.1.0
 */
export class HookFailed extends Schema.TaggedError<HookFailed>()("HookFailed", {
  hook: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `the ${this.hook} hook failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/**
 * The task asks for a persistence feature (a seed, seed capture, resume) whose store the worker
 * did not provide (`SeedStore` / `Lease` / `SnapshotStore`; e.g. `Store.layerEmbedded`).
 * @category errors
 * @since 0.1.0
 */
export class PersistenceNotConfigured extends Schema.TaggedError<PersistenceNotConfigured>()("PersistenceNotConfigured", {
  feature: Schema.String,
  service: Schema.String
}) {
  override get message(): string {
    return `${this.feature} needs a store, and this worker provides none (Store.layerNone, ${this.service}); ` +
      `provide a store layer (Store.layerEmbedded, Store.layerMongo or Store.layerMemory)`
  }
}
