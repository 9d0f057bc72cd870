/**
 * RemoteHost against a private sshd on 127.0.0.1 (root, key auth): the Host contract unchanged,
 * plus host key verification, shared connections, hostile inputs and dropped connections. The
 * "remote" is this machine, so remote processes are checked through /proc.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Logger, Redacted, Scope, Stream } from "effect"
import { createHmac, randomBytes } from "node:crypto"
import { execFileSync, spawn } from "node:child_process"
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { makeDownloadReader } from "../../src/conversation/Downloads.ts"
import { Host, HostError } from "../../src/host/Host.ts"
import * as RemoteHost from "../../src/host/RemoteHost.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { signalSshdServing, sshdConnectionProcesses, sshdForSuite, startSshd } from "../support/sshd.ts"
import type { Sshd } from "../support/sshd.ts"
import { symlinkSwapper } from "../support/symlinkSwapper.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { hostContract } from "./HostContract.ts"

const root = join(process.cwd(), ".cache", "test", `remote-host-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })

afterAll(() => rmSync(root, { recursive: true, force: true }))
const sshd = sshdForSuite(join(root, "known_hosts"))

const options = (overrides: Partial<RemoteHost.RemoteHostOptions> = {}): RemoteHost.RemoteHostOptions => ({
  host: "127.0.0.1",
  port: sshd().port,
  user: "root",
  identityFile: sshd().clientKeyPath,
  knownHostsFile: join(root, "known_hosts"),
  ...overrides
})

/** A RemoteHost layer whose options are read when it is built (after the sshd started). */
const remote = (overrides: () => Partial<RemoteHost.RemoteHostOptions> = () => ({})) =>
  Layer.unwrap(Effect.sync(() => RemoteHost.layer(options(overrides()))))

hostContract("RemoteHost", remote(), () => root)

/** Each test has a connection pool of its own, shared by the hosts it builds, closed after it. */
const live = <A, E>(title: string, body: () => Effect.Effect<A, E, Scope.Scope | RemoteHost.SshPool>, timeout?: number) =>
  it.live(title, () => Effect.scoped(body()).pipe(Effect.provide(Layer.fresh(RemoteHost.SshPool.layer))), timeout)

/** The open connections of the test's pool. */
const connections = Effect.flatMap(RemoteHost.SshPool, (pool) => pool.connections)

/** Builds a host on the test's pool in `scope` (closed by the caller), so a test can hold several at once. */
const hostIn = (scope: Scope.Scope, overrides: Partial<RemoteHost.RemoteHostOptions> = {}) => buildHost(scope, options(overrides))

const buildHost = (scope: Scope.Scope, hostOptions: RemoteHost.RemoteHostOptions) =>
  Layer.buildWithScope(RemoteHost.layerShared(hostOptions), scope).pipe(Effect.map((context) => Context.get(context, Host)))

/** Options for `localhost` (a connection of its own) trusted by the pinned fingerprint. */
const pinnedLocalhost = (auth: { readonly identityFile: string; readonly passphrase: Redacted.Redacted<string> } | { readonly agent: string }): RemoteHost.RemoteHostOptions => ({
  host: "localhost",
  port: sshd().port,
  user: "root",
  hostKeyFingerprint: sshd().hostKeyFingerprint,
  ...auth
})

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** Whether a local pid is alive (zombies are not). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

/** Kills a local process group (test cleanup only). */
const killGroup = (pid: number) => {
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    // already gone
  }
}

/** A scope closed by the caller, and in any case when the test ends. */
const closeable = Effect.gen(function*() {
  const scope = yield* Scope.make()
  yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
  return scope
})

const readPids = (host: Host["Service"], file: string, count: number) =>
  waitUntil(`${count} pids in ${file}`, host.readFile(file).pipe(
    Effect.map((bytes) => decode(bytes).trim().split("\n").filter((line) => line !== "").map(Number)),
    Effect.map((pids) => pids.length >= count ? pids : undefined),
    Effect.orElseSucceed(() => undefined)
  ))

