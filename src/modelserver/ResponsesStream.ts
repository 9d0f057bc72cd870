/**
 * ResponsesStream: turns scripted output items into the Responses API streaming events codex
 * 0.169.0 consumes, and frames them as Server-Sent Events.
 *
 * The sequence mirrors OpenAI's: `response.created`, then per item `response.output_item.added`,
 * the item's part/delta/done events, `response.output_item.done`, and finally
 * `response.completed` carrying `usage` (codex fails the turn without it). Owns the event shapes
 * and ids; does not own HTTP.
 *
 * @since 0.1.0
 */
import { Sse } from "effect/encoding"
import type { OutputItem } from "./ModelScript.ts"
import { splitDeltas } from "./ModelScript.ts"

/**
 * One streaming event; `type` is the SSE event name too.
 * @category models
 */
export interface ResponsesEvent {
  readonly type: string
  readonly [key: string]: unknown
}

/**
 * Names for one response: its id, its items' ids and generated call ids.
 * @category models
 */
export interface ResponseIds {
  readonly responseId: string
  readonly itemId: (prefix: "msg" | "rs" | "fc", index: number) => string
  readonly callId: (index: number) => string
}

/**
 * The events of one streamed reply, and the call ids its function calls carry.
 * @category models
 */
export interface RenderedReply {
  /** Every event up to and including the last `response.output_item.done`. */
  readonly itemEvents: ReadonlyArray<ResponsesEvent>
  /** The closing `response.completed` event. */
  readonly completed: ResponsesEvent
  readonly callIds: ReadonlyArray<string>
}

/**
 * Renders output items as a complete Responses API event sequence.
 * @category constructors
 */
export const renderReply = (items: ReadonlyArray<OutputItem>, ids: ResponseIds, model: string): RenderedReply => {
  const events: Array<ResponsesEvent> = []
  const output: Array<unknown> = []
  const callIds: Array<string> = []
  const response = { id: ids.responseId, object: "response", created_at: 0, model }
  events.push({ type: "response.created", response: { ...response, status: "in_progress", output: [] } })
  items.forEach((item, outputIndex) => {
    const rendered = renderItem(item, outputIndex, ids)
    events.push(...rendered.events)
    output.push(rendered.item)
    if (rendered.callId !== undefined) callIds.push(rendered.callId)
  })
  const outputTokens = items.reduce((sum, item) => sum + tokenEstimate(item), 0)
  const completed: ResponsesEvent = {
    type: "response.completed",
    response: {
      ...response,
      status: "completed",
      output,
      usage: {
        input_tokens: 100,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: outputTokens,
        output_tokens_details: {
          reasoning_tokens: items.reduce((sum, item) => sum + (item._tag === "Reasoning" ? tokenEstimate(item) : 0), 0)
        },
        total_tokens: 100 + outputTokens
      }
    }
  }
  const numbered = [...events, completed].map((event, n): ResponsesEvent => ({ ...event, sequence_number: n }))
  return { itemEvents: numbered.slice(0, -1), completed: numbered[numbered.length - 1] ?? completed, callIds }
}

/**
 * Frames one event as an SSE message (`event: <type>` + one `data:` line of JSON).
 * @category encoding
 */
export const encodeEvent = (event: ResponsesEvent): string =>
  Sse.encoder.write({ _tag: "Event", event: event.type, id: undefined, data: JSON.stringify(event) })

interface RenderedItem {
  readonly events: ReadonlyArray<ResponsesEvent>
  readonly item: unknown
  readonly callId: string | undefined
}

const renderItem = (item: OutputItem, outputIndex: number, ids: ResponseIds): RenderedItem => {
  switch (item._tag) {
    case "Message": {
      const id = ids.itemId("msg", outputIndex)
      const part = { type: "output_text", text: item.text, annotations: [] }
      const done = { type: "message", id, role: "assistant", status: "completed", content: [part] }
      const at = { item_id: id, output_index: outputIndex, content_index: 0 }
      return {
        events: [
          { type: "response.output_item.added", output_index: outputIndex, item: { ...done, status: "in_progress", content: [] } },
          { type: "response.content_part.added", ...at, part: { ...part, text: "" } },
          ...item.deltas.map((delta) => ({ type: "response.output_text.delta", ...at, delta })),
          { type: "response.output_text.done", ...at, text: item.text },
          { type: "response.content_part.done", ...at, part },
          { type: "response.output_item.done", output_index: outputIndex, item: done }
        ],
        item: done,
        callId: undefined
      }
    }
    case "Reasoning": {
      const id = ids.itemId("rs", outputIndex)
      const done = { type: "reasoning", id, summary: item.summary.map((text) => ({ type: "summary_text", text })) }
      return {
        events: [
          { type: "response.output_item.added", output_index: outputIndex, item: { ...done, summary: [] } },
          ...item.summary.flatMap((text, summaryIndex) => {
            const at = { item_id: id, output_index: outputIndex, summary_index: summaryIndex }
            return [
              { type: "response.reasoning_summary_part.added", ...at, part: { type: "summary_text", text: "" } },
              ...splitDeltas(text).map((delta) => ({ type: "response.reasoning_summary_text.delta", ...at, delta })),
              { type: "response.reasoning_summary_text.done", ...at, text },
              { type: "response.reasoning_summary_part.done", ...at, part: { type: "summary_text", text } }
            ]
          }),
          { type: "response.output_item.done", output_index: outputIndex, item: done }
        ],
        item: done,
        callId: undefined
      }
    }
    case "FunctionCall": {
      const id = ids.itemId("fc", outputIndex)
      const callId = item.callId ?? ids.callId(outputIndex)
      const done = { type: "function_call", id, call_id: callId, name: item.name, arguments: item.arguments, status: "completed" }
      const at = { item_id: id, output_index: outputIndex }
      return {
        events: [
          { type: "response.output_item.added", output_index: outputIndex, item: { ...done, arguments: "", status: "in_progress" } },
          { type: "response.function_call_arguments.delta", ...at, delta: item.arguments },
          { type: "response.function_call_arguments.done", ...at, arguments: item.arguments },
          { type: "response.output_item.done", output_index: outputIndex, item: done }
        ],
        item: done,
        callId
      }
    }
  }
}

/** A rough count (4 characters a token) so codex's token display moves; never large enough to
 * trigger auto-compaction. */
const tokenEstimate = (item: OutputItem): number => {
  const length = item._tag === "Message" ? item.text.length
    : item._tag === "Reasoning" ? item.summary.join("").length
    : item.arguments.length
  return Math.max(1, Math.ceil(length / 4))
}
