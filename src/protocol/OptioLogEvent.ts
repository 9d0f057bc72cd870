/**
 * OptioLogEvent: the typed vocabulary of the `optio.log` keyword channel.
 *
 * Owns the event union an agent can produce by appending keyword lines to `optio.log`
 * (STATUS, DELIVERABLE, DONE, ERROR, BROWSER, ATTENTION, or anything else). It does not
 * own parsing (see `OptioLogParser.ts`) nor what the session does with each event.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * One parsed `optio.log` line.
 *
 * - `Status`: progress; `percent` is 0–100 or null when the line carried none.
 * - `Deliverable`: the raw path as written by the agent (validated later, see `Deliverables.ts`).
 * - `Done`: the task finished; `summary` is null when the line had none.
 * - `Failed`: the agent wrote `ERROR`; `message` is null when the line had none. Named `Failed`
 *   so it does not shadow the global `Error`.
 * - `Browser`: the agent (or a browser shim) asks the operator's browser to open `url`.
 * - `Attention`: the agent asks for a human to look at something.
 * - `Unknown`: every other non-blank line, kept verbatim (minus trailing whitespace).
 *
 * @category models
 * @since 0.1.0
 */
export type OptioLogEvent = Data.TaggedEnum<{
  Status: { readonly percent: number | null; readonly message: string }
  Deliverable: { readonly path: string }
  Done: { readonly summary: string | null }
  Failed: { readonly message: string | null }
  Browser: { readonly url: string }
  Attention: { readonly reason: string }
  Unknown: { readonly text: string }
}>

/**
 * Constructors (`OptioLogEvent.Status({...})`), `$is` guards and `$match` for {@link OptioLogEvent}.
 *
 * @category constructors
 * @since 0.1.0
 */
export const OptioLogEvent = Data.taggedEnum<OptioLogEvent>()

/**
 * True for the events that end the session (`Done` and `Failed`): nothing after them is read.
 *
 * @category guards
 * @since 0.1.0
 */
export const isTerminal = (event: OptioLogEvent): boolean =>
  event._tag === "Done" || event._tag === "Failed"
