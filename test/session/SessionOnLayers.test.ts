/**
 * runCodexSession on swapped layers: the memory host, a scripted tmux pane or a scripted
 * app-server, the memory store and the recording TaskContext, under TestClock. Every scenario is
 * deterministic: simulated time moves only when the driver advances the clock, and nothing waits
 * on the wall clock. The real-process e2e and fault suites stay the proof against the real binary;
 * these pin the session's own logic (teardown order, lease loss, cancel, resume, seeds, outcomes).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import type { Duration } from "effect"
import { TestClock } from "effect/testing"
import { AppServerClient, makeScriptedAppServer } from "../../src/appserver/AppServerClient.ts"
import type { ScriptedAppServer, ScriptedAppServerOptions, ScriptedCodex } from "../../src/appserver/AppServerClient.ts"
import { BinaryCache } from "../../src/binary/BinaryCache.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { CredWatcher } from "../../src/credentials/CredWatcher.ts"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import { AUTH_MEMBER, packSeedArchive, unpackSeedArchive } from "../../src/credentials/SeedArchive.ts"
import { Host } from "../../src/host/Host.ts"
import * as MemoryHost from "../../src/host/MemoryHost.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { AUTO_START_PROMPT, RESUME_NOTICE } from "../../src/protocol/SystemMessages.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import type { SessionOptions, SessionResult } from "../../src/session/CodexSession.ts"
import type { CodexTaskHooks } from "../../src/session/Hooks.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { MemoryStoreState, Store } from "../../src/store/Store.ts"
import { StoreUnavailable } from "../../src/persistence/StoreError.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import type { TaskRecord } from "../../src/task/TaskContext.ts"
import { makeScriptedTmux, Tmux } from "../../src/terminal/Tmux.ts"
import type { ScriptedPane, ScriptedTmux } from "../../src/terminal/Tmux.ts"
import type { TmuxSessionOptions } from "../../src/terminal/TmuxSession.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { taskPaths } from "../../src/workdir/TaskPaths.ts"
import type { TaskPaths } from "../../src/workdir/TaskPaths.ts"
import { memoryTar, pathProbe } from "../support/memoryPrograms.ts"

const PROCESS_ID = "task-1"
const TASK_ROOT = "/srv/optio/tasks"
const CODEX = "/opt/codex/bin/codex"
const THREAD = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
const SESSION: SessionOptions = { taskRoot: TASK_ROOT, stopGracePeriod: "2 seconds" }

// --- the harness ---------------------------------------------------------------------------

/** What codex does once it runs, in either mode: writes files, optio.log, exits. */
interface Codex {
  readonly memory: MemoryHost.MemoryHost
  /** The task's paths, as the session lays them out. */
  readonly paths: TaskPaths
  /** CODEX_HOME as codex was launched with it. */
  readonly codexHome: string
  readonly log: (line: string) => Effect.Effect<void>
}

interface Harness {
  readonly memory: MemoryHost.MemoryHost
  readonly paths: TaskPaths
  readonly tmux: ScriptedTmux
  readonly appServer: ScriptedAppServer
  readonly state: MemoryStoreState
  /** Teardown-relevant calls in the order they happened. */
  readonly events: Array<string>
}

interface HarnessOptions {
  /** The TUI pane program (after the first screen is drawn). */
  readonly tui?: (codex: Codex, pane: ScriptedPane, options: TmuxSessionOptions) => Effect.Effect<void>
  readonly tmux?: { readonly screen?: string; readonly startFailure?: string }
  /** What codex does with each conversation turn. */
  readonly turn?: (codex: Codex, text: string, scripted: ScriptedCodex) => Effect.Effect<void>
  readonly appServer?: Omit<ScriptedAppServerOptions, "onTurn" | "onClose">
  readonly state?: MemoryStoreState
}

const makeHarness = (options: HarnessOptions = {}) =>
  Effect.gen(function*() {
    const events: Array<string> = []
    const record = (event: string) => Effect.sync(() => void events.push(event))
    const memory = yield* MemoryHost.make({ scripts: [pathProbe, memoryTar] })
    const paths = yield* Effect.orDie(taskPaths({ processId: PROCESS_ID, taskRoot: TASK_ROOT }))
    const codexOf = (env: Readonly<Record<string, string>> | undefined): Codex => ({
      memory,
      paths,
      codexHome: env?.["CODEX_HOME"] ?? "",
      log: (line) => Effect.orDie(memory.host.appendFile(paths.optioLog, `${line}\n`))
    })
    const tui = options.tui
    const tmux = yield* makeScriptedTmux({
      ...options.tmux,
      onStop: record("codex stopped"),
      ...(tui === undefined ? {} : { program: (pane, start) => tui(codexOf(start.command.env), pane, start) })
    })
    let codexEnv: Readonly<Record<string, string>> | undefined
    const turn = options.turn
    const appServer = yield* makeScriptedAppServer({
      ...options.appServer,
      onClose: record("codex stopped"),
      ...(turn === undefined ? {} : { onTurn: (text, scripted) => turn(codexOf(codexEnv), text, scripted) })
    })
    const started = appServer.client.start
    const harness: Harness = {
      memory,
      paths,
      tmux,
      appServer: {
        ...appServer,
        client: AppServerClient.of({
          start: (startOptions) => Effect.sync(() => void (codexEnv = startOptions.env)).pipe(Effect.andThen(started(startOptions)))
        })
      },
      state: options.state ?? new MemoryStoreState(),
      events
    }
    return harness
  })

