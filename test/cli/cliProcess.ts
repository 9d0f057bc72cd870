/**
 * Runs the optio-codex CLI as a user does — `node bin/optio-codex.js …` as a child process — with
 * the ambient `OPTIO_CODEX_*` variables removed, so only what a test passes decides the store,
 * keys and task root.
 */
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Host } from "../../src/host/Host.ts"
import type { RunResult } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { repoRoot } from "../support/offlineCodex.ts"

/** Runs the CLI with `args` and exactly the `OPTIO_CODEX_*` variables in `env`. */
export const runCli = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}): Effect.Effect<RunResult, Error> =>
  Effect.gen(function*() {
    const host = yield* Host
    return yield* host.run({
      argv: [process.execPath, join(repoRoot, "bin", "optio-codex.js"), ...args],
      cwd: repoRoot,
      env,
      envRemove: ["OPTIO_CODEX_*"]
    })
  }).pipe(Effect.provide(LocalHost.layer()))

/** A fresh directory under `.cache/test-runs/`, removed with the scope. */
export const testRunDir = (name: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = join(repoRoot, ".cache", "test-runs", `${name}-${randomUUID().slice(0, 8)}`)
      mkdirSync(dir, { recursive: true })
      return dir
    }),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

/** The output of a run, for assertion messages. */
export const shown = (result: RunResult) => `exit ${result.exitCode}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`
