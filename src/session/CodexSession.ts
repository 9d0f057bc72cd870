/**
 * CodexSession: one codex task as one scoped program. Resources are acquired in order — task
 * dirs, codex link, codex itself (the TUI in tmux, or `codex app-server`), the viewer server (web
 * terminal or conversation listener), the published upstream — and the Scope releases them in
 * reverse: viewers are cut off first (no more operator input), then codex is stopped gracefully
 * (SIGTERM, a bounded wait, SIGKILL for its whole tree), then the upstream is cleared and the
 * task's private files are removed. Cancelling a task is interrupting this program's fiber; the
 * session then ends as interrupted, never as a failure.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { decodeCodexTaskConfig } from "../config/CodexTaskConfig.ts"
import { runConversationBody } from "./ConversationBody.ts"
import { prepareTask } from "./PrepareTask.ts"
import type { SessionOptions } from "./PrepareTask.ts"
import { runTuiBody } from "./TuiBody.ts"

export type { SessionOptions } from "./PrepareTask.ts"
export type { SessionResult } from "./LogWatch.ts"

/**
 * Runs one codex task to completion. Invalid config fails before anything starts.
 * @category constructors
 */
export const runCodexSession = (input: unknown, options: SessionOptions = {}) =>
  Effect.gen(function*() {
    const config = yield* decodeCodexTaskConfig(input)
    const prepared = yield* prepareTask(config, options)
    return config.mode === "conversation" ? yield* runConversationBody(prepared) : yield* runTuiBody(prepared)
  }).pipe(Effect.scoped, Effect.withSpan("CodexSession.run"))

