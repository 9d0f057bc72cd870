/**
 * Deliverables: where a `DELIVERABLE:` path may point, and what the harness answers.
 *
 * Owns the lexical check of a deliverable path against the workdir (pure POSIX path
 * arithmetic, the same for local and remote hosts) and the acknowledgement texts sent back to
 * the agent. It does not own fetching the file, the symlink re-check on the host, the
 * `on_deliverable` callback or sending the acknowledgement (the session does).
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import { posix } from "node:path"

/**
 * Why a deliverable path was refused.
 *
 * @category models
 * @since 0.1.0
 */
export type DeliverableRejection = "outside-workdir" | "not-under-deliverables" | "empty"

/**
 * Outcome of {@link resolveDeliverablePath}.
 *
 * `absolutePath` is the normalized host path; `displayPath` is relative to
 * `<workdir>/deliverables` and is what progress lines and acknowledgements show.
 *
 * @category models
 * @since 0.1.0
 */
export type DeliverableResolution = Data.TaggedEnum<{
  Accepted: { readonly absolutePath: string; readonly displayPath: string }
  Rejected: { readonly reason: DeliverableRejection }
}>

/**
 * Constructors, guards and matcher for {@link DeliverableResolution}.
 *
 * @category constructors
 * @since 0.1.0
 */
export const DeliverableResolution = Data.taggedEnum<DeliverableResolution>()

/**
 * Largest deliverable the harness reads (it is handed to `on_deliverable` as text). The read is
 * guarded like every read of an agent-written file: opened once, no final symlink, regular file
 * only, inside `deliverables/`'s real path, at most this many bytes.
 *
 * @category constants
 * @since 0.1.0
 */
export const MAX_DELIVERABLE_BYTES = 16 * 1024 * 1024

/**
 * How long reading one deliverable may take on the host.
 *
 * @category constants
 * @since 0.1.0
 */
export const DELIVERABLE_READ_TIMEOUT = "30 seconds"

/**
 * Name of the directory, inside the workdir, that deliverables must live under.
 *
 * @category constants
 * @since 0.1.0
 */
export const DELIVERABLES_DIR = "deliverables"

/**
 * Checks a `DELIVERABLE:` path lexically and says where it points.
 *
 * **Details**
 *
 * Relative paths resolve against `workdir`, absolute ones stand as written; `.` and `..` are
 * normalized. The result must lie strictly under `<workdir>/deliverables` (the directory
 * itself is refused). `workdir` should be absolute; a relative one is taken from `/`, so the
 * engine's own cwd never leaks in.
 *
 * **Gotchas**
 *
 * This is path arithmetic only: a symlink inside `deliverables/` pointing elsewhere passes
 * here. The session must re-check the real path on the host before reading the file.
 *
 * @category validation
 * @since 0.1.0
 */
export const resolveDeliverablePath = (workdir: string, rawPath: string): DeliverableResolution => {
  const raw = rawPath.trim()
  if (raw === "") return DeliverableResolution.Rejected({ reason: "empty" })
  const root = posix.resolve("/", workdir)
  const absolutePath = posix.resolve(root, raw)
  if (!isInside(root, absolutePath) && absolutePath !== root) {
    return DeliverableResolution.Rejected({ reason: "outside-workdir" })
  }
  const deliverables = posix.join(root, DELIVERABLES_DIR)
  if (!isInside(deliverables, absolutePath)) {
    return DeliverableResolution.Rejected({ reason: "not-under-deliverables" })
  }
  return DeliverableResolution.Accepted({ absolutePath, displayPath: posix.relative(deliverables, absolutePath) })
}

/**
 * One-line progress text explaining why `rawPath` was skipped.
 *
 * @category constructors
 * @since 0.1.0
 */
export const describeRejection = (rawPath: string, reason: DeliverableRejection): string => {
  const shown = JSON.stringify(rawPath)
  switch (reason) {
    case "empty":
      return "Deliverable line without a path, skipping"
    case "outside-workdir":
      return `Deliverable ${shown} points outside the working directory, skipping`
    case "not-under-deliverables":
      return `Deliverable ${shown} is not under ${DELIVERABLES_DIR}/, skipping`
  }
}

