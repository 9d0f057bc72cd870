/**
 * The leftover reaper acts only on what the worker itself recorded, in the task's private dir:
 * a pid record the agent forged in the workdir (where the old layout kept it) does nothing, and
 * even a recorded socket path is never a delete target — only the task's own socket is.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { reapLeftovers } from "../../src/session/Leftovers.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { taskPaths } from "../../src/workdir/TaskPaths.ts"
import { alive, startTimeOf } from "../support/procs.ts"

const root = join(process.cwd(), ".cache", "test", `leftovers-${process.pid}`)
rmSync(root, { recursive: true, force: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

const services = Layer.mergeAll(TaskContext.layerRecording({ processId: "reap" }), LocalHost.layer())

const sleeper = Effect.acquireRelease(
  Effect.sync(() => spawn("sleep", ["300"], { stdio: "ignore", detached: true })),
  (child) => Effect.sync(() => child.kill("SIGKILL"))
).pipe(Effect.map((child) => child.pid ?? 0))


const forgedRecord = (pid: number, target: string) =>
  JSON.stringify({
    version: 1,
    host: "local",
    recordedAtMs: 1,
    processes: [{ role: "codex TUI", pid, startTime: startTimeOf(pid) }],
    tmuxSocket: target
  })

describe("reapLeftovers", () => {
  it.live("finding 2: a pids.json forged in the workdir deletes nothing and kills nothing", () =>
    Effect.gen(function*() {
      const victim = yield* sleeper
      const outside = join(root, "outside-precious")
      mkdirSync(outside, { recursive: true })
      writeFileSync(join(outside, "keep.txt"), "keep")
      const workdir = join(root, "w-forged")
      // Where the old layout kept the private dir of an explicit workdir, and of a task-owned one.
      for (const dir of [join(workdir, ".optio"), workdir]) {
        mkdirSync(dir, { recursive: true })
        writeFileSync(join(dir, "pids.json"), forgedRecord(victim, outside))
      }
      const paths = yield* taskPaths({ processId: "reap", taskRoot: join(root, "tasks"), workdir })
      const previousRunDied = yield* reapLeftovers(paths, "1 second")
      assert.isFalse(previousRunDied)
      assert.isTrue(existsSync(join(outside, "keep.txt")), "the directory the record names survives")
      assert.isTrue(alive(victim), "the process the record names survives")
      const progress = (yield* (yield* TaskRecorder).current).progress.map((entry) => entry.message ?? "")
      assert.isFalse(progress.some((message) => message.includes("reaped")), JSON.stringify(progress))
    }).pipe(Effect.scoped, Effect.provide(services)))

  it.live("a record in the private dir naming another socket path: only the task's own socket is ever touched", () =>
    Effect.gen(function*() {
      const outside = join(root, "outside-2")
      mkdirSync(outside, { recursive: true })
      writeFileSync(join(outside, "keep.txt"), "keep")
      const paths = yield* taskPaths({ processId: "reap", taskRoot: join(root, "tasks"), workdir: join(root, "w-own") })
      mkdirSync(paths.taskdir, { recursive: true })
      // A dead pid (above pid_max) and a recorded socket that is not this task's.
      writeFileSync(paths.pidsFile, JSON.stringify({ version: 1, host: "local", recordedAtMs: 1, processes: [{ role: "codex TUI", pid: 4_000_000, startTime: "1" }], tmuxSocket: outside }))
      assert.isTrue(yield* reapLeftovers(paths, "1 second"))
      assert.isTrue(existsSync(join(outside, "keep.txt")))
      assert.isFalse(existsSync(paths.pidsFile), "the record is consumed")
    }).pipe(Effect.scoped, Effect.provide(services)))
})