/** The layers of one run: every service swapped, each decorated to record teardown steps. */
interface LayerOptions {
  readonly resume?: boolean
  readonly renewInterval?: Duration.Input
  /** The snapshot store refuses every insert (a store outage at teardown). */
  readonly failSnapshots?: boolean
  /** The seed store refuses every blob write (credentials cannot be saved back). */
  readonly failSeedWrites?: boolean
  /** A worker without a store (`Store.layerNone`). */
  readonly noStore?: boolean
}

const outage = (operation: string) => Effect.fail(new StoreUnavailable({ backend: "memory", operation, detail: "injected outage" }))

const layersOf = (harness: Harness, options: LayerOptions = {}) => {
  const record = (event: string) => Effect.sync(() => void harness.events.push(event))
  const host = Host.of({
    ...harness.memory.host,
    remove: (path) => record(`removed ${path}`).pipe(Effect.andThen(harness.memory.host.remove(path)))
  })
  const task = Layer.effectContext(Effect.gen(function*() {
    const inner = yield* TaskContext
    const recorder = yield* TaskRecorder
    return Context.make(TaskContext, TaskContext.of({
      ...inner,
      clearWidgetUpstream: record("widget cleared").pipe(Effect.andThen(inner.clearWidgetUpstream))
    })).pipe(Context.add(TaskRecorder, recorder))
  })).pipe(Layer.provide(TaskContext.layerRecording({ processId: PROCESS_ID, resume: options.resume ?? false })))
  const stores = Layer.effectContext(Effect.gen(function*() {
    const seeds = yield* SeedStore
    const leases = yield* Lease
    const snapshots = yield* SnapshotStore
    return Context.make(SeedStore, SeedStore.of({
      ...seeds,
      create: (input) => seeds.create(input).pipe(Effect.tap(() => record("seed captured"))),
      writeBlob: (seedId, expected, blob) =>
        options.failSeedWrites === true
          ? outage("swap seed blob")
          : seeds.writeBlob(seedId, expected, blob).pipe(Effect.tap(() => record("credentials saved back")))
    })).pipe(
      Context.add(Lease, Lease.of({ ...leases, release: (grant) => leases.release(grant).pipe(Effect.tap((released) => released ? record("lease released") : Effect.void)) })),
      Context.add(SnapshotStore, SnapshotStore.of({
        ...snapshots,
        insert: (input) => options.failSnapshots === true ? outage("insert snapshot") : snapshots.insert(input).pipe(Effect.tap(() => record("snapshot stored")))
      }))
    )
  })).pipe(Layer.provide(Store.layerMemory({ state: harness.state }).pipe(Layer.provide(BlobCrypto.layerPlaintext))))
  const terminal = Layer.effect(TtydSession, Effect.gen(function*() {
    const inner = yield* TtydSession
    return TtydSession.of({ serve: (tmux, serveOptions) => inner.serve(tmux, serveOptions).pipe(Effect.tap(() => Effect.addFinalizer(() => record("viewer closed")))) })
  })).pipe(Layer.provide(TtydSession.layerTest()))
  const listener = Layer.effect(ConversationListener, Effect.gen(function*() {
    const inner = yield* ConversationListener
    return ConversationListener.of({ ...inner, serve: (conversation, serveOptions) => inner.serve(conversation, serveOptions).pipe(Effect.tap(() => Effect.addFinalizer(() => record("viewer closed")))) })
  })).pipe(Layer.provide(ConversationListener.layerTest()))
  return Layer.mergeAll(
    task,
    BinaryCache.layerTest(CODEX),
    terminal,
    listener,
    Tmux.layerTest(harness.tmux),
    AppServerClient.layerTest(harness.appServer),
    CredWatcher.layerWith({ pollInterval: "5 seconds", renewInterval: options.renewInterval ?? "10 seconds", leaseTtl: "60 seconds" }),
    TokenBroker.layerNone
  ).pipe(Layer.provideMerge(Layer.merge(options.noStore === true ? Store.layerNone : stores, Layer.succeed(Host, host))))
}

type Services = Layer.Success<ReturnType<typeof layersOf>>

/** One simulated step: the clock moves, and in-process I/O (zlib on the snapshot path) gets a turn. */
const step = Effect.andThen(
  TestClock.adjust("50 millis"),
  Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
)
const MAX_STEPS = 10_000

/** Advances simulated time until the fiber ends; its exit. */
const driveToEnd = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Effect.gen(function*() {
    for (let i = 0; i < MAX_STEPS; i++) {
      const done = fiber.pollUnsafe()
      if (done !== undefined) return done
      yield* step
    }
    return yield* Effect.die(new Error(`the session did not end within ${MAX_STEPS * 50 / 1000} simulated seconds`))
  })

/** Advances simulated time until `condition` holds (failing the test if the fiber ends first). */
const driveUntil = <A, E, R>(fiber: Fiber.Fiber<A, E>, what: string, condition: Effect.Effect<boolean, never, R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < MAX_STEPS; i++) {
      if (yield* condition) return
      const done = fiber.pollUnsafe()
      if (done !== undefined) return yield* Effect.die(new Error(`the session ended before ${what}: ${String(done)}`))
      yield* step
    }
    return yield* Effect.die(new Error(`${what} did not happen within ${MAX_STEPS * 50 / 1000} simulated seconds`))
  })

const progressOf = TaskRecorder.use((recorder) => recorder.current)
const progressText = (record: TaskRecord) => record.progress.map((entry) => entry.message ?? "").join("\n")
const said = (text: string) =>
  TaskRecorder.use((recorder) => Effect.map(recorder.current, (record) => progressText(record).includes(text)))

