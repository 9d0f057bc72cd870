/**
 * Shared pieces of the fault suite: the real services, fresh workdirs under .cache/, finding
 * codex's pid through the task's launch path in /proc, and the "no orphan" wait.
 */
import { Effect } from "effect"
import type { Duration } from "effect"
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { TaskContext } from "../../src/task/TaskContext.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { layoutOf } from "../support/taskLayout.ts"
import { waitUntil } from "../support/waitUntil.ts"

/** A directory of this test file's workdirs, removed when the file's module is loaded again. */
export const faultRoot = (name: string) => {
  const root = join(repoRoot, ".cache", "test", `faults-${name}-${process.pid}`)
  rmSync(root, { recursive: true, force: true })
  // Every task's trusted files (codex's home, pids.json, the tmux socket) live under the task
  // root, explicit workdirs too; a worker child spawned by the test inherits it.
  process.env["OPTIO_CODEX_TASK_ROOT"] = join(root, "tasks")
  let counter = 0
  return {
    root,
    taskRoot: join(root, "tasks"),
    /** A fresh, empty workdir (explicit: the session neither wipes nor removes it). */
    workdir: () => {
      const dir = join(root, `w${++counter}`)
      mkdirSync(dir, { recursive: true })
      return dir
    },
    remove: () => rmSync(root, { recursive: true, force: true })
  }
}

/** The live services a session needs, with a recording TaskContext and an in-memory store (snapshots). */
export const services = (processId: string) => sessionServices(processId)

/** The private paths of the task with this explicit workdir (TaskPaths' layout). */
export const layoutOfWorkdir = (workdir: string) =>
  layoutOf({ processId: "any", taskRoot: process.env["OPTIO_CODEX_TASK_ROOT"] ?? "", workdir })

/** The launch link the session starts codex through. */
export const launchLinkOf = (workdir: string) => layoutOfWorkdir(workdir).launchLink

/** Live pids whose argv[0] is exactly `program` (codex is exec'd through the task's launch link). */
export const pidsRunning = (program: string): ReadonlyArray<number> => {
  const found: Array<number> = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1")
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue
      const argv0 = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0")[0]
      if (argv0 === program) found.push(Number(name))
    } catch {
      // Gone while we looked.
    }
  }
  return found
}

/** Waits for the one codex process of a task and returns its pid. */
export const codexPidOf = (workdir: string, within: Duration.Input = "30 seconds") =>
  waitUntil(`codex runs through ${launchLinkOf(workdir)}`, Effect.sync(() => {
    const pids = pidsRunning(launchLinkOf(workdir))
    return pids.length === 1 ? pids[0] : undefined
  }), within)

/** Waits until no live process mentions `workdir` (command line or environment). */
export const noProcessMentions = (workdir: string, within: Duration.Input) =>
  waitUntil(`no process mentions ${workdir}`, Effect.sync(() => processesMentioning(workdir).length === 0 ? true : undefined), within).pipe(
    Effect.mapError((error) => new Error(`${error.message}; left: ${JSON.stringify(processesMentioning(workdir))}`))
  )

/** Whether a pid is alive (zombies count as dead). */
export const isAlive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))
  } catch {
    return false
  }
}

/** Sends a signal, ignoring a process that is already gone. */
export const signal = (pid: number, name: NodeJS.Signals) =>
  Effect.sync(() => {
    try {
      process.kill(pid, name)
    } catch {
      // ESRCH: already gone.
    }
  })
