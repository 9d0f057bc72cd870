/**
 * finding 3 over SSH: the remote login environment holds secrets (sshd `SetEnv`, as a profile or
 * PAM would), and codex's processes on the remote host — tmux server, codex TUI, codex
 * app-server, tool commands — get none of them: every codex launch carries an exact environment
 * (`env -i` on the remote side).
 */
import { noStoreServices } from "../support/sessionServices.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { Host } from "../../src/host/Host.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { sharedBinaryCache } from "../support/codexCache.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { sshdForSuite, suiteRemoteHost } from "../support/sshd.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(repoRoot, ".cache", "test", `e2e-remote-isolation-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))
const taskRoot = join(root, "tasks")
const SENTINELS = {
  OPTIO_CODEX_SEED_KEY: `sentinel-remote-seed-key-${process.pid}`,
  DATABASE_PASSWORD: `sentinel-remote-db-password-${process.pid}`,
  SOME_URI: `postgres://sentinel-remote-uri-${process.pid}@db/x`
}
// The remote user's login environment: secrets, and the task root for this test.
const sshd = sshdForSuite(join(root, "known_hosts"), [
  `SetEnv ${Object.entries({ ...SENTINELS, OPTIO_CODEX_TASK_ROOT: taskRoot }).map(([name, value]) => `${name}=${value}`).join(" ")}`
])

const services = (processId: string) =>
  Layer.mergeAll(TaskContext.layerRecording({ processId }), sharedBinaryCache, TtydSession.layer, Tmux.layer, AppServerClient.layer, ConversationListener.layer, noStoreServices).pipe(
    Layer.provideMerge(suiteRemoteHost(sshd, join(root, "known_hosts")))
  )

const environOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8")
  } catch {
    return ""
  }
}

describe("finding 3 over SSH: the remote login environment reaches no codex process", () => {
  it.live.each(["iframe", "conversation"] as const)("%s mode", (mode) =>
    Effect.gen(function*() {
      const workdir = join(root, `w-${mode}`)
      mkdirSync(workdir, { recursive: true })
      // The remote login environment really holds the secrets (so this test can fail).
      const plain = yield* Effect.flatMap(Host, (host) => host.run({ argv: ["sh", "-c", "printf %s \"$DATABASE_PASSWORD\""] }))
      assert.strictEqual(plain.stdout, SENTINELS.DATABASE_PASSWORD)

      const server = yield* ScriptedModelServer.start([
        ModelScript.execCommand("env > tool-env.txt; touch ready; while [ ! -e scanned ]; do sleep 0.1; done; printf 'DONE: checked\\n' >> optio.log", { yieldTimeMs: 60_000 }),
        ModelScript.text("checked")
      ])
      const session = yield* runCodexSession(
        { consumerInstructions: "check the environment", mode, autoStart: true, ...demoTaskSettings(server.baseUrl) },
        { workdir, stopGracePeriod: "2 seconds" }
      ).pipe(Effect.forkChild)
      // A session that fails before its agent runs ends the wait with its own error.
      yield* Effect.raceFirst(
        waitUntil("the agent's command runs", Effect.sync(() => existsSync(join(workdir, "ready")) ? true : undefined), "300 seconds"),
        Fiber.join(session).pipe(Effect.flatMap((result) => Effect.fail(new Error(`the session ended first: ${result.summary}`))))
      ).pipe(
        // Say how far the session got (a slow remote login shell shows up here, not as a bare timeout).
        Effect.catch((error) =>
          TaskRecorder.use((recorder) => recorder.current).pipe(
            Effect.flatMap((record) =>
              Effect.fail(new Error(`${error.message}; progress: ${JSON.stringify(record.progress.map((entry) => entry.message))}`))
            )
          )
        )
      )
      const tree = processesMentioning(workdir)
      // The task's own processes are among those scanned: tmux server and codex TUI, or app-server.
      for (const fragment of mode === "iframe" ? ["tmux -u -S", "--ask-for-approval"] : ["app-server"]) {
        assert.isTrue(tree.some((entry) => entry.cmdline.includes(fragment)), `a process running ${fragment} is in the scanned tree`)
      }
      for (const { pid } of tree) {
        const environ = environOf(pid)
        for (const [name, value] of Object.entries(SENTINELS)) assert.notInclude(environ, value, `${name} reached pid ${pid}`)
      }
      const toolEnv = readFileSync(join(workdir, "tool-env.txt"), "utf8")
      for (const value of Object.values(SENTINELS)) assert.notInclude(toolEnv, value)
      writeFileSync(join(workdir, "scanned"), "")
      const result = yield* Fiber.join(session).pipe(Effect.timeout("60 seconds"))
      assert.strictEqual(result.summary, "checked")
      assert.deepStrictEqual(readdirSync(join(taskRoot, "run")), [], "a clean end removes the private dir")
    }).pipe(Effect.scoped, Effect.provide(services(`remote-env-${mode}`))), 480_000)
})
