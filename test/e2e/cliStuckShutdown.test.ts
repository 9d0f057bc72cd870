/**
 * Issue 14 item 2: a client that pins a connection to the web terminal (an unauthenticated
 * WebSocket upgrade answered 401 on a kept-alive connection, then another request on it, its own
 * side never closed) must not keep the session from ending: Ctrl-C (SIGINT) still ends the CLI
 * and every task process.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { sharedCodexCacheDir } from "../support/codexCache.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { holdConnection, upgradeThenRequest } from "../support/rawHttp.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(repoRoot, ".cache", "test", `e2e-cli-stuck-${process.pid}`)

/** The CLI as a child whose output is watched and which is told to stop as a terminal would. */
const startCli = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const env: Record<string, string> = {}
      for (const [name, value] of Object.entries(process.env)) {
        if (value !== undefined && !name.startsWith("OPTIO_CODEX_")) env[name] = value
      }
      env["OPTIO_CODEX_CACHE_DIR"] = sharedCodexCacheDir
      env["OPTIO_CODEX_DATA_DIR"] = join(root, "data")
      const child = spawn(process.execPath, [join(repoRoot, "bin", "optio-codex.js"), ...args], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] })
      let output = ""
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8")
      })
      child.stderr.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8")
      })
      let exit: { readonly code: number | null; readonly signal: string | null } | undefined
      child.once("exit", (code, signal) => {
        exit = { code, signal }
      })
      return { child, output: () => output, exit: () => exit }
    }),
    ({ child, exit }) => Effect.sync(() => void (exit() === undefined && child.kill("SIGKILL")))
  )

describe("optio-codex run with a pinned web-terminal connection", () => {
  it.live("issue 14: SIGINT ends the session and every task process while a refused upgrade's connection is held open", () =>
    Effect.gen(function*() {
      rmSync(root, { recursive: true, force: true })
      const workdir = join(root, "pinned")
      mkdirSync(workdir, { recursive: true })
      // No account and no model: codex waits on its sign-in screen for as long as it is left.
      const cli = yield* startCli(["run", "--mode", "tui", "--prompt", "wait", "--workdir", workdir, "--process-id", "pinned"])
      const port = yield* waitUntil("the CLI prints the terminal's upstream", Effect.sync(() => {
        const found = /upstream: http:\/\/127\.0\.0\.1:(\d+)\//.exec(cli.output())
        return found?.[1] === undefined ? undefined : Number(found[1])
      }), "60 seconds")
      yield* waitUntil("codex is live", Effect.sync(() => cli.output().includes("Codex is live") ? true : undefined), "60 seconds")

      const held = yield* holdConnection(port, upgradeThenRequest())
      yield* waitUntil("the upgrade is refused", Effect.sync(() => held.received().startsWith("HTTP/1.1 401") ? true : undefined), "5 seconds")
      assert.isAbove(processesMentioning(workdir).length, 0)

      const stopping = Date.now()
      cli.child.kill("SIGINT")
      const exit = yield* waitUntil("the CLI exits after SIGINT", Effect.sync(cli.exit), "20 seconds")
      const stoppedAfterMs = Date.now() - stopping
      yield* Effect.logInfo("SIGINT to exit with a pinned connection", { stoppedAfterMs })
      assert.isDefined(exit)
      assert.deepStrictEqual(processesMentioning(workdir), [], cli.output())
    }).pipe(Effect.scoped), 120_000)
})