/** Runs one session on the harness' layers to its end. */
const runOn = (
  harness: Harness,
  config: Record<string, unknown>,
  options: LayerOptions & { readonly hooks?: CodexTaskHooks; readonly session?: SessionOptions } = {},
  during?: (fiber: Fiber.Fiber<SessionResult, unknown>) => Effect.Effect<void, unknown, Services>
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(runCodexSession(config, {
      ...SESSION,
      ...options.session,
      ...(options.hooks === undefined ? {} : { hooks: options.hooks })
    }))
    if (during !== undefined) yield* during(fiber)
    // A session that never ends shows how far it got.
    const exit = yield* driveToEnd(fiber).pipe(
      Effect.tapDefect(() => Effect.flatMap(progressOf, (r) => Effect.logError("session stuck", { progress: progressText(r), events: harness.events })))
    )
    const record = yield* progressOf
    return { exit, record }
  }).pipe(Effect.provide(layersOf(harness, options)))

const tui = (extra: Record<string, unknown> = {}) => ({ consumerInstructions: "do it", mode: "iframe", autoStart: true, ...extra })
const conversation = (extra: Record<string, unknown> = {}) => ({ consumerInstructions: "do it", mode: "conversation", autoStart: true, ...extra })

const succeeded = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  throw new Error(`the session failed: ${Cause.pretty(exit.cause)}`)
}
const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("the session succeeded")
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isNone(error)) throw new Error(`the session did not fail typed: ${Cause.pretty(exit.cause)}`)
  return error.value
}
const tagOf = (error: unknown) => typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : String(error)

const authJson = (refresh: string) => JSON.stringify({ auth_mode: "chatgpt", OPENAI_API_KEY: null, tokens: { access_token: "a", refresh_token: refresh } })

/** A seed holding a login with refresh token `refresh`, in the harness' store. */
const seedIn = (state: MemoryStoreState, refresh: string) =>
  Effect.gen(function*() {
    const seeds = yield* SeedStore
    const blob = packSeedArchive([{ name: AUTH_MEMBER, bytes: new TextEncoder().encode(authJson(refresh)), mode: 0o600 }])
    return (yield* seeds.create({ blob: Stream.succeed(blob) })).seedId
  }).pipe(Effect.provide(Store.layerMemory({ state }).pipe(Layer.provide(BlobCrypto.layerPlaintext))))

const storeOf = <A, E>(state: MemoryStoreState, effect: Effect.Effect<A, E, SeedStore | Lease | SnapshotStore>) =>
  effect.pipe(Effect.provide(Store.layerMemory({ state }).pipe(Layer.provide(BlobCrypto.layerPlaintext))))

/** The refresh token stored in a seed now. */
const seedToken = (state: MemoryStoreState, seedId: string) =>
  storeOf(state, Effect.gen(function*() {
    const blob = yield* SeedStore.use((seeds) => seeds.readBlob(seedId))
    const bytes = Buffer.concat(yield* Stream.runCollect(blob.bytes))
    const members = yield* unpackSeedArchive(bytes)
    const auth = members.find((member) => member.name === AUTH_MEMBER)
    return auth === undefined ? undefined : (JSON.parse(new TextDecoder().decode(auth.bytes)) as { tokens: { refresh_token: string } }).tokens.refresh_token
  }))

const latestSnapshot = (state: MemoryStoreState) =>
  storeOf(state, SnapshotStore.use((store) => store.latest(PROCESS_ID)))

/** The events from `first` on, without the start-up removals. */
const teardownEvents = (events: ReadonlyArray<string>) => {
  const from = events.indexOf("viewer closed")
  return events.slice(from < 0 ? events.indexOf("codex stopped") : from)
}
/** The event of the task's private dir being removed (the last teardown step). */
const taskdirRemoved = (harness: Harness) => `removed ${harness.paths.taskdir}`
const beforeIn = (events: ReadonlyArray<string>, first: string, second: string) => {
  const a = events.indexOf(first)
  const b = events.indexOf(second)
  assert.isAtLeast(a, 0, `${first} happened (${events.join(" → ")})`)
  assert.isAtLeast(b, 0, `${second} happened (${events.join(" → ")})`)
  assert.isBelow(a, b, `${first} before ${second} (${events.join(" → ")})`)
}

const rollout = (codex: Codex, thread: string) =>
  Effect.orDie(Effect.gen(function*() {
    const dir = `${codex.codexHome}/sessions/2026/12/07`
    yield* codex.memory.host.makeDirectory(dir)
    yield* codex.memory.host.writeFile(`${dir}/rollout-2026-12-07T10-00-00-${thread}.jsonl`, "{\"type\":\"session_meta\"}\n")
  }))

// --- scenarios -----------------------------------------------------------------------------

