/**
 * AgentsMd: composes the `AGENTS.md` file that teaches codex the harness conventions.
 *
 * Owns the text and the assembly order: the coordination intro and keyword-channel docs, the
 * resume section (rendered from the snapshot exclude list), the `System:` explainer, the task
 * framing, the operator's instructions and the downloadable-files block. It does not own
 * writing the file into the workdir, nor the snapshot machinery the resume section describes.
 *
 * @since 0.1.0
 */
import { ACCEPTED_REPLY } from "./Deliverables.ts"

/**
 * Options for {@link composeAgentsMd}.
 *
 * @category models
 * @since 0.1.0
 */
export interface AgentsMdOptions {
  /** The operator's task text, included verbatim (right-trimmed). */
  readonly instructions: string
  /** Teach the `optio.log` keyword channel; without it the file explains `System:` instead. */
  readonly hostProtocol: boolean
  /** Include the resume section (the task can be snapshotted and resumed). */
  readonly supportsResume: boolean
  /** Snapshot exclude patterns; null means {@link DEFAULT_WORKDIR_EXCLUDE}. */
  readonly workdirExclude: ReadonlyArray<string> | null
  /** Append the downloadable-files block (conversation UI with file download). */
  readonly fileDownload: boolean
  /** Protocol docs supplied by the caller; defaults to {@link protocolDocumentation}. */
  readonly documentation?: string | undefined
}

/**
 * Snapshot exclude patterns used when the task config gives none, in their canonical order.
 *
 * @category constants
 * @since 0.1.0
 */
export const DEFAULT_WORKDIR_EXCLUDE: ReadonlyArray<string> = [
  ".git",
  "node_modules",
  "__pycache__",
  ".venv",
  "*.pyc",
  ".DS_Store",
  "home/.codex/packages",
  "*.sqlite*",
  "home/.codex/cache",
  "home/.codex/tmp",
  "home/.codex/.tmp",
  "home/.codex/shell_snapshots",
  "home/.codex/models_cache.json",
  "home/.codex/version.json",
  "home/.codex/installation_id",
  "home/.codex/log",
  "home/.cache"
]

/**
 * The exclude list actually in force: the configured one, or the default when none is set.
 * An empty list stays empty (nothing excluded).
 *
 * @category constructors
 * @since 0.1.0
 */
export const effectiveWorkdirExclude = (list: ReadonlyArray<string> | null): ReadonlyArray<string> =>
  list === null ? DEFAULT_WORKDIR_EXCLUDE : [...list]

/**
 * Builds the complete `AGENTS.md` text; it always ends with exactly one newline.
 *
 * **Details**
 *
 * Order: intro + protocol docs (when `hostProtocol`), the resume section (when
 * `supportsResume`) followed directly by the `System:` explainer (when `!hostProtocol`), the
 * `## Task` framing ending in `So:`, then the instructions, with the downloadable-files block
 * after them when `fileDownload`. Blocks are separated by one blank line.
 *
 * @category constructors
 * @since 0.1.0
 */
export const composeAgentsMd = (options: AgentsMdOptions): string => {
  const instructions = options.fileDownload
    ? options.instructions.trimEnd() + downloadablesBlock(options.hostProtocol)
    : options.instructions
  const documentation = options.hostProtocol ? (options.documentation ?? protocolDocumentation()) : null
  const resume = options.supportsResume ? resumeSection(effectiveWorkdirExclude(options.workdirExclude)) : null
  const preamble = options.hostProtocol ? resume : (resume ?? "") + systemExplainer()

  const blocks: Array<string> = []
  if (documentation !== null) blocks.push(INTRO + documentation + "\n")
  if (preamble !== null) blocks.push(preamble + "\n")
  blocks.push(TASK_FRAMING + "\n" + instructions.trimEnd() + "\n")
  return blocks.join("")
}

const INTRO = `# Coordination protocol with the host (optio)

You are working inside optio, a harness that coordinates your session with a host machine and a
human operator. Keep to the conventions below from the first step of this session to the last.

`

