/**
 * Fault: the worker itself is killed with SIGKILL in the middle of a TUI session. A child
 * process (fixtures/worker-child.ts) plays the worker; killing it runs no finalizer, so codex
 * and its daemonized tmux server keep running. The next start of the same task — here in
 * conversation mode, so nothing of the TUI machinery could clear them by accident — must find
 * the leftovers through `<taskdir>/pids.json`, reap them, snapshot what the killed run left (so a
 * resume can continue from it), say so in progress, and run normally.
 *
 * What would break without the handling: without the pid file written at launch and the reaping
 * at the next start (session/Leftovers.ts), the old codex TUI and tmux server run forever (the
 * conversation-mode session never looks at tmux): the "reaped" progress is missing and the
 * old pids and the workdir's processes are still alive at the end.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { faultRoot, isAlive, layoutOfWorkdir, noProcessMentions, services } from "./harness.ts"
import { recordOutcome } from "./summary.ts"

const dirs = faultRoot("worker-kill")
afterAll(dirs.remove)

const child = fileURLToPath(new URL("./fixtures/worker-child.ts", import.meta.url))
const PROCESS_ID = "fault-worker-kill"

/** Starts the doomed worker; resolves with it once codex is mid-turn. */
const startDoomedWorker = (workdir: string) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly pid: number; readonly output: () => string; readonly exited: Promise<string> }, Error>((resume) => {
      const worker = spawn(process.execPath, [child, workdir, PROCESS_ID], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
      let output = ""
      const exited = new Promise<string>((resolve) => worker.once("exit", (code, signal) => resolve(signal ?? String(code))))
      const onData = (chunk: Buffer) => {
        output += chunk.toString("utf8")
        if (output.includes("MID-TURN") && worker.pid !== undefined) resume(Effect.succeed({ pid: worker.pid, output: () => output, exited }))
      }
      worker.stdout.on("data", onData)
      worker.stderr.on("data", onData)
      void exited.then((how) => resume(Effect.fail(new Error(`the worker child ended early (${how}):\n${output}`))))
      return Effect.sync(() => worker.kill("SIGKILL"))
    }).pipe(Effect.timeout("60 seconds")),
    (worker) => Effect.sync(() => isAlive(worker.pid) && process.kill(worker.pid, "SIGKILL"))
  )

describe("fault: the worker is SIGKILLed mid-session", () => {
  it.live("the next start of the task reaps codex and the tmux server through pids.json and says so", () =>
    Effect.gen(function*() {
      const workdir = dirs.workdir()
      const worker = yield* startDoomedWorker(workdir)
      const pidsFile = layoutOfWorkdir(workdir).pidsFile
      assert.isTrue(existsSync(pidsFile), "the session records its processes at launch")
      const recorded: { host: string; tmuxSocket: string; processes: ReadonlyArray<{ role: string; pid: number }> } = JSON.parse(
        readFileSync(pidsFile, "utf8")
      )
      const codex = recorded.processes.find((entry) => entry.role === "codex TUI")?.pid ?? -1
      const tmuxServer = recorded.processes.find((entry) => entry.role === "tmux server")?.pid ?? -1
      assert.isTrue(isAlive(codex) && isAlive(tmuxServer))

      process.kill(worker.pid, "SIGKILL")
      assert.strictEqual(yield* Effect.promise(() => worker.exited), "SIGKILL")
      // No finalizer ran: codex and tmux outlive their worker.
      assert.isTrue(isAlive(codex), "codex outlives the killed worker")
      assert.isTrue(isAlive(tmuxServer), "the tmux server outlives the killed worker")
      const leftBehind = processesMentioning(workdir).length

      // The next start of the same task, in conversation mode this time.
      const server = yield* ScriptedModelServer.start([
        ModelScript.execCommand("printf 'DONE: second run\\n' >> optio.log"),
        ModelScript.text("done")
      ])
      const result = yield* runCodexSession(
        { consumerInstructions: "finish", mode: "conversation", autoStart: true, ...demoTaskSettings(server.baseUrl) },
        { workdir, stopGracePeriod: "2 seconds" }
      )
      assert.strictEqual(result.summary, "second run")
      const progress = (yield* (yield* TaskRecorder).current).progress.map((entry) => entry.message ?? "")
      const reaped = progress.find((message) => message.startsWith("reaped leftovers of a previous run"))
      assert.isDefined(reaped, `progress: ${JSON.stringify(progress)}`)
      assert.include(reaped, `codex TUI (pid ${codex})`)
      assert.include(reaped, `tmux server (pid ${tmuxServer})`)
      // It happened before the workdir was prepared, i.e. before anything of the new run started.
      assert.isBelow(progress.indexOf(reaped ?? ""), progress.indexOf("Preparing the workdir…"))
      assert.isFalse(isAlive(codex))
      assert.isFalse(isAlive(tmuxServer))
      assert.isFalse(existsSync(recorded.tmuxSocket), "the tmux socket is removed")
      assert.isFalse(existsSync(pidsFile), "a clean end leaves no pid file")
      // What the killed run left was saved before the new run wiped it, as a failed run's snapshot.
      const saved = progress.find((message) => message.startsWith("Saved a snapshot of what the previous run left"))
      assert.isDefined(saved, `progress: ${JSON.stringify(progress)}`)
      const snapshots = yield* SnapshotStore.use((store) => store.list(PROCESS_ID))
      assert.deepStrictEqual(snapshots.map((doc) => doc.endState), ["done", "failed"])
      assert.match(snapshots[1]?.sessionId ?? "", /^[0-9a-f-]{36}$/, "the killed TUI's thread is recorded")
      yield* noProcessMentions(workdir, "2 seconds")
      recordOutcome(
        "worker SIGKILL mid-session, next start reaps leftovers",
        `after the kill ${leftBehind} processes of the task were left (codex TUI, tmux server); the next start (conversation mode) ` +
          `reported "${reaped ?? ""}" and "${saved ?? ""}" before preparing the workdir, then finished (DONE); 0 orphans`
      )
    }).pipe(Effect.scoped, Effect.provide(services(PROCESS_ID))), 90_000)
})
