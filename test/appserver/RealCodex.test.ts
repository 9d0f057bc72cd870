/**
 * CodexConversation against the real pinned codex binary, offline: the bootstrap alone (a
 * provider nothing listens on), then real turns and approvals against the scripted model server.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { Scope } from "effect"
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { startConversation } from "../support/services.ts"
import { PINNED_CODEX_VERSION } from "../../src/binary/BinaryCache.ts"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import type { ConversationEvent } from "../../src/appserver/ConversationHandle.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { codexBinary, offlineCodexDirs } from "../support/offlineCodex.ts"
import { waitUntil } from "../support/waitUntil.ts"

const MODEL = "test-model"
const root = join(process.cwd(), ".cache", "test", `appserver-real-${process.pid}`)
afterAll(() => rmSync(root, { recursive: true, force: true }))

const live = <A, E>(name: string, body: () => Effect.Effect<A, E, Scope.Scope | Host>) =>
  it.live(name, () => Effect.scoped(body()).pipe(Effect.provide(LocalHost.layer())), 90_000)

/** Collects every event from now on. */
const record = Effect.fnUntraced(function*(conversation: CodexConversation) {
  const events: Array<ConversationEvent> = []
  const stream = yield* conversation.subscribe
  yield* stream.pipe(Stream.runForEach((event) => Effect.sync(() => void events.push(event))), Effect.forkScoped)
  return events
})

const find = (events: ReadonlyArray<ConversationEvent>, predicate: (event: ConversationEvent) => boolean) =>
  Effect.sync(() => events.find(predicate))

const objectAt = (value: unknown, key: string): Record<string, unknown> => {
  const inner = typeof value === "object" && value !== null ? Object.entries(value).find(([name]) => name === key)?.[1] : undefined
  return typeof inner === "object" && inner !== null && !Array.isArray(inner) ? { ...inner } : {}
}

const turnCompleted = (events: ReadonlyArray<ConversationEvent>) =>
  waitUntil("turn/completed", find(events, (event) => event["method"] === "turn/completed"), "60 seconds")

describe(`CodexConversation with the real codex ${PINNED_CODEX_VERSION}`, () => {
  live("bootstraps, decodes the model list, closes, and leaves no process", () =>
    Effect.gen(function*() {
      const home = join(root, "bootstrap", "home")
      const codexHome = join(home, ".codex")
      const workdir = join(root, "bootstrap", "work")
      const tmp = join(root, "bootstrap", "tmp")
      for (const dir of [codexHome, workdir, tmp]) mkdirSync(dir, { recursive: true })
      writeFileSync(join(codexHome, "config.toml"), [
        "check_for_update_on_startup = false",
        `model_provider = "local"`,
        `model = "${MODEL}"`,
        `model_providers.local = { name = "local", base_url = "http://127.0.0.1:9/v1", wire_api = "responses", env_key = "OPTIO_DUMMY_KEY" }`,
        ""
      ].join("\n"))
      const conversation = yield* startConversation({
        launchPath: codexBinary,
        cwd: workdir,
        env: { HOME: home, CODEX_HOME: codexHome, TMPDIR: tmp, OPTIO_DUMMY_KEY: "dummy" },
        sandbox: "workspace-write",
        permissionGate: false
      })
      assert.match(conversation.threadId, /^[0-9a-f-]{36}$/)
      assert.strictEqual(conversation.serverInfo.codexHome, codexHome)
      assert.isTrue((conversation.serverInfo.userAgent ?? "").startsWith(`optio_codex/${PINNED_CODEX_VERSION}`), conversation.serverInfo.userAgent)
      assert.isNull(conversation.account)
      assert.deepStrictEqual(conversation.history, [])
      assert.strictEqual(yield* conversation.currentModel, MODEL)
      // The catalog is codex's built-in list: every entry decoded, efforts read from objects.
      assert.isAbove(conversation.models.models.length, 0)
      assert.isString(conversation.models.default)
      for (const model of conversation.models.models) {
        assert.isAbove(model.efforts.length, 0, model.id)
        for (const effort of model.efforts) assert.isString(effort)
      }
      const controls = yield* conversation.controls
      assert.strictEqual(controls[0]?.options?.[0]?.value, MODEL)
      yield* conversation.close
      assert.strictEqual(yield* conversation.exited, 0)
      const host = yield* Host
      assert.isFalse(yield* host.isAlive(conversation.pid))
    }))

  live("runs a real turn to turn/completed", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("Hello from the script.")], { model: MODEL })
      const dirs = yield* offlineCodexDirs("appserver-turn", { baseUrl: server.baseUrl, model: MODEL })
      const conversation = yield* startConversation({
        launchPath: codexBinary,
        cwd: dirs.workdir,
        env: dirs.env,
        sandbox: "workspace-write",
        permissionGate: false
      })
      const events = yield* record(conversation)
      const turnId = yield* conversation.sendTurn("hi")
      const completed = yield* turnCompleted(events)
      const turn = objectAt(completed["params"], "turn")
      assert.deepStrictEqual([turn["id"], turn["status"]], [turnId, "completed"])
      const reply = events.find((event) =>
        event["method"] === "item/completed" && objectAt(event["params"], "item")["type"] === "agentMessage")
      assert.strictEqual(objectAt(reply?.["params"], "item")["text"], "Hello from the script.")
      yield* conversation.awaitIdle
      assert.isNull(yield* conversation.activeTurn)
      const requests = yield* server.requests
      assert.include(requests.flatMap((request) => request.userTexts), "hi")
    }))

  for (const behavior of ["allow", "deny"] as const) {
    live(`asks for approval of an escalated command and honours ${behavior}`, () =>
      Effect.gen(function*() {
        const marker = `${behavior}-ran.txt`
        const server = yield* ScriptedModelServer.start([
          ModelScript.execCommand(`touch ${marker}`, { sandboxPermissions: "require_escalated", justification: "test approval" }),
          ModelScript.text("Finished.")
        ], { model: MODEL })
        const dirs = yield* offlineCodexDirs(`appserver-approval-${behavior}`, { baseUrl: server.baseUrl, model: MODEL })
        const conversation = yield* startConversation({
          launchPath: codexBinary,
          cwd: dirs.workdir,
          env: dirs.env,
          sandbox: "workspace-write",
          permissionGate: true
        })
        const events = yield* record(conversation)
        yield* conversation.send("run the command")
        const request = yield* waitUntil(
          "the approval request",
          find(events, (event) => event["method"] === "item/commandExecution/requestApproval"),
          "60 seconds"
        )
        assert.include(String(objectAt(request, "params")["command"]), marker)
        assert.deepStrictEqual(yield* conversation.pendingPermissions, [String(request["id"])])
        assert.isTrue(yield* conversation.answerPermission(String(request["id"]), behavior))
        const completed = yield* turnCompleted(events)
        assert.strictEqual(objectAt(completed["params"], "turn")["status"], "completed")
        assert.isDefined(events.find((event) =>
          event["type"] === "x-optio-permission-answered" && event["behavior"] === behavior))
        assert.strictEqual(existsSync(join(dirs.workdir, marker)), behavior === "allow")
      }))
  }
})
