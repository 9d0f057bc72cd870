/**
 * Snapshot and resume end to end: a real codex session (app-server or TUI) against the scripted
 * model server, torn down into a snapshot, then resumed into a fresh workdir path. The resumed
 * codex must continue the same thread: the model server sees turn 1's messages in the next
 * request's input, and a fresh conversation viewer is shown turn 1.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Redacted, Stream } from "effect"
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import type { ModelRequest } from "../../src/modelserver/ModelRequest.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { basicAuth, sseEvents } from "../support/sse.ts"
import type { SseEvent } from "../support/sse.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { layoutOf } from "../support/taskLayout.ts"

const root = join(repoRoot, ".cache", "test", `e2e-resume-${process.pid}`)
// Every task's trusted files (codex's home and its rollouts) live under the task root.
const taskRoot = join(root, "tasks")
process.env["OPTIO_CODEX_TASK_ROOT"] = taskRoot

/** One run of a task: its own TaskContext (fresh or resumed) over a store that outlives it. */
const runLayer = (state: MemoryStoreState, processId: string, resume: boolean) => sessionServices(processId, { state, resume })

const freshDir = (name: string) => {
  const dir = join(root, name)
  mkdirSync(dir, { recursive: true })
  return dir
}

const mentions = (request: ModelRequest, text: string) => JSON.stringify(request.input).includes(text)

/** Connects an SSE viewer to the published listener and collects its events. */
const viewer = Effect.gen(function*() {
  const recorder = yield* TaskRecorder
  const upstream = yield* waitUntil("the listener is published", recorder.current.pipe(Effect.map((r) => r.widgetUpstream)), "60 seconds")
  const innerAuth = upstream.innerAuth
  const auth = innerAuth?.kind === "basic" ? basicAuth(innerAuth.username, Redacted.value(innerAuth.password)) : {}
  const events: Array<SseEvent> = []
  yield* sseEvents(`${upstream.url}/events`, auth).pipe(
    Stream.runForEach((event) => Effect.sync(() => events.push(event))),
    Effect.ignore,
    Effect.forkChild
  )
  return events
})

const methodSeen = (events: ReadonlyArray<SseEvent>, method: string, count = 1) =>
  waitUntil(`${count} × ${method}`, Effect.sync(() => {
    const found = events.filter((event) => (event.data as { method?: unknown } | null)?.method === method)
    return found.length >= count ? found : undefined
  }), "60 seconds")

