import { assert, describe, expect, it } from "@effect/vitest"
import {
  type AgentsMdOptions,
  composeAgentsMd,
  DEFAULT_WORKDIR_EXCLUDE,
  downloadablesBlock,
  effectiveWorkdirExclude,
  protocolDocumentation,
  resumeSection,
  systemExplainer
} from "../../src/protocol/AgentsMd.ts"
import { ACCEPTED_REPLY } from "../../src/protocol/Deliverables.ts"
import { parseOptioLogLine } from "../../src/protocol/OptioLogParser.ts"

const INSTRUCTIONS = "Summarize `README.md` into ./deliverables/summary.md.\n\n  - keep it *short*"
const INTRO_HEADING = "# Coordination protocol with the host (optio)"

const defaults: AgentsMdOptions = {
  instructions: INSTRUCTIONS,
  hostProtocol: true,
  supportsResume: true,
  workdirExclude: null,
  fileDownload: false
}

const headings = (md: string): Array<string> =>
  md.split("\n").filter((line) => /^#{1,3} /.test(line))

const DEFAULT_EXCLUDE_SENTENCE = "The current exclude list is: `.git`, `node_modules`, `__pycache__`, `.venv`, " +
  "`*.pyc`, `.DS_Store`, `home/.codex/packages`, `*.sqlite*`, `home/.codex/cache`, `home/.codex/tmp`, " +
  "`home/.codex/.tmp`, `home/.codex/shell_snapshots`, `home/.codex/models_cache.json`, " +
  "`home/.codex/version.json`, `home/.codex/installation_id`, `home/.codex/log`, `home/.cache`."

describe("composeAgentsMd structure", () => {
  it("orders the headings as intro, docs, resumes, task, downloads", () => {
    const md = composeAgentsMd({ ...defaults, fileDownload: true })
    assert.deepStrictEqual(headings(md), [
      INTRO_HEADING,
      "## Log channel",
      "## Deliverables",
      "## Messages from the harness",
      "## Resumes",
      "### Detecting a resume: `resume.log`",
      "## Task",
      "## Downloadable files"
    ])
  })

  const excludeVariants = [
    { name: "default", list: null },
    { name: "custom", list: ["bigdata", "cache/*.bin"] },
    { name: "empty", list: [] }
  ] as const
  const combos = [true, false].flatMap((hostProtocol) =>
    [true, false].flatMap((supportsResume) =>
      [true, false].flatMap((fileDownload) =>
        excludeVariants.map((excludes) => ({ hostProtocol, supportsResume, fileDownload, excludes })))))

  it.each(combos)(
    "host=$hostProtocol resume=$supportsResume download=$fileDownload excludes=$excludes.name",
    ({ excludes, fileDownload, hostProtocol, supportsResume }) => {
      const md = composeAgentsMd({
        instructions: INSTRUCTIONS,
        hostProtocol,
        supportsResume,
        fileDownload,
        workdirExclude: excludes.list
      })
      const has = (text: string) => md.includes(text)

      assert.strictEqual(has(INTRO_HEADING), hostProtocol)
      assert.strictEqual(has("## Log channel"), hostProtocol)
      assert.strictEqual(has("## Deliverables\n"), hostProtocol)
      assert.strictEqual(has("## Messages from the harness"), hostProtocol)
      assert.strictEqual(has("BROWSER:"), hostProtocol)
      assert.strictEqual(has(systemExplainer()), !hostProtocol)
      assert.strictEqual(has("## Resumes"), supportsResume)
      assert.strictEqual(has("resume.log"), supportsResume)
      assert.strictEqual(has("## Downloadable files"), fileDownload)
      assert.strictEqual(has("optio-file:"), fileDownload)
      assert.strictEqual(md.endsWith(downloadablesBlock(hostProtocol).trimEnd() + "\n"), fileDownload)
      assert.isFalse(has("CLIENT_MESSAGE"))
      assert.isFalse(has("CALLER_MESSAGE"))

      // the task framing and the verbatim instructions are always there, once
      assert.strictEqual(md.split("## Task\n").length, 2)
      assert.include(md, `So:\n\n${INSTRUCTIONS}\n`)
      assert.isTrue(md.endsWith("\n") && !md.endsWith("\n\n"))

      if (supportsResume) {
        assert.strictEqual(has(DEFAULT_EXCLUDE_SENTENCE), excludes.name === "default")
        assert.strictEqual(has("`bigdata`, `cache/*.bin`."), excludes.name === "custom")
        assert.strictEqual(has("No paths are excluded"), excludes.name === "empty")
        assert.strictEqual(has("`home/.codex/packages`"), excludes.name === "default")
        assert.include(md, "Your codex conversation itself (its rollouts) IS preserved")
      }
      if (!hostProtocol && supportsResume) {
        // the explainer hangs directly under the resume section, no blank line between
        assert.include(md, `handle it the same\nway.\n${systemExplainer()}\n## Task`)
      }
      if (!hostProtocol) assert.isTrue(md.startsWith(supportsResume ? "## Resumes\n" : systemExplainer()))

      const order = ["## Log channel", "## Resumes", systemExplainer(), "## Task", "So:", INSTRUCTIONS, "## Downloadable files"]
        .map((marker) => md.indexOf(marker))
        .filter((index) => index >= 0)
      assert.deepStrictEqual(order, [...order].sort((a, b) => a - b))
    }
  )

  it("right-trims the instructions but keeps their leading whitespace", () => {
    const md = composeAgentsMd({ ...defaults, instructions: "\n  indented task  \n\n\t" })
    assert.isTrue(md.endsWith("So:\n\n\n  indented task\n"))
  })

  it("puts the downloadables block after the instructions, separated by one blank line", () => {
    const md = composeAgentsMd({ ...defaults, instructions: "Do the thing.\n\n\n", fileDownload: true })
    assert.include(md, "Do the thing.\n\n## Downloadable files\n\n")
  })

  it("produces byte-identical output with explicitly passed protocol docs", () => {
    const implicit = composeAgentsMd(defaults)
    const explicit = composeAgentsMd({ ...defaults, documentation: protocolDocumentation() })
    assert.strictEqual(explicit, implicit)
    assert.include(implicit, protocolDocumentation())
  })

  it("ignores passed documentation when the keyword channel is off", () => {
    const md = composeAgentsMd({ ...defaults, hostProtocol: false, documentation: "## Log channel\n" })
    assert.notInclude(md, "## Log channel")
  })
})

describe("protocol documentation", () => {
  const docs = protocolDocumentation()

  it("has the three sections in order and no disabled keywords", () => {
    assert.deepStrictEqual(headings(docs), ["## Log channel", "## Deliverables", "## Messages from the harness"])
    assert.notInclude(docs, "CLIENT_MESSAGE")
    assert.notInclude(docs, "CALLER_MESSAGE")
  })

  it("gives one bullet per keyword, each example parsing to that keyword", () => {
    const expected: ReadonlyArray<readonly [string, string]> = [
      ["STATUS:", "Status"],
      ["DELIVERABLE:", "Deliverable"],
      ["DONE", "Done"],
      ["ERROR", "Failed"],
      ["BROWSER:", "Browser"],
      ["ATTENTION:", "Attention"]
    ]
    const bullets = docs.split("\n").filter((line) => line.startsWith("- `"))
    for (const [keyword, tag] of expected) {
      const bullet = bullets.find((line) => line.startsWith(`- \`${keyword}\``))
      assert.isDefined(bullet, keyword)
      const example = /Example: `([^`]+)`$/.exec(bullet ?? "")?.[1] ?? ""
      assert.strictEqual(parseOptioLogLine(example)?._tag, tag, example)
    }
  })

  it("states the newline rule and the end of the session", () => {
    assert.include(docs, "**Every entry must end with a newline")
    assert.include(docs, "tail -c 1 ./optio.log")
    assert.include(docs, "printf 'DONE'")
    assert.include(docs, "./deliverables/")
  })

  it("quotes the real accepted reply and the acknowledgement form", () => {
    assert.include(docs, `\`${ACCEPTED_REPLY}\``)
    assert.include(docs, "`System: deliverable <name>: ...`")
  })
})

