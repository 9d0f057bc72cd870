/**
 * ProcessTree: finds every process that belongs to a spawned task process on Linux, by walking
 * `/proc`. A process-group kill is not enough for codex: it starts helpers in sessions of their
 * own (a login-shell snapshot, sandbox wrappers), which leave the group but stay descendants.
 *
 * @since 0.1.0
 */
import { Effect, Schema, Semaphore } from "effect"
// /proc reads keep node:fs: a process that vanished mid-read (ENOENT or ESRCH) must be told apart
// from every other failure by its errno, which the platform FileSystem error does not keep.
import { readdir, readFile } from "node:fs/promises"

/** One row of the process table. */
export interface ProcessEntry {
  readonly pid: number
  readonly ppid: number
  readonly pgid: number
  readonly sid: number
}

/**
 * A `/proc` read failed for another reason than the process being gone (out of descriptors, say).
 * @category errors
 */
export class ProcReadError extends Schema.TaggedError<ProcReadError>()("ProcReadError", {
  path: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * The process table of this machine.
 * @category models
 */
export interface ProcessTable {
  /**
   * Reads the whole table; processes that vanish mid-walk are skipped. Any other failure fails:
   * a table with holes would hide processes from a kill.
   */
  readonly read: Effect.Effect<ReadonlyArray<ProcessEntry>, ProcReadError>
  /** The pids of `pids` that are still alive (zombies count as gone). */
  readonly alive: (pids: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<number>, ProcReadError>
}

/**
 * How many `/proc/<pid>/stat` files one table has open at once, however many reads run together.
 * Opening all of them at once (100 terminal viewers closing together: 100 tables of hundreds of
 * files) exhausted the worker's descriptors, and the failed reads made processes look gone, so a
 * teardown missed them.
 */
const READ_CONCURRENCY = 16

/**
 * A process table whose reads share one permit count (the local host makes one, so every tree
 * walk of the worker's host is bounded together).
 * @category constructors
 */
export const makeProcessTable = Effect.sync((): ProcessTable => {
  const permits = Semaphore.makeUnsafe(READ_CONCURRENCY)
  /** `/proc/<pid>/stat`, or undefined when the process is gone. */
  const readStat = (pid: string) =>
    Effect.tryPromise({
      try: () => readFile(`/proc/${pid}/stat`, "latin1").catch((error: unknown) => vanished(error) ? undefined : Promise.reject(error)),
      catch: (cause) => new ProcReadError({ path: `/proc/${pid}/stat`, cause })
    }).pipe(Semaphore.withPermit(permits))
  const read = Effect.tryPromise({
    try: () => readdir("/proc"),
    catch: (cause) => new ProcReadError({ path: "/proc", cause })
  }).pipe(
    Effect.flatMap((names) =>
      Effect.forEach(names.filter((name) => /^\d+$/.test(name)), readStat, { concurrency: READ_CONCURRENCY })
    ),
    Effect.map((stats) => stats.flatMap((stat) => {
      const entry = stat === undefined ? undefined : parseStat(stat)
      return entry === undefined ? [] : [entry]
    }))
  )
  const alive = (pids: ReadonlyArray<number>) =>
    Effect.forEach(pids, (pid) => readStat(String(pid)).pipe(Effect.map((stat) => {
      if (stat === undefined) return undefined
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
      return state === "Z" || state === "X" ? undefined : pid
    })), { concurrency: READ_CONCURRENCY }).pipe(
      Effect.map((states) => states.filter((pid): pid is number => pid !== undefined))
    )
  return { read, alive }
})

/** Whether a read failed because the process is gone (the only failure that may be skipped). */
const vanished = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && (error.code === "ENOENT" || error.code === "ESRCH")

/**
 * The pids that belong to `root`: its process group, its session, and every descendant of any of
 * those (children are found through their parent pid, so helpers that called `setsid` are kept).
 * `root` itself is included when alive.
 */
export const treeOf = (table: ReadonlyArray<ProcessEntry>, root: number): ReadonlyArray<number> => {
  const children = new Map<number, Array<number>>()
  for (const entry of table) {
    const siblings = children.get(entry.ppid)
    if (siblings === undefined) children.set(entry.ppid, [entry.pid])
    else siblings.push(entry.pid)
  }
  const found = new Set<number>()
  const pending = table
    .filter((entry) => entry.pid === root || entry.pgid === root || entry.sid === root)
    .map((entry) => entry.pid)
  while (pending.length > 0) {
    const pid = pending.pop()
    if (pid === undefined || found.has(pid)) continue
    found.add(pid)
    for (const child of children.get(pid) ?? []) pending.push(child)
  }
  return [...found]
}

/** Sends `signal` to each pid, ignoring processes that are already gone. */
export const signalAll = (pids: ReadonlyArray<number>, signal: NodeJS.Signals): void => {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // Already gone (ESRCH) or not ours (EPERM): nothing more we can do for that pid.
    }
  }
}

// `/proc/<pid>/stat` is "pid (comm) state ppid pgrp session …"; comm may contain spaces and
// parentheses, so fields are counted from the last ")".
const parseStat = (stat: string): ProcessEntry | undefined => {
  const close = stat.lastIndexOf(")")
  if (close < 0) return undefined
  const fields = stat.slice(close + 2).split(" ")
  const pid = Number.parseInt(stat, 10)
  const [ppid, pgid, sid] = [fields[1], fields[2], fields[3]].map((field) => Number(field))
  if (ppid === undefined || pgid === undefined || sid === undefined) return undefined
  if (![pid, ppid, pgid, sid].every(Number.isInteger)) return undefined
  return { pid, ppid, pgid, sid }
}
