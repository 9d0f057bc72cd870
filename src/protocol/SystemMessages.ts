/**
 * SystemMessages: the fixed texts the harness types into the agent's input channel.
 *
 * Owns the `System: ` prefix that marks harness messages, the resume notice and the
 * auto-start prompt. It does not own delivering them (the session's agent sender does).
 *
 * @since 0.1.0
 */

/**
 * Prefix (with its trailing space) of every message the harness sends to the agent.
 *
 * @category constants
 * @since 0.1.0
 */
export const SYSTEM_PREFIX = "System: "

/**
 * Text sent (prefixed) when a session is resumed from a snapshot.
 *
 * @category constants
 * @since 0.1.0
 */
export const RESUME_NOTICE = "you have been resumed"

/**
 * First prompt given to codex when `auto_start` is on and the session is not a resume.
 *
 * @category constants
 * @since 0.1.0
 */
export const AUTO_START_PROMPT = "Read AGENTS.md and execute the task it describes"

/**
 * Marks `text` as coming from the harness by prefixing {@link SYSTEM_PREFIX}.
 *
 * @category constructors
 * @since 0.1.0
 */
export const systemMessage = (text: string): string => `${SYSTEM_PREFIX}${text}`
