import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { startTmuxSession } from "../support/services.ts"
import type { TmuxSession, TmuxSessionOptions } from "../../src/terminal/TmuxSession.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { makeFixtures, removeFixtures, socketPath, tmuxQuery } from "./fixtures.ts"

const fx = makeFixtures("tmux")
afterAll(removeFixtures)

const HostLive = LocalHost.layer({ env: { ...process.env, SECRET_TOKEN: "must-not-leak", SECRET_OTHER: "x" } })

const start = (argv: readonly [string, ...Array<string>], extra: Partial<TmuxSessionOptions> = {}) => {
  const socket = socketPath()
  return startTmuxSession({
    socketPath: socket,
    configPath: join(fx.dir, `${socket.split("/").pop() ?? "x"}.conf`),
    command: { argv, cwd: fx.dir },
    columns: 120,
    rows: 30,
    gracePeriod: "2 seconds",
    ...extra
  })
}

const screenContains = (tmux: TmuxSession, text: string) =>
  waitUntil(`the pane shows ${JSON.stringify(text)}`, tmux.capture(500).pipe(
    Effect.map((screen) => screen.includes(text) ? screen : undefined)
  ), "10 seconds")

const HOSTILE = [
  "it's \"quoted\"",
  "$(touch INJECTED) `touch INJECTED2`",
  "  spaces  around  ",
  "ünïcödé 日本語 🚀",
  "; kill-server \\; -x",
  "-d",
  ""
]

