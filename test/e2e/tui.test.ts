/**
 * TUI mode end to end: the real codex TUI in tmux, the scripted model server, the built-in web
 * terminal in headless chromium, cancellation, failure and two concurrent sessions.
 */
import { noStoreServices } from "../support/sessionServices.ts"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Redacted } from "effect"
import type { Duration } from "effect"
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { DEMO_PROMPT, demoScript, demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import type { ScriptedModelServerHandle } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import type { SessionOptions } from "../../src/session/CodexSession.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import { sharedBinaryCache } from "../support/codexCache.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { launchBrowser, terminalBufferText } from "../support/browser.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { taskPaths } from "../../src/workdir/TaskPaths.ts"

const root = join(repoRoot, ".cache", "test", `e2e-tui-${process.pid}`)
rmSync(root, { recursive: true, force: true })
// The task root holds every task's trusted files (codex's home, the tmux socket), explicit workdirs too.
const taskRoot = join(root, "tasks")
process.env["OPTIO_CODEX_TASK_ROOT"] = taskRoot
let counter = 0
const freshWorkdir = () => {
  const dir = join(root, `w${++counter} with space`)
  mkdirSync(dir, { recursive: true })
  return dir
}

const services = (processId: string) =>
  Layer.mergeAll(TaskContext.layerRecording({ processId }), sharedBinaryCache, TtydSession.layer, Tmux.layer, AppServerClient.layer, ConversationListener.layer, noStoreServices).pipe(
    Layer.provideMerge(LocalHost.layer())
  )

const startTui = (server: ScriptedModelServerHandle, extra: Record<string, unknown>, options: SessionOptions) =>
  runCodexSession({ consumerInstructions: DEMO_PROMPT, ...demoTaskSettings(server.baseUrl), ...extra }, { stopGracePeriod: "2 seconds", ...options })

const upstreamOf = Effect.gen(function*() {
  const recorder = yield* TaskRecorder
  return yield* waitUntil("the terminal is published", recorder.current.pipe(Effect.map((record) => record.widgetUpstream)), "30 seconds")
})

const noProcessMentions = (workdir: string, within: Duration.Input) =>
  waitUntil(`no process mentions ${workdir}`, Effect.sync(() => processesMentioning(workdir).length === 0 ? true : undefined), within)

const bufferText = terminalBufferText

describe("TUI mode end to end", () => {
  it.live("the offline demo: codex writes hello.txt, DONE ends the session, nothing is left running", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start(demoScript)
      const workdir = freshWorkdir()
      const result = yield* startTui(server, { autoStart: true }, { workdir })
      assert.strictEqual(result.summary, "wrote hello.txt")
      assert.strictEqual(yield* Effect.promise(() => import("node:fs/promises").then((fs) => fs.readFile(join(workdir, "hello.txt"), "utf8"))), "hello from codex\n")
      const record = yield* (yield* TaskRecorder).current
      assert.isTrue(record.progress.some((entry) => entry.message === "Codex is live"))
      assert.isUndefined(record.widgetUpstream) // cleared at teardown
      assert.deepStrictEqual(processesMentioning(workdir), [])
    }).pipe(Effect.scoped, Effect.provide(services("tui-demo"))), 90_000)

  it.live("in chromium the terminal shows codex's TUI, refuses strangers, and typing reaches tmux", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("hello human, I read you")])
      const workdir = freshWorkdir()
      const session = yield* startTui(server, {}, { workdir }).pipe(Effect.forkChild)
      const upstream = yield* upstreamOf
      const password = upstream.innerAuth?.kind === "basic" ? Redacted.value(upstream.innerAuth.password) : ""
      const anonymous = yield* Effect.promise(() => fetch(upstream.url))
      assert.strictEqual(anonymous.status, 401)
      const browser = yield* launchBrowser
      const page = yield* Effect.tryPromise(() => browser.newPage({ viewport: { width: 1100, height: 700 } }))
      const opened = yield* Effect.tryPromise(() => page.goto(`${upstream.url}?token=${encodeURIComponent(password)}`))
      assert.strictEqual(opened?.status(), 200)
      yield* waitUntil("codex's composer in the browser", bufferText(page).pipe(Effect.map((text) => text.includes("OpenAI Codex") ? text : undefined)), "30 seconds")
      yield* Effect.tryPromise(() => page.keyboard.type("say hello"))
      // codex treats keys that arrive in a burst as a paste, where Enter inserts a newline:
      // submit only once the typed text is on screen, as a person would.
      yield* waitUntil("the typed text in codex's composer", bufferText(page).pipe(Effect.map((text) => text.includes("› say hello") ? text : undefined)), "30 seconds")
      yield* Effect.tryPromise(() => page.keyboard.press("Enter"))
      // Typing reached tmux: codex sent the prompt to the model, and its answer shows in the page.
      const requests = yield* server.awaitRequests((all) => all.some((request) => request.userTexts.some((text) => text.includes("say hello"))), "30 seconds")
      assert.isTrue(requests.length > 0)
      yield* waitUntil("the answer in the browser", bufferText(page).pipe(Effect.map((text) => text.includes("hello human") ? text : undefined)), "30 seconds")
      yield* Fiber.interrupt(session)
      yield* noProcessMentions(workdir, "5 seconds")
    }).pipe(Effect.scoped, Effect.provide(services("tui-browser"))), 120_000)

  it.live("item 3: the operator types /quit in the web terminal: codex exits 0 and the task ends as done, ended by the operator", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([])
      const workdir = freshWorkdir()
      const session = yield* startTui(server, {}, { workdir }).pipe(Effect.forkChild)
      const upstream = yield* upstreamOf
      const password = upstream.innerAuth?.kind === "basic" ? Redacted.value(upstream.innerAuth.password) : ""
      const browser = yield* launchBrowser
      const page = yield* Effect.tryPromise(() => browser.newPage({ viewport: { width: 1100, height: 700 } }))
      yield* Effect.tryPromise(() => page.goto(`${upstream.url}?token=${encodeURIComponent(password)}`))
      yield* waitUntil("codex's composer in the browser", bufferText(page).pipe(Effect.map((text) => text.includes("OpenAI Codex") ? text : undefined)), "30 seconds")
      yield* Effect.tryPromise(() => page.keyboard.type("/quit"))
      yield* waitUntil("/quit in codex's composer", bufferText(page).pipe(Effect.map((text) => text.includes("› /quit") ? text : undefined)), "30 seconds")
      yield* Effect.tryPromise(() => page.keyboard.press("Enter"))
      const exit = yield* Fiber.await(session)
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.endedBy, "operator")
      const record = yield* (yield* TaskRecorder).current
      assert.isTrue(record.progress.some((entry) => entry.message === "codex exited normally: the operator ended the session"))
      yield* noProcessMentions(workdir, "5 seconds")
    }).pipe(Effect.scoped, Effect.provide(services("tui-quit"))), 120_000)

  it.live("cancel mid-turn: the session ends interrupted and every task process is gone within 2 s", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("thinking forever", { holdOpen: true })])
      const workdir = freshWorkdir()
      const session = yield* startTui(server, { autoStart: true }, { workdir }).pipe(Effect.forkChild)
      yield* server.awaitRequests((all) => all.some((request) => request.answer._tag === "Step"), "30 seconds")
      assert.isAbove(processesMentioning(workdir).length, 0)
      yield* Fiber.interrupt(session)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(session)))
      yield* noProcessMentions(workdir, "2 seconds")
    }).pipe(Effect.scoped, Effect.provide(services("tui-cancel"))), 90_000)

  it.live("a codex that exits at once fails typed, with the screen's last lines", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([])
      const workdir = freshWorkdir()
      const error = yield* Effect.flip(startTui(server, {}, {
        workdir,
        hooks: {
          // Replace the launch link with a "codex" that prints a reason and exits 3.
          beforeExecute: (ctx) =>
            Effect.gen(function*() {
              const paths = yield* taskPaths({ processId: "tui-fail", taskRoot, workdir: ctx.workdir })
              const link = paths.launchLink
              rmSync(link)
              writeFileSync(link, "#!/bin/sh\necho 'codex: fatal: cannot start (simulated)'\nexit 3\n", { mode: 0o755 })
            })
        }
      }))
      assert.strictEqual(error._tag, "CodexExitedEarly")
      if (error._tag !== "CodexExitedEarly") return
      assert.strictEqual(error.exitCode, 3)
      assert.include(error.paneTail, "cannot start (simulated)")
      assert.deepStrictEqual(processesMentioning(workdir), [])
    }).pipe(Effect.scoped, Effect.provide(services("tui-fail"))), 60_000)

  it.live("two sessions run side by side; tearing one down leaves the other working", () =>
    Effect.gen(function*() {
      const serverA = yield* ScriptedModelServer.start([])
      const serverB = yield* ScriptedModelServer.start([
        ModelScript.execCommand("printf 'DONE: b finished\\n' >> optio.log"),
        ModelScript.text("b done")
      ])
      const workdirA = freshWorkdir()
      const workdirB = freshWorkdir()
      const sessionA = yield* startTui(serverA, {}, { workdir: workdirA }).pipe(Effect.provide(services("tui-a")), Effect.forkChild)
      const sessionB = yield* Effect.gen(function*() {
        const fiber = yield* startTui(serverB, {}, { workdir: workdirB }).pipe(Effect.forkChild)
        const upstream = yield* upstreamOf
        return { fiber, upstream }
      }).pipe(Effect.provide(services("tui-b")))
      yield* waitUntil("session A runs", Effect.sync(() => processesMentioning(workdirA).length > 0 ? true : undefined), "30 seconds")
      yield* Fiber.interrupt(sessionA)
      yield* noProcessMentions(workdirA, "5 seconds")
      assert.isAbove(processesMentioning(workdirB).length, 0)
      // B still takes operator input through its terminal's control route and finishes.
      const password = sessionB.upstream.innerAuth?.kind === "basic" ? Redacted.value(sessionB.upstream.innerAuth.password) : ""
      const control = yield* Effect.promise(() =>
        fetch(`${sessionB.upstream.url}control`, {
          method: "POST",
          headers: { authorization: `Basic ${Buffer.from(`optio:${password}`).toString("base64")}`, "content-type": "application/json" },
          body: JSON.stringify({ text: "please finish" })
        }))
      assert.strictEqual(control.status, 200)
      const result = yield* Fiber.join(sessionB.fiber)
      assert.strictEqual(result.summary, "b finished")
      yield* noProcessMentions(workdirB, "5 seconds")
    }).pipe(Effect.scoped), 120_000)
})
