/**
 * Both modes on a "remote" host: a private sshd on 127.0.0.1 started by the test, real codex and
 * tmux on the far side of an SSH connection, the web terminal and listener on the worker.
 */
import { noStoreServices } from "../support/sessionServices.ts"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted } from "effect"
import { mkdirSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { DEMO_PROMPT, demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { BinaryCache } from "../../src/binary/BinaryCache.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import * as RemoteHost from "../../src/host/RemoteHost.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import { launchBrowser, terminalBufferText } from "../support/browser.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { signalSshdServing, sshdForSuite } from "../support/sshd.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(repoRoot, ".cache", "test", `e2e-remote-${process.pid}`)
// The "remote" cache is fresh for this run: the binary really goes up over SFTP, once.
const remoteCacheDir = join(root, "codex-bin-remote")
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))
const sshd = sshdForSuite(join(root, "known_hosts"))

/** The remote host on a test's own connection pool (so the test can find its connection). */
const remoteHostOn = (pool: RemoteHost.SshPoolShape) => Layer.unwrap(Effect.sync(() =>
  RemoteHost.layerShared({
    host: "127.0.0.1",
    port: sshd().port,
    user: "root",
    identityFile: sshd().clientKeyPath,
    knownHostsFile: join(root, "known_hosts"),
    keepaliveInterval: "1 second",
    keepaliveCountMax: 3
  }).pipe(Layer.provide(Layer.succeed(RemoteHost.SshPool, pool)))
))

let counter = 0
const hostileWorkdir = (mode: string) => {
  const dir = join(root, `w${++counter} ${mode} $(touch pwned) \`id\` 'q'`)
  mkdirSync(dir, { recursive: true })
  return dir
}

const cliOnRemote = (args: ReadonlyArray<string>, cache: ReadonlyArray<string> = ["--codex-cache-dir", remoteCacheDir]) =>
  Effect.gen(function*() {
    const host = yield* Host
    return yield* host.run({
      argv: [process.execPath, join(repoRoot, "bin", "optio-codex.js"), ...args, ...cache,
        "--host", `ssh://root@127.0.0.1:${sshd().port}`, "--identity", sshd().clientKeyPath, "--known-hosts", join(root, "known_hosts")],
      cwd: repoRoot,
      // The remote side reads the cache dir from its own environment: same machine, same env.
      env: { OPTIO_CODEX_CACHE_DIR: remoteCacheDir }
    })
  }).pipe(Effect.provide(LocalHost.layer()))

