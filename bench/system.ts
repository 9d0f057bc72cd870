/**
 * What the benchmarks need from the machine: the work tree (a tmpfs when it can be mounted, so
 * file creation is not slowed by earlier mass deletes; otherwise a fresh directory on disk that
 * is only deleted after the run), the machine description, and /proc readings (which processes
 * belong to a task, proportional memory, which binary file a process runs).
 */
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { cpus, loadavg, release, totalmem } from "node:os"
import { join } from "node:path"

/** Where this run's work trees live. */
export interface Workspace {
  readonly root: string
  readonly filesystem: "tmpfs" | "disk"
  /** A new, empty directory under the root. */
  readonly fresh: (name: string) => string
}

/**
 * Creates the run's work root under `benchDir`, mounted as a tmpfs when possible. Released at the
 * end of the scope: unmounted, or deleted (the only mass delete, after every measurement).
 */
export const workspace = (benchDir: string) =>
  Effect.acquireRelease(
    Effect.sync((): Workspace => {
      const root = join(benchDir, `run-${process.pid}`)
      mkdirSync(root, { recursive: true })
      let filesystem: Workspace["filesystem"] = "disk"
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=8g,mode=0755", "tmpfs", root], { stdio: "ignore" })
        filesystem = "tmpfs"
      } catch {
        // Not root, or no mount(8): the disk it is, with nothing deleted before the end.
      }
      let counter = 0
      const fresh = (name: string) => {
        const dir = join(root, `${name}-${++counter}`)
        mkdirSync(dir, { recursive: true })
        return dir
      }
      return { root, filesystem, fresh }
    }),
    (space) =>
      Effect.sync(() => {
        if (space.filesystem === "tmpfs") {
          try {
            execFileSync("umount", ["--lazy", space.root], { stdio: "ignore" })
          } catch {
            // Leave it; the directory is removed below either way.
          }
        }
        rmSync(space.root, { recursive: true, force: true })
      })
  )

/** The machine a run was measured on. */
export const machine = (codexBinary: string, filesystem: Workspace["filesystem"]) => {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8")
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown"
  return {
    cpu: model.trim(),
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    codex: execFileSync(codexBinary, ["--version"], { encoding: "utf8" }).trim(),
    workTree: filesystem,
    date: new Date().toISOString(),
    /** 1-minute load average when the run started (other work on the machine skews timings). */
    loadAtStart: Number(loadavg()[0]?.toFixed(2))
  }
}

/** A live process as seen in /proc. */
export interface ProcessSeen {
  readonly pid: number
  readonly cmdline: string
}

/** Live, non-zombie processes (other than this one) whose cmdline or environ contains a needle. */
export const processesMentioning = (needles: ReadonlyArray<string>): ReadonlyArray<ProcessSeen> => {
  const found: Array<ProcessSeen> = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      // Kernel threads have an empty cmdline (and environ): skipped without further reads.
      const raw = readFileSync(`/proc/${name}/cmdline`, "utf8")
      if (raw === "") continue
      const cmdline = raw.split("\0").join(" ")
      const mentions = (text: string) => needles.some((needle) => text.includes(needle))
      if (!mentions(cmdline) && !mentions(readFileSync(`/proc/${name}/environ`, "utf8"))) continue
      const stat = readFileSync(`/proc/${name}/stat`, "latin1")
      if (!stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) found.push({ pid: Number(name), cmdline })
    } catch {
      // Gone while we looked.
    }
  }
  return found
}

/** SIGKILLs each pid, ignoring the ones already gone. */
export const killAll = (pids: ReadonlyArray<number>): void => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // Already gone.
    }
  }
}

/** Proportional set size of a process in MiB (`Pss` of /proc/<pid>/smaps_rollup). */
export const pssMiB = (pid: number): number => {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8")
  const kib = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? Number.NaN)
  return kib / 1024
}

/** `dev:inode` of the file a process executes. */
export const exeIdentity = (pid: number): string => {
  const info = statSync(`/proc/${pid}/exe`)
  return `${info.dev}:${info.ino}`
}

/** The 1-minute load average now. */
export const loadNow = (): number => Number(loadavg()[0]?.toFixed(2))