/**
 * The keyword-channel documentation (redirect browser variant): `## Log channel`,
 * `## Deliverables` and `## Messages from the harness`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const protocolDocumentation = (): string => `## Log channel

Talk to the host by appending lines to \`./optio.log\` in your working directory, one entry per
line. Every entry starts with one of these keywords:

- \`STATUS:\` a progress update, optionally opening with a percentage. Example: \`STATUS: 50% counting my fingers\`
- \`DELIVERABLE:\` a finished file for the host, given as an absolute or working-directory-relative path. Example: \`DELIVERABLE: ./deliverables/summary.md\`
- \`DONE\` the task is complete; a summary may follow after a colon. Example: \`DONE: wrote the report\`
- \`ERROR\` the task cannot be completed; a message may follow after a colon. Example: \`ERROR: provider auth failed\`
- \`BROWSER:\` ask the operator's browser to open a URL, for instance to finish a login flow. Example: \`BROWSER: https://example.com/login\`
- \`ATTENTION:\` ask for a human to look at something. Example: \`ATTENTION: waiting for your approval\`

**Every entry must end with a newline (\`\\n\`).** The host reads \`./optio.log\` line by line, so
an entry without its newline, such as one written by \`printf 'DONE'\`, is never seen. Append with
\`echo 'STATUS: 10% reading the sources' >> ./optio.log\`, and check with \`tail -c 1 ./optio.log\`,
which must print only an empty line.

After \`DONE\` or \`ERROR\` the session is over: write nothing more to the log.

## Deliverables

Put every file meant for the host under \`./deliverables/\`. Write its \`DELIVERABLE:\` line only
once the file is complete and final: the host may pick it up the moment the line appears.

## Messages from the harness

The harness talks to you on your normal user input channel, and its messages begin with
\`System:\`. After writing a \`DELIVERABLE:\` line, end your turn and wait for the acknowledgement
\`System: deliverable <name>: ...\`. Do not write \`DONE\` until every deliverable has been
accepted. An acknowledgement is one of:

- accepted, for example \`${ACCEPTED_REPLY}\`: nothing more to do for that file;
- specific feedback: revise the file as asked, then write its \`DELIVERABLE:\` line again;
- the file could not be read or its path was refused (the reply says why): fix that, then write
  its \`DELIVERABLE:\` line again;
- trouble on the harness side: not your fault; carry on, and deliver the file again after you are
  next resumed.
`

/**
 * The `## Resumes` section for the given (effective) exclude list.
 *
 * @category constructors
 * @since 0.1.0
 */
export const resumeSection = (excludes: ReadonlyArray<string>): string => {
  const excludeBullet = excludes.length === 0
    ? "- **No paths are excluded**: every file in the working directory is preserved."
    : "- **Paths matching the snapshot exclude list are NOT preserved**, even inside the working\n" +
      `  directory. The current exclude list is: ${excludes.map((p) => `\`${p}\``).join(", ")}.`
  const scratch = excludes.length === 0
    ? "Keep large scratch data outside the working directory only (for example under `/tmp/`), and\n" +
      "expect it to be gone after a resume."
    : "Keep large scratch data outside the working directory (for example under `/tmp/`) or in an\n" +
      "excluded subdirectory, and expect it to be gone after a resume."
  return `## Resumes

The harness may pause this session at any moment, save it, stop every process and bring it back
later. Your conversation context carries over unchanged, but a resume can come at any point, and
the world outside may have changed in the meantime.

Your working directory is preserved across a resume, within these limits:

${excludeBullet}
- **Anything outside the working directory is NOT preserved.**
- Your codex conversation itself (its rollouts) IS preserved, kept by the harness outside the
  working directory${excludes.length === 0 ? "" : "; excluded paths are not"}.

${scratch}

### Detecting a resume: \`resume.log\`

Each time the session starts, the harness appends one line to \`./resume.log\`:

\`\`\`
<ISO 8601 UTC timestamp>[ REFRESHED:<comma-separated filenames>]
\`\`\`

The first line records the original launch; every later line is a resume. \`REFRESHED:\` names
the files the harness rewrote for that start, for example
\`2026-05-28T13:15:42Z REFRESHED:AGENTS.md\`; those must be read again.

At the start of every new user message, read \`./resume.log\` and compare its last line with the
last one you saw. If there is a new line:

1. check, and re-create where needed, any state outside the working directory you relied on;
2. re-read every file listed after \`REFRESHED:\` (for example \`cat ./AGENTS.md\`);
3. carry on with the task.

A tool call that fails for no clear reason can also be the first sign of a resume: check
\`./resume.log\` then too.

A resume may also be announced by a \`System:\` message on your input channel; handle it the same
way.
`
}

/**
 * Parenthetical explaining `System:` messages, used when the keyword channel is off.
 *
 * @category constructors
 * @since 0.1.0
 */
export const systemExplainer = (): string =>
  "(Messages on your input channel that begin with `System:` come from the harness that\n" +
  "coordinates this session, not from the human user.)\n"

const TASK_FRAMING = `## Task

Narrate your work as you go, both in your normal replies and through \`STATUS:\` messages, so
the people following along always know where things stand. A human is working towards the same
goal with you: ask when something is unclear, and take their answers into account.

So:
`

/**
 * The `## Downloadable files` block, appended after the instructions. `comparative` (used with
 * the keyword channel) contrasts downloadable files with deliverables.
 *
 * @category constructors
 * @since 0.1.0
 */
export const downloadablesBlock = (comparative: boolean): string => {
  const body = comparative
    ? `Downloadable files are not deliverables. A deliverable is announced with the \`DELIVERABLE:\`
keyword and goes to the harness for automatic processing. A downloadable file goes straight to the
human, so produce one only when the user explicitly asks for a file. To offer it, write it inside
the working directory and link it as ${SENTINEL_LINK}`
    : `When the user asks for a file, write it inside the working directory and present it as the link
${SENTINEL_LINK}`
  return `\n\n## Downloadable files\n\n${body}\n`
}

const SENTINEL_LINK = `\`[name](optio-file:relpath)\`, where \`relpath\` is the file's path relative to the
working directory, for example \`[report.csv](optio-file:out/report.csv)\`.`