describe("remote host over SSH", () => {
  it.live.each(["tui", "conversation"] as const)("optio-codex run --mode %s --offline-demo --host ssh://… exits 0; hello.txt on the remote; nothing left", (mode) =>
    Effect.gen(function*() {
      const workdir = hostileWorkdir(mode)
      const result = yield* cliOnRemote(["run", "--mode", mode, "--offline-demo", "--workdir", workdir])
      assert.strictEqual(result.exitCode, 0, `${result.stdout}\n${result.stderr}`)
      assert.strictEqual(readFileSync(join(workdir, "hello.txt"), "utf8"), "hello from codex\n")
      // The first task on the host uploads codex with progress; the next one finds it cached.
      if (mode === "tui") assert.match(result.stdout, /Installing codex [\d.]+ on ssh:.*\n[\s\S]*Installing codex: \d+\/\d+ MB/)
      else assert.notInclude(result.stdout, "Installing codex")
      assert.deepStrictEqual(processesMentioning(workdir), [])
      // Nothing was injected by the hostile directory name.
      assert.throws(() => readFileSync(join(repoRoot, "pwned")))
    }), 180_000)

  it.live("killing the sshd child mid-turn fails the session with HostConnectionLost; teardown leaves the remote clean", () =>
    Effect.gen(function*() {
      const pool = yield* RemoteHost.makeSshPool
      const model = yield* ScriptedModelServer.start([ModelScript.text("never finishes", { holdOpen: true })])
      const workdir = hostileWorkdir("dropped")
      const services = Layer.mergeAll(TaskContext.layerRecording({ processId: "remote-drop" }), BinaryCache.layer({ cacheDir: remoteCacheDir }), TtydSession.layer, Tmux.layer, AppServerClient.layer, ConversationListener.layer, noStoreServices).pipe(
        Layer.provideMerge(remoteHostOn(pool))
      )
      const fiber = yield* runCodexSession({ consumerInstructions: DEMO_PROMPT, autoStart: true, ...demoTaskSettings(model.baseUrl) }, { workdir, stopGracePeriod: "2 seconds" }).pipe(
        Effect.provide(services),
        Effect.forkChild
      )
      yield* model.awaitRequests((all) => all.some((request) => request.answer._tag === "Step"), "90 seconds")
      const connection = (yield* pool.connections).find((entry) => entry.key.includes(`:${sshd().port}`))
      assert.isDefined(connection)
      if (connection === undefined) return
      const killed = signalSshdServing(sshd(), connection.localPort, "SIGKILL")
      assert.isAbove(killed.length, 0)
      const error = yield* Fiber.join(fiber).pipe(Effect.flip, Effect.timeout("10 seconds"))
      assert.strictEqual(error._tag, "HostConnectionLost", String(error))
      yield* waitUntil("the remote task processes are gone", Effect.sync(() => processesMentioning(workdir).length === 0 ? true : undefined), "20 seconds")
    }).pipe(Effect.scoped), 180_000)

  it.live("optio-codex doctor --host checks the remote, one line per check", () =>
    Effect.gen(function*() {
      const result = yield* cliOnRemote(["doctor"], [])
      assert.strictEqual(result.exitCode, 0, result.stdout + result.stderr)
      for (const check of ["reachable", "tmux", "architecture", "cache disk space", "codex sandbox"]) {
        assert.match(result.stdout, new RegExp(`^ok +${check}:`, "m"))
      }
    }), 60_000)

  it.live("the browser terminal works against a remote session, and two tasks share one connection", () =>
    Effect.gen(function*() {
      const modelA = yield* ScriptedModelServer.start([ModelScript.text("hello from the remote side")])
      const modelB = yield* ScriptedModelServer.start([])
      const workdirA = hostileWorkdir("browser")
      const workdirB = hostileWorkdir("second")
      const services = (processId: string) =>
        Layer.mergeAll(TaskContext.layerRecording({ processId }), BinaryCache.layer({ cacheDir: remoteCacheDir }), TtydSession.layer, Tmux.layer, AppServerClient.layer, ConversationListener.layer, noStoreServices)
      const pool = yield* RemoteHost.makeSshPool
      const base = yield* Layer.build(remoteHostOn(pool))
      const session = (processId: string, model: typeof modelA, workdir: string) =>
        Effect.gen(function*() {
          const fiber = yield* runCodexSession({ consumerInstructions: DEMO_PROMPT, ...demoTaskSettings(model.baseUrl) }, { workdir }).pipe(Effect.forkChild)
          const recorder = yield* TaskRecorder
          const upstream = yield* waitUntil("published", recorder.current.pipe(Effect.map((r) => r.widgetUpstream)), "60 seconds")
          return { fiber, upstream }
        }).pipe(Effect.provide(services(processId).pipe(Layer.provideMerge(Layer.succeedContext(base)))))
      const a = yield* session("remote-a", modelA, workdirA)
      const b = yield* session("remote-b", modelB, workdirB)
      const connections = (yield* pool.connections).filter((connection) => connection.key.includes(`:${sshd().port}`))
      assert.strictEqual(connections.length, 1, JSON.stringify(connections))

      const password = a.upstream.innerAuth?.kind === "basic" ? Redacted.value(a.upstream.innerAuth.password) : ""
      const browser = yield* launchBrowser
      const page = yield* Effect.tryPromise(() => browser.newPage({ viewport: { width: 1100, height: 700 } }))
      yield* Effect.tryPromise(() => page.goto(`${a.upstream.url}?token=${encodeURIComponent(password)}`))
      yield* waitUntil("codex's TUI in the browser", terminalBufferText(page).pipe(Effect.map((text) => text.includes("OpenAI Codex") ? text : undefined)), "60 seconds")
      yield* Effect.tryPromise(() => page.keyboard.type("ping remote"))
      yield* waitUntil("the typed text", terminalBufferText(page).pipe(Effect.map((text) => text.includes("› ping remote") ? text : undefined)), "30 seconds")
      yield* Effect.tryPromise(() => page.keyboard.press("Enter"))
      yield* waitUntil("the answer in the browser", terminalBufferText(page).pipe(Effect.map((text) => text.includes("hello from the remote side") ? text : undefined)), "60 seconds")

      // Tearing A down leaves B (same connection) working.
      yield* Fiber.interrupt(a.fiber)
      yield* waitUntil("A is gone", Effect.sync(() => processesMentioning(workdirA).length === 0 ? true : undefined), "10 seconds")
      assert.isAbove(processesMentioning(workdirB).length, 0)
      const passwordB = b.upstream.innerAuth?.kind === "basic" ? Redacted.value(b.upstream.innerAuth.password) : ""
      const health = yield* Effect.promise(() => fetch(`${b.upstream.url}health`, { headers: { authorization: `Basic ${Buffer.from(`optio:${passwordB}`).toString("base64")}` } }))
      assert.strictEqual(health.status, 200)
      yield* Fiber.interrupt(b.fiber)
      yield* waitUntil("B is gone", Effect.sync(() => processesMentioning(workdirB).length === 0 ? true : undefined), "10 seconds")
    }).pipe(Effect.scoped), 240_000)
})