describe("RemoteHost", () => {
  live("hostile env values, cwd and envRemove globs are passed through and never executed", () =>
    Effect.gen(function*() {
      const host = yield* hostIn(yield* Effect.scope)
      const canary = join(root, "canary")
      const hostile = [
        `it's "quoted" $(touch ${canary}) \`touch ${canary}\``,
        `line\nbreak; touch ${canary}`,
        "$HOME ${PATH} \\ \t end",
        "ünïcödé ✓"
      ]
      const dir = join(root, `we'ird $(touch ${canary}) \`touch ${canary}\` ; dir\nnext`)
      yield* host.makeDirectory(dir)
      for (const value of hostile) {
        const result = yield* host.run({
          argv: ["sh", "-c", "printf '%s|%s' \"$OPTIO_X\" \"$(pwd)\""],
          cwd: dir,
          env: { OPTIO_X: value },
          envRemove: [`$(touch ${canary})*`, `\`touch ${canary}\``, "X*;touch", "[!A]*)"]
        })
        assert.strictEqual(result.exitCode, 0, result.stderr)
        assert.strictEqual(result.stdout, `${value}|${dir}`)
      }
      const proc = yield* host.spawn({ argv: ["sh", "-c", "printf '%s' \"$OPTIO_X\""], cwd: dir, env: { OPTIO_X: hostile[0] ?? "" } })
      assert.strictEqual(decode(Buffer.concat(yield* Stream.runCollect(proc.stdout))), hostile[0])
      assert.isFalse(existsSync(canary), "a hostile value was executed")
      for (const command of [
        { argv: ["echo", "a\u0000b"] as const },
        { argv: ["echo"] as const, env: { A: "x\u0000" } },
        { argv: ["echo"] as const, cwd: "/tmp\u0000x" },
        { argv: ["echo"] as const, env: { "A;touch": "x" } }
      ]) {
        const error = yield* Effect.flip(host.run(command))
        assert.strictEqual(error.reason, "BadArgument")
      }
      const missingCwd = yield* Effect.flip(host.run({ argv: ["true"], cwd: join(root, "no such dir") }))
      assert.strictEqual(missingCwd.reason, "NotFound")
    }))

  live("an unknown host key is a typed error and nothing runs", () =>
    Effect.gen(function*() {
      const marker = join(root, "unknown-key-marker")
      const error = yield* Effect.flip(
        Host.use((host) => host.run({ argv: ["touch", marker] })).pipe(
          Effect.provide(RemoteHost.layerShared(options({ knownHostsFile: join(root, "empty_known_hosts") })))
        )
      )
      assert.instanceOf(error, RemoteHost.HostKeyUnknown)
      assert.strictEqual(error.fingerprint, sshd().hostKeyFingerprint)
      assert.strictEqual(error.host, `[127.0.0.1]:${sshd().port}`)
      assert.isFalse(existsSync(marker))
      assert.deepStrictEqual((yield* connections), [])
    }))

  live("a changed host key (known_hosts or pinned fingerprint) is a typed error", () =>
    Effect.gen(function*() {
      const changedFile = join(root, "changed_known_hosts")
      writeFileSync(changedFile, `# other key for the same host\n${sshd().otherKnownHostsLine}\n`)
      const viaFile = yield* Effect.flip(hostIn(yield* Effect.scope, { knownHostsFile: changedFile }))
      assert.instanceOf(viaFile, RemoteHost.HostKeyChanged)
      assert.strictEqual(viaFile.fingerprint, sshd().hostKeyFingerprint)
      assert.strictEqual(viaFile.source, "known_hosts")
      assert.lengthOf(viaFile.expected, 1)
      assert.notStrictEqual(viaFile.expected[0], sshd().hostKeyFingerprint)
      // accept-new still refuses a changed key, and does not touch the file.
      const acceptNew = yield* Effect.flip(hostIn(yield* Effect.scope, { knownHostsFile: changedFile, hostKeyPolicy: "accept-new" }))
      assert.instanceOf(acceptNew, RemoteHost.HostKeyChanged)
      assert.lengthOf(readFileSync(changedFile, "utf8").trim().split("\n"), 2)
      const pinned = yield* Effect.flip(hostIn(yield* Effect.scope, { hostKeyFingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }))
      assert.instanceOf(pinned, RemoteHost.HostKeyChanged)
      assert.strictEqual(pinned.source, "fingerprint")
    }))

  live("a pinned fingerprint or a hashed known_hosts entry is trusted", () =>
    Effect.gen(function*() {
      const pinned = yield* hostIn(yield* Effect.scope, { knownHostsFile: join(root, "empty_known_hosts"), hostKeyFingerprint: sshd().hostKeyFingerprint })
      assert.strictEqual((yield* pinned.run({ argv: ["echo", "pinned"] })).stdout, "pinned\n")
      const hashedFile = join(root, "hashed_known_hosts")
      writeFileSync(hashedFile, `${hashedLine(`[127.0.0.1]:${sshd().port}`, sshd().knownHostsLine)}\n`)
      const scope = yield* closeable
      // A second layer joining the shared connection is checked against its own policy too.
      const hashed = yield* hostIn(scope, { knownHostsFile: hashedFile })
      assert.strictEqual((yield* hashed.run({ argv: ["echo", "hashed"] })).stdout, "hashed\n")
      yield* Scope.close(scope, Exit.void)
      const joining = yield* Effect.flip(hostIn(yield* Effect.scope, { knownHostsFile: join(root, "empty_known_hosts") }))
      assert.instanceOf(joining, RemoteHost.HostKeyUnknown)
    }))

  live("authenticates with a passphrase-protected key (Redacted) or through an ssh-agent", () =>
    Effect.gen(function*() {
      const key = join(root, "encrypted_ed25519")
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "s3cret phrase", "-f", key])
      appendFileSync(join(sshd().dir, "authorized_keys"), readFileSync(`${key}.pub`))
      const unlocked = yield* hostIn(yield* Effect.scope, { identityFile: key, passphrase: Redacted.make("s3cret phrase") })
      assert.strictEqual((yield* unlocked.run({ argv: ["echo", "unlocked"] })).stdout, "unlocked\n")
      // A wrong passphrase is a typed failure that does not echo the secret (own user@host key).
      const wrong = yield* Effect.flip(buildHost(yield* Effect.scope, pinnedLocalhost({ identityFile: key, passphrase: Redacted.make("wrong phrase") })))
      assert.strictEqual(wrong._tag, "HostError")
      assert.notInclude(wrong.message, "wrong phrase")
      const socket = join(root, "agent.sock")
      const agent = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" })
      yield* Effect.addFinalizer(() => Effect.sync(() => agent.kill("SIGKILL")))
      yield* waitUntil("ssh-agent listens", Effect.sync(() => existsSync(socket) ? true : undefined))
      execFileSync("ssh-add", ["-q", sshd().clientKeyPath], { env: { SSH_AUTH_SOCK: socket }, stdio: "ignore" })
      const viaAgent = yield* buildHost(yield* Effect.scope, pinnedLocalhost({ agent: socket }))
      assert.strictEqual((yield* viaAgent.run({ argv: ["echo", "agent"] })).stdout, "agent\n")
    }))

  live("accept-new records the key once, like OpenSSH", () =>
    Effect.gen(function*() {
      const file = join(root, "accept_new_known_hosts")
      for (let i = 0; i < 2; i++) {
        const scope = yield* closeable
        const host = yield* hostIn(scope, { knownHostsFile: file, hostKeyPolicy: "accept-new" })
        assert.strictEqual((yield* host.run({ argv: ["echo", "ok"] })).stdout, "ok\n")
        yield* Scope.close(scope, Exit.void)
      }
      const lines = readFileSync(file, "utf8").trim().split("\n")
      assert.deepStrictEqual(lines, [sshd().knownHostsLine])
    }))

  live("two hosts on one user@host:port share one connection; closing one leaves the other working", () =>
    Effect.gen(function*() {
      const first = yield* closeable
      const second = yield* closeable
      const a = yield* hostIn(first)
      const b = yield* hostIn(second)
      const shared = yield* connections
      assert.lengthOf(shared, 1)
      assert.strictEqual(shared[0]?.users, 2)
      const sshdProcesses = sshdConnectionProcesses(sshd()).length
      yield* a.run({ argv: ["true"] })
      yield* b.run({ argv: ["true"] })
      // At most: an earlier test's connection may still be finishing its close on the server side.
      assert.isAtMost(sshdConnectionProcesses(sshd()).length, sshdProcesses, "a second connection was opened")
      const proc = yield* b.spawn({ argv: ["cat"] }, { stdin: true }).pipe(Scope.provide(second))
      yield* Scope.close(first, Exit.void)
      assert.strictEqual((yield* connections)[0]?.users, 1)
      assert.strictEqual((yield* b.run({ argv: ["echo", "still here"] })).stdout, "still here\n")
      yield* proc.write("ping\n")
      yield* proc.endInput
      assert.strictEqual(decode(Buffer.concat(yield* Stream.runCollect(proc.stdout))), "ping\n")
      assert.strictEqual(yield* proc.exitCode, 0)
      yield* Scope.close(second, Exit.void)
      assert.deepStrictEqual((yield* connections), [])
    }))

  live("a pool owns its connections: closing it closes them even while a host holds one; RemoteHost.layer's own pool closes with it", () =>
    Effect.gen(function*() {
      const baseline = sshdConnectionProcesses(sshd()).length
      const poolScope = yield* closeable
      const pool = yield* RemoteHost.makeSshPool.pipe(Scope.provide(poolScope))
      const holder = yield* closeable
      const host = yield* Layer.buildWithScope(
        RemoteHost.layerShared(options()).pipe(Layer.provide(Layer.succeed(RemoteHost.SshPool, pool))),
        holder
      ).pipe(Effect.map((context) => Context.get(context, Host)))
      assert.strictEqual((yield* host.run({ argv: ["echo", "pooled"] })).stdout, "pooled\n")
      assert.deepStrictEqual((yield* pool.connections).map((connection) => connection.users), [1])
      yield* Scope.close(poolScope, Exit.void)
      assert.deepStrictEqual(yield* pool.connections, [])
      const error = yield* Effect.flip(host.run({ argv: ["true"] }))
      assert.strictEqual(error.reason, "ConnectionLost")
      yield* waitUntil("the pooled connection's sshd is gone", Effect.sync(() => sshdConnectionProcesses(sshd()).length <= baseline ? true : undefined))
      // A layer with a pool of its own: its connection goes with its scope.
      const own = yield* closeable
      const alone = yield* Layer.buildWithScope(RemoteHost.layer(options()), own).pipe(Effect.map((context) => Context.get(context, Host)))
      assert.strictEqual((yield* alone.run({ argv: ["echo", "alone"] })).stdout, "alone\n")
      assert.isAbove(sshdConnectionProcesses(sshd()).length, baseline)
      yield* Scope.close(own, Exit.void)
      yield* waitUntil("the layer's own connection's sshd is gone", Effect.sync(() => sshdConnectionProcesses(sshd()).length <= baseline ? true : undefined))
    }))

  live("closing a spawn's scope kills its remote tree, setsid'd grandchild included", () =>
    Effect.gen(function*() {
      const host = yield* hostIn(yield* Effect.scope)
      const pidFile = join(root, "spawn-tree-pids")
      const scope = yield* closeable
      const script = `trap '' TERM; setsid sh -c 'echo $$ >> "$1"; exec sleep 300' sh "$1" & echo $$ >> "$1"; while :; do sleep 1; done`
      const proc = yield* host.spawn({ argv: ["sh", "-c", script, "sh", pidFile] }, { gracePeriod: "200 millis" }).pipe(Scope.provide(scope))
      const pids = yield* readPids(host, pidFile, 2)
      assert.include(pids, proc.pid)
      assert.isTrue(pids.every(alive))
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(pids.filter(alive), [])
      assert.deepStrictEqual((yield* connections)[0]?.users, 1)
    }))

  live("a dropped connection fails in-flight work with ConnectionLost; release reconnects and kills", () =>
    Effect.gen(function*() {
      const keepalive = { keepaliveInterval: "300 millis", keepaliveCountMax: 2, reconnect: { attempts: 3, delay: "100 millis" } } as const
      const host = yield* hostIn(yield* Effect.scope, keepalive)
      const pidFile = join(root, "drop-pids")
      const scope = yield* closeable
      const proc = yield* host.spawn({
        argv: ["sh", "-c", `setsid sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; exec sleep 300`, "sh", pidFile]
      }, { stdout: false, gracePeriod: "200 millis" }).pipe(Scope.provide(scope))
      const pids = yield* readPids(host, pidFile, 2)
      const token = `optio-drop-${process.pid}`
      const inFlight = yield* host.run({ argv: ["sh", "-c", "sleep 30; : \"$0\"", token] }).pipe(Effect.flip, Effect.forkChild)
      const running = yield* waitUntil("the in-flight command runs remotely", Effect.sync(() => {
        const found = processesMentioning(token)
        return found.length > 0 ? found.map((entry) => entry.pid) : undefined
      }))
      const exitWaiter = yield* proc.exitCode.pipe(Effect.flip, Effect.forkChild)
      const localPort = (yield* connections)[0]?.localPort ?? 0
      const started = Date.now()
      assert.isNotEmpty(signalSshdServing(sshd(), localPort, "SIGKILL"))
      const runError = yield* Fiber.join(inFlight)
      const exitError = yield* Fiber.join(exitWaiter)
      const elapsed = Date.now() - started
      assert.isBelow(elapsed, 300 * 2 + 2000)
      assert.instanceOf(runError, HostError)
      assert.strictEqual(runError.reason, "ConnectionLost")
      assert.strictEqual(exitError.reason, "ConnectionLost")
      assert.include(RemoteHost.connectionLostOf(exitError)?.pids ?? [], proc.pid)
      // The remote processes outlive the connection...
      assert.isTrue(pids.every(alive))
      // ...until the scope's release reconnects and kills them.
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(pids.filter(alive), [])
      assert.strictEqual((yield* host.run({ argv: ["echo", "reconnected"] })).stdout, "reconnected\n")
      // The interrupted run is stopped too, in the background, once a connection is back.
      yield* waitUntil("the in-flight command is stopped", Effect.sync(() => running.some(alive) ? undefined : true))
    }))

  live("a frozen server is noticed by keepalive within interval * countMax", () =>
    Effect.gen(function*() {
      const host = yield* hostIn(yield* Effect.scope, { keepaliveInterval: "300 millis", keepaliveCountMax: 2, reconnect: { attempts: 2, delay: "100 millis" } })
      yield* host.run({ argv: ["true"] })
      const localPort = (yield* connections)[0]?.localPort ?? 0
      const token = `optio-frozen-${process.pid}`
      const inFlight = yield* host.run({ argv: ["sh", "-c", "sleep 30; : \"$0\"", token] }).pipe(Effect.flip, Effect.forkChild)
      const running = yield* waitUntil("the in-flight command runs remotely", Effect.sync(() => {
        const found = processesMentioning(token)
        return found.length > 0 ? found.map((entry) => entry.pid) : undefined
      }))
      // Whatever the test leaves behind (the frozen connection's command) is cleaned up here.
      yield* Effect.addFinalizer(() => Effect.sync(() => running.forEach((pid) => killGroup(pid))))
      const frozen = signalSshdServing(sshd(), localPort, "SIGSTOP")
      yield* Effect.addFinalizer(() => Effect.sync(() => frozen.forEach((pid) => process.kill(pid, "SIGKILL"))))
      const started = Date.now()
      const error = yield* Fiber.join(inFlight)
      assert.strictEqual(error.reason, "ConnectionLost")
      assert.isBelow(Date.now() - started, 300 * 2 + 2000)
    }))

  live("when teardown cannot reconnect, the release warns which remote pids may remain", () =>
    Effect.gen(function*() {
      const other = yield* startSshd(join(process.cwd(), ".cache", "test"))
      const warnings: Array<string> = []
      const capture = Logger.layer([Logger.make((entry) => {
        if (entry.logLevel === "Warn") warnings.push(JSON.stringify(entry.message))
      })])
      const pidFile = join(root, "orphan-pids")
      const pids = yield* Effect.gen(function*() {
        const host = yield* Host
        const scope = yield* closeable
        const proc = yield* host.spawn({ argv: ["sh", "-c", `echo $$ >> "$1"; exec sleep 300`, "sh", pidFile] }, { stdout: false }).pipe(Scope.provide(scope))
        const pids = yield* readPids(host, pidFile, 1)
        // The whole server goes away: nothing to reconnect to.
        const localPort = (yield* connections).find((connection) => connection.key.endsWith(`:${other.port}`))?.localPort ?? 0
        assert.isNotEmpty(signalSshdServing(other, localPort, "SIGKILL"))
        process.kill(other.pid, "SIGKILL")
        yield* proc.exitCode.pipe(Effect.flip)
        yield* Scope.close(scope, Exit.void)
        return pids
      }).pipe(Effect.provide(Layer.mergeAll(
        RemoteHost.layerShared({
          host: "127.0.0.1",
          port: other.port,
          user: "root",
          identityFile: other.clientKeyPath,
          hostKeyFingerprint: other.hostKeyFingerprint,
          reconnect: { attempts: 2, delay: "50 millis" }
        }),
        capture
      )))
      yield* Effect.addFinalizer(() => Effect.sync(() => pids.forEach((pid) => killGroup(pid))))
      assert.isTrue(pids.every(alive))
      assert.isTrue(warnings.some((warning) => warning.includes("may remain") && pids.every((pid) => warning.includes(String(pid)))), warnings.join("\n"))
    }), 30_000)

  live("home, label, glob semantics (dotfiles, literal prefix) and identity across replacement", () =>
    Effect.gen(function*() {
      const host = yield* hostIn(yield* Effect.scope)
      assert.strictEqual(yield* host.home, "/root")
      assert.strictEqual(host.label, `ssh://root@127.0.0.1:${sshd().port}`)
      const base = join(root, "glob semantics")
      for (const path of ["a.txt", ".hidden.txt", ".h/b.txt", "d/e/f.txt", "d/g.md"]) {
        yield* host.makeDirectory(join(base, path, ".."))
        yield* host.writeFile(join(base, path), "x")
      }
      assert.deepStrictEqual(yield* host.glob("*.txt", base), [join(base, "a.txt")])
      assert.deepStrictEqual(yield* host.glob("**/*.txt", base), [join(base, "a.txt"), join(base, "d/e/f.txt")])
      assert.deepStrictEqual(yield* host.glob(".h/*", base), [join(base, ".h/b.txt")])
      assert.deepStrictEqual(yield* host.glob("d/*", base), [join(base, "d/e"), join(base, "d/g.md")])
      assert.deepStrictEqual(yield* host.glob("d/g.md", base), [join(base, "d/g.md")])
      assert.deepStrictEqual(yield* host.glob("nowhere/**/*", base), [])
      // A replacement by a LONGER file is still a new identity (SFTP alone cannot tell).
      const file = join(base, "a.txt")
      const before = yield* host.stat(file)
      yield* host.writeFile(file, "much longer content")
      const after = yield* host.stat(file)
      assert.notStrictEqual(after.identity, before.identity)
      yield* host.appendFile(file, "!")
      assert.strictEqual((yield* host.stat(file)).identity, after.identity)
    }))
})