describe("resume section and excludes", () => {
  it("keeps the default exclude list exactly", () => {
    assert.deepStrictEqual(DEFAULT_WORKDIR_EXCLUDE, [
      ".git", "node_modules", "__pycache__", ".venv", "*.pyc", ".DS_Store", "home/.codex/packages", "*.sqlite*",
      "home/.codex/cache", "home/.codex/tmp", "home/.codex/.tmp", "home/.codex/shell_snapshots",
      "home/.codex/models_cache.json", "home/.codex/version.json", "home/.codex/installation_id", "home/.codex/log",
      "home/.cache"
    ])
  })

  it("uses the default only when no list is configured", () => {
    assert.deepStrictEqual(effectiveWorkdirExclude(null), DEFAULT_WORKDIR_EXCLUDE)
    assert.deepStrictEqual(effectiveWorkdirExclude([]), [])
    const custom = ["bigdata"]
    const effective = effectiveWorkdirExclude(custom)
    assert.deepStrictEqual(effective, ["bigdata"])
    assert.notStrictEqual(effective, custom)
  })

  it("renders the exclude list backticked, comma-joined, with a final period", () => {
    assert.include(resumeSection(DEFAULT_WORKDIR_EXCLUDE), DEFAULT_EXCLUDE_SENTENCE)
    assert.include(resumeSection(["one"]), "The current exclude list is: `one`.")
    const empty = resumeSection([])
    assert.include(empty, "**No paths are excluded**")
    assert.notInclude(empty, "The current exclude list is")
  })

  it("has the resume.log format block and the detection steps", () => {
    const section = resumeSection(DEFAULT_WORKDIR_EXCLUDE)
    assert.deepStrictEqual(headings(section), ["## Resumes", "### Detecting a resume: `resume.log`"])
    assert.include(section, "```\n<ISO 8601 UTC timestamp>[ REFRESHED:<comma-separated filenames>]\n```")
    assert.include(section, "2026-05-28T13:15:42Z REFRESHED:AGENTS.md")
    assert.include(section, "cat ./AGENTS.md")
    assert.include(section, "`System:`")
  })
})

