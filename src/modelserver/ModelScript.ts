/**
 * ModelScript: the script a scripted model server plays to codex.
 *
 * A script is an ordered list of steps; every model request (POST /v1/responses) that is not one
 * of codex's side requests consumes the next step. A step either streams a reply (assistant text,
 * reasoning summaries, function calls) or answers once with an HTTP error. A step may carry a
 * `match` predicate: a request that does not satisfy it gets a fallback answer and leaves the step
 * in place. Owns the step model, its builders and the pure decision of which step answers a
 * request; does not own HTTP or SSE framing (see ResponsesStream and ScriptedModelServer).
 *
 * Import as a namespace: `import { ModelScript } from "./ModelScript.ts"` or
 * `import * as ModelScript from "./ModelScript.ts"`, then `ModelScript.text("hi")`.
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import type { ModelRequest } from "./ModelRequest.ts"

/**
 * An assistant message whose text is streamed as the given deltas (they concatenate to `text`).
 * @category models
 * @since 0.1.0
 */
export interface MessageItem {
  readonly _tag: "Message"
  readonly text: string
  readonly deltas: ReadonlyArray<string>
}

/**
 * A reasoning item carrying summary paragraphs (codex shows them as "thinking").
 * @category models
 * @since 0.1.0
 */
export interface ReasoningItem {
  readonly _tag: "Reasoning"
  readonly summary: ReadonlyArray<string>
}

/**
 * A tool call; `arguments` is already JSON-encoded, `callId` undefined means "generate one".
 * @category models
 * @since 0.1.0
 */
export interface FunctionCallItem {
  readonly _tag: "FunctionCall"
  readonly name: string
  readonly arguments: string
  readonly callId: string | undefined
}

/**
 * One output item of a reply.
 * @category models
 * @since 0.1.0
 */
export type OutputItem = MessageItem | ReasoningItem | FunctionCallItem

/**
 * Decides whether a step applies to a request; `description` names it in diagnostics.
 * @category models
 * @since 0.1.0
 */
export interface Matcher {
  readonly description: string
  readonly test: (request: ModelRequest) => boolean
}

/**
 * A streamed reply.
 * @category models
 * @since 0.1.0
 */
export interface ReplyStep {
  readonly _tag: "Reply"
  readonly items: ReadonlyArray<OutputItem>
  readonly match: Matcher | undefined
  /** Pause between SSE events (to watch streaming happen); none by default. */
  readonly eventDelay: Duration.Input | undefined
  /** Stream the items, then keep the response open without `response.completed` until the client
   * goes away or the server closes (to test interruption mid-turn). */
  readonly holdOpen: boolean
}

/**
 * A one-time HTTP error answer (codex may retry it, which consumes the next step).
 * @category models
 * @since 0.1.0
 */
export interface HttpErrorStep {
  readonly _tag: "HttpError"
  readonly status: number
  readonly body: unknown
  readonly headers: Readonly<Record<string, string>>
  readonly match: Matcher | undefined
}

/**
 * One script step.
 * @category models
 * @since 0.1.0
 */
export type Step = ReplyStep | HttpErrorStep

/**
 * A whole script: steps in the order requests consume them.
 * @category models
 * @since 0.1.0
 */
export type Script = ReadonlyArray<Step>

/**
 * Options shared by reply builders.
 * @category models
 * @since 0.1.0
 */
export interface ReplyOptions {
  readonly match?: Matcher | undefined
  readonly eventDelay?: Duration.Input | undefined
  readonly holdOpen?: boolean | undefined
}

/**
 * Arguments of codex's `exec_command` tool besides `cmd` (see the tool schema codex sends).
 * @category models
 * @since 0.1.0
 */
export interface ExecCommandOptions {
  /** `require_escalated` asks for approval (in conversation mode) to run unsandboxed. */
  readonly sandboxPermissions?: "use_default" | "require_escalated" | undefined
  /** The approval question shown for `require_escalated`. */
  readonly justification?: string | undefined
  readonly workdir?: string | undefined
  /** false skips the login shell (`bash -c` instead of `bash -lc`). */
  readonly login?: boolean | undefined
  readonly yieldTimeMs?: number | undefined
  readonly prefixRule?: ReadonlyArray<string> | undefined
  readonly callId?: string | undefined
}

// ---------------------------------------------------------------------------------------------
// Output item builders

/**
 * An assistant message; its text streams as one delta per word, or as `deltas` when given (their
 * concatenation then is the text).
 * @category constructors
 * @since 0.1.0
 */
export const message = (text: string, options?: { readonly deltas?: ReadonlyArray<string> }): MessageItem => ({
  _tag: "Message",
  text: options?.deltas?.join("") ?? text,
  deltas: options?.deltas ?? splitDeltas(text)
})

/**
 * A reasoning item with one summary paragraph per argument.
 * @category constructors
 * @since 0.1.0
 */
export const reasoning = (...summary: ReadonlyArray<string>): ReasoningItem => ({ _tag: "Reasoning", summary })

/**
 * A call of tool `name`; an object `args` is JSON-encoded, a string is sent as is.
 * @category constructors
 * @since 0.1.0
 */