describe("RemoteHost guarded files against a swapping agent", () => {
  it.live("finding 6: a download over SSH under a symlink/FIFO swap race leaks nothing and never hangs (200 attempts each)", () =>
    Effect.gen(function*() {
      const base = join(root, "guarded-race")
      const workdir = join(base, "workdir")
      mkdirSync(join(workdir, "sub"), { recursive: true })
      mkdirSync(join(base, "outside"), { recursive: true })
      writeFileSync(join(base, "secret.txt"), "SECRET-FILE")
      writeFileSync(join(base, "outside", "public.txt"), "SECRET-DIR")
      writeFileSync(join(workdir, "race.txt"), "public")
      writeFileSync(join(workdir, "sub", "public.txt"), "public")
      const reader = yield* makeDownloadReader({ workdir, maxBytes: 1024 })
      const counts = { served: 0, refused: 0, leaked: 0 }
      const attempt = (path: string) =>
        reader(path).pipe(
          Effect.timeout("30 seconds"),
          Effect.map((file) => {
            if (new TextDecoder().decode(file.bytes).includes("SECRET")) counts.leaked += 1
            else counts.served += 1
          }),
          Effect.catchIf((error) => error._tag !== "TimeoutError", () => Effect.sync(() => void (counts.refused += 1)))
        )
      yield* Effect.scoped(Effect.gen(function*() {
        yield* symlinkSwapper(["file", workdir, join(base, "secret.txt")])
        for (let i = 0; i < 200; i++) yield* attempt("race.txt")
      }))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* symlinkSwapper(["dir", workdir, join(base, "outside"), "sub"])
        for (let i = 0; i < 200; i++) yield* attempt("sub/public.txt")
      }))
      // A FIFO in place of the file: refused at once, the SSH session keeps working.
      rmSync(join(workdir, "race.txt"), { force: true })
      execFileSync("mkfifo", [join(workdir, "race.txt")])
      yield* attempt("race.txt")
      yield* Effect.logInfo(`remote download race: ${JSON.stringify(counts)}`)
      assert.strictEqual(counts.leaked, 0)
      assert.isAbove(counts.served, 0)
    }).pipe(Effect.provide(remote())), 300_000)
})

/** An OpenSSH `|1|salt|hash` known_hosts line for `name` with the key of `plainLine`. */
const hashedLine = (name: string, plainLine: string) => {
  const salt = randomBytes(20)
  const hash = createHmac("sha1", salt).update(name).digest("base64")
  return `|1|${salt.toString("base64")}|${hash} ${plainLine.split(" ").slice(1).join(" ")}`
}