describe("runCodexSession on swapped layers (TestClock)", () => {
  describe("TUI mode", () => {
    it.effect("DONE in optio.log ends the session as done by the agent, with its summary", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (codex) => codex.log("DONE: wrote hello.txt") })
        const { exit, record } = yield* runOn(harness, tui())
        const result = succeeded(exit)
        assert.strictEqual(result.endedBy, "agent")
        assert.strictEqual(result.summary, "wrote hello.txt")
        assert.include(progressText(record), "Codex is live")
        const [start] = yield* harness.tmux.starts
        assert.match(start?.command.argv[0] ?? "", /\/home\/\.local\/bin\/codex$/)
        assert.include(start?.command.argv ?? [], AUTO_START_PROMPT)
        assert.isTrue(yield* harness.tmux.stopped)
      }))

    it.effect("ERROR in optio.log fails the session with the agent's message", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (codex) => codex.log("ERROR: the tests do not pass") })
        const { exit } = yield* runOn(harness, tui())
        const error = failureOf(exit)
        assert.strictEqual(tagOf(error), "AgentReportedError")
        assert.include(String((error as { message: string }).message), "the tests do not pass")
      }))

    it.effect("codex exiting 0 before an outcome ends the task as done by the operator", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (_codex, pane) => pane.exit(0) })
        const { exit, record } = yield* runOn(harness, tui())
        assert.strictEqual(succeeded(exit).endedBy, "operator")
        assert.include(progressText(record), "the operator ended the session")
      }))

    it.effect("codex exiting non-zero after launch fails CodexExitedEarly and writes ERROR: codex exited <status> to optio.log", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({
          tui: (codex, pane) => Effect.andThen(codex.log("STATUS: working"), Effect.andThen(pane.setScreen("panic: out of cheese"), pane.exit(3)))
        })
        const { exit, record } = yield* runOn(harness, tui({ supportsResume: false }))
        const error = failureOf(exit) as { _tag: string; exitCode: number | null; paneTail: string }
        assert.strictEqual(error._tag, "CodexExitedEarly")
        assert.strictEqual(error.exitCode, 3)
        assert.include(error.paneTail, "out of cheese")
        assert.include(progressText(record), "ERROR: codex exited 3")
      }))

    it.effect("codex dying at launch (before its first screen) fails at launch with its status and screen", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tmux: { screen: "" }, tui: (_codex, pane) => Effect.andThen(pane.setScreen("error: bad flag"), pane.exit(2)) })
        const { exit, record } = yield* runOn(harness, tui())
        const error = failureOf(exit) as { _tag: string; exitCode: number; atLaunch?: boolean }
        assert.strictEqual(error._tag, "CodexExitedEarly")
        assert.strictEqual(error.exitCode, 2)
        assert.isTrue(error.atLaunch)
        assert.notInclude(progressText(record), "Codex is live")
        // codex did run, so the workdir is still snapshotted, as failed.
        assert.strictEqual(Option.map(yield* latestSnapshot(harness.state), (doc) => doc.endState).pipe(Option.getOrUndefined), "failed")
      }))

    it.effect("the terminal going away (tmux server gone) fails CodexExitedEarly with no exit status", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (_codex, pane) => pane.vanish })
        const { exit } = yield* runOn(harness, tui())
        const error = failureOf(exit) as { _tag: string; exitCode: number | null }
        assert.strictEqual(error._tag, "CodexExitedEarly")
        assert.isNull(error.exitCode)
      }))

    it.effect("tmux failing to start fails typed; nothing was launched, so no snapshot is taken", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tmux: { startFailure: "no space left on device" } })
        const { exit, record } = yield* runOn(harness, tui())
        assert.strictEqual(tagOf(failureOf(exit)), "TmuxStartFailed")
        assert.isTrue(Option.isNone(yield* latestSnapshot(harness.state)))
        assert.isUndefined(record.widgetUpstream)
        assert.isFalse(yield* harness.memory.host.exists(harness.paths.taskdir), "the task's private dir is removed")
      }))

    it.effect("teardown order with a seed: viewer, codex, widget, credential save-back, snapshot, lease, task files", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const seedId = yield* seedIn(state, "R1")
        const harness = yield* makeHarness({
          state,
          tui: (codex) =>
            Effect.andThen(
              Effect.orDie(codex.memory.host.writeFile(`${codex.codexHome}/auth.json`, authJson("R2"), { mode: 0o600 })),
              codex.log("DONE")
            )
        })
        const { exit } = yield* runOn(harness, tui({ seedId }))
        succeeded(exit)
        const order = teardownEvents(harness.events).filter((event) => !event.startsWith("removed ") || event === taskdirRemoved(harness))
        assert.deepStrictEqual(order, [
          "viewer closed",
          "codex stopped",
          "widget cleared",
          "credentials saved back",
          "snapshot stored",
          "lease released",
          taskdirRemoved(harness)
        ])
      }))

    it.effect("credential rotation before stop: the rotated login is saved back to the seed before its lease is released", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const seedId = yield* seedIn(state, "R1")
        const harness = yield* makeHarness({
          state,
          // codex rotates its refresh token and is stopped at once: only the final save-back can catch it.
          tui: (codex) =>
            Effect.andThen(
              Effect.orDie(codex.memory.host.writeFile(`${codex.codexHome}/auth.json`, authJson("R2-rotated"), { mode: 0o600 })),
              codex.log("DONE")
            )
        })
        const { exit, record } = yield* runOn(harness, tui({ seedId, supportsResume: false }))
        succeeded(exit)
        assert.strictEqual(yield* seedToken(state, seedId), "R2-rotated")
        beforeIn(harness.events, "codex stopped", "credentials saved back")
        beforeIn(harness.events, "credentials saved back", "lease released")
        assert.include(progressText(record), `Saved the rotated credentials back to seed ${seedId}`)
      }))

    it.effect("lease loss racing the body ends the session as LeaseLost; nothing writes the seed afterwards", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const seedId = yield* seedIn(state, "R1")
        const harness = yield* makeHarness({
          state,
          // codex rotates its token and keeps working: it never writes an outcome.
          tui: (codex) => Effect.orDie(codex.memory.host.writeFile(`${codex.codexHome}/auth.json`, authJson("R2"), { mode: 0o600 }))
        })
        const { exit, record } = yield* runOn(harness, tui({ seedId }), {}, (fiber) =>
          Effect.gen(function*() {
            yield* driveUntil(fiber, "codex is live", said("Codex is live"))
            // Another worker force-deletes the seed: the next renewal finds it gone.
            yield* storeOf(state, SeedStore.use((seeds) => seeds.delete(seedId, { force: true })))
            harness.events.push("seed deleted")
          }))
        const error = failureOf(exit) as { _tag: string; reason: string }
        assert.strictEqual(error._tag, "LeaseLost")
        assert.strictEqual(error.reason, "seed-missing")
        const afterLoss = harness.events.slice(harness.events.indexOf("seed deleted"))
        assert.notInclude(afterLoss, "credentials saved back")
        assert.notInclude(afterLoss, "lease released")
        assert.include(afterLoss, "codex stopped")
        assert.include(progressText(record), "credentials not saved back")
        assert.strictEqual(Option.getOrUndefined(Option.map(yield* latestSnapshot(state), (doc) => doc.endState)), "cancelled")
      }))

    it.effect("cancel by interruption: the session ends interrupted, its teardown runs, the snapshot says cancelled", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const seedId = yield* seedIn(state, "R1")
        const harness = yield* makeHarness({ state, tui: () => Effect.void })
        const { exit } = yield* runOn(harness, tui({ seedId }), {}, (fiber) =>
          Effect.gen(function*() {
            yield* driveUntil(fiber, "codex is live", said("Codex is live"))
            yield* Fiber.interrupt(fiber).pipe(Effect.forkChild)
          }))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause), String(exit))
        beforeIn(harness.events, "codex stopped", "snapshot stored")
        beforeIn(harness.events, "snapshot stored", "lease released")
        assert.strictEqual(Option.getOrUndefined(Option.map(yield* latestSnapshot(state), (doc) => doc.endState)), "cancelled")
      }))

    it.effect("snapshot on failure: an agent's ERROR leaves a failed snapshot, and the dashboard is told there is saved state", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({
          tui: (codex) => Effect.andThen(Effect.orDie(codex.memory.host.writeFile(`${codex.paths.workdir}/notes.md`, "half done")), codex.log("ERROR: stuck"))
        })
        const { exit, record } = yield* runOn(harness, tui())
        assert.strictEqual(tagOf(failureOf(exit)), "AgentReportedError")
        const snapshot = yield* latestSnapshot(harness.state)
        assert.strictEqual(Option.getOrUndefined(Option.map(snapshot, (doc) => doc.endState)), "failed")
        assert.isTrue(record.hasSavedState)
      }))

    it.effect("resume: the snapshot's workdir comes back and codex resumes the snapshot's thread", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const first = yield* makeHarness({
          state,
          tui: (codex) =>
            Effect.gen(function*() {
              yield* rollout(codex, THREAD)
              yield* Effect.orDie(codex.memory.host.writeFile(`${codex.paths.workdir}/notes.md`, "step 1 done"))
            })
        })
        // The first run is cancelled mid-task (the dashboard's Resume follows).
        yield* runOn(first, tui(), {}, (fiber) =>
          Effect.gen(function*() {
            yield* driveUntil(fiber, "codex is live", said("Codex is live"))
            yield* Fiber.interrupt(fiber).pipe(Effect.forkChild)
          }))
        assert.strictEqual(Option.getOrUndefined(Option.map(yield* latestSnapshot(state), (doc) => doc.sessionId)), THREAD)
        let restoredNotes = ""
        const second = yield* makeHarness({
          state,
          tui: (codex) =>
            Effect.gen(function*() {
              restoredNotes = new TextDecoder().decode(yield* Effect.orDie(codex.memory.host.readFile(`${codex.paths.workdir}/notes.md`)))
              yield* codex.log("DONE")
            })
        })
        const { exit, record } = yield* runOn(second, tui(), { resume: true })
        succeeded(exit)
        assert.strictEqual(restoredNotes, "step 1 done")
        const [start] = yield* second.tmux.starts
        const argv = start?.command.argv ?? []
        assert.deepStrictEqual(argv.slice(1, 3), ["resume", THREAD])
        assert.isTrue(argv.some((arg) => arg.includes(RESUME_NOTICE)))
        assert.include(progressText(record), `Resuming codex thread ${THREAD}`)
      }))

    it.effect("seed capture at teardown: a setup task's login becomes a new seed after codex stops, before the snapshot", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({
          tui: (codex) =>
            Effect.andThen(Effect.orDie(codex.memory.host.writeFile(`${codex.codexHome}/auth.json`, authJson("FRESH"), { mode: 0o600 })), codex.log("DONE"))
        })
        const saved: Array<string> = []
        const { exit } = yield* runOn(harness, tui(), { hooks: { onSeedSaved: (seedId) => Effect.sync(() => void saved.push(seedId)) } })
        succeeded(exit)
        assert.strictEqual(saved.length, 1)
        assert.strictEqual(yield* seedToken(harness.state, saved[0] ?? ""), "FRESH")
        beforeIn(harness.events, "codex stopped", "seed captured")
        beforeIn(harness.events, "seed captured", "snapshot stored")
      }))

    it.effect("STATUS lines reach the task's progress while codex works", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (codex) => Effect.andThen(codex.log("STATUS: 40% compiling"), codex.log("DONE")) })
        const { exit, record } = yield* runOn(harness, tui())
        succeeded(exit)
        assert.isTrue(record.progress.some((entry) => (entry.message ?? "").includes("compiling")), progressText(record))
      }))

    it.effect("a deliverable reaches onDeliverable and the agent gets the reply through the pane", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({
          tui: (codex) =>
            Effect.gen(function*() {
              yield* Effect.orDie(codex.memory.host.writeFile(`${codex.paths.workdir}/deliverables/report.md`, "# Findings\n"))
              yield* codex.log("DELIVERABLE: deliverables/report.md")
              yield* codex.log("DONE")
            })
        })
        const seen: Array<string> = []
        const { exit } = yield* runOn(harness, tui(), {
          hooks: { onDeliverable: (_ctx, path, text) => Effect.sync(() => void seen.push(`${path}|${text}`)).pipe(Effect.as(Option.none())) }
        })
        succeeded(exit)
        assert.deepStrictEqual(seen, ["report.md|# Findings\n"])
        const sent = yield* harness.tmux.sent
        assert.isTrue(sent.some((text) => text.includes("deliverable report.md")), sent.join("\n"))
      }))

    it.effect("a deliverable symlinked out of deliverables/ is refused: the hook never sees the target", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({
          tui: (codex) =>
            Effect.gen(function*() {
              yield* Effect.orDie(codex.memory.host.makeDirectory(`${codex.paths.workdir}/deliverables`))
              yield* Effect.orDie(codex.memory.host.symlink(`${codex.codexHome}/config.toml`, `${codex.paths.workdir}/deliverables/creds.txt`))
              yield* codex.log("DELIVERABLE: deliverables/creds.txt")
              yield* codex.log("DONE")
            })
        })
        const seen: Array<string> = []
        const { exit, record } = yield* runOn(harness, tui(), { hooks: { onDeliverable: (_ctx, path) => Effect.sync(() => void seen.push(path)).pipe(Effect.as(Option.none())) } })
        succeeded(exit)
        assert.deepStrictEqual(seen, [])
        assert.include(progressText(record), "resolves outside deliverables/")
      }))

    it.effect("codex killed by SIGKILL: the failure names the signal", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (_codex, pane) => pane.exit(137) })
        const { exit } = yield* runOn(harness, tui())
        const error = failureOf(exit) as { _tag: string; message: string }
        assert.strictEqual(error._tag, "CodexExitedEarly")
        assert.include(error.message, "SIGKILL")
      }))

    it.effect("a snapshot store outage at teardown fails TeardownFailed beside the success; the lease is still released", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const seedId = yield* seedIn(state, "R1")
        const harness = yield* makeHarness({ state, tui: (codex) => codex.log("DONE") })
        const { exit, record } = yield* runOn(harness, tui({ seedId }), { failSnapshots: true })
        const error = failureOf(exit) as { _tag: string; sessionSucceeded: boolean; failures: ReadonlyArray<{ step: string }> }
        assert.strictEqual(error._tag, "TeardownFailed")
        assert.isTrue(error.sessionSucceeded)
        assert.deepStrictEqual(error.failures.map((failure) => failure.step), ["snapshot"])
        assert.include(progressText(record), "Teardown: snapshot failed")
        assert.include(harness.events, "lease released")
      }))

    it.effect("credentials that cannot be saved back fail the teardown and keep the task dir holding them", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const seedId = yield* seedIn(state, "R1")
        const harness = yield* makeHarness({
          state,
          tui: (codex) =>
            Effect.andThen(Effect.orDie(codex.memory.host.writeFile(`${codex.codexHome}/auth.json`, authJson("R2"), { mode: 0o600 })), codex.log("DONE"))
        })
        const { exit, record } = yield* runOn(harness, tui({ seedId, supportsResume: false }), { failSeedWrites: true })
        const error = failureOf(exit) as { _tag: string; failures: ReadonlyArray<{ step: string }> }
        assert.strictEqual(error._tag, "TeardownFailed")
        assert.deepStrictEqual(error.failures.map((failure) => failure.step), ["credential save-back"])
        assert.isTrue(yield* harness.memory.host.exists(`${harness.paths.codexHome}/auth.json`), "the only copy of the rotated login is kept")
        assert.notInclude(teardownEvents(harness.events), taskdirRemoved(harness))
        assert.include(progressText(record), "credentials that were not saved back")
        assert.strictEqual(yield* seedToken(state, seedId), "R1")
      }))

    it.effect("a failing beforeExecute hook ends the task before codex starts", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (codex) => codex.log("DONE") })
        const { exit } = yield* runOn(harness, tui(), { hooks: { beforeExecute: () => Effect.fail(new Error("no quota")) } })
        assert.strictEqual(tagOf(failureOf(exit)), "HookFailed")
        assert.deepStrictEqual(yield* harness.tmux.starts, [])
        assert.isTrue(Option.isNone(yield* latestSnapshot(harness.state)), "never launched: no snapshot")
      }))

    it.effect("a worker that died mid-task: the next start reaps the codex it left running and snapshots what it left, before the workdir is wiped", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (codex) => codex.log("DONE") })
        const { memory, paths } = harness
        // What the dead worker left: its pid record, a codex still running, its CODEX_HOME and work.
        yield* memory.host.makeDirectory("/proc/4242")
        yield* memory.host.writeFile("/proc/4242/stat", `4242 (codex) ${["S", ...Array.from({ length: 18 }, () => "0"), "777"].join(" ")} 0 0`)
        yield* memory.adopt(4242, (signal) => Effect.sync(() => void harness.events.push(`leftover codex got ${signal}`)).pipe(Effect.as(true)))
        yield* memory.host.makeDirectory(paths.taskdir)
        yield* memory.host.writeFile(paths.pidsFile, JSON.stringify({
          version: 1,
          host: memory.host.label,
          recordedAtMs: 0,
          processes: [{ role: "codex TUI", pid: 4242, startTime: "777" }]
        }))
        yield* memory.host.makeDirectory(paths.codexHome)
        yield* memory.host.makeDirectory(paths.workdir)
        yield* memory.host.writeFile(`${paths.workdir}/half-done.txt`, "work of the dead run")
        const { exit, record } = yield* runOn(harness, tui())
        succeeded(exit)
        const progress = progressText(record)
        assert.include(progress, "reaped leftovers of a previous run: codex TUI (pid 4242)")
        assert.include(progress, "Saved a snapshot of what the previous run left")
        assert.isFalse(yield* memory.host.isAlive(4242))
        beforeIn(harness.events, "leftover codex got SIGTERM", `removed ${paths.workdir}`)
        const snapshots = yield* storeOf(harness.state, SnapshotStore.use((store) => store.list(PROCESS_ID)))
        assert.deepStrictEqual(snapshots.map((doc) => doc.endState).sort(), ["done", "failed"])
      }))

    it.effect("the host's connection dropping ends the session at once, and the teardown still stops codex", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: () => Effect.void })
        const { exit } = yield* runOn(harness, tui(), {}, (fiber) =>
          Effect.gen(function*() {
            yield* driveUntil(fiber, "codex is live", said("Codex is live"))
            yield* harness.memory.dropConnection("network unreachable")
          }))
        const error = failureOf(exit) as { _tag: string; reason: string }
        assert.strictEqual(error._tag, "HostError")
        assert.strictEqual(error.reason, "ConnectionLost")
        assert.include(harness.events, "codex stopped")
      }))
  })

  describe("conversation mode", () => {
    const doneOnFirstTurn = (codex: Codex) => codex.log("DONE: answered")

    it.effect("DONE in optio.log ends the session as done by the agent; the kickoff turn was sent", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ turn: doneOnFirstTurn })
        const { exit, record } = yield* runOn(harness, conversation())
        const result = succeeded(exit)
        assert.strictEqual(result.endedBy, "agent")
        assert.strictEqual(result.summary, "answered")
        assert.deepStrictEqual(yield* harness.appServer.turns, [AUTO_START_PROMPT])
        assert.include(progressText(record), "Codex conversation is live")
        assert.isTrue(yield* harness.appServer.closed)
      }))

    it.effect("ERROR in optio.log fails the session with the agent's message", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ turn: (codex) => codex.log("ERROR: cannot reach the API") })
        const { exit } = yield* runOn(harness, conversation())
        assert.strictEqual(tagOf(failureOf(exit)), "AgentReportedError")
      }))

    it.effect("an approval codex asks for is answered through the published conversation, then the task finishes", () =>
      Effect.gen(function*() {
        let decision = ""
        const harness = yield* makeHarness({
          turn: (codex, _text, scripted) =>
            Effect.gen(function*() {
              decision = yield* scripted.askPermission("7")
              yield* codex.log(`DONE: ${decision}`)
            })
        })
        const { exit } = yield* runOn(harness, conversation({ permissionGate: true }), {}, (fiber) =>
          Effect.gen(function*() {
            yield* driveUntil(fiber, "codex asks for approval", Effect.map(progressOf, (r) => r.conversation !== undefined).pipe(
              Effect.flatMap((published) => published ? Effect.map(progressOf, (r) => r.conversation) : Effect.succeed(undefined)),
              Effect.flatMap((conversation) => conversation === undefined ? Effect.succeed(false) : Effect.map(conversation.pendingPermissions, (ids) => ids.includes("7")))
            ))
            const published = (yield* progressOf).conversation
            if (published !== undefined) assert.isTrue(yield* published.answerPermission("7", "allow"))
          }))
        assert.strictEqual(succeeded(exit).summary, "allow")
        assert.deepStrictEqual(yield* harness.appServer.answers, [{ requestId: "7", behavior: "allow" }])
      }))

    it.effect("a deliverable's reply reaches the agent as a turn", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({
          turn: (codex, text) =>
            text === AUTO_START_PROMPT
              ? Effect.andThen(Effect.orDie(codex.memory.host.writeFile(`${codex.paths.workdir}/deliverables/out.txt`, "42")), codex.log("DELIVERABLE: deliverables/out.txt"))
              : codex.log("DONE")
        })
        const { exit } = yield* runOn(harness, conversation())
        succeeded(exit)
        const turns = yield* harness.appServer.turns
        assert.strictEqual(turns.length, 2)
        assert.include(turns[1] ?? "", "deliverable out.txt")
      }))

    it.effect("codex app-server exiting early fails CodexExitedEarly with its status", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ turn: (_codex, _text, scripted) => scripted.exit(139) })
        const { exit } = yield* runOn(harness, conversation())
        const error = failureOf(exit) as { _tag: string; exitCode: number; process: string }
        assert.strictEqual(error._tag, "CodexExitedEarly")
        assert.strictEqual(error.exitCode, 139)
        assert.strictEqual(error.process, "codex app-server")
      }))

    it.effect("codex app-server dying at launch fails at launch with its stderr, also in progress", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ appServer: { dieAtLaunch: { exitCode: 1, stderr: "error: unknown model" } } })
        const { exit, record } = yield* runOn(harness, conversation())
        const error = failureOf(exit) as { _tag: string; exitCode: number; atLaunch?: boolean; paneTail: string }
        assert.strictEqual(error._tag, "CodexExitedEarly")
        assert.isTrue(error.atLaunch)
        assert.include(error.paneTail, "unknown model")
        assert.include(progressText(record), "unknown model")
        assert.isTrue(Option.isNone(yield* latestSnapshot(harness.state)), "never launched: no snapshot")
      }))

    it.effect("the worker closing the published conversation ends the task as done by the worker", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ turn: () => Effect.void })
        const { exit, record } = yield* runOn(harness, conversation({ autoStart: false }), {}, (fiber) =>
          Effect.gen(function*() {
            yield* driveUntil(fiber, "the conversation is published", Effect.map(progressOf, (r) => r.conversation !== undefined))
            const published = (yield* progressOf).conversation
            if (published === undefined) return
            assert.strictEqual(published.threadId, "thread-1")
            yield* published.close
          }))
        assert.strictEqual(succeeded(exit).endedBy, "worker")
        assert.deepStrictEqual(yield* harness.appServer.turns, [], "without autoStart codex gets no kickoff")
        assert.include(progressText(record), "The worker closed the conversation")
      }))

    it.effect("a hung app-server fails AppServerUnresponsive after the liveness bound (simulated minutes, no waiting)", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ turn: (_codex, _text, scripted) => scripted.hang })
        const { exit } = yield* runOn(harness, conversation(), {
          session: { ...SESSION, appServerLiveness: { interval: "10 seconds", timeout: "10 seconds", failures: 3 } }
        })
        const error = failureOf(exit) as { _tag: string; failedProbes: number; boundMs: number }
        assert.strictEqual(error._tag, "AppServerUnresponsive")
        assert.strictEqual(error.failedProbes, 3)
        assert.strictEqual(error.boundMs, 60_000)
      }))

    it.effect("resume: codex resumes the snapshot's thread and gets the resume notice instead of the kickoff", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const first = yield* makeHarness({ state, appServer: { threadId: THREAD }, turn: (codex) => Effect.andThen(rollout(codex, THREAD), codex.log("ERROR: interrupted")) })
        yield* runOn(first, conversation())
        const second = yield* makeHarness({ state, turn: doneOnFirstTurn })
        const { exit } = yield* runOn(second, conversation(), { resume: true })
        succeeded(exit)
        const [start] = yield* second.appServer.starts
        assert.strictEqual(start?.resumeThreadId, THREAD)
        const turns = yield* second.appServer.turns
        assert.strictEqual(turns.length, 1)
        assert.include(turns[0] ?? "", RESUME_NOTICE)
      }))

    it.effect("teardown order with a seed: listener, codex, widget, credential save-back, snapshot, lease, task files", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const seedId = yield* seedIn(state, "R1")
        const harness = yield* makeHarness({
          state,
          turn: (codex) =>
            Effect.andThen(Effect.orDie(codex.memory.host.writeFile(`${codex.codexHome}/auth.json`, authJson("R2"), { mode: 0o600 })), codex.log("DONE"))
        })
        const { exit } = yield* runOn(harness, conversation({ seedId, conversationUi: true }))
        succeeded(exit)
        const order = teardownEvents(harness.events).filter((event) => !event.startsWith("removed ") || event === taskdirRemoved(harness))
        assert.deepStrictEqual(order, [
          "viewer closed",
          "codex stopped",
          "widget cleared",
          "credentials saved back",
          "snapshot stored",
          "lease released",
          taskdirRemoved(harness)
        ])
      }))

    it.effect("lease loss racing the body ends the conversation as LeaseLost", () =>
      Effect.gen(function*() {
        const state = new MemoryStoreState()
        const seedId = yield* seedIn(state, "R1")
        const harness = yield* makeHarness({ state, turn: () => Effect.void })
        const { exit } = yield* runOn(harness, conversation({ seedId }), {}, (fiber) =>
          Effect.gen(function*() {
            yield* driveUntil(fiber, "the conversation is live", said("Codex conversation is live"))
            yield* storeOf(state, SeedStore.use((seeds) => seeds.delete(seedId, { force: true })))
          }))
        assert.strictEqual(tagOf(failureOf(exit)), "LeaseLost")
        assert.isTrue(yield* harness.appServer.closed)
      }))

    it.effect("cancel by interruption ends the conversation interrupted and closes codex", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ turn: () => Effect.void })
        const { exit } = yield* runOn(harness, conversation(), {}, (fiber) =>
          Effect.gen(function*() {
            yield* driveUntil(fiber, "the conversation is live", said("Codex conversation is live"))
            yield* Fiber.interrupt(fiber).pipe(Effect.forkChild)
          }))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause), String(exit))
        assert.isTrue(yield* harness.appServer.closed)
        assert.strictEqual(Option.getOrUndefined(Option.map(yield* latestSnapshot(harness.state), (doc) => doc.endState)), "cancelled")
      }))
  })

  describe("a worker without a store (Store.layerNone)", () => {
    it.effect("runs a resumable task to its end and takes no snapshot", () =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (codex) => codex.log("DONE: ok") })
        const { exit, record } = yield* runOn(harness, tui({ supportsResume: true }), { noStore: true })
        assert.strictEqual(succeeded(exit).summary, "ok")
        assert.notInclude(progressText(record), "snapshot")
        assert.isTrue(yield* harness.tmux.stopped)
      }))

    const refusedBeforeStart = (
      config: Record<string, unknown>,
      options: { readonly resume?: boolean; readonly hooks?: CodexTaskHooks },
      feature: string
    ) =>
      Effect.gen(function*() {
        const harness = yield* makeHarness({ tui: (codex) => codex.log("DONE: ok") })
        const { exit } = yield* runOn(harness, config, { noStore: true, ...options })
        const error = failureOf(exit)
        assert.strictEqual(tagOf(error), "PersistenceNotConfigured")
        assert.strictEqual((error as { feature: string }).feature, feature)
        assert.match(String((error as Error).message), /Store\.layerNone/)
        assert.deepStrictEqual(yield* harness.tmux.starts, [], "codex never started")
        assert.isFalse(yield* harness.memory.host.exists(harness.paths.taskdir), "nothing was laid out")
      })

    it.effect("refuses a seeded task before anything starts", () => refusedBeforeStart(tui({ seedId: "0123456789abcdef01234567" }), {}, "seeds"))
    it.effect("refuses a pooled task before anything starts", () => refusedBeforeStart(tui({ seedPool: "p" }), {}, "seeds"))
    it.effect("refuses seed capture before anything starts", () =>
      refusedBeforeStart(tui(), { hooks: { onSeedSaved: () => Effect.void } }, "seed capture"))
    it.effect("refuses a resume before anything starts", () => refusedBeforeStart(tui({ supportsResume: true }), { resume: true }, "resume"))
  })
})