describe("TmuxSession", () => {
  it.live("passes argv and env to the pane program unchanged, without a shell", () =>
    Effect.gen(function*() {
      const out = join(fx.dir, "dump")
      const tmux = yield* start([fx.dump, out, ...HOSTILE], {
        command: {
          argv: [fx.dump, out, ...HOSTILE],
          cwd: fx.dir,
          env: { HOSTILE: HOSTILE.join("|") + "\n$HOME ${PATH} 'x'" },
          envRemove: ["SECRET_*"]
        }
      })
      yield* screenContains(tmux, "dumped")
      const argv = readFileSync(`${out}.argv`, "utf8").split("\u0000").slice(0, -1)
      assert.deepStrictEqual(argv, HOSTILE)
      assert.strictEqual(readFileSync(`${out}.env`, "utf8"), HOSTILE.join("|") + "\n$HOME ${PATH} 'x'")
      assert.strictEqual(readFileSync(`${out}.secret`, "utf8"), "unset")
      assert.isFalse(existsSync(join(fx.dir, "INJECTED")))
      assert.isFalse(existsSync(join(fx.dir, "INJECTED2")))
      assert.deepStrictEqual(yield* tmux.status, { _tag: "Exited", exitCode: 0 })
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("execs a one-element argv by path, even with spaces and shell characters in it", () =>
    Effect.gen(function*() {
      const odd = fx.script("odd name $(x) 'q'.sh", "echo \"solo $0\"\nexec sleep 1000\n")
      const tmux = yield* start([odd])
      yield* screenContains(tmux, `solo ${odd}`)
      // The pane's process became the program itself (the script exec'd sleep): no shell stays.
      const cmdline = readFileSync(`/proc/${yield* tmux.panePid}/cmdline`, "utf8").split("\u0000")
      assert.deepStrictEqual(cmdline.slice(0, 2), ["sleep", "1000"])
      assert.deepStrictEqual(yield* tmux.status, { _tag: "Running" })
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("clears a stale server left on the same socket", () =>
    Effect.gen(function*() {
      const host = yield* Host
      const socket = socketPath()
      yield* host.run({ argv: ["tmux", "-S", socket, "new-session", "-d", "-s", "optio", "--", "sleep", "1000"], envRemove: ["TMUX"] })
      const stalePid = Number(yield* tmuxQuery(socket, ["list-panes", "-t", "=optio:", "-F", "#{pane_pid}"]))
      assert.isTrue(yield* host.isAlive(stalePid))
      const tmux = yield* startTmuxSession({
        socketPath: socket,
        configPath: join(fx.dir, "stale.conf"),
        command: { argv: [fx.fakeTui] }
      })
      yield* screenContains(tmux, "FAKE-TUI ready")
      assert.isFalse(yield* host.isAlive(stalePid))
      assert.notStrictEqual(yield* tmux.panePid, stalePid)
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("captures the pane and reports the exit status, also after exit (0 and non-zero)", () =>
    Effect.gen(function*() {
      for (const code of [0, 3]) {
        const tmux = yield* start([fx.fakeTui, String(code)])
        yield* screenContains(tmux, "FAKE-TUI ready")
        yield* tmux.sendText("hello there")
        yield* screenContains(tmux, "echo: hello there")
        assert.deepStrictEqual(yield* tmux.status, { _tag: "Running" })
        yield* tmux.sendText("quit")
        assert.strictEqual(yield* tmux.awaitExit("50 millis"), code)
        assert.deepStrictEqual(yield* tmux.status, { _tag: "Exited", exitCode: code })
        const screen = yield* tmux.capture(200)
        assert.include(screen, "FAKE-TUI ready")
        assert.include(screen, "echo: hello there")
        const last = yield* tmux.capture(1)
        assert.notInclude(last, "\n")
      }
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("keeps the status and text of a program that exits immediately", () =>
    Effect.gen(function*() {
      const tmux = yield* start(["/bin/sh", "-c", "echo instant-bye; exit 7"])
      assert.strictEqual(yield* tmux.awaitExit("20 millis"), 7)
      assert.include(yield* tmux.capture(100), "instant-bye")
      const killed = yield* start(["/bin/sh", "-c", "kill -9 $$"])
      assert.strictEqual(yield* killed.awaitExit("20 millis"), 137)
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("sendText delivers hostile text literally", () =>
    Effect.gen(function*() {
      const log = join(fx.dir, "literal.log")
      const tmux = yield* start([fx.fakeTui, "0", log])
      yield* screenContains(tmux, "FAKE-TUI ready")
      const texts = HOSTILE.filter((text) => text.trim() !== "").concat(["x".repeat(3000)])
      for (const text of texts) yield* tmux.sendText(text)
      yield* waitUntil("every line is logged", Effect.sync(() => {
        const lines = existsSync(log) ? readFileSync(log, "utf8").split("\n") : []
        return lines.length > texts.length ? lines : undefined
      }))
      assert.deepStrictEqual(readFileSync(log, "utf8").split("\n").slice(0, -1), texts)
      assert.isFalse(existsSync(join(fx.dir, "INJECTED")))
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("sendKeys presses allowed keys and rejects anything else", () =>
    Effect.gen(function*() {
      const tmux = yield* start([fx.fakeTui])
      yield* screenContains(tmux, "FAKE-TUI ready")
      yield* tmux.sendKeys(["h", "i", "Enter"])
      yield* screenContains(tmux, "echo: hi")
      for (const bad of ["Enter;", ";", "kill-server", "rm -rf /", "C-", "hello", "-t", "", "Enter\n"]) {
        const error = yield* Effect.flip(tmux.sendKeys(["Up", bad]))
        assert.strictEqual(error._tag, "TmuxKeyRejected")
        if (error._tag === "TmuxKeyRejected") assert.strictEqual(error.key, bad)
      }
      yield* tmux.sendKeys(["C-c"])
      assert.strictEqual(yield* tmux.awaitExit("20 millis"), 130)
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("serializes concurrent sends so texts never interleave", () =>
    Effect.gen(function*() {
      const log = join(fx.dir, "concurrent.log")
      const tmux = yield* start([fx.fakeTui, "0", log], { pasteSettle: "30 millis" })
      yield* screenContains(tmux, "FAKE-TUI ready")
      const texts = ["a", "b", "c", "d", "e", "f"].map((letter) => letter.repeat(400))
      yield* Effect.forEach(texts, (text) => tmux.sendText(text), { concurrency: "unbounded", discard: true })
      const lines = yield* waitUntil("six lines are logged", Effect.sync(() => {
        const logged = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(0, -1) : []
        return logged.length >= texts.length ? logged : undefined
      }))
      assert.deepStrictEqual([...lines].sort(), texts)
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("release stops the program tree and the server, and leaves another task's tmux alone", () =>
    Effect.gen(function*() {
      const host = yield* Host
      const childFile = join(fx.dir, "tree.child")
      const scope = yield* Scope.fork(yield* Effect.scope)
      const first = yield* start([fx.tree, childFile]).pipe(Scope.provide(scope))
      const second = yield* start([fx.fakeTui])
      yield* screenContains(first, "tree-ready")
      yield* screenContains(second, "FAKE-TUI ready")
      const pids = [yield* first.panePid, Number(readFileSync(childFile, "utf8")), yield* first.serverPid]
      for (const pid of pids) assert.isTrue(yield* host.isAlive(pid))
      yield* Scope.close(scope, Exit.void)
      for (const pid of pids) assert.isFalse(yield* host.isAlive(pid), `pid ${pid} survived`)
      assert.isFalse(existsSync(first.socketPath))
      assert.deepStrictEqual(yield* first.status, { _tag: "Gone" })
      assert.isTrue(yield* host.isAlive(yield* second.panePid))
      assert.isTrue(yield* host.isAlive(yield* second.serverPid))
      yield* second.sendText("still here")
      yield* screenContains(second, "echo: still here")
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("a program that ignores SIGTERM is killed after the grace period", () =>
    Effect.gen(function*() {
      const host = yield* Host
      const scope = yield* Scope.fork(yield* Effect.scope)
      const tmux = yield* start([fx.stubborn], { gracePeriod: "700 millis" }).pipe(Scope.provide(scope))
      yield* screenContains(tmux, "stubborn-ready")
      const pane = yield* tmux.panePid
      const server = yield* tmux.serverPid
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const elapsed = Date.now() - started
      assert.isAtLeast(elapsed, 650)
      assert.isBelow(elapsed, 6000)
      assert.isFalse(yield* host.isAlive(pane))
      assert.isFalse(yield* host.isAlive(server))
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("a failing status query is an error, never an exit", () =>
    Effect.gen(function*() {
      const tmux = yield* start([fx.fakeTui], { commandTimeout: "300 millis" })
      yield* screenContains(tmux, "FAKE-TUI ready")
      const server = yield* tmux.serverPid
      // A stopped server accepts the connection but never answers: the query times out.
      process.kill(server, "SIGSTOP")
      const stalled = yield* Effect.flip(tmux.status).pipe(Effect.ensuring(Effect.sync(() => process.kill(server, "SIGCONT"))))
      assert.strictEqual(stalled._tag, "TmuxCommandFailed")
      if (stalled._tag === "TmuxCommandFailed") assert.isTrue(stalled.timedOut)
      assert.deepStrictEqual(yield* tmux.status, { _tag: "Running" })
    }).pipe(Effect.scoped, Effect.provide(HostLive)))

  it.live("a tmux error that is not 'gone' fails status and awaitExit instead of reading as exited", () =>
    Effect.gen(function*() {
      const tmux = yield* start([fx.fakeTui, "4"])
      yield* screenContains(tmux, "FAKE-TUI ready")
      flaky.failing = true
      const error = yield* Effect.flip(tmux.status)
      assert.strictEqual(error._tag, "TmuxCommandFailed")
      const gaveUp = yield* Effect.flip(tmux.awaitExit("10 millis"))
      assert.strictEqual(gaveUp._tag, "TmuxCommandFailed")
      // A blip shorter than the retry budget is ridden out: the real exit status still arrives.
      flaky.failing = false
      yield* tmux.sendText("quit")
      flaky.failing = true
      const refusedBefore = flaky.refused
      const waiting = yield* Effect.forkChild(tmux.awaitExit("30 millis"))
      // The blip lasts until the wait has met two failing queries (fewer than its retry budget).
      yield* waitUntil("two failed status queries", Effect.sync(() => flaky.refused >= refusedBefore + 2 ? true : undefined))
      flaky.failing = false
      assert.strictEqual(yield* Fiber.join(waiting), 4)
    }).pipe(Effect.ensuring(Effect.sync(() => { flaky.failing = false })), Effect.scoped, Effect.provide(FlakyHost)))

  it.live("fails with tmux's stderr when the session cannot start", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(startTmuxSession({
        socketPath: join(fx.dir, "missing-dir", "x.sock"),
        configPath: join(fx.dir, "bad.conf"),
        command: { argv: [fx.fakeTui] }
      }))
      assert.strictEqual(error._tag, "TmuxStartFailed")
      assert.include(error.message, "error creating")
      const badName = yield* Effect.flip(start([fx.fakeTui], { sessionName: "a:b" }))
      assert.strictEqual(badName._tag, "TmuxStartFailed")
    }).pipe(Effect.scoped, Effect.provide(HostLive)))
})

// A local host whose tmux commands can be made to exit 1 with a message that is not one of
// tmux's "gone" messages, as a lost server or a broken remote connection would.
const flaky = { failing: false, refused: 0 }
const FlakyHost = Layer.effect(Host, Effect.map(LocalHost.make(), (local) => {
  return Host.of({
    ...local,
    run: (command, options) =>
      Effect.suspend(() =>
        flaky.failing && command.argv[0] === "tmux"
          ? Effect.sync(() => {
            flaky.refused++
            return { exitCode: 1, stdout: "", stderr: "lost server", truncated: false }
          })
          : local.run(command, options)
      )
  })
}))