describe("downloadables block", () => {
  it("starts with a blank line pair and the heading, in both wordings", () => {
    for (const comparative of [true, false]) {
      const block = downloadablesBlock(comparative)
      assert.isTrue(block.startsWith("\n\n## Downloadable files\n\n"))
      assert.include(block, "`[name](optio-file:relpath)`")
      assert.isTrue(block.endsWith(".\n"))
    }
  })

  it("contrasts with deliverables only in the comparative wording", () => {
    assert.include(downloadablesBlock(true), "`DELIVERABLE:`")
    assert.notInclude(downloadablesBlock(false), "DELIVERABLE")
  })
})

describe("default output", () => {
  it("matches the full text", () => {
    expect(composeAgentsMd({ ...defaults, instructions: "Write a haiku about tmux.\n" })).toMatchInlineSnapshot(`
      "# Coordination protocol with the host (optio)

      You are working inside optio, a harness that coordinates your session with a host machine and a
      human operator. Keep to the conventions below from the first step of this session to the last.

      ## Log channel

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

      - accepted, for example \`accepted. thank you, well done.\`: nothing more to do for that file;
      - specific feedback: revise the file as asked, then write its \`DELIVERABLE:\` line again;
      - the file could not be read or its path was refused (the reply says why): fix that, then write
        its \`DELIVERABLE:\` line again;
      - trouble on the harness side: not your fault; carry on, and deliver the file again after you are
        next resumed.

      ## Resumes

      The harness may pause this session at any moment, save it, stop every process and bring it back
      later. Your conversation context carries over unchanged, but a resume can come at any point, and
      the world outside may have changed in the meantime.

      Your working directory is preserved across a resume, within these limits:

      - **Paths matching the snapshot exclude list are NOT preserved**, even inside the working
        directory. The current exclude list is: \`.git\`, \`node_modules\`, \`__pycache__\`, \`.venv\`, \`*.pyc\`, \`.DS_Store\`, \`home/.codex/packages\`, \`*.sqlite*\`, \`home/.codex/cache\`, \`home/.codex/tmp\`, \`home/.codex/.tmp\`, \`home/.codex/shell_snapshots\`, \`home/.codex/models_cache.json\`, \`home/.codex/version.json\`, \`home/.codex/installation_id\`, \`home/.codex/log\`, \`home/.cache\`.
      - **Anything outside the working directory is NOT preserved.**
      - Your codex conversation itself (its rollouts) IS preserved, kept by the harness outside the
        working directory; excluded paths are not.

      Keep large scratch data outside the working directory (for example under \`/tmp/\`) or in an
      excluded subdirectory, and expect it to be gone after a resume.

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

      ## Task

      Narrate your work as you go, both in your normal replies and through \`STATUS:\` messages, so
      the people following along always know where things stand. A human is working towards the same
      goal with you: ask when something is unclear, and take their answers into account.

      So:

      Write a haiku about tmux.
      "
    `)
  })
})
