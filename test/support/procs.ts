/**
 * Facts about a local process that tests check by pid: whether it still runs, and the start time
 * the kernel gives it (field 22 of /proc/<pid>/stat), which a pid record pairs with the pid.
 */
import { readFileSync } from "node:fs"

/** Whether a process with this pid exists (signal 0 probes without signalling). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The process's start time in clock ticks since boot, as /proc/<pid>/stat reports it. */
export const startTimeOf = (pid: number): string => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? ""
}
