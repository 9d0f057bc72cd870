/**
 * Conversation mode end to end: the real codex app-server, the scripted model server, the real
 * listener over HTTP/SSE, and the optio.log channel deciding the outcome.
 */
import { noStoreServices } from "../support/sessionServices.ts"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Redacted, Stream } from "effect"
import { existsSync, mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import type { ScriptedModelServerHandle } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import { sharedBinaryCache } from "../support/codexCache.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { basicAuth, sseEvents } from "../support/sse.ts"
import type { SseEvent } from "../support/sse.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(repoRoot, ".cache", "test", `e2e-conversation-${process.pid}`)
let counter = 0

const services = (processId: string) =>
  Layer.mergeAll(TaskContext.layerRecording({ processId }), sharedBinaryCache, ConversationListener.layer, TtydSession.layer, Tmux.layer, AppServerClient.layer, noStoreServices).pipe(
    Layer.provideMerge(LocalHost.layer())
  )

interface Live {
  readonly url: string
  readonly auth: Record<string, string>
  readonly events: ReadonlyArray<SseEvent>
  readonly post: (path: string, body: unknown) => Effect.Effect<Response, Error>
}

/** Starts a conversation session in a fiber and connects one SSE viewer once the UI is live. */
const startSession = (server: ScriptedModelServerHandle, extra: Record<string, unknown>) =>
  Effect.gen(function*() {
    const workdir = join(root, `w${++counter}`)
    mkdirSync(workdir, { recursive: true })
    const session = yield* runCodexSession({
      consumerInstructions: "conversation e2e",
      mode: "conversation",
      conversationUi: true,
      ...demoTaskSettings(server.baseUrl),
      ...extra
    }, { workdir, stopGracePeriod: "2 seconds" }).pipe(Effect.forkChild)
    const recorder = yield* TaskRecorder
    const upstream = yield* waitUntil("the listener is published", recorder.current.pipe(Effect.map((r) => r.widgetUpstream)))
    const innerAuth = upstream.innerAuth
    assert.isTrue(innerAuth?.kind === "basic")
    const auth = innerAuth?.kind === "basic" ? basicAuth(innerAuth.username, Redacted.value(innerAuth.password)) : {}
    const events: Array<SseEvent> = []
    yield* sseEvents(`${upstream.url}/events`, auth).pipe(
      Stream.runForEach((event) => Effect.sync(() => events.push(event))),
      Effect.ignore,
      Effect.forkChild
    )
    const post = (path: string, body: unknown) =>
      Effect.tryPromise({
        try: () => fetch(`${upstream.url}/${path}`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify(body) }),
        catch: (error) => new Error(String(error))
      })
    const live: Live = { url: upstream.url, auth, events, post }
    return { session, live, workdir }
  })

const eventWith = (live: Live, what: string, predicate: (data: Record<string, unknown>) => boolean) =>
  waitUntil(what, Effect.sync(() => live.events.map((event) => event.data).find((data): data is Record<string, unknown> =>
    typeof data === "object" && data !== null && predicate(data as Record<string, unknown>)
  )), "60 seconds")

const approvalScript = [
  ModelScript.execCommand("printf 'approved\\n' > approved.txt", { sandboxPermissions: "require_escalated", justification: "needs approval" }),
  ModelScript.execCommand("printf 'DONE: approval handled\\n' >> optio.log"),
  ModelScript.text("finished")
]

