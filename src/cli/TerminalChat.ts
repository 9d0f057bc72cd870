/**
 * TerminalChat: the CLI's view of a conversation-mode task — the agent's text streamed to the
 * terminal as it is written, approvals asked as y/n questions, and (when stdin is a terminal)
 * the operator's lines sent as turns, with `/interrupt`, `/model <id>` and `/effort <level>`.
 * With stdin not a terminal it only shows; the task's optio.log decides when it ends.
 *
 * @since 0.1.0
 */
import { Effect, Stream } from "effect"
import type { Scope } from "effect"
import type { CodexConversation } from "../appserver/CodexConversation.ts"

/**
 * Where the chat reads and writes.
 * @category models
 */
export interface ChatIo {
  /** Writes text as is (no newline added). */
  readonly write: (text: string) => Effect.Effect<void>
  /** The operator's lines, or undefined when there is no interactive input. */
  readonly lines: Stream.Stream<string> | undefined
}

/**
 * Runs the chat until the conversation closes (or the scope does).
 * @category constructors
 */
export const terminalChat = (conversation: CodexConversation, io: ChatIo): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const events = yield* conversation.subscribe
    yield* events.pipe(
      Stream.runForEach((event) => {
        const method = event["method"]
        const params = isRecord(event["params"]) ? event["params"] : {}
        if (method === "item/agentMessage/delta" && typeof params["delta"] === "string") return io.write(params["delta"])
        if (method === "turn/completed") return io.write("\n")
        if (method === "item/commandExecution/requestApproval" || method === "item/fileChange/requestApproval") {
          const what = typeof params["command"] === "string" ? params["command"] : "a file change"
          return io.write(`\ncodex asks to run: ${what}\nallow? [y/n] `)
        }
        return Effect.void
      }),
      Effect.forkScoped
    )
    if (io.lines === undefined) return
    yield* io.write("Type a message, y/n to answer an approval, /interrupt, /model <id>, /effort <level>.\n")
    yield* io.lines.pipe(
      Stream.runForEach((line) => handleLine(conversation, io, line.trim())),
      Effect.forkScoped
    )
  })

const handleLine = (conversation: CodexConversation, io: ChatIo, line: string) =>
  Effect.gen(function*() {
    if (line === "") return
    const pending = yield* conversation.pendingPermissions
    const first = pending[0]
    if (first !== undefined && /^(y|yes|n|no)$/i.test(line)) {
      yield* conversation.answerPermission(first, /^y/i.test(line) ? "allow" : "deny")
      return
    }
    if (line === "/interrupt") return yield* conversation.interrupt
    const control = /^\/(model|effort)\s+(\S+)$/.exec(line)
    if (control !== null) {
      const id = control[1] === "model" ? "model" : "reasoning_effort"
      return yield* conversation.setControl(id, control[2])
    }
    yield* conversation.send(line)
  }).pipe(Effect.catch((error) => io.write(`(${error.message})\n`)))

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
