/**
 * CodexConversation against a scripted app-server peer (fixtures/fake-app-server.ts, codex 0.169
 * behaviour) spawned through the real LocalHost: bootstrap, turn tracking with steering,
 * interrupts, the permission gate, controls and the end of the conversation.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import type { Scope } from "effect"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import { startConversation } from "../support/services.ts"
import { fallbackCatalog } from "../../src/appserver/ModelCatalog.ts"
import { turnEvents } from "../../src/appserver/TurnEvents.ts"
import type { CodexConversation, ConversationOptions } from "../../src/appserver/CodexConversation.ts"
import type { ConversationEvent } from "../../src/appserver/ConversationHandle.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(process.cwd(), ".cache", "test", `appserver-conversation-${process.pid}`)
const workdir = join(root, "work")
const launcher = join(root, "fake-codex")
rmSync(root, { recursive: true, force: true })
mkdirSync(workdir, { recursive: true })
const fixture = fileURLToPath(new URL("./fixtures/fake-app-server.ts", import.meta.url))
writeFileSync(launcher, `#!/bin/sh\nexec '${process.execPath}' '${fixture}' "$@"\n`, { mode: 0o755 })
afterAll(() => rmSync(root, { recursive: true, force: true }))

let runs = 0

interface Harness {
  readonly conversation: CodexConversation
  /** Every message the peer received, in order. */
  readonly received: () => ReadonlyArray<Record<string, unknown>>
  /** Every event published since just after the bootstrap. */
  readonly events: Array<ConversationEvent>
}

const start = (overrides: Partial<ConversationOptions> = {}, peerEnv: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const record = join(root, `record-${++runs}.jsonl`)
    writeFileSync(record, "")
    const conversation = yield* startConversation({
      launchPath: launcher,
      cwd: workdir,
      sandbox: "workspace-write",
      permissionGate: false,
      env: { FAKE_RECORD: record, ...peerEnv },
      ...overrides
    })
    const events: Array<ConversationEvent> = []
    const stream = yield* conversation.subscribe
    yield* stream.pipe(Stream.runForEach((event) => Effect.sync(() => void events.push(event))), Effect.forkScoped)
    const received = () =>
      readFileSync(record, "utf8").split("\n").filter((line) => line !== "").map((line): Record<string, unknown> => JSON.parse(line))
    const harness: Harness = { conversation, received, events }
    return harness
  })

const live = <A, E>(name: string, body: () => Effect.Effect<A, E, Scope.Scope | Host>) =>
  it.live(name, () => Effect.scoped(body()).pipe(Effect.provide(LocalHost.layer())), 30_000)

const sentWith = (received: Harness["received"], method: string) => received().filter((message) => message["method"] === method)

const eventWith = (events: ReadonlyArray<ConversationEvent>, predicate: (event: ConversationEvent) => boolean) =>
  Effect.sync(() => events.find(predicate))

const isMethod = (method: string) => (event: ConversationEvent) => event["method"] === method

const objectAt = (event: ConversationEvent | undefined, key: string): Record<string, unknown> => {
  const value = event?.[key]
  return typeof value === "object" && value !== null && !Array.isArray(value) ? { ...value } : {}
}

const paramsOf = (event: ConversationEvent | undefined) => objectAt(event, "params")

const turnOf = (event: ConversationEvent) => objectAt(paramsOf(event), "turn")

