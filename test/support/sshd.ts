/**
 * A private OpenSSH server on 127.0.0.1 for RemoteHost tests: generated ed25519 host and client
 * keys, root login by key only, SFTP, started as a scoped resource and stopped (master and every
 * connection child) when the scope closes. Also finds and kills the sshd processes that serve one
 * client connection, to simulate a dropped connection.
 */
import { Effect, Exit, Layer, Scope } from "effect"
import { execFile } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll } from "vitest"
import * as RemoteHost from "../../src/host/RemoteHost.ts"

const exec = promisify(execFile)

/** What a test needs to reach the private sshd. */
export interface Sshd {
  readonly port: number
  /** The master sshd's pid (from its PidFile). */
  readonly pid: number
  readonly dir: string
  /** `SHA256:…` of the server's host key. */
  readonly hostKeyFingerprint: string
  /** A known_hosts line (`[127.0.0.1]:PORT ssh-ed25519 …`) for the server's host key. */
  readonly knownHostsLine: string
  /** A known_hosts line for the same host with a different ed25519 key (a "changed" key). */
  readonly otherKnownHostsLine: string
  /** The client's private key (authorized for root). */
  readonly clientKeyPath: string
}

const SSHD = "/usr/sbin/sshd"

/** Starts a private sshd; it is stopped when the scope closes. */
export const startSshd = (root: string, extraConfig: ReadonlyArray<string> = []): Effect.Effect<Sshd, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => start(root, extraConfig), catch: (error) => error instanceof Error ? error : new Error(String(error)) }),
    (sshd) => Effect.promise(() => stop(sshd))
  )

const start = async (root: string, extraConfig: ReadonlyArray<string>): Promise<Sshd> => {
  const dir = join(root, `sshd-${process.pid}-${randomBytes(3).toString("hex")}`)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  mkdirSync("/run/sshd", { recursive: true })
  const keygen = (name: string) => exec("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", join(dir, name)])
  await Promise.all([keygen("host_ed25519"), keygen("client_ed25519"), keygen("other_ed25519")])
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client_ed25519.pub")), { mode: 0o600 })
  const port = await freePort()
  const config = [
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${join(dir, "host_ed25519")}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "PermitRootLogin prohibit-password",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "StrictModes no",
    "AllowTcpForwarding yes",
    "AllowStreamLocalForwarding yes",
    "MaxSessions 30",
    "MaxStartups 50",
    "Subsystem sftp internal-sftp",
    ...extraConfig,
    ""
  ].join("\n")
  writeFileSync(join(dir, "sshd_config"), config)
  await exec(SSHD, ["-f", join(dir, "sshd_config"), "-E", join(dir, "sshd.log")])
  await waitFor("sshd accepts connections", () => accepts(port))
  const pid = await waitFor("sshd pid file", async () => {
    try {
      return Number(readFileSync(join(dir, "sshd.pid"), "utf8").trim()) || undefined
    } catch {
      return undefined
    }
  })
  const hostPub = readFileSync(join(dir, "host_ed25519.pub"), "utf8").trim().split(" ")
  const otherPub = readFileSync(join(dir, "other_ed25519.pub"), "utf8").trim().split(" ")
  const blob = Buffer.from(hostPub[1] ?? "", "base64")
  return {
    port,
    pid,
    dir,
    hostKeyFingerprint: `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`,
    knownHostsLine: `[127.0.0.1]:${port} ${hostPub[0]} ${hostPub[1]}`,
    otherKnownHostsLine: `[127.0.0.1]:${port} ${otherPub[0]} ${otherPub[1]}`,
    clientKeyPath: join(dir, "client_ed25519")
  }
}

const stop = async (sshd: Sshd): Promise<void> => {
  const doomed = [sshd.pid, ...descendantsOf(sshd.pid).filter((pid) => isSshd(pid))]
  for (const pid of doomed) signal(pid, "SIGKILL")
  await waitFor("sshd gone", async () => doomed.every((pid) => !alive(pid)) ? true : undefined)
  rmSync(sshd.dir, { recursive: true, force: true })
}

