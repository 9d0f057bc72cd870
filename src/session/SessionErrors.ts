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
 */
export class AgentReportedError extends Schema.TaggedError<AgentReportedError>()("AgentReportedError", {
  agentMessage: Schema.NullOr(Schema.String)
}) {
  override get message(): string {
    return this.agentMessage ?? "the agent reported ERROR"
  }
}

/**
 * codex exited (or its terminal went away) before the agent wrote `DONE`.
 * @category errors
 */
export class CodexExitedEarly extends Schema.TaggedError<CodexExitedEarly>()("CodexExitedEarly", {
  /** codex's exit status; null when the terminal vanished and the status is unknown. */
  exitCode: Schema.NullOr(Schema.Number),
  /** The last lines codex showed, for the operator to see why. */
  paneTail: Schema.String
}) {
  override get message(): string {
    const status = this.exitCode === null ? "codex's terminal went away" : `codex exited with status ${this.exitCode}`
    return `${status} before the agent wrote DONE; last screen lines:\n${this.paneTail}`
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
 */
export class HookFailed extends Schema.TaggedError<HookFailed>()("HookFailed", {
  hook: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `the ${this.hook} hook failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}
