/**
 * The hooks' context with the real codex app-server (item 4): `beforeExecute` runs commands, reads,
 * copies and downloads on the host and finds no agent to talk to yet; `onDeliverable` gets the
 * path relative to deliverables/ and the absolute one; `afterExecute` (codex still alive) reaches
 * the agent.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import type { CodexTaskHooks } from "../../src/session/Hooks.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { sessionServices } from "../support/sessionServices.ts"

const root = join(repoRoot, ".cache", "test", `e2e-hooks-${process.pid}`)

const fileServer = Effect.acquireRelease(
  Effect.callback<{ readonly url: string; readonly close: () => void }>((resume) => {
    const server = createServer((request, response) => {
      if (request.url === "/tool.bin") response.end("downloaded-bytes")
      else response.writeHead(404).end()
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() })))
  }),
  (server) => Effect.sync(server.close)
)

describe("hook context (item 4)", () => {
  it.live("before/after hooks and onDeliverable get the reference's operations over the session's host", () =>
    Effect.gen(function*() {
      const files = yield* fileServer
      const server = yield* ScriptedModelServer.start([
        ModelScript.execCommand(
          "mkdir -p deliverables/docs && printf report > deliverables/docs/r.md && " +
            "printf 'DELIVERABLE: deliverables/docs/r.md\\nDONE: hooks ok\\n' >> optio.log"
        ),
        ModelScript.text("delivered"),
        ModelScript.text("noted"),
        ModelScript.text("noted")
      ])
      const workdir = join(root, "w")
      mkdirSync(workdir, { recursive: true })
      const workerFile = join(root, "from-worker.txt")
      writeFileSync(workerFile, "copied-bytes")
      const seen: Record<string, unknown> = {}
      const hooks: CodexTaskHooks = {
        beforeExecute: (ctx) =>
          Effect.gen(function*() {
            const ran = yield* ctx.runOnHost(["sh", "-c", "printf host > made-by-hook.txt; pwd"])
            seen["ran"] = { exitCode: ran.exitCode, cwd: ran.stdout.trim() }
            seen["read"] = yield* ctx.readTextFromHost("made-by-hook.txt")
            yield* ctx.copyFile(workerFile, "copied.txt")
            seen["downloaded"] = yield* ctx.downloadFile(`${files.url}/tool.bin`, "tools/tool.bin")
            seen["refused"] = yield* Effect.flip(ctx.downloadFile(`${files.url}/tool.bin`, "../escape.bin"))
            seen["missing"] = yield* Effect.flip(ctx.downloadFile(`${files.url}/missing`, "tools/missing.bin"))
            seen["earlySend"] = yield* ctx.sendToAgent("too early")
            yield* ctx.reportProgress(42, "hook progress")
          }),
        onDeliverable: (ctx, path, text, deliverable) =>
          Effect.sync(() => {
            seen["deliverable"] = { path, text, absolutePath: deliverable.absolutePath, processId: ctx.processId }
            return Option.none()
          }),
        afterExecute: (ctx) =>
          Effect.gen(function*() {
            seen["lateSend"] = yield* ctx.sendToAgent("the hook says goodbye")
          })
      }
      const result = yield* runCodexSession(
        { consumerInstructions: "hooks", mode: "conversation", autoStart: true, ...demoTaskSettings(server.baseUrl) },
        { workdir, hooks, stopGracePeriod: "2 seconds" }
      )
      assert.strictEqual(result.summary, "hooks ok")
      assert.deepStrictEqual(seen["ran"], { exitCode: 0, cwd: workdir })
      assert.strictEqual(seen["read"], "host")
      assert.strictEqual(readFileSync(join(workdir, "copied.txt"), "utf8"), "copied-bytes")
      assert.strictEqual(seen["downloaded"], join(workdir, "tools", "tool.bin"))
      assert.strictEqual(readFileSync(join(workdir, "tools", "tool.bin"), "utf8"), "downloaded-bytes")
      assert.include(seen["refused"] as object, { _tag: "DownloadFailed" })
      assert.include(seen["missing"] as object, { _tag: "DownloadFailed" })
      assert.isFalse(existsSync(join(workdir, "tools", "missing.bin")), "a failed download leaves no file")
      assert.deepStrictEqual(readdirSync(join(workdir, "tools")), ["tool.bin"], "no partial file left behind")
      assert.isFalse(seen["earlySend"] as boolean, "no agent before codex starts")
      assert.deepStrictEqual(seen["deliverable"], {
        path: "docs/r.md",
        text: "report",
        absolutePath: join(workdir, "deliverables", "docs", "r.md"),
        processId: "hooks-e2e"
      })
      assert.isTrue(seen["lateSend"] as boolean, "codex is still alive for afterExecute")
      const record = yield* TaskRecorder.use((recorder) => recorder.current)
      assert.deepInclude(record.progress, { percent: 42, message: "hook progress" })
    }).pipe(Effect.scoped, Effect.provide(sessionServices("hooks-e2e", { state: new MemoryStoreState() }))), 120_000)
})