/**
 * Kills (SIGKILL) or freezes (SIGSTOP) the sshd processes that hold the TCP connection whose
 * client side uses `clientPort`; the remote commands of that connection are left running.
 * Returns the pids signalled.
 */
export const signalSshdServing = (sshd: Sshd, clientPort: number, sig: "SIGKILL" | "SIGSTOP"): ReadonlyArray<number> => {
  const inodes = socketInodes(sshd.port, clientPort)
  const pids = descendantsOf(sshd.pid).filter((pid) => isSshd(pid) && holdsSocket(pid, inodes))
  for (const pid of pids) signal(pid, sig)
  return pids
}

/** The sshd processes (besides the master) currently serving connections. */
export const sshdConnectionProcesses = (sshd: Sshd): ReadonlyArray<number> =>
  descendantsOf(sshd.pid).filter((pid) => isSshd(pid))

// --- /proc helpers ---------------------------------------------------------------------------

const statOf = (pid: number): { ppid: number; state: string } | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return { state: fields[0] ?? "", ppid: Number(fields[1]) }
  } catch {
    return undefined
  }
}

const alive = (pid: number) => {
  const state = statOf(pid)?.state
  return state !== undefined && state !== "Z" && state !== "X"
}

const descendantsOf = (root: number): ReadonlyArray<number> => {
  const parent = new Map<number, number>()
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    const stat = statOf(Number(name))
    if (stat !== undefined) parent.set(Number(name), stat.ppid)
  }
  const found: Array<number> = []
  const pending = [root]
  while (pending.length > 0) {
    const pid = pending.pop()
    for (const [child, ppid] of parent) {
      if (ppid === pid && !found.includes(child)) {
        found.push(child)
        pending.push(child)
      }
    }
  }
  return found
}

const isSshd = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("sshd")
  } catch {
    return false
  }
}

const socketInodes = (serverPort: number, clientPort: number): ReadonlySet<string> => {
  const inodes = new Set<string>()
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = ""
    try {
      text = readFileSync(table, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      const local = Number.parseInt(fields[1]?.split(":")[1] ?? "", 16)
      const remote = Number.parseInt(fields[2]?.split(":")[1] ?? "", 16)
      if (local === serverPort && remote === clientPort && fields[9] !== undefined) inodes.add(fields[9])
    }
  }
  return inodes
}

const holdsSocket = (pid: number, inodes: ReadonlySet<string>) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`)
        return inodes.has(target.replace(/^socket:\[(\d+)\]$/, "$1"))
      } catch {
        return false
      }
    })
  } catch {
    return false
  }
}

const signal = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const accepts = (port: number) =>
  new Promise<true | undefined>((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(undefined))
  })

const waitFor = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs = 10_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * One private sshd for a whole test file: started before its tests (its host key written to
 * `knownHostsFile`), stopped after them. Returns a getter for the running server.
 */
export const sshdForSuite = (knownHostsFile: string, extraConfig: ReadonlyArray<string> = []): (() => Sshd) => {
  let server: { readonly sshd: Sshd; readonly scope: Scope.Closeable } | undefined
  beforeAll(async () => {
    const scope = await Effect.runPromise(Scope.make())
    const sshd = await Effect.runPromise(startSshd(join(process.cwd(), ".cache", "test"), extraConfig).pipe(Scope.provide(scope)))
    mkdirSync(join(knownHostsFile, ".."), { recursive: true })
    writeFileSync(knownHostsFile, `${sshd.knownHostsLine}\n`)
    server = { sshd, scope }
  }, 60_000)
  afterAll(async () => {
    if (server !== undefined) await Effect.runPromise(Scope.close(server.scope, Exit.void))
  })
  return () => {
    if (server === undefined) throw new Error("sshd not started")
    return server.sshd
  }
}

/** RemoteHost on the suite's sshd (root on 127.0.0.1), its host keys in `knownHostsFile`. */
export const suiteRemoteHost = (sshd: () => Sshd, knownHostsFile: string) =>
  Layer.unwrap(Effect.sync(() =>
    RemoteHost.layer({ host: "127.0.0.1", port: sshd().port, user: "root", identityFile: sshd().clientKeyPath, knownHostsFile })
  ))
