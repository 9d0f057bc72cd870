/**
 * ViewerFilter: decides which conversation events the listener keeps for viewers, and follows
 * the approval requests still waiting for an answer (so closing the listener can deny them).
 *
 * Responses to the client's own requests are dropped: the view renders nothing for a success,
 * and an interrupt that raced the end of its turn (`no active turn to interrupt`) is not an
 * error the operator should see ([P13]). Every other error response is kept (a refused turn
 * must show and clear "busy"). An `x-optio-permission-answered` event is kept once per request,
 * whoever emitted it (the listener after `POST /permission`, or the conversation itself).
 *
 * @since 0.1.0
 */
import type { ConversationEvent } from "../appserver/ConversationHandle.ts"

/** The server requests CodexView renders as approval cards. */
const APPROVAL_METHODS: ReadonlySet<string> = new Set([
  "item/commandExecution/requestApproval",
  "item/fileChange/requestApproval"
])

/**
 * What the listener keeps, and which approvals are open.
 * @category models
 */
export interface ViewerFilter {
  /** Whether viewers should see `event`; also updates the approval bookkeeping. */
  readonly admit: (event: ConversationEvent) => boolean
  /** JSON-RPC ids (as strings) of approval requests nobody answered yet. */
  readonly pendingApprovals: () => ReadonlyArray<string>
}

/**
 * A fresh filter; it keeps state, so use one per listener.
 * @category constructors
 */
export const makeViewerFilter = (): ViewerFilter => {
  const pending = new Set<string>()
  const answered = new Set<string>()
  const admit = (event: ConversationEvent): boolean => {
    const method = event["method"]
    const id = event["id"]
    if (event["type"] === "x-optio-permission-answered") {
      const requestId = String(event["request_id"])
      if (answered.has(requestId)) return false
      answered.add(requestId)
      pending.delete(requestId)
      return true
    }
    if (method === "serverRequest/resolved") {
      const params = event["params"]
      if (isRecord(params) && params["requestId"] !== undefined) pending.delete(String(params["requestId"]))
      return true
    }
    if (typeof method === "string") {
      if (id !== undefined && id !== null && APPROVAL_METHODS.has(method)) pending.add(String(id))
      return true
    }
    if (id === undefined || id === null) return true
    if ("result" in event) return false
    const error = event["error"]
    return !(isRecord(error) && typeof error["message"] === "string" && /no active turn/i.test(error["message"]))
  }
  return { admit, pendingApprovals: () => [...pending] }
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