/**
 * What the harness answers about one deliverable.
 *
 * - `Accepted`: nothing more to do.
 * - `Feedback`: the consumer wants changes; `text` says which.
 * - `Trouble`: the consumer failed on its side; the agent should re-deliver after a resume.
 * - `FetchFailed`: the file could not be read; `reason` says why. Sent so the agent never
 *   waits for an acknowledgement that would otherwise never come.
 * - `PathRejected`: the path was refused by {@link resolveDeliverablePath}.
 *
 * @category models
 * @since 0.1.0
 */
export type DeliverableReply = Data.TaggedEnum<{
  Accepted: {}
  Feedback: { readonly text: string }
  Trouble: {}
  FetchFailed: { readonly reason: string }
  PathRejected: { readonly reason: DeliverableRejection }
}>

/**
 * Constructors, guards and matcher for {@link DeliverableReply}.
 *
 * @category constructors
 * @since 0.1.0
 */
export const DeliverableReply = Data.taggedEnum<DeliverableReply>()

/**
 * The reply text for an accepted deliverable; AGENTS.md quotes it so the agent recognizes it.
 *
 * @category constants
 * @since 0.1.0
 */
export const ACCEPTED_REPLY = "accepted. thank you, well done."

/**
 * Maps what an `on_deliverable` callback returned to a reply: nothing, blank or `ok` (any
 * case) accepts; any other text is feedback, trimmed.
 *
 * @category constructors
 * @since 0.1.0
 */
export const replyFromCallback = (result: string | null | undefined): DeliverableReply => {
  const text = result?.trim() ?? ""
  if (text === "" || text.toLowerCase() === "ok") return DeliverableReply.Accepted()
  return DeliverableReply.Feedback({ text })
}

/**
 * The reply text alone, without the `deliverable <name>: ` lead.
 *
 * @category constructors
 * @since 0.1.0
 */
export const replyText = (reply: DeliverableReply, wording: ReplyWording = "default"): string =>
  DeliverableReply.$match(reply, {
    Accepted: () => wording === "python-0.1" ? PYTHON_ACCEPTED_REPLY : ACCEPTED_REPLY,
    Feedback: ({ text }) => text.trim(),
    Trouble: () =>
      wording === "python-0.1"
        ? PYTHON_TROUBLE_REPLY
        : "I ran into a problem on my side with this one. It is not your fault, and a human will " +
          "probably have to step in. Please deliver it again after your next resume.",
    FetchFailed: ({ reason }) =>
      `I could not read this file (${oneLine(reason)}). Check it, then write its DELIVERABLE: line again.`,
    PathRejected: ({ reason }) => REJECTION_REPLY[reason]
  })

/**
 * Whose words the replies use: ours, or the Python reference's (`compat: "python-0.1"`, for
 * agents and prompts tuned to them).
 * @category models
 * @since 0.1.0
 */
export type ReplyWording = "default" | "python-0.1"

// The reference's exact texts (spec core-session §9.2), used only under compat.
const PYTHON_ACCEPTED_REPLY = "accepted. thanks for the good work."
const PYTHON_TROUBLE_REPLY = "I have trouble with this one. Not your fault, but mine. I will probably need human help. " +
  "Please remember to deliver this one again later, after you are resumed next time."

const REJECTION_REPLY: Record<DeliverableRejection, string> = {
  "outside-workdir": "refused: the path is outside the working directory. Put the file under ./deliverables/ and write its DELIVERABLE: line again.",
  "not-under-deliverables": "refused: the file is not under ./deliverables/. Move it there and write its DELIVERABLE: line again.",
  "empty": "refused: the DELIVERABLE: line had no path. Write it again with the file's path."
}

/**
 * Acknowledgement body `deliverable <basename>: <reply>` for the deliverable shown as
 * `displayPath`.
 *
 * **Gotchas**
 *
 * The body carries no `System: ` prefix: the agent sender adds it (see `systemMessage`), so
 * the agent receives `System: deliverable <basename>: <reply>`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const deliverableAck = (displayPath: string, reply: DeliverableReply, wording: ReplyWording = "default"): string =>
  `deliverable ${posix.basename(displayPath)}: ${replyText(reply, wording)}`

// The path lies strictly below `parent` (never `parent` itself).
const isInside = (parent: string, child: string): boolean => {
  const rel = posix.relative(parent, child)
  return rel !== "" && rel !== ".." && !rel.startsWith("../")
}

// Error descriptions can span lines; a newline typed into the agent's input would submit early.
const oneLine = (text: string): string => text.replace(/\s*[\r\n]+\s*/g, " ").trim()
