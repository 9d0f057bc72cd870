/**
 * runCodexSession on swapped layers: the memory host, a scripted tmux pane or a scripted
 * app-server, the memory store and the recording TaskContext, under TestClock. Every scenario is
 * deterministic: time moves only when the driver advances the clock, never by waiting.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { AppServerClient, makeScriptedAppServer } from "../../src/appserver/AppServerClient.ts"
import type { ScriptedAppServer, ScriptedAppServerOptions } from "../../src/appserver/AppServerClient.ts"
import { BinaryCache } from "../../src/binary/BinaryCache.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { Host } from "../../src/host/Host.ts"
import * as MemoryHost from "../../src/host/MemoryHost.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import type { SessionOptions } from "../../src/session/CodexSession.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { makeScriptedTmux, Tmux } from "../../src/terminal/Tmux.ts"
import type { ScriptedTmux, ScriptedTmuxOptions } from "../../src/terminal/Tmux.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { memoryTar, pathProbe } from "../support/memoryPrograms.ts"

const PROCESS_ID = "task-1"
const TASK_ROOT = "/srv/optio/tasks"
const WORKDIR = `${TASK_ROOT}/${PROCESS_ID}/workdir`
const OPTIO_LOG = `${WORKDIR}/optio.log`
const CODEX = "/opt/codex/bin/codex"

const hostScripts: ReadonlyArray<MemoryHost.ProcessScript> = [pathProbe, memoryTar]

interface Harness {
  readonly memory: MemoryHost.MemoryHost
  readonly tmux: ScriptedTmux
  readonly appServer: ScriptedAppServer
  readonly state: MemoryStoreState
}

const makeHarness = (options: { readonly tmux?: ScriptedTmuxOptions; readonly appServer?: ScriptedAppServerOptions; readonly state?: MemoryStoreState } = {}) =>
  Effect.gen(function*() {
    const memory = yield* MemoryHost.make({ scripts: hostScripts })
    const tmux = yield* makeScriptedTmux(options.tmux)
    const appServer = yield* makeScriptedAppServer(options.appServer)
    return { memory, tmux, appServer, state: options.state ?? new MemoryStoreState() }
  })

const layersOf = (harness: Harness, resume = false) =>
  Layer.mergeAll(
    TaskContext.layerRecording({ processId: PROCESS_ID, resume }),
    BinaryCache.layerTest(CODEX),
    TtydSession.layerTest(),
    ConversationListener.layerTest(),
    Tmux.layerTest(harness.tmux),
    AppServerClient.layerTest(harness.appServer),
    Store.layerMemory({ state: harness.state }).pipe(Layer.provide(BlobCrypto.layerPlaintext))
  ).pipe(Layer.provideMerge(Layer.succeed(Host, harness.memory.host)))

const appendLog = (harness: Harness, line: string) => harness.memory.host.appendFile(OPTIO_LOG, `${line}\n`)

/** Runs a session to its end, advancing the TestClock in small steps (never the wall clock). */
const drive = <A, E, R>(session: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(session)
    for (let step = 0; step < 10_000; step++) {
      const done = fiber.pollUnsafe()
      if (done !== undefined) return done
      yield* TestClock.adjust("50 millis")
      // Lets in-process I/O (zlib on the snapshot path) run; no time is waited for.
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    return yield* Effect.die(new Error("the session did not end within 500 simulated seconds"))
  })

const tui = (extra: Record<string, unknown> = {}) => ({ consumerInstructions: "do it", mode: "iframe", ...extra })
const SESSION: SessionOptions = { taskRoot: TASK_ROOT, stopGracePeriod: "2 seconds" }

describe("runCodexSession on swapped layers", () => {
  it.effect("TUI: DONE in optio.log ends the session as done by the agent", () =>
    Effect.gen(function*() {
      const harness = yield* makeHarness({
        tmux: { program: () => Effect.ignore(appendLogLater) }
      })
      const appendLogLater = appendLog(harness, "DONE: wrote it")
      const exit = yield* drive(runCodexSession(tui(), SESSION).pipe(Effect.provide(layersOf(harness))))
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      if (Exit.isSuccess(exit)) {
        assert.strictEqual(exit.value.endedBy, "agent")
        assert.strictEqual(exit.value.summary, "wrote it")
      }
    }))
})
