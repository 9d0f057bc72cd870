/**
 * Doctor: checks whether a host can run codex tasks — reachable with a trusted key, tmux present,
 * a supported architecture, room in the binary cache, and a working codex sandbox (bubblewrap or
 * user namespaces). One result per check; nothing is changed on the host.
 *
 * It also lists what tasks keep running on the host (`leftovers`): every private task dir
 * (`<task root>/run/<id>`, explicit workdirs included) whose `pids.json` (see `session/Leftovers`)
 * names a process still alive, and every tmux socket there whose server answers (plus the
 * `/tmp/optio-cx-*.sock` sockets of older versions). Doctor cannot tell a task that is running
 * right now from the leftovers of one whose worker died, so this is information, never a failure,
 * and doctor never kills anything: starting the task again (same process id) reaps its leftovers.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Option } from "effect"
import { Host } from "../host/Host.ts"
import type { HostShape } from "../host/Host.ts"
import { decodePidsFile, startTimeOf } from "../session/Leftovers.ts"
import { taskRootOn } from "../workdir/TaskPaths.ts"

/**
 * One check's outcome.
 * @category models
 */
export interface DoctorCheck {
  readonly check: string
  readonly ok: boolean
  readonly detail: string
}

// The binary cache needs room for one codex install (~410 MB) plus a staging copy.
const REQUIRED_CACHE_KIB = 1024 * 1024

/**
 * Runs every check on the current host.
 * @category constructors
 */
export const doctorChecks = Effect.gen(function*() {
  const host = yield* Host
  const sh = (script: string) =>
    host.run({ argv: ["sh", "-c", script] }).pipe(
      Effect.map((result) => ({ ok: result.exitCode === 0, output: `${result.stdout}${result.stderr}`.trim() })),
      Effect.catch((error) => Effect.succeed({ ok: false, output: error.message }))
    )
  const checks: Array<DoctorCheck> = [{ check: "reachable", ok: true, detail: `${host.label} answers, host key trusted` }]

  const tmux = yield* sh("command -v tmux >/dev/null && tmux -V")
  checks.push({ check: "tmux", ok: tmux.ok, detail: tmux.ok ? tmux.output : "tmux is not installed (needed for TUI mode)" })

  const uname = yield* sh("uname -sm")
  const supported = /^Linux (x86_64|aarch64|arm64)$/.test(uname.output)
  checks.push({ check: "architecture", ok: supported, detail: supported ? uname.output : `${uname.output || "unknown"}: only Linux x86_64/aarch64` })

  const disk = yield* sh(
    "d=\"${OPTIO_CODEX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/optio-codex/bin}\"; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; df -Pk \"$d\" | awk 'NR==2 {print $4, $6}'"
  )
  const [available = "0", mount = "?"] = disk.output.split(/\s+/)
  const roomy = disk.ok && Number(available) >= REQUIRED_CACHE_KIB
  checks.push({
    check: "cache disk space",
    ok: roomy,
    detail: `${Math.round(Number(available) / 1024)} MiB free on ${mount} (need ${REQUIRED_CACHE_KIB / 1024} MiB)`
  })

  const sandbox = yield* sh(
    "if command -v bwrap >/dev/null; then bwrap --ro-bind / / --dev /dev --proc /proc --unshare-user --unshare-net true && echo bubblewrap works; " +
      "elif command -v unshare >/dev/null; then unshare -U -n true && echo user namespaces work; else echo neither bwrap nor unshare found; exit 1; fi"
  )
  checks.push({
    check: "codex sandbox",
    ok: sandbox.ok,
    detail: sandbox.ok ? sandbox.output : `sandboxed commands would fail: ${sandbox.output || "no user namespaces"}`
  })

  const leftovers = yield* findLeftovers.pipe(Effect.result)
  checks.push(
    leftovers._tag === "Success"
      ? { check: "leftovers", ok: true, detail: describeLeftovers(leftovers.success) }
      : { check: "leftovers", ok: false, detail: `could not look for leftover task processes: ${leftovers.failure.message}` }
  )
  return checks
})

/**
 * A recorded process of a task and whether it still runs. `reused`: the pid is alive but its
 * start time differs from the recorded one, so it is some other process now.
 * @category models
 * @since 0.1.0
 */
export interface LeftoverProcess {
  readonly role: string
  readonly pid: number
  readonly state: "alive" | "gone" | "reused"
}

/**
 * A tmux socket and whether a server answers on it.
 * @category models
 * @since 0.1.0
 */
export interface LeftoverSocket {
  readonly path: string
  readonly serverAlive: boolean
}

/**
 * A task dir with a `pids.json` naming something still alive, or a live tmux server no task dir
 * records (`processId` null).
 * @category models
 * @since 0.1.0
 */
export interface Leftover {
  readonly processId: string | null
  readonly taskdir: string | null
  /** The host label the file was recorded on (processes of another host are not checked). */
  readonly recordedOn: string | null
  readonly processes: ReadonlyArray<LeftoverProcess>
  readonly tmuxSocket: LeftoverSocket | null
}