describe("resume from a snapshot", () => {
  it.live("conversation: turn 1, cancel (snapshot), resume into a new workdir path, turn 2 sees turn 1", () =>
    Effect.gen(function*() {
      const state = new MemoryStoreState()
      const server = yield* ScriptedModelServer.start([
        ModelScript.text("The secret word is pomegranate."),
        ModelScript.text("Welcome back: the secret word was pomegranate.")
      ])
      const config = { consumerInstructions: "resume e2e", mode: "conversation", conversationUi: true, ...demoTaskSettings(server.baseUrl) }

      // Run 1: one turn, then the worker cancels the task.
      const first = freshDir("conv-first")
      yield* Effect.gen(function*() {
        const session = yield* runCodexSession(config, {
          workdir: first,
          stopGracePeriod: "2 seconds",
          onConversation: (conversation) => conversation.sendTurn("Remember the secret word.").pipe(Effect.asVoid)
        }).pipe(Effect.forkChild)
        const events = yield* viewer
        yield* methodSeen(events, "turn/completed")
        yield* Fiber.interrupt(session)
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(session)))
        const snapshot = yield* SnapshotStore.use((store) => store.latest("resume-conv"))
        assert.isTrue(Option.isSome(snapshot))
        const doc = Option.getOrThrow(snapshot)
        assert.strictEqual(doc.endState, "cancelled")
        assert.match(doc.sessionId ?? "", /^[0-9a-f-]{36}$/)
      }).pipe(Effect.scoped, Effect.provide(runLayer(state, "resume-conv", false)))

      // Run 2: resumed elsewhere. codex continues the thread; the viewer is shown turn 1.
      const second = freshDir("conv-second")
      yield* Effect.gen(function*() {
        const session = yield* runCodexSession(config, { workdir: second, stopGracePeriod: "2 seconds" }).pipe(Effect.forkChild)
        const events = yield* viewer
        // turn 1 replayed from history, then the resume notice's turn completes live.
        yield* methodSeen(events, "turn/completed", 2)
        const replayed = JSON.stringify(events.slice(0, 4).map((event) => event.data))
        assert.include(replayed, "Remember the secret word.")
        const requests = yield* server.requests
        const resumed = requests.filter((request) => request.userTexts.some((text) => text.includes("you have been resumed")))
        assert.lengthOf(resumed, 1)
        assert.isTrue(mentions(resumed[0]!, "Remember the secret word."), "turn 1's user message is in the resumed request")
        assert.isTrue(mentions(resumed[0]!, "pomegranate"), "turn 1's answer is in the resumed request")
        // The restored tree moved: resume.log has both starts; codex's sqlite was not carried over.
        const starts = readFileSync(join(second, "resume.log"), "utf8").trim().split("\n")
        assert.lengthOf(starts, 2)
        assert.match(starts[1] ?? "", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z REFRESHED:AGENTS\.md$/, "a resume names the rewritten AGENTS.md")
        assert.isFalse(existsSync(join(first, "optio.log.old")))
        yield* Fiber.interrupt(session)
        yield* Fiber.await(session)
        const snapshots = yield* SnapshotStore.use((store) => store.list("resume-conv"))
        assert.lengthOf(snapshots, 2)
        assert.strictEqual(snapshots[0]?.sessionId, snapshots[1]?.sessionId)
      }).pipe(Effect.scoped, Effect.provide(runLayer(state, "resume-conv", true)))
      assert.deepStrictEqual(processesMentioning(second), [])
    }), 180_000)

  it.live("TUI: `codex resume <thread>` in a new workdir path continues the conversation", () =>
    Effect.gen(function*() {
      const state = new MemoryStoreState()
      const server = yield* ScriptedModelServer.start([
        ModelScript.text("Noted: the password is tangerine."),
        ModelScript.text("Resumed; the password was tangerine.")
      ])
      const config = { consumerInstructions: "Remember that the password is tangerine.", autoStart: true, ...demoTaskSettings(server.baseUrl) }

      const first = freshDir("tui-first")
      yield* Effect.gen(function*() {
        const session = yield* runCodexSession(config, { workdir: first, stopGracePeriod: "2 seconds" }).pipe(Effect.forkChild)
        // Turn 1 is over once its answer is in the rollout (what a resume replays).
        yield* waitUntil("turn 1's answer in the rollout", Effect.sync(() => {
          const sessions = join(layoutOf({ processId: "resume-tui", taskRoot, workdir: first }).codexHome, "sessions")
          if (!existsSync(sessions)) return undefined
          const rollouts = readdirSync(sessions, { recursive: true, encoding: "utf8" }).filter((name) => name.endsWith(".jsonl"))
          return rollouts.some((name) => readFileSync(join(sessions, name), "utf8").includes("Noted: the password is tangerine.")) ? true : undefined
        }), "60 seconds")
        yield* Fiber.interrupt(session)
        yield* Fiber.await(session)
        const doc = Option.getOrThrow(yield* SnapshotStore.use((store) => store.latest("resume-tui")))
        assert.match(doc.sessionId ?? "", /^[0-9a-f-]{36}$/)
      }).pipe(Effect.scoped, Effect.provide(runLayer(state, "resume-tui", false)))

      const second = freshDir("tui-second")
      yield* Effect.gen(function*() {
        const session = yield* runCodexSession(config, { workdir: second, stopGracePeriod: "2 seconds" }).pipe(Effect.forkChild)
        const resumed = yield* waitUntil("the resumed TUI's first request", server.requests.pipe(Effect.map((requests) =>
          requests.find((request) => request.userTexts.some((text) => text.includes("you have been resumed")))
        )), "60 seconds")
        assert.isTrue(mentions(resumed, "password is tangerine"), "turn 1's prompt is in the resumed request")
        assert.isTrue(mentions(resumed, "Noted: the password is tangerine."), "turn 1's answer is in the resumed request")
        const recorder = yield* TaskRecorder
        const progress = (yield* recorder.current).progress.map((entry) => entry.message ?? "").join("\n")
        assert.include(progress, "Resuming codex thread")
        yield* Fiber.interrupt(session)
        yield* Fiber.await(session)
      }).pipe(Effect.scoped, Effect.provide(runLayer(state, "resume-tui", true)))
      assert.deepStrictEqual(processesMentioning(second), [])
    }), 180_000)

  it.live("resume with no snapshot starts fresh and says so", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.execCommand("printf 'DONE: fresh\\n' >> optio.log"), ModelScript.text("ok")])
      const workdir = freshDir("none")
      const result = yield* runCodexSession(
        { consumerInstructions: "fresh", mode: "conversation", autoStart: true, ...demoTaskSettings(server.baseUrl) },
        { workdir, stopGracePeriod: "2 seconds" }
      )
      assert.strictEqual(result.summary, "fresh")
      const recorder = yield* TaskRecorder
      const progress = (yield* recorder.current).progress.map((entry) => entry.message ?? "").join("\n")
      assert.include(progress, "Nothing to resume from")
      const doc = Option.getOrThrow(yield* SnapshotStore.use((store) => store.latest("resume-none")))
      assert.strictEqual(doc.endState, "done")
      assert.isTrue((yield* recorder.current).hasSavedState, "item 1: the dashboard is told the process has saved state (Resume)")
    }).pipe(Effect.scoped, Effect.provide(runLayer(new MemoryStoreState(), "resume-none", true))), 120_000)
})
