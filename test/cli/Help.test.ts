/**
 * Every command, subcommand, flag and argument of the CLI says what it does, and `--version`
 * names the package and the codex it pins. Walks the command tree through `--help` as a user
 * would, from `optio-codex --help` down.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { repoRoot } from "../support/offlineCodex.ts"
import { runCli, shown } from "./cliProcess.ts"

interface HelpPage {
  readonly description: string
  readonly subcommands: ReadonlyArray<string>
  /** Entries (flags, arguments, subcommands) whose description column is empty. */
  readonly undescribed: ReadonlyArray<string>
}

const SECTIONS = new Set(["FLAGS", "ARGUMENTS", "SUBCOMMANDS", "INHERITED FLAGS"])

const parseHelp = (text: string): HelpPage => {
  let section = ""
  let description = ""
  const subcommands: Array<string> = []
  const undescribed: Array<string> = []
  for (const line of text.split("\n")) {
    if (/^[A-Z][A-Z ]+$/.test(line)) {
      section = line
      continue
    }
    if (line.trim() === "") continue
    if (section === "DESCRIPTION") description += line.trim()
    if (!SECTIONS.has(section)) continue
    const [name = "", ...rest] = line.trim().split(/\s{2,}/)
    if (rest.join("").trim() === "") undescribed.push(`${section}: ${name}`)
    if (section === "SUBCOMMANDS") subcommands.push(name.split(" ")[0] ?? name)
  }
  return { description, subcommands, undescribed }
}

const walk = (path: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<readonly [string, HelpPage]>, Error> =>
  Effect.gen(function*() {
    const result = yield* runCli([...path, "--help"])
    expect(result.exitCode, shown(result)).toBe(0)
    const page = parseHelp(result.stdout)
    const below = yield* Effect.forEach(page.subcommands, (name) => walk([...path, name]), { concurrency: 4 })
    return [[["optio-codex", ...path].join(" "), page] as const, ...below.flat()]
  })

describe("CLI help", () => {
  it.effect("every command, subcommand, flag and argument has a description", () =>
    Effect.gen(function*() {
      const pages = yield* walk([])
      const names = pages.map(([name]) => name)
      // The tree is walked, not just the top page.
      expect(names).toEqual(expect.arrayContaining(["optio-codex run", "optio-codex doctor", "optio-codex login", "optio-codex seeds pool status"]))
      const missing = pages.flatMap(([name, page]) => [
        ...(page.description === "" ? [`${name}: no description`] : []),
        ...page.undescribed.map((entry) => `${name}: ${entry}`)
      ])
      expect(missing).toEqual([])
    }), 120_000)

  it.effect("--version prints the package version and the pinned codex version", () =>
    Effect.gen(function*() {
      const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
        readonly version: string
        readonly dependencies: Readonly<Record<string, string>>
      }
      const result = yield* runCli(["--version"])
      expect(result.exitCode, shown(result)).toBe(0)
      expect(result.stdout.trim()).toBe(`optio-codex v${manifest.version} (codex ${manifest.dependencies["@openai/codex"]})`)
    }))
})
