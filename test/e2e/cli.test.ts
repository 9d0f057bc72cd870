/**
 * The CLI as a user runs it: `optio-codex run --offline-demo` in both modes, as a child process
 * with stdin not a terminal.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { sharedCodexCacheDir } from "../support/codexCache.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"

const root = join(repoRoot, ".cache", "test", `e2e-cli-${process.pid}`)
rmSync(root, { recursive: true, force: true })

const runCli = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const host = yield* Host
    return yield* host.run({
      argv: [process.execPath, join(repoRoot, "bin", "optio-codex.js"), ...args],
      cwd: repoRoot,
      // The CLI's embedded store (snapshots, seeds) stays inside the test tree.
      env: { OPTIO_CODEX_CACHE_DIR: sharedCodexCacheDir, OPTIO_CODEX_DATA_DIR: join(root, "data") }
    })
  }).pipe(Effect.provide(LocalHost.layer()))

describe("optio-codex run --offline-demo", () => {
  it.live.each(["tui", "conversation"] as const)("--mode %s exits 0, codex wrote hello.txt, nothing is left running", (mode) =>
    Effect.gen(function*() {
      const workdir = join(root, `demo ${mode}`)
      mkdirSync(workdir, { recursive: true })
      const result = yield* runCli(["run", "--mode", mode, "--offline-demo", "--workdir", workdir])
      assert.strictEqual(result.exitCode, 0, `${result.stdout}\n${result.stderr}`)
      assert.strictEqual(readFileSync(join(workdir, "hello.txt"), "utf8"), "hello from codex\n")
      assert.include(result.stdout, "DONE: wrote hello.txt")
      assert.match(result.stdout, /upstream: http:\/\/127\.0\.0\.1:\d+/)
      assert.deepStrictEqual(processesMentioning(workdir), [])
    }), 120_000)

  it.live("--resume restores the task's snapshot into its workdir and continues the codex thread", () =>
    Effect.gen(function*() {
      const first = yield* runCli(["run", "--mode", "conversation", "--offline-demo", "--process-id", "cli-resume"])
      assert.strictEqual(first.exitCode, 0, `${first.stdout}\n${first.stderr}`)
      assert.include(first.stdout, "Saved a snapshot of the workdir (done")
      const second = yield* runCli(["run", "--mode", "conversation", "--offline-demo", "--resume", "cli-resume"])
      assert.strictEqual(second.exitCode, 0, `${second.stdout}\n${second.stderr}`)
      assert.include(second.stdout, "Restored the workdir from the snapshot")
      assert.include(second.stdout, "Resuming codex thread")
      assert.include(second.stdout, "DONE: wrote hello.txt")
    }), 120_000)

  it.live("a missing prompt without --offline-demo is a usage error, exit non-zero", () =>
    Effect.gen(function*() {
      const result = yield* runCli(["run", "--workdir", join(root, "none")])
      assert.notStrictEqual(result.exitCode, 0)
      assert.include(result.stdout + result.stderr, "--prompt is required")
    }), 60_000)
})
