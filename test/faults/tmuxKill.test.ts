/**
 * Fault: the task's tmux server is killed with SIGKILL in the middle of a TUI session (codex
 * mid-turn inside it). The session must fail typed — not hang, not succeed — within a few
 * seconds, and leave no process behind (codex lost its terminal and must not linger).
 *
 * What would break without the handling:
 * - TmuxSession's `Gone` status (tmux's "no server running" / "error connecting" read as the
 *   session being gone, not as a transient failure): `awaitExit` would retry forever or the
 *   status would be misread as running, and the session would hang;
 * - TuiBody mapping a gone terminal to `codexGone(null)`: the optio.log follow would never end;
 * - the teardown's tree kill of the recorded pane pid: codex, no longer under a tmux server that
 *   `kill-server` could reach, would be left to its own SIGHUP handling (the orphan check).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { readFileSync } from "node:fs"
import { DEMO_PROMPT, demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { codexPidOf, faultRoot, isAlive, noProcessMentions, services, signal } from "./harness.ts"
import { recordOutcome } from "./summary.ts"

const dirs = faultRoot("tmux-kill")
afterAll(dirs.remove)

const parentOf = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
}

describe("fault: tmux server killed mid-session", () => {
  it.live("tui mode: typed CodexExitedEarly (terminal gone), no hang, 0 orphans", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("thinking forever", { holdOpen: true })])
      const workdir = dirs.workdir()
      const session = yield* runCodexSession(
        { consumerInstructions: DEMO_PROMPT, mode: "iframe", autoStart: true, ...demoTaskSettings(server.baseUrl) },
        { workdir, stopGracePeriod: "2 seconds" }
      ).pipe(Effect.forkChild)
      yield* server.awaitRequests((all) => all.some((request) => request.answer._tag === "Step"), "30 seconds")
      const codex = yield* codexPidOf(workdir)
      // The pane program is a child of the task's tmux server.
      const tmuxServer = parentOf(codex)
      assert.match(readFileSync(`/proc/${tmuxServer}/cmdline`, "utf8"), /^tmux\0/)
      yield* signal(tmuxServer, "SIGKILL")
      const started = Date.now()
      const exit = yield* Fiber.await(session).pipe(Effect.timeout("15 seconds"))
      const took = Date.now() - started
      const error = Exit.findErrorOption(exit)
      assert.isTrue(error._tag === "Some", `a typed failure, got ${String(exit)}`)
      if (error._tag !== "Some") return
      assert.strictEqual(error.value._tag, "CodexExitedEarly")
      if (error.value._tag !== "CodexExitedEarly") return
      assert.isNull(error.value.exitCode)
      assert.match(error.value.message, /codex TUI's terminal went away/)
      assert.isBelow(took, 10_000)
      assert.isFalse(isAlive(codex))
      yield* noProcessMentions(workdir, "2 seconds")
      recordOutcome(
        "tmux server SIGKILL mid-session (tui)",
        `${error.value._tag} (exitCode null): "${error.value.message.split(" before the agent")[0]}"; ended ${took} ms after the kill; codex reaped; 0 orphans`
      )
    }).pipe(Effect.scoped, Effect.provide(services("fault-tmux-kill"))), 60_000)
})