describe("conversation mode end to end", () => {
  it.live("an escalated command asks for approval on SSE; allow runs it; DONE ends the session with success", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start(approvalScript)
      const { session, live, workdir } = yield* startSession(server, { permissionGate: true, autoStart: true })
      const approval = yield* eventWith(live, "an approval request", (data) => data["method"] === "item/commandExecution/requestApproval")
      const response = yield* live.post("permission", { request_id: String(approval["id"]), behavior: "allow" })
      assert.strictEqual(response.status, 200)
      const result = yield* Fiber.join(session)
      assert.strictEqual(result.summary, "approval handled")
      assert.isTrue(existsSync(join(workdir, "approved.txt")))
      yield* eventWith(live, "the answered event", (data) => data["type"] === "x-optio-permission-answered" && data["behavior"] === "allow")
      assert.deepStrictEqual(processesMentioning(workdir), [])
    }).pipe(Effect.scoped, Effect.provide(services("conv-allow"))), 120_000)

  it.live("deny: the command does not run and codex is told it was declined", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start(approvalScript)
      const { session, live, workdir } = yield* startSession(server, { permissionGate: true, autoStart: true })
      const approval = yield* eventWith(live, "an approval request", (data) => data["method"] === "item/commandExecution/requestApproval")
      yield* live.post("permission", { request_id: String(approval["id"]), behavior: "deny" })
      yield* Fiber.join(session)
      assert.isFalse(existsSync(join(workdir, "approved.txt")))
      const requests = yield* server.requests
      const toolOutput = JSON.stringify(requests[1]?.toolOutputs ?? [])
      assert.notInclude(toolOutput, "Process exited with code 0")
      assert.match(toolOutput, /declin|reject|denied|not approved/i)
    }).pipe(Effect.scoped, Effect.provide(services("conv-deny"))), 120_000)

  it.live("interrupt mid-turn: turn/completed with status interrupted reaches the SSE stream", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("this answer never finishes", { holdOpen: true })])
      const { session, live } = yield* startSession(server, { autoStart: true })
      yield* eventWith(live, "the turn started", (data) => data["method"] === "turn/started")
      const response = yield* live.post("interrupt", {})
      assert.strictEqual(response.status, 200)
      const completed = yield* eventWith(live, "an interrupted turn", (data) => data["method"] === "turn/completed")
      assert.strictEqual((completed["params"] as { turn: { status: string } }).turn.status, "interrupted")
      yield* Fiber.interrupt(session)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(session)))
    }).pipe(Effect.scoped, Effect.provide(services("conv-interrupt"))), 120_000)

  it.live("control: a new model and effort reach the model server on the next request, and stay for the ones after", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("first"), ModelScript.text("second")])
      const { session, live } = yield* startSession(server, {})
      const recorder = yield* TaskRecorder
      const widget = (yield* recorder.current).widgetData as { controls: ReadonlyArray<{ id: string; value: string | null; options?: ReadonlyArray<{ value: string }>; levels?: ReadonlyArray<string> }> }
      const modelControl = widget.controls.find((control) => control.id === "model")
      const other = Option.fromNullishOr(modelControl?.options?.find((option) => option.value !== modelControl.value)?.value)
      assert.isTrue(Option.isSome(other), "the model list offers a second model")
      if (Option.isNone(other)) return
      assert.strictEqual((yield* live.post("control", { id: "model", value: other.value })).status, 200)
      const update = yield* eventWith(live, "the controls update", (data) => data["type"] === "x-optio-control-update")
      const levels = ((update["controls"] as ReadonlyArray<{ id: string; levels?: ReadonlyArray<string> }>).find((control) => control.id === "reasoning_effort")?.levels) ?? []
      const effort = levels[0]
      if (effort !== undefined) assert.strictEqual((yield* live.post("control", { id: "reasoning_effort", value: effort })).status, 200)
      assert.strictEqual((yield* live.post("send", { text: "hello" })).status, 200)
      const request = yield* server.awaitRequests((requests) => requests.some((r) => r.userTexts.some((text) => text.includes("hello"))), "60 seconds")
      const sent = request.find((r) => r.userTexts.some((text) => text.includes("hello")))
      assert.strictEqual(sent?.model, other.value)
      if (effort !== undefined) assert.strictEqual(sent?.reasoningEffort, effort)
      // The next turn carries no override (codex keeps the last ones): the model server still
      // gets the chosen model and effort.
      assert.strictEqual((yield* live.post("send", { text: "again" })).status, 200)
      const later = yield* server.awaitRequests((requests) => requests.some((r) => r.userTexts.some((text) => text.includes("again"))), "60 seconds")
      const again = later.find((r) => r.userTexts.some((text) => text.includes("again")))
      assert.strictEqual(again?.model, other.value)
      if (effort !== undefined) assert.strictEqual(again?.reasoningEffort, effort)
      yield* Fiber.interrupt(session)
    }).pipe(Effect.scoped, Effect.provide(services("conv-control"))), 120_000)
})

rmSync(root, { recursive: true, force: true })
