/**
 * `optio-codex doctor` lists what tasks left running on the host: task dirs under the task root
 * (OPTIO_CODEX_TASK_ROOT) whose pids.json names a live process, and live tmux servers on
 * /tmp/optio-cx-*.sock sockets — and changes nothing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { runCli, shown, testRunDir } from "./cliProcess.ts"
import { alive, startTimeOf } from "../support/procs.ts"



/** A `sleep` child for the life of the scope. */
const sleeper = Effect.acquireRelease(
  Effect.sync(() => spawn("sleep", ["300"], { stdio: "ignore" })),
  (child) => Effect.sync(() => child.kill("SIGKILL"))
).pipe(Effect.map((child) => child.pid ?? 0))

/** A tmux server on `socket` for the life of the scope. */
const tmuxServer = (socket: string) => Effect.acquireRelease(
  Effect.sync(() => {
    mkdirSync(dirname(socket), { recursive: true })
    execFileSync("tmux", ["-S", socket, "-f", "/dev/null", "new-session", "-d", "sleep", "300"], { env: { ...process.env, TMUX: "" } })
    return socket
  }),
  (socket) =>
    Effect.sync(() => {
      try {
        execFileSync("tmux", ["-S", socket, "kill-server"], { stdio: "ignore" })
      } catch {
        // already gone
      }
      rmSync(socket, { force: true })
    })
)

const tmuxAlive = (socket: string) => {
  try {
    execFileSync("tmux", ["-S", socket, "list-sessions"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

const writePids = (
  taskdir: string,
  processId: string,
  processes: ReadonlyArray<{ role: string; pid: number; startTime: string }>,
  tmuxSocket?: string
) => {
  mkdirSync(taskdir, { recursive: true })
  const file = { version: 1, host: "local", recordedAtMs: Date.now(), processes, processId, ...(tmuxSocket === undefined ? {} : { tmuxSocket }) }
  writeFileSync(join(taskdir, "pids.json"), JSON.stringify(file))
}

describe("optio-codex doctor: leftovers", () => {
  it.live("lists private task dirs with live recorded processes and live tmux servers, and kills nothing", () =>
    Effect.gen(function*() {
      const root = yield* testRunDir("cli-doctor")
      // The private task dirs (run/<id>), where the session records what it launched.
      const taskA = join(root, "run", "aaaaaaaaaaaaaaaa")
      const taskGone = join(root, "run", "bbbbbbbbbbbbbbbb")
      const taskReused = join(root, "run", "cccccccccccccccc")
      const pid = yield* sleeper
      const reusedPid = yield* sleeper
      const recordedSocket = yield* tmuxServer(join(taskA, "tmux.sock"))
      const orphanSocket = yield* tmuxServer(join(root, "run", "dddddddddddddddd", "tmux.sock"))
      const deadPid = 4_000_000 // above pid_max: never alive
      writePids(taskA, "task-a", [
        { role: "codex TUI", pid, startTime: startTimeOf(pid) },
        { role: "tmux server", pid: deadPid, startTime: "1" }
      ], recordedSocket)
      writePids(taskGone, "task-gone", [{ role: "codex app-server", pid: deadPid, startTime: "1" }])
      // A live pid whose start time differs is someone else's process now: not a leftover.
      writePids(taskReused, "task-reused", [{ role: "codex app-server", pid: reusedPid, startTime: "1" }])
      mkdirSync(join(root, "blobs")) // a non-task directory beside the tasks
      // A pids.json in a workdir (agent-writable) is never read.
      writePids(join(root, "task-planted", "workdir", ".optio"), "task-planted", [{ role: "codex TUI", pid, startTime: startTimeOf(pid) }])

      const result = yield* runCli(["doctor"], { OPTIO_CODEX_TASK_ROOT: root })
      const out = result.stdout
      assert.match(out, /^ok {3}leftovers: \d+ task\(s\) with live processes \(doctor changes nothing\):$/m, shown(result))
      const taskLine = out.split("\n").find((line) => line.includes("task task-a ")) ?? ""
      assert.include(taskLine, `task task-a (${taskA}): codex TUI pid ${pid} alive, tmux server pid ${deadPid} gone`, shown(result))
      assert.include(taskLine, `tmux socket ${recordedSocket} (server alive)`)
      assert.include(taskLine, "to reap, start task task-a again")
      assert.include(out, `tmux socket ${orphanSocket}: server alive, recorded by no task dir`)
      assert.notInclude(out, `tmux socket ${recordedSocket}: server alive, recorded by no task dir`)
      assert.notInclude(out, "task-gone")
      assert.notInclude(out, "task-reused")
      assert.notInclude(out, "task-planted")

      // Read-only: everything is still there.
      assert.isTrue(alive(pid))
      assert.isTrue(alive(reusedPid))
      assert.isTrue(tmuxAlive(recordedSocket))
      assert.isTrue(tmuxAlive(orphanSocket))
      assert.isTrue(existsSync(join(taskA, "pids.json")))
      assert.isTrue(existsSync(join(taskGone, "pids.json")))
    }).pipe(Effect.scoped), 60_000)
})
