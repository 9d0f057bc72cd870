/**
 * Finds live processes whose command line or environment mentions a string (a task's workdir), or
 * that run in it: the check behind "no orphan process".
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs"

// codex runs in the workdir, which (since its PATH holds nothing of the workdir) may be all that
// ties it and its tools to a task.
const cwdOf = (pid: string) => {
  try {
    return readlinkSync(`/proc/${pid}/cwd`)
  } catch {
    return ""
  }
}

/** Pids (other than this process) whose cmdline or environ contains `needle`, or whose cwd is under it. */
export const processesMentioning = (needle: string): ReadonlyArray<{ readonly pid: number; readonly cmdline: string }> => {
  const found: Array<{ pid: number; cmdline: string }> = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1")
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ")
      const environ = readFileSync(`/proc/${name}/environ`, "utf8")
      if (cmdline.includes(needle) || environ.includes(needle) || cwdOf(name).startsWith(needle)) found.push({ pid: Number(name), cmdline })
    } catch {
      // The process ended while we looked, or is not ours to read.
    }
  }
  return found
}
