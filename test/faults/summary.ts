/**
 * The fault suite's "fault → outcome" table. Every fault test records the outcome it observed
 * with {@link recordOutcome}; the files of the suite run in parallel worker processes, so the rows
 * go to one JSON-lines file per vitest run (keyed by the vitest main process, every worker's
 * parent). Each file's afterAll prints the table once every fault of the suite has reported (so
 * exactly one file, the last to finish, prints the whole table); a partial run (one file alone)
 * prints its own rows.
 */
import { afterAll } from "@effect/vitest"
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { repoRoot } from "../support/offlineCodex.ts"

/** Every fault the suite covers, in table order. */
export const FAULTS = [
  "codex SIGKILL mid-turn (conversation)",
  "codex SIGKILL mid-turn (tui)",
  "tmux server SIGKILL mid-session (tui)",
  "app-server SIGSTOP (hang), request path",
  "app-server SIGSTOP (hang), session liveness",
  "fake app-server: malformed / 64 MiB line / unknown messages",
  "worker SIGKILL mid-session, next start reaps leftovers",
  "100 start → cancel cycles (50 per mode)",
  "codex rotates auth.json during its graceful stop (P11)",
  "store unreachable at teardown",
  "store back in time at teardown",
  "disk full during snapshot",
  "property: optio.log parser (strings)",
  "property: optio.log monitor (raw bytes, any chunking)",
  "property: config decoding",
  "property: shell quoting through /bin/sh",
  "property: TOML encoding through smol-toml",
  "property: config.toml rendering (hostile overrides)",
  "property: app-server line framing (any chunking)"
] as const

export type Fault = typeof FAULTS[number]

const dir = join(repoRoot, ".cache", "test", "faults")
const runFile = join(dir, `run-${process.ppid}.jsonl`)
const printedMarker = join(dir, `run-${process.ppid}.printed`)
const mine: Array<{ readonly fault: Fault; readonly outcome: string }> = []

mkdirSync(dir, { recursive: true })
// Files of earlier runs are not needed once an hour has passed.
for (const name of readdirSync(dir)) {
  const path = join(dir, name)
  try {
    if (Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { force: true })
  } catch {
    // Another worker removed it first.
  }
}

/** Records the outcome a fault test observed (call it after the test's assertions passed). */
export const recordOutcome = (fault: Fault, outcome: string): void => {
  const row = { fault, outcome: outcome.replace(/\s+/g, " ").trim() }
  mine.push(row)
  appendFileSync(runFile, `${JSON.stringify(row)}\n`)
}

const readRun = (): ReadonlyArray<{ readonly fault: string; readonly outcome: string }> => {
  try {
    return readFileSync(runFile, "utf8").split("\n").filter((line) => line !== "").map((line) => {
      const parsed: unknown = JSON.parse(line)
      const row = typeof parsed === "object" && parsed !== null ? parsed : {}
      return {
        fault: "fault" in row && typeof row.fault === "string" ? row.fault : "?",
        outcome: "outcome" in row && typeof row.outcome === "string" ? row.outcome : "?"
      }
    })
  } catch {
    return []
  }
}

const render = (rows: ReadonlyArray<{ readonly fault: string; readonly outcome: string }>, title: string) => {
  const order = (fault: string) => FAULTS.findIndex((known) => known === fault)
  const ordered = [...rows].sort((a, b) => order(a.fault) - order(b.fault))
  const width = Math.max(5, ...ordered.map((row) => row.fault.length))
  return [
    "",
    title,
    `| ${"fault".padEnd(width)} | outcome |`,
    `| ${"-".repeat(width)} | ------- |`,
    ...ordered.map((row) => `| ${row.fault.padEnd(width)} | ${row.outcome} |`),
    ""
  ].join("\n")
}

afterAll(() => {
  const all = readRun()
  const complete = FAULTS.every((fault) => all.some((row) => row.fault === fault))
  if (complete) {
    try {
      writeFileSync(printedMarker, "", { flag: "wx" })
    } catch {
      return // another file already printed the whole table
    }
    console.log(render(all, "fault suite: fault → outcome (whole suite)"))
    return
  }
  if (mine.length > 0) console.log(render(mine, "fault suite: fault → outcome (this file; run test/faults for the whole table)"))
})