describe("CodexConversation (scripted peer)", () => {
  live("bootstraps in order — initialize first, then account, models and thread pipelined — with the exact params", () =>
    Effect.gen(function*() {
      const { conversation, received } = yield* start()
      const messages = received()
      assert.deepStrictEqual(messages.slice(0, 2).map((message) => message["method"]), ["initialize", "initialized"])
      // After the handshake the independent requests go out together; page 2 of the model
      // list follows page 1's answer.
      assert.deepStrictEqual(messages.slice(2).map((message) => message["method"]).sort(), [
        "account/rateLimits/read",
        "account/read",
        "model/list",
        "model/list",
        "thread/start"
      ])
      for (const message of messages) assert.notProperty(message, "jsonrpc")
      assert.deepStrictEqual(messages[0], {
        id: 1,
        method: "initialize",
        params: {
          clientInfo: { name: "optio_codex", title: "Optio", version: "0.1.0" },
          capabilities: { optOutNotificationMethods: ["item/commandExecution/outputDelta"] }
        }
      })
      assert.deepStrictEqual(messages[1], { method: "initialized" })
      const sent = (method: string) => messages.filter((message) => message["method"] === method).map(({ id: _id, ...rest }) => rest)
      assert.deepStrictEqual(sent("account/read"), [{ method: "account/read", params: { refreshToken: false } }])
      assert.deepStrictEqual(sent("model/list"), [
        { method: "model/list", params: {} },
        { method: "model/list", params: { cursor: "page-2" } }
      ])
      assert.deepStrictEqual(sent("thread/start"), [
        { method: "thread/start", params: { cwd: workdir, sandbox: "workspace-write", approvalPolicy: "never" } }
      ])
      const pageOne = messages.findIndex((message) => message["method"] === "model/list")
      const pageTwo = messages.findLastIndex((message) => message["method"] === "model/list")
      assert.isBelow(pageOne, pageTwo)
      assert.strictEqual(conversation.threadId, "fake-thread")
      assert.deepStrictEqual(conversation.account, { type: "apiKey" })
      assert.deepStrictEqual(conversation.rateLimits?.primary, { usedPercent: 41, windowDurationMins: 300, resetsAt: 1900000000 })
      assert.strictEqual(conversation.serverInfo.userAgent, "optio_codex/0.169.0-fake")
      assert.deepStrictEqual(conversation.models, {
        models: [
          { id: "gpt-a", label: "GPT-A", efforts: ["low", "medium", "high"], defaultEffort: "medium" },
          { id: "gpt-b", label: "GPT-B", efforts: ["minimal", "low"], defaultEffort: "low" }
        ],
        default: "gpt-a",
        source: "codex"
      })
      assert.strictEqual(yield* conversation.currentModel, "gpt-a")
      assert.strictEqual(yield* conversation.currentEffort, "medium")
      assert.deepStrictEqual(conversation.history, [])
    }))

  live("treats a failed account/read as an unknown account; passes the gate policy and the model", () =>
    Effect.gen(function*() {
      const { conversation, received } = yield* start({ permissionGate: true, model: "gpt-b" }, { FAKE_ACCOUNT: "fail" })
      assert.isNull(conversation.account)
      assert.isNull(conversation.rateLimits, "a failed usage read is unknown, not fatal")
      assert.deepStrictEqual(sentWith(received, "thread/start")[0]?.["params"], {
        cwd: workdir,
        sandbox: "workspace-write",
        approvalPolicy: "on-request",
        model: "gpt-b"
      })
      assert.strictEqual(yield* conversation.currentModel, "gpt-b")
      assert.strictEqual(yield* conversation.currentEffort, "low")
    }))

  live("fails to start, typed, when codex refuses the thread", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(start({}, { FAKE_THREAD: "fail" }))
      assert.strictEqual(error._tag, "AppServerRequestFailed")
      if (error._tag === "AppServerRequestFailed") {
        assert.deepStrictEqual([error.method, error.code, error.errorMessage], ["thread/start", -32600, "cwd is not usable"])
      }
    }))

  live("fails to start with a typed timeout when codex never answers initialize", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(start({ requestTimeout: "300 millis" }, { FAKE_SILENT: "initialize" }))
      assert.strictEqual(error._tag, "AppServerRequestTimedOut")
      if (error._tag === "AppServerRequestTimedOut") assert.strictEqual(error.method, "initialize")
    }))

  live("resumes with thread/resume and the new cwd, keeping the history", () =>
    Effect.gen(function*() {
      const { conversation, received } = yield* start({ resumeThreadId: "old-thread" })
      assert.deepStrictEqual(sentWith(received, "thread/resume")[0]?.["params"], {
        threadId: "old-thread",
        cwd: workdir,
        sandbox: "workspace-write",
        approvalPolicy: "never"
      })
      assert.lengthOf(sentWith(received, "thread/start"), 0)
      assert.strictEqual(conversation.threadId, "old-thread")
      assert.deepStrictEqual(conversation.history.map((turn) => [turn.id, turn.status, turn.items.map((item) => item["type"])]), [
        ["old-turn", "completed", ["userMessage", "agentMessage"]]
      ])
    }))

  live("sends a turn, resolves on the ACK and tracks the turn to its end", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start()
      const turns: Array<string> = []
      const turnStream = yield* conversation.turns.pipe(
        Stream.runForEach((event) => Effect.sync(() => void turns.push(`${event._tag}:${event.turnId}`))),
        Effect.forkScoped
      )
      // The turns stream subscribes when it starts running: send warm-up turns until it sees one.
      yield* waitUntil("the turn stream is subscribed", conversation.send("warm up").pipe(
        Effect.andThen(conversation.awaitIdle),
        Effect.andThen(Effect.sync(() => turns.length > 0 ? true : undefined))
      ))
      const turnId = yield* conversation.sendTurn("say hello")
      assert.match(turnId, /^turn-\d+$/)
      assert.deepStrictEqual(sentWith(received, "turn/start").at(-1)?.["params"], {
        threadId: "fake-thread",
        input: [{ type: "text", text: "say hello" }]
      })
      yield* conversation.awaitIdle
      assert.isNull(yield* conversation.activeTurn)
      const completed = yield* waitUntil("the turn completes", eventWith(events, (event) =>
        isMethod("turn/completed")(event) && turnOf(event)["id"] === turnId))
      assert.strictEqual(turnOf(completed)["status"], "completed")
      const deltas = events.filter((event) => isMethod("item/agentMessage/delta")(event) && paramsOf(event)["turnId"] === turnId)
      assert.lengthOf(deltas, 2)
      assert.isDefined(events.find((event) => event["id"] !== undefined && event["result"] !== undefined))
      yield* waitUntil("the turn stream saw it", Effect.sync(() => turns.includes(`TurnCompleted:${turnId}`) ? true : undefined))
      assert.include(turns, `TurnStarted:${turnId}`)
      yield* Fiber.interrupt(turnStream)
    }))

  live("tracks a steered turn by id: two sends, one turn/completed, then idle", () =>
    Effect.gen(function*() {
      const { conversation, events } = yield* start()
      const first = yield* conversation.sendTurn("HOLD")
      assert.strictEqual(yield* conversation.activeTurn, first)
      const second = yield* conversation.sendTurn("also this, RELEASE")
      assert.strictEqual(second, first)
      yield* conversation.awaitIdle
      assert.isNull(yield* conversation.activeTurn)
      // A later turn's end proves every event of the steered turn has been delivered.
      const third = yield* conversation.sendTurn("next")
      assert.notStrictEqual(third, first)
      yield* conversation.awaitIdle
      yield* waitUntil("the next turn's end", eventWith(events, (event) =>
        isMethod("turn/completed")(event) && turnOf(event)["id"] === third))
      const completions = events.filter((event) => isMethod("turn/completed")(event) && turnOf(event)["id"] === first)
      assert.lengthOf(completions, 1)
    }))

  live("interrupts only an active turn; the end arrives as turn/completed interrupted", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start()
      yield* conversation.interrupt
      assert.lengthOf(sentWith(received, "turn/interrupt"), 0)
      const turnId = yield* conversation.sendTurn("HOLD")
      yield* conversation.interrupt
      assert.deepStrictEqual(sentWith(received, "turn/interrupt")[0]?.["params"], { threadId: "fake-thread", turnId })
      yield* conversation.awaitIdle
      const completed = yield* waitUntil("the interrupted end", eventWith(events, isMethod("turn/completed")))
      assert.strictEqual(turnOf(completed)["status"], "interrupted")
    }))

  live("keeps an interrupt that lost the race from reaching viewers as an error", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start()
      yield* conversation.sendTurn("RACE")
      yield* conversation.interrupt
      assert.lengthOf(sentWith(received, "turn/interrupt"), 1)
      yield* conversation.awaitIdle
      yield* conversation.send("after the race")
      yield* conversation.awaitIdle
      yield* waitUntil("the second turn's end", Effect.sync(() =>
        events.filter(isMethod("turn/completed")).length === 2 ? true : undefined))
      assert.isUndefined(events.find((event) => event["error"] !== undefined))
    }))

  live("permission gate: allow answers accept, publishes the answer, and a second answer finds nothing", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start({ permissionGate: true })
      yield* conversation.send("TOOL")
      const request = yield* waitUntil("the approval request", eventWith(events, isMethod("item/commandExecution/requestApproval")))
      assert.strictEqual(request["id"], 0)
      assert.strictEqual(paramsOf(request)["command"], "/bin/bash -lc 'echo hi'")
      assert.isTrue(yield* conversation.answerPermission("0", "allow"))
      assert.isFalse(yield* conversation.answerPermission("0", "deny"))
      const answered = yield* waitUntil("the answered event", eventWith(events, (event) => event["type"] === "x-optio-permission-answered"))
      assert.deepStrictEqual(answered, { type: "x-optio-permission-answered", request_id: "0", behavior: "allow" })
      yield* conversation.awaitIdle
      assert.deepStrictEqual(received().find((message) => message["id"] === 0), { id: 0, result: { decision: "accept" } })
      yield* waitUntil("the turn's end", eventWith(events, isMethod("turn/completed")))
      const folded = yield* Stream.runCollect(Stream.fromIterable(events).pipe(turnEvents(conversation.threadId)))
      assert.deepStrictEqual(folded, [
        { _tag: "TurnStarted", turnId: "turn-1" },
        { _tag: "TurnCompleted", turnId: "turn-1", status: "completed", answer: "Let me check. tool-accept" }
      ])
    }))

  live("permission gate: deny answers decline (also for file changes)", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start({ permissionGate: true })
      yield* conversation.send("FILE")
      yield* waitUntil("the approval request", eventWith(events, isMethod("item/fileChange/requestApproval")))
      assert.isTrue(yield* conversation.answerPermission("0", "deny"))
      yield* conversation.awaitIdle
      assert.deepStrictEqual(received().find((message) => message["id"] === 0), { id: 0, result: { decision: "decline" } })
      const answered = yield* waitUntil("the answered event", eventWith(events, (event) => event["type"] === "x-optio-permission-answered"))
      assert.strictEqual(answered["behavior"], "deny")
    }))

  live("permission gate: an unanswered request is declined after the timeout", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start({ permissionGate: true, permissionTimeout: "200 millis" })
      yield* conversation.send("TOOL")
      yield* conversation.awaitIdle
      assert.deepStrictEqual(received().find((message) => message["id"] === 0), { id: 0, result: { decision: "decline" } })
      const answered = yield* waitUntil("the answered event", eventWith(events, (event) => event["type"] === "x-optio-permission-answered"))
      assert.strictEqual(answered["behavior"], "deny")
      assert.isFalse(yield* conversation.answerPermission("0", "allow"))
    }))

  live("permission gate: a request is answerable by a viewer that subscribes after it arrived", () =>
    Effect.gen(function*() {
      const { conversation } = yield* start({ permissionGate: true })
      const turnId = yield* conversation.sendTurn("TOOL")
      yield* waitUntil("the request is pending", conversation.pendingPermissions.pipe(
        Effect.map((pending) => pending.includes("0") ? true : undefined)
      ))
      assert.strictEqual(yield* conversation.activeTurn, turnId)
      const lateEvents: Array<ConversationEvent> = []
      const late = yield* conversation.subscribe
      yield* late.pipe(Stream.runForEach((event) => Effect.sync(() => void lateEvents.push(event))), Effect.forkScoped)
      assert.isTrue(yield* conversation.answerPermission("0", "allow"))
      const answered = yield* waitUntil("the late viewer sees the answer", eventWith(lateEvents, (event) =>
        event["type"] === "x-optio-permission-answered"))
      assert.strictEqual(answered["request_id"], "0")
    }))

  live("permission gate off: requests are declined at once and the answer is published", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start({ permissionGate: false })
      yield* conversation.send("TOOL")
      yield* conversation.awaitIdle
      assert.deepStrictEqual(received().find((message) => message["id"] === 0), { id: 0, result: { decision: "decline" } })
      yield* waitUntil("the answered event", eventWith(events, (event) => event["type"] === "x-optio-permission-answered"))
      const request = events.findIndex(isMethod("item/commandExecution/requestApproval"))
      const answered = events.findIndex((event) => event["type"] === "x-optio-permission-answered")
      assert.isAtLeast(request, 0)
      assert.isAbove(answered, request)
    }))

  live("close declines pending approvals, ends with x-optio-closed, and refuses later calls", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start({ permissionGate: true })
      yield* conversation.send("TOOL")
      yield* waitUntil("the approval request", eventWith(events, isMethod("item/commandExecution/requestApproval")))
      yield* conversation.close
      yield* conversation.close
      assert.deepStrictEqual(received().find((message) => message["id"] === 0), { id: 0, result: { decision: "decline" } })
      yield* waitUntil("the closed event", eventWith(events, (event) => event["type"] === "x-optio-closed"))
      const last = events.at(-1)
      assert.deepStrictEqual(last, { type: "x-optio-closed", reason: "closed" })
      const answered = events.findIndex((event) => event["type"] === "x-optio-permission-answered")
      assert.isBelow(answered, events.length - 1)
      assert.strictEqual(yield* conversation.exited, 0)
      assert.strictEqual((yield* Effect.flip(conversation.send("more")))._tag, "ConversationClosed")
      assert.strictEqual((yield* Effect.flip(conversation.interrupt))._tag, "ConversationClosed")
      assert.strictEqual((yield* Effect.flip(conversation.setControl("model", "gpt-b")))._tag, "ConversationClosed")
      assert.isFalse(yield* conversation.answerPermission("0", "allow"))
      // A viewer arriving after the end gets the closed event and an ended stream.
      const afterwards = yield* Stream.runCollect(conversation.events)
      assert.deepStrictEqual(afterwards, [{ type: "x-optio-closed", reason: "closed" }])
      const host = yield* Host
      assert.isFalse(yield* host.isAlive(conversation.pid))
    }))

  live("a process that exits by itself closes the conversation with its exit code", () =>
    Effect.gen(function*() {
      const { conversation, events } = yield* start()
      yield* conversation.send("EXIT")
      const closed = yield* waitUntil("the closed event", eventWith(events, (event) => event["type"] === "x-optio-closed"))
      assert.include(String(closed["reason"]), "code 7")
      assert.strictEqual(events.at(-1), closed)
      assert.strictEqual(yield* conversation.exited, 7)
      assert.strictEqual((yield* Effect.flip(conversation.awaitIdle))._tag, "ConversationClosed")
      assert.strictEqual((yield* Effect.flip(conversation.sendTurn("more")))._tag, "ConversationClosed")
    }))

  for (const listing of ["fail", "empty"] as const) {
    live(`model picker: when model/list ${listing === "fail" ? "fails" : "lists nothing"} the static fallback is offered and switches to its models work`, () =>
      Effect.gen(function*() {
        const { conversation, received } = yield* start({}, { FAKE_MODELS: listing })
        assert.strictEqual(conversation.models.source, "fallback")
        const [picker] = yield* conversation.controls
        // The thread's own model stays offered beside the fallback list, so the picker shows the truth.
        assert.deepStrictEqual(picker?.options?.map((option) => option.value), ["gpt-a", ...fallbackCatalog.models.map((model) => model.id)])
        assert.strictEqual(picker?.disabled, false)
        yield* conversation.setControl("model", "gpt-5.4-mini")
        assert.strictEqual(yield* conversation.currentModel, "gpt-5.4-mini")
        const refused = yield* Effect.flip(conversation.setControl("model", "no-such-model"))
        assert.strictEqual(refused._tag, "InvalidControl")
        yield* conversation.send("one")
        yield* conversation.awaitIdle
        assert.strictEqual(sentWith(received, "turn/start").at(-1)?.["params"]?.["model" as never], "gpt-5.4-mini")
      }))
  }

  live("controls: validates model and effort, resets effort on a model change, sends each on the turn/start after it changed, and only then", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start()
      const initial = yield* conversation.controls
      assert.deepStrictEqual(initial.map((control) => [control.id, control.kind, control.value, control.disabled]), [
        ["model", "select", "gpt-a", false],
        ["reasoning_effort", "slider", "medium", false]
      ])
      assert.deepStrictEqual(initial[1]?.levels, ["low", "medium", "high"])
      assert.deepStrictEqual(initial[0]?.options?.map((option) => option.value), ["gpt-a", "gpt-b"])

      const invalid = [
        yield* Effect.flip(conversation.setControl("model", "no-such-model")),
        yield* Effect.flip(conversation.setControl("model", 42)),
        yield* Effect.flip(conversation.setControl("reasoning_effort", "ultra")),
        yield* Effect.flip(conversation.setControl("temperature", "hot"))
      ]
      assert.deepStrictEqual(invalid.map((error) => [error._tag, error._tag === "InvalidControl" ? error.id : ""]), [
        ["InvalidControl", "model"],
        ["InvalidControl", "model"],
        ["InvalidControl", "reasoning_effort"],
        ["InvalidControl", "temperature"]
      ])

      yield* conversation.setControl("reasoning_effort", "high")
      yield* conversation.send("one")
      yield* conversation.awaitIdle
      assert.deepStrictEqual(sentWith(received, "turn/start").at(-1)?.["params"], {
        threadId: "fake-thread",
        input: [{ type: "text", text: "one" }],
        effort: "high"
      })

      yield* conversation.setControl("model", "gpt-b")
      assert.strictEqual(yield* conversation.currentEffort, "low")
      yield* conversation.send("two")
      yield* conversation.awaitIdle
      assert.deepStrictEqual(sentWith(received, "turn/start").at(-1)?.["params"], {
        threadId: "fake-thread",
        input: [{ type: "text", text: "two" }],
        model: "gpt-b",
        effort: "low"
      })
      const updatesOf = () => events.filter((event) => event["type"] === "x-optio-control-update")
      yield* waitUntil("two control updates", Effect.sync(() => updatesOf().length === 2 ? true : undefined))
      const updates = updatesOf()
      const lastControls = updates[1]?.["controls"]
      assert.isTrue(Array.isArray(lastControls))
      assert.deepStrictEqual(
        (yield* conversation.controls).map((control) => control.value),
        ["gpt-b", "low"]
      )

      // codex keeps a turn's overrides for the turns after it: unchanged ones are not sent again.
      yield* conversation.send("three")
      yield* conversation.awaitIdle
      assert.deepStrictEqual(sentWith(received, "turn/start").at(-1)?.["params"], {
        threadId: "fake-thread",
        input: [{ type: "text", text: "three" }]
      })
      yield* conversation.setControl("reasoning_effort", "minimal")
      yield* conversation.send("four")
      yield* conversation.awaitIdle
      assert.deepStrictEqual(sentWith(received, "turn/start").at(-1)?.["params"], {
        threadId: "fake-thread",
        input: [{ type: "text", text: "four" }],
        effort: "minimal"
      })
    }))

  live("a task's reasoning effort goes on the first turn/start only, when codex's thread does not report it", () =>
    Effect.gen(function*() {
      const { conversation, received } = yield* start({ reasoningEffort: "high" })
      yield* conversation.send("one")
      yield* conversation.awaitIdle
      yield* conversation.send("two")
      yield* conversation.awaitIdle
      assert.deepStrictEqual(sentWith(received, "turn/start").map((message) => message["params"]), [
        { threadId: "fake-thread", input: [{ type: "text", text: "one" }], effort: "high" },
        { threadId: "fake-thread", input: [{ type: "text", text: "two" }] }
      ])
    }))

  live("answers an unsupported server request with -32601 and forwards it", () =>
    Effect.gen(function*() {
      const { conversation, received, events } = yield* start({ permissionGate: true })
      yield* conversation.send("ASK")
      yield* conversation.awaitIdle
      const refusal = received().find((message) => message["id"] === 0 && message["error"] !== undefined)
      assert.strictEqual(objectAt(refusal, "error")["code"], -32601)
      const reply = yield* waitUntil("the reply", eventWith(events, isMethod("item/completed")))
      assert.isDefined(events.find(isMethod("item/tool/requestUserInput")))
      assert.deepStrictEqual(paramsOf(reply)["item"], { type: "agentMessage", id: "msg-turn-1", text: "ask-error--32601" })
      assert.deepStrictEqual(yield* conversation.pendingPermissions, [])
    }))

  live("surfaces a garbage line as x-optio-unparseable with a bounded excerpt", () =>
    Effect.gen(function*() {
      const { conversation, events } = yield* start()
      yield* conversation.send("GARBAGE")
      yield* conversation.awaitIdle
      const unparseable = yield* waitUntil("the unparseable event", eventWith(events, (event) => event["type"] === "x-optio-unparseable"))
      assert.isAtMost(String(unparseable["line"]).length, 201)
      assert.isAbove(Number(unparseable["bytes"]), 5000)
    }))
})
