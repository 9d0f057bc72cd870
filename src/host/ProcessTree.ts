/**
 * ProcessTree: finds every process that belongs to a spawned task process on Linux, by walking
 * `/proc`. A process-group kill is not enough for codex: it starts helpers in sessions of their
 * own (a login-shell snapshot, sandbox wrappers), which leave the group but stay descendants.
 *
 * @since 0.1.0
 */
import { readdir, readFile } from "node:fs/promises"

/** One row of the process table. */
export interface ProcessEntry {
  readonly pid: number
  readonly ppid: number
  readonly pgid: number
  readonly sid: number
}

/**
 * How many `/proc/<pid>/stat` files the whole worker has open at once, however many tree reads
 * run together. Opening all of them at once (100 terminal viewers closing together: 100 tables
 * of hundreds of files) exhausted the worker's descriptors, and the failed reads made processes
 * look gone, so a teardown missed them.
 */
const READ_CONCURRENCY = 16

/** A worker-wide permit count for `/proc` reads (a plain semaphore: this module is Promise-based). */
const permits = { free: READ_CONCURRENCY, waiting: new Array<() => void>() }

const withPermit = async <A>(f: () => Promise<A>): Promise<A> => {
  if (permits.free > 0) permits.free -= 1
  else await new Promise<void>((resolve) => permits.waiting.push(resolve))
  try {
    return await f()
  } finally {
    const next = permits.waiting.shift()
    if (next === undefined) permits.free += 1
    else next()
  }
}

/** Whether a read failed because the process is gone (the only failure that may be skipped). */
const vanished = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && (error.code === "ENOENT" || error.code === "ESRCH")

/** Maps `items` with at most `limit` calls in flight, in order. */
const mapBounded = async <A, B>(items: ReadonlyArray<A>, limit: number, f: (item: A) => Promise<B>): Promise<Array<B>> => {
  const results = new Array<B>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await f(items[index] as A)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

/**
 * Reads the process table; processes that vanish mid-walk are skipped. Any other failure (out of
 * descriptors, say) rejects: a table with holes would hide processes from a kill.
 */
export const readProcessTable = async (): Promise<ReadonlyArray<ProcessEntry>> => {
  const names = await readdir("/proc")
  const rows = await mapBounded(names.filter((name) => /^\d+$/.test(name)), READ_CONCURRENCY, async (name) => {
    try {
      return parseStat(await withPermit(() => readFile(`/proc/${name}/stat`, "latin1")))
    } catch (error) {
      if (vanished(error)) return undefined
      throw error
    }
  })
  return rows.filter((row): row is ProcessEntry => row !== undefined)
}

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

/**
 * The pids of `pids` that are still alive (zombies count as gone). A pid whose state cannot be
 * read for another reason than being gone rejects rather than being reported dead.
 */
export const alivePids = async (pids: ReadonlyArray<number>): Promise<ReadonlyArray<number>> => {
  const states = await mapBounded(pids, READ_CONCURRENCY, async (pid) => {
    try {
      const stat = await withPermit(() => readFile(`/proc/${pid}/stat`, "latin1"))
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
      return state === "Z" || state === "X" ? undefined : pid
    } catch (error) {
      if (vanished(error)) return undefined
      throw error
    }
  })
  return states.filter((pid): pid is number => pid !== undefined)
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
