/**
 * `npm run bench -- --quick` keeps working: the runner exits 0 and prints every row of the table.
 * No timing is asserted (CI machines vary); the numbers are for people, not for this test.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { ROW_NAMES } from "../../bench/harness.ts"

const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const runQuick = Effect.callback<Finished>((resume) => {
  const child = execFile(process.execPath, ["bench/run.ts", "--quick"], { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
    const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
    resume(Effect.succeed({ code, stdout, stderr }))
  })
  return Effect.sync(() => {
    child.kill("SIGINT")
  })
})

describe("bench --quick", () => {
  it.live("runs every benchmark and prints every row", () =>
    Effect.gen(function*() {
      const run = yield* runQuick
      assert.strictEqual(run.code, 0, `bench exited ${run.code}:\n${run.stderr.slice(-4000)}`)
      const tableRows = run.stdout.split("\n").filter((line) => line.startsWith("| ")).map((line) => line.split("|")[1]?.trim())
      for (const name of ROW_NAMES) {
        assert.include(tableRows, name, `row ${name} is missing from:\n${run.stdout}`)
      }
      assert.notInclude(run.stdout, "not measured")
      assert.match(run.stdout, /JSON: .*latest\.json/)
    }), 120_000)
})
