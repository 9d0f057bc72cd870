/**
 * The live conversation handed to the worker (item 2), with the real codex app-server: the worker
 * sends two turns through the published handle, answers an approval request through it, closes
 * it, and the task ends successfully — a `hostProtocol: false` task included.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Stream } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import type { ConversationEvent } from "../../src/appserver/ConversationHandle.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(repoRoot, ".cache", "test", `e2e-published-${process.pid}`)

const completedTurns = (events: ReadonlyArray<ConversationEvent>) => events.filter((event) => event["method"] === "turn/completed").length

describe("the published conversation (item 2)", () => {
  it.live("two turns and an approval through the worker's handle; its close ends the task as done", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([
        ModelScript.text("first answer"),
        ModelScript.execCommand("printf ok > approved.txt", { sandboxPermissions: "require_escalated", justification: "needs approval" }),
        ModelScript.text("second answer")
      ])
      const workdir = join(root, "w")
      mkdirSync(workdir, { recursive: true })
      const session = yield* runCodexSession(
        { consumerInstructions: "chat", mode: "conversation", hostProtocol: false, permissionGate: true, ...demoTaskSettings(server.baseUrl) },
        { workdir, stopGracePeriod: "2 seconds" }
      ).pipe(Effect.forkChild)
      const recorder = yield* TaskRecorder
      const handle = yield* waitUntil("the conversation is published", recorder.current.pipe(Effect.map((record) => record.conversation)), "60 seconds")
      const events: Array<ConversationEvent> = []
      yield* handle.events.pipe(Stream.runForEach((event) => Effect.sync(() => void events.push(event))), Effect.forkChild)

      yield* handle.send("one")
      yield* waitUntil("turn 1 completes", Effect.sync(() => completedTurns(events) >= 1 ? true : undefined), "60 seconds")
      yield* handle.send("two")
      const [pending] = yield* waitUntil("an approval request", handle.pendingPermissions.pipe(Effect.map((ids) => ids.length > 0 ? ids : undefined)), "60 seconds")
      assert.isTrue(yield* handle.answerPermission(pending!, "allow"))
      yield* waitUntil("turn 2 completes", Effect.sync(() => completedTurns(events) >= 2 ? true : undefined), "60 seconds")
      assert.isTrue(existsSync(join(workdir, "approved.txt")), "the approved command ran")

      yield* handle.close
      const exit = yield* Fiber.await(session)
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.outcome, "done")
      const progress = (yield* recorder.current).progress.map((entry) => entry.message ?? "").join("\n")
      assert.include(progress, "The worker closed the conversation")
      const answers = (yield* server.requests).filter((request) => request.path.endsWith("/responses")).map((request) => request.userTexts.at(-1))
      assert.includeMembers(answers, ["one", "two"])
      assert.deepStrictEqual(processesMentioning(workdir), [])
    }).pipe(Effect.scoped, Effect.provide(sessionServices("published", { state: new MemoryStoreState() }))), 120_000)
})
