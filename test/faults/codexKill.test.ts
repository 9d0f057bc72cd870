/**
 * Fault: codex is killed with SIGKILL in the middle of a turn (the scripted model holds its
 * answer open, so codex is waiting on the model), in both modes. The session must fail with a
 * typed error that names what died — codex, status 137, SIGKILL — still snapshot the workdir
 * (as a failed run), and leave no process behind.
 *
 * What would break without the handling:
 * - conversation: without the `exited` watch in ConversationBody, nothing ends the optio.log
 *   follow when the app-server dies, and the session hangs (the test times out);
 * - tui: without TmuxSession's dead-pane status (`remain-on-exit` + `pane_dead_signal`) the exit
 *   status would be unknown (`exitCode` null) or the poll would never end;
 * - both: without the tree kill at teardown, codex's helpers outlive it (orphans).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { DEMO_PROMPT, demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { codexPidOf, faultRoot, isAlive, noProcessMentions, services, signal } from "./harness.ts"
import { recordOutcome } from "./summary.ts"

const dirs = faultRoot("codex-kill")

const killMidTurn = (mode: "conversation" | "iframe", processId: string) =>
  Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([ModelScript.text("thinking forever", { holdOpen: true })])
    const workdir = dirs.workdir()
    const session = yield* runCodexSession(
      { consumerInstructions: DEMO_PROMPT, mode, autoStart: true, ...demoTaskSettings(server.baseUrl) },
      { workdir, stopGracePeriod: "2 seconds" }
    ).pipe(Effect.forkChild)
    // Mid-turn: codex has asked the model and the model holds the answer open.
    yield* server.awaitRequests((all) => all.some((request) => request.answer._tag === "Step"), "30 seconds")
    const pid = yield* codexPidOf(workdir)
    yield* signal(pid, "SIGKILL")
    const started = Date.now()
    const exit = yield* Fiber.await(session).pipe(Effect.timeout("20 seconds"))
    const took = Date.now() - started
    assert.isTrue(Exit.isFailure(exit), "the session must fail, not succeed")
    const error = Exit.findErrorOption(exit)
    assert.isTrue(error._tag === "Some", `a typed failure, got ${String(exit)}`)
    if (error._tag !== "Some") return
    assert.strictEqual(error.value._tag, "CodexExitedEarly")
    if (error.value._tag !== "CodexExitedEarly") return
    assert.strictEqual(error.value.exitCode, 137)
    assert.match(error.value.message, /codex .*SIGKILL/)
    assert.isFalse(isAlive(pid))
    // item 3: a TUI that dies records the reference's ERROR line in optio.log (and in progress).
    const log = readFileSync(join(workdir, "optio.log"), "utf8")
    if (mode === "iframe") assert.include(log, "ERROR: codex exited 137\n")
    else assert.notInclude(log, "ERROR: codex exited")
    yield* noProcessMentions(workdir, "2 seconds")
    // The workdir is still saved for a resume, recorded as a failed run.
    const snapshot = yield* SnapshotStore.use((store) => store.latest(processId))
    assert.isTrue(Option.isSome(snapshot), "a snapshot is taken although codex died")
    assert.strictEqual(Option.getOrThrow(snapshot).endState, "failed")
    return `${error.value._tag} (exitCode ${error.value.exitCode}): "${error.value.message.split(" before the agent")[0]}"; ended ${took} ms after the kill; snapshot taken (endState failed); 0 orphans`
  }).pipe(Effect.scoped)

describe("fault: codex SIGKILL mid-turn", () => {
  it.live("conversation mode: typed CodexExitedEarly naming SIGKILL, snapshot still taken, 0 orphans", () =>
    killMidTurn("conversation", "fault-kill-conv").pipe(
      Effect.tap((outcome) => Effect.sync(() => recordOutcome("codex SIGKILL mid-turn (conversation)", outcome ?? ""))),
      Effect.provide(services("fault-kill-conv"))
    ), 60_000)

  it.live("tui mode: typed CodexExitedEarly naming SIGKILL, snapshot still taken, 0 orphans", () =>
    killMidTurn("iframe", "fault-kill-tui").pipe(
      Effect.tap((outcome) => Effect.sync(() => recordOutcome("codex SIGKILL mid-turn (tui)", outcome ?? ""))),
      Effect.provide(services("fault-kill-tui"))
    ), 60_000)
})

afterAll(dirs.remove)