/**
 * What tasks left running on the current host (see the module docs). Read-only.
 * @category constructors
 * @since 0.1.0
 */
export const findLeftovers = Effect.gen(function*() {
  const host = yield* Host
  const root = yield* taskRootOn(host)
  const runDir = `${root}/run`
  const ids = (yield* host.exists(runDir)) ? yield* host.readDirectory(runDir) : []
  const found: Array<Leftover> = []
  const recordedSockets = new Set<string>()
  for (const id of [...ids].sort()) {
    const taskdir = `${runDir}/${id}`
    const file = `${taskdir}/pids.json`
    if (!(yield* host.exists(file))) continue
    const text = yield* host.readFile(file).pipe(Effect.map((bytes) => new TextDecoder().decode(bytes)), Effect.orElseSucceed(() => ""))
    const recorded = decodePidsFile(text.trim())
    if (Option.isNone(recorded)) continue
    const pids = recorded.value
    const name = pids.processId ?? id
    if (pids.tmuxSocket !== undefined) recordedSockets.add(pids.tmuxSocket)
    if (pids.host !== host.label) {
      found.push({ processId: name, taskdir, recordedOn: pids.host, processes: [], tmuxSocket: null })
      continue
    }
    const processes = yield* Effect.forEach(pids.processes, (entry) =>
      processState(host, entry.pid, entry.startTime).pipe(Effect.map((state): LeftoverProcess => ({ role: entry.role, pid: entry.pid, state }))))
    const tmuxSocket = pids.tmuxSocket === undefined || !(yield* host.exists(pids.tmuxSocket))
      ? null
      : { path: pids.tmuxSocket, serverAlive: yield* tmuxServerAlive(host, pids.tmuxSocket) }
    if (processes.some((entry) => entry.state === "alive") || tmuxSocket?.serverAlive === true) {
      found.push({ processId: name, taskdir, recordedOn: pids.host, processes, tmuxSocket })
    }
  }
  const sockets = [
    ...(yield* host.glob("*/tmux.sock", runDir).pipe(Effect.orElseSucceed((): ReadonlyArray<string> => []))),
    ...(yield* host.glob("optio-cx-*.sock", "/tmp").pipe(Effect.orElseSucceed((): ReadonlyArray<string> => [])))
  ]
  for (const path of sockets) {
    if (recordedSockets.has(path)) continue
    if (yield* tmuxServerAlive(host, path)) {
      found.push({ processId: null, taskdir: null, recordedOn: null, processes: [], tmuxSocket: { path, serverAlive: true } })
    }
  }
  return found as ReadonlyArray<Leftover>
})

/**
 * The `leftovers` check's text: one line per task, with how to reap.
 * @category constructors
 * @since 0.1.0
 */
export const describeLeftovers = (leftovers: ReadonlyArray<Leftover>): string => {
  if (leftovers.length === 0) return "no task processes left running on this host"
  const lines = leftovers.map((entry) => {
    if (entry.processId === null) {
      return `  tmux socket ${entry.tmuxSocket?.path ?? "?"}: server alive, recorded by no task dir ` +
        `(kill it with: tmux -S ${entry.tmuxSocket?.path ?? "?"} kill-server)`
    }
    if (entry.recordedOn !== null && entry.processes.length === 0 && entry.tmuxSocket === null) {
      return `  task ${entry.processId} (${entry.taskdir ?? "?"}): recorded on ${entry.recordedOn}, not checked from here`
    }
    const processes = entry.processes.map((p) => `${p.role} pid ${p.pid} ${p.state === "reused" ? "gone (pid reused)" : p.state}`)
    const socket = entry.tmuxSocket === null
      ? []
      : [`tmux socket ${entry.tmuxSocket.path} (server ${entry.tmuxSocket.serverAlive ? "alive" : "gone"})`]
    return `  task ${entry.processId} (${entry.taskdir ?? "?"}): ${[...processes, ...socket].join(", ")}` +
      ` — running now, or left by a worker that died; to reap, start task ${entry.processId} again`
  })
  return [`${leftovers.length} task(s) with live processes (doctor changes nothing):`, ...lines].join("\n")
}


const PROBE_BOUND = Duration.seconds(5)

// Alive, and the same process that was recorded (its start time must match).
const processState = (host: HostShape, pid: number, recordedStart: string) =>
  Effect.gen(function*() {
    if (!(yield* host.isAlive(pid))) return "gone" as const
    if (recordedStart === "") return "alive" as const
    return (yield* startTimeOf(host, pid)) === recordedStart ? "alive" as const : "reused" as const
  }).pipe(Effect.timeoutOption(PROBE_BOUND), Effect.map(Option.getOrElse(() => "gone" as const)), Effect.orElseSucceed(() => "gone" as const))

const tmuxServerAlive = (host: HostShape, socket: string) =>
  host.run({ argv: ["tmux", "-S", socket, "list-sessions"], envRemove: ["TMUX", "TMUX_PANE"] }).pipe(
    Effect.timeoutOption(PROBE_BOUND),
    Effect.map((result) => Option.isSome(result) && result.value.exitCode === 0),
    Effect.orElseSucceed(() => false)
  )
