/**
 * Fault: 100 start → cancel cycles (50 per mode), each cancelled as soon as codex is live, with
 * codex mid-way through its own start-up work (the login-shell snapshot, plugin sync, sandbox
 * probes run in their own sessions). After each cancel returns, every process of the task must
 * be gone: the orphans over all cycles must be 0.
 *
 * What would break without the handling: a process-group kill misses codex's setsid'd helpers
 * (platform notes), and the TUI's tmux server outlives codex unless it is killed too.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { faultRoot, services } from "./harness.ts"
import { recordOutcome } from "./summary.ts"

const dirs = faultRoot("cancel-cycles")
afterAll(dirs.remove)

const CYCLES_PER_MODE = 50
const LIVE = { conversation: "Codex conversation is live", iframe: "Codex is live" } as const

/** One cycle: start, wait until codex is live, interrupt; the task's processes still there then. */
const cycle = (mode: "conversation" | "iframe", baseUrl: string, index: number) =>
  Effect.gen(function*() {
    const workdir = dirs.workdir()
    const session = yield* runCodexSession(
      { consumerInstructions: "cancel me", mode, ...demoTaskSettings(baseUrl) },
      { workdir, stopGracePeriod: "2 seconds" }
    ).pipe(Effect.forkChild)
    const recorder = yield* TaskRecorder
    yield* waitUntil("codex is live", recorder.current.pipe(Effect.map((record) =>
      record.progress.some((entry) => entry.message === LIVE[mode]) ? true : undefined
    )), "60 seconds")
    yield* Fiber.interrupt(session)
    assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(session)), `cycle ${index} ends interrupted`)
    // Teardown waits for the whole tree: anything still running once the cancel returned is an orphan.
    return processesMentioning(workdir).length
  }).pipe(Effect.scoped, Effect.provide(services(`cancel-${mode}-${index}`)))

describe("fault: 100 start → cancel cycles", () => {
  it.live("every cycle ends interrupted and leaves 0 orphan processes", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([])
      let orphans = 0
      for (let index = 0; index < CYCLES_PER_MODE; index++) {
        for (const mode of ["conversation", "iframe"] as const) orphans += yield* cycle(mode, server.baseUrl, index)
      }
      assert.strictEqual(orphans, 0)
      recordOutcome("100 start → cancel cycles (50 per mode)", `${CYCLES_PER_MODE * 2} cycles, every one interrupted; 0 orphan processes`)
    }).pipe(Effect.scoped), 600_000)
})