export const functionCall = (
  name: string,
  args: Readonly<Record<string, unknown>> | string,
  options?: { readonly callId?: string | undefined }
): FunctionCallItem => ({
  _tag: "FunctionCall",
  name,
  arguments: typeof args === "string" ? args : JSON.stringify(args),
  callId: options?.callId
})

/**
 * A call of codex's `exec_command` tool running `cmd` in the task's shell.
 * @category constructors
 * @since 0.1.0
 */
export const execCommandCall = (cmd: string, options?: ExecCommandOptions): FunctionCallItem =>
  functionCall("exec_command", {
    cmd,
    ...(options?.sandboxPermissions !== undefined && { sandbox_permissions: options.sandboxPermissions }),
    ...(options?.justification !== undefined && { justification: options.justification }),
    ...(options?.workdir !== undefined && { workdir: options.workdir }),
    ...(options?.login !== undefined && { login: options.login }),
    ...(options?.yieldTimeMs !== undefined && { yield_time_ms: options.yieldTimeMs }),
    ...(options?.prefixRule !== undefined && { prefix_rule: options.prefixRule })
  }, { callId: options?.callId })

// ---------------------------------------------------------------------------------------------
// Step builders

/**
 * A step streaming the given output items in order.
 * @category constructors
 * @since 0.1.0
 */
export const reply = (items: ReadonlyArray<OutputItem>, options?: ReplyOptions): ReplyStep => ({
  _tag: "Reply",
  items,
  match: options?.match,
  eventDelay: options?.eventDelay,
  holdOpen: options?.holdOpen ?? false
})

/**
 * A step replying with assistant text (the usual last step of a turn).
 * @category constructors
 * @since 0.1.0
 */
export const text = (content: string, options?: ReplyOptions): ReplyStep => reply([message(content)], options)

/**
 * A step replying with reasoning summary paragraphs, then assistant text.
 * @category constructors
 * @since 0.1.0
 */
export const thinkThenText = (summary: string, content: string, options?: ReplyOptions): ReplyStep =>
  reply([reasoning(summary), message(content)], options)

/**
 * A step that calls `exec_command` with `cmd`; codex runs it and sends the output in its next request.
 * @category constructors
 * @since 0.1.0
 */
export const execCommand = (cmd: string, options?: ExecCommandOptions & ReplyOptions): ReplyStep =>
  reply([execCommandCall(cmd, options)], options)

/**
 * A step answering once with HTTP `status` and a JSON body (an OpenAI-style error by default).
 * @category constructors
 * @since 0.1.0
 */
export const httpError = (
  status: number,
  options?: {
    readonly body?: unknown
    readonly headers?: Readonly<Record<string, string>> | undefined
    readonly match?: Matcher | undefined
  }
): HttpErrorStep => ({
  _tag: "HttpError",
  status,
  body: options?.body ?? { error: { message: `scripted HTTP ${status}`, type: "scripted_error", code: null } },
  headers: options?.headers ?? {},
  match: options?.match
})

/**
 * Restricts `step` to requests satisfying `test`.
 * @category combinators
 * @since 0.1.0
 */
export const when = <S extends Step>(
  step: S,
  test: (request: ModelRequest) => boolean,
  description = "custom predicate"
): S => ({ ...step, match: { description, test } })

/**
 * Matches a request carrying the output of tool call `callId` (or of any call when omitted).
 * @category constructors
 * @since 0.1.0
 */
export const hasToolOutput = (callId?: string): Matcher => ({
  description: callId === undefined ? "has a tool output" : `has the output of call ${callId}`,
  test: (request) => request.toolOutputs.some((output) => callId === undefined || output.callId === callId)
})

/**
 * Matches a request whose last user message contains `fragment`.
 * @category constructors
 * @since 0.1.0
 */
export const userSaid = (fragment: string): Matcher => ({
  description: `last user message contains ${JSON.stringify(fragment)}`,
  test: (request) => (request.userTexts.at(-1) ?? "").includes(fragment)
})

// ---------------------------------------------------------------------------------------------
// Playing the script

/**
 * Which step answers a request: the step at `cursor`, unless the script is exhausted or the step's
 * matcher rejects the request (then the step stays for the next request).
 * @category models
 * @since 0.1.0
 */
export type Decision =
  | { readonly _tag: "Step"; readonly index: number; readonly step: Step }
  | { readonly _tag: "Unmatched"; readonly index: number; readonly matcher: string }
  | { readonly _tag: "Exhausted" }

/**
 * Decides which step answers `request` given the index of the next unconsumed step.
 * @category constructors
 * @since 0.1.0
 */
export const decide = (script: Script, cursor: number, request: ModelRequest): Decision => {
  const step = script[cursor]
  if (step === undefined) return { _tag: "Exhausted" }
  if (step.match !== undefined && !step.match.test(request)) {
    return { _tag: "Unmatched", index: cursor, matcher: step.match.description }
  }
  return { _tag: "Step", index: cursor, step }
}

/**
 * Splits text into word-sized deltas (each word keeps its trailing whitespace) that concatenate back.
 * @category constructors
 * @since 0.1.0
 */
export const splitDeltas = (content: string): ReadonlyArray<string> => {
  const words = content.match(/\s*\S+\s*/g)
  if (words === null) return [content]
  return words
}

export * as ModelScript from "./ModelScript.ts"
