/**
 * Fault: codex app-server hangs — stopped with SIGSTOP mid-turn, its process still there, so no
 * exit ever ends the session. Requests must time out as typed errors, the session must end
 * within its stated liveness bound, and teardown (SIGCONT, EOF, SIGTERM, SIGKILL) must leave no
 * process behind, quickly.
 *
 * What would break without the handling:
 * - without the per-request timeout of AppServerProtocol, `sendTurn` / `ping` would wait forever;
 * - without the liveness watch of ConversationBody (probes + `AppServerUnresponsive`), the
 *   session would wait on optio.log forever (the 15 s await below times out);
 * - without SIGCONT in CodexConversation.close, a stopped codex can act on neither EOF nor
 *   SIGTERM: teardown would take 2 × the grace period plus the host's SIGKILL grace (~9 s here)
 *   instead of milliseconds, and the teardown bounds below fail.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, References } from "effect"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import { DEMO_PROMPT, demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import type { SessionOptions } from "../../src/session/CodexSession.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { faultRoot, isAlive, noProcessMentions, services, signal } from "./harness.ts"
import { recordOutcome } from "./summary.ts"

const dirs = faultRoot("app-server-hang")
afterAll(dirs.remove)

/**
 * Starts a conversation session mid-turn — codex waiting on the model (`holdOpen`) or on the
 * operator (`approval`: an escalated command under the permission gate) — and hands back the
 * live conversation.
 */
const startMidTurn = (processId: string, options: SessionOptions, waitingOn: "model" | "approval" = "model") =>
  Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([
      waitingOn === "model"
        ? ModelScript.text("thinking forever", { holdOpen: true })
        : ModelScript.execCommand("touch escalated.txt", { sandboxPermissions: "require_escalated", justification: "please" })
    ])
    const workdir = dirs.workdir()
    const live = yield* Deferred.make<CodexConversation>()
    const session = yield* runCodexSession(
      {
        consumerInstructions: DEMO_PROMPT,
        mode: "conversation",
        autoStart: true,
        permissionGate: waitingOn === "approval",
        ...demoTaskSettings(server.baseUrl)
      },
      {
        workdir,
        stopGracePeriod: "2 seconds",
        onConversation: (conversation) => Deferred.succeed(live, conversation),
        ...options
      }
    ).pipe(Effect.provide(services(processId)), Effect.forkChild)
    yield* server.awaitRequests((all) => all.some((request) => request.answer._tag === "Step"), "30 seconds")
    const conversation = yield* Deferred.await(live)
    if (waitingOn === "approval") {
      yield* waitUntil("an approval request waits for the operator", conversation.pendingPermissions.pipe(
        Effect.map((pending) => pending.length > 0 ? true : undefined)
      ), "30 seconds")
    }
    return { session, conversation, workdir }
  })

// Collects the messages of every log call (the liveness watch logs each answered probe at Debug).
const logged: Array<string> = []
const recordingLogger = Logger.make<unknown, void>((options) => {
  const message = Array.isArray(options.message) ? options.message[0] : options.message
  logged.push(String(message))
})
const captureLogs = Layer.mergeAll(Logger.layer([recordingLogger]), Layer.succeed(References.MinimumLogLevel, "Debug"))

describe("fault: app-server stopped with SIGSTOP (hang)", () => {
  it.live("requests to a stopped app-server fail typed (AppServerRequestTimedOut); teardown resumes and stops it at once", () =>
    Effect.gen(function*() {
      const { session, conversation, workdir } = yield* startMidTurn("fault-hang-requests", { appServerRequestTimeout: "1 second" })
      // The probe is answered by a healthy codex in the middle of a turn.
      yield* conversation.ping("5 seconds")
      yield* signal(conversation.pid, "SIGSTOP")
      const turn = yield* Effect.flip(conversation.sendTurn("are you there?"))
      assert.strictEqual(turn._tag, "AppServerRequestTimedOut")
      if (turn._tag !== "AppServerRequestTimedOut") return
      assert.strictEqual(turn.method, "turn/start")
      assert.strictEqual(turn.timeoutMs, 1000)
      const probe = yield* Effect.flip(conversation.ping("300 millis"))
      assert.strictEqual(probe._tag, "AppServerRequestTimedOut")
      // Cancel: the session ends interrupted, and the stopped codex is resumed and stopped.
      const started = Date.now()
      yield* Fiber.interrupt(session)
      const teardown = Date.now() - started
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(session)))
      assert.isFalse(isAlive(conversation.pid))
      assert.isBelow(teardown, 3000, "a stopped codex must not cost the graceful waits (~9 s)")
      yield* noProcessMentions(workdir, "2 seconds")
      recordOutcome(
        "app-server SIGSTOP (hang), request path",
        `sendTurn → ${turn._tag} (turn/start, 1000 ms); ping → ${probe._tag}; cancel tore down the stopped codex in ${teardown} ms (SIGCONT + EOF); 0 orphans`
      )
    }).pipe(Effect.scoped), 60_000)

  it.live("the session's liveness watch fails it with AppServerUnresponsive within the stated bound, 0 orphans", () =>
    Effect.gen(function*() {
      const liveness = { interval: "200 millis", timeout: "1 second", failures: 3 } as const
      const bound = 3 * (200 + 1000)
      const { session, conversation, workdir } = yield* startMidTurn("fault-hang-liveness", { appServerLiveness: liveness }, "approval")
      // Mid-turn, waiting for the operator's approval, a healthy codex answers the probes and the
      // session goes on (a probe blocked behind the approval would kill every gated session).
      yield* waitUntil(
        "three answered liveness probes",
        Effect.sync(() => logged.filter((line) => line.includes("answered a liveness probe")).length >= 3 ? true : undefined),
        "10 seconds"
      )
      assert.isUndefined(session.pollUnsafe(), "a healthy codex must not be declared unresponsive")
      yield* signal(conversation.pid, "SIGSTOP")
      const started = Date.now()
      const exit = yield* Fiber.await(session).pipe(Effect.timeout("15 seconds"))
      const took = Date.now() - started
      const error = Exit.findErrorOption(exit)
      assert.isTrue(error._tag === "Some", `a typed failure, got ${String(exit)}`)
      if (error._tag !== "Some") return
      assert.strictEqual(error.value._tag, "AppServerUnresponsive")
      if (error.value._tag !== "AppServerUnresponsive") return
      assert.strictEqual(error.value.boundMs, bound)
      assert.strictEqual(error.value.pid, conversation.pid)
      // Detection within the bound, then a teardown of milliseconds (SIGCONT + EOF), not seconds.
      assert.isBelow(took, bound + 2000)
      assert.isFalse(isAlive(conversation.pid))
      yield* noProcessMentions(workdir, "2 seconds")
      recordOutcome(
        "app-server SIGSTOP (hang), session liveness",
        `${error.value._tag} after ${took} ms (bound ${bound} ms = 3 × (200 + 1000) ms, + teardown); "${error.value.message}"; 0 orphans`
      )
    }).pipe(Effect.scoped, Effect.provide(captureLogs)), 60_000)
})
