/**
 * Issue 14 item 3: a codex that dies at launch fails the session (typed, with its exit status
 * and stderr, also in progress) and does not take a plain Node worker process down.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { repoRoot } from "../support/offlineCodex.ts"

const root = join(repoRoot, ".cache", "test", `launch-failure-${process.pid}`)
const STAND_IN_STDERR = "codex: fatal: simulated launch failure"

interface WorkerReport {
  readonly tag: string
  readonly message: string
  readonly exitCode: number | undefined
  readonly progress: ReadonlyArray<string>
}

const runWorker = (mode: "iframe" | "conversation") =>
  Effect.sync(() => {
    const dir = join(root, mode)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const child = spawnSync(process.execPath, [join(repoRoot, "test", "support", "launchFailureWorker.ts"), mode, dir], {
      cwd: repoRoot,
      encoding: "utf8",
      timeout: 60_000
    })
    return { status: child.status, signal: child.signal, stderr: child.stderr, report: parseReport(child.stdout) }
  })

const parseReport = (stdout: string): WorkerReport | undefined => {
  const line = stdout.trim().split("\n").pop() ?? ""
  try {
    return JSON.parse(line) as WorkerReport
  } catch {
    return undefined
  }
}

describe("a codex that exits at launch", () => {
  for (const mode of ["conversation", "iframe"] as const) {
    it.live(`issue 14: ${mode} mode: a plain Node worker survives, and the error and progress carry status 3 and stderr`, () =>
      Effect.gen(function*() {
        const run = yield* runWorker(mode)
        assert.strictEqual(run.status, 0, `the worker process died: ${run.signal ?? ""}\n${run.stderr}`)
        assert.notInclude(run.stderr, "EPIPE")
        const report = run.report
        assert.isDefined(report)
        if (report === undefined) return
        assert.strictEqual(report.tag, "CodexExitedEarly")
        assert.strictEqual(report.exitCode, 3)
        assert.include(report.message, STAND_IN_STDERR)
        assert.include(report.message, "status 3")
        assert.include(report.progress, report.message)
        assert.notInclude(report.progress, "Codex is live")
        assert.notInclude(report.progress, "Codex conversation is live")
      }), 90_000)
  }
})
