/**
 * LogEvents: what a session does with each optio.log event — progress, browser and attention
 * requests to the TaskContext; deliverables fetched through the Host, handed to the caller's
 * hook and always acknowledged to the agent (also when rejected or unreadable, so the agent never
 * waits for an answer that will not come). Shared by both modes; only `send` differs.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { CodexTaskHooks, HookContext } from "./Hooks.ts"
import { Host } from "../host/Host.ts"
import {
  DELIVERABLE_READ_TIMEOUT,
  deliverableAck,
  DeliverableReply,
  describeRejection,
  MAX_DELIVERABLE_BYTES,
  replyFromCallback,
  resolveDeliverablePath
} from "../protocol/Deliverables.ts"
import type { ReplyWording } from "../protocol/Deliverables.ts"
import type { OptioLogEvent } from "../protocol/OptioLogEvent.ts"
import { systemMessage } from "../protocol/SystemMessages.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"

/**
 * Handles one non-terminal event. `send` delivers a message to the agent's input channel.
 * @category constructors
 */
export const handleLogEvent = <E>(
  event: OptioLogEvent,
  context: {
    readonly paths: TaskPaths
    readonly hooks: CodexTaskHooks
    readonly hookContext: HookContext
    readonly send: (message: string) => Effect.Effect<void, E>
    /** Whose words the deliverable replies use (default: ours). */
    readonly replyWording?: ReplyWording
  }
) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    switch (event._tag) {
      case "Status":
        return yield* task.reportProgress(event.percent, event.message)
      case "Browser":
        return yield* task.requestBrowserOpen(event.url)
      case "Attention":
        return yield* task.needAttention(event.reason)
      case "Unknown":
        return yield* task.reportProgress(null, event.text)
      case "Deliverable": {
        const { display, reply } = yield* fetchDeliverable(event.path, context.paths, context.hooks, context.hookContext)
        return yield* context.send(systemMessage(deliverableAck(display, reply, context.replyWording)))
      }
      case "Done":
      case "Failed":
        return
    }
  })

const fetchDeliverable = (
  rawPath: string,
  paths: TaskPaths,
  hooks: CodexTaskHooks,
  hookContext: HookContext
) =>
  Effect.gen(function*() {
    const task = yield* TaskContext
    const host = yield* Host
    const resolved = resolveDeliverablePath(paths.workdir, rawPath)
    if (resolved._tag === "Rejected") {
      yield* task.reportProgress(null, describeRejection(rawPath, resolved.reason))
      return { display: rawPath, reply: DeliverableReply.PathRejected({ reason: resolved.reason }) }
    }
    const display = resolved.displayPath
    // The lexical check cannot see symlinks: resolve on the host and check again.
    const real = yield* host.realPath(resolved.absolutePath).pipe(Effect.option)
    const deliverablesReal = yield* host.realPath(paths.deliverables).pipe(Effect.option)
    if (Option.isNone(real) || Option.isNone(deliverablesReal)) {
      yield* task.reportProgress(null, `Deliverable ${display}: not found`)
      return { display, reply: DeliverableReply.FetchFailed({ reason: "the file does not exist" }) }
    }
    if (!real.value.startsWith(`${deliverablesReal.value}/`)) {
      yield* task.reportProgress(null, `Deliverable ${display}: resolves outside deliverables/, skipping`)
      return { display, reply: DeliverableReply.PathRejected({ reason: "not-under-deliverables" }) }
    }
    // Opened once at the resolved path (no symlink, regular file, inside deliverables/): a swap
    // after the check above is refused instead of read.
    const bytes = yield* host.readRegularFile(real.value, {
      maxBytes: MAX_DELIVERABLE_BYTES,
      within: deliverablesReal.value,
      timeout: DELIVERABLE_READ_TIMEOUT
    }).pipe(Effect.result)
    if (bytes._tag === "Failure") {
      yield* task.reportProgress(null, `Deliverable ${display}: fetch failed: ${bytes.failure.message}`)
      return { display, reply: DeliverableReply.FetchFailed({ reason: bytes.failure.detail }) }
    }
    const text = decodeUtf8(bytes.success)
    if (text === undefined) {
      yield* task.reportProgress(null, `Deliverable ${display}: not valid UTF-8, skipping`)
      return { display, reply: DeliverableReply.FetchFailed({ reason: "the file is not valid UTF-8 text" }) }
    }
    yield* task.reportProgress(null, `Deliverable: ${display}`)
    if (hooks.onDeliverable === undefined) return { display, reply: DeliverableReply.Accepted() }
    const answer = yield* hooks.onDeliverable(hookContext, display, text, { relativePath: display, absolutePath: real.value }).pipe(Effect.result)
    if (answer._tag === "Failure") {
      yield* task.reportProgress(null, `on_deliverable hook failed: ${String(answer.failure)}`)
      return { display, reply: DeliverableReply.Trouble() }
    }
    return { display, reply: replyFromCallback(Option.getOrUndefined(answer.success)) }
  })

const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}
