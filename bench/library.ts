/**
 * The library side of the benchmarks: the services a worker provides (built once per run), and a
 * session started the way a worker starts one — `runCodexSession` with a recording TaskContext —
 * wrapped in a probe that timestamps the published upstream, the progress messages and every span
 * (so a start can be split into its phases).
 */
import { Context, Deferred, Effect, Fiber, Layer, Queue, Stream, Tracer } from "effect"
import type { Exit } from "effect"
import type { CodexConversation } from "../src/appserver/CodexConversation.ts"
import { turnEvents } from "../src/appserver/TurnEvents.ts"
import { demoTaskSettings } from "../src/cli/OfflineDemo.ts"
import * as LocalHost from "../src/host/LocalHost.ts"
import { runCodexSession } from "../src/session/CodexSession.ts"
import { TaskContext } from "../src/task/TaskContext.ts"
import type { InnerAuth } from "../src/task/TaskContext.ts"
import { layerCodexServices } from "../src/session/SessionServices.ts"
import { Store } from "../src/store/Store.ts"
import type { Timeline } from "./harness.ts"
import { now } from "./harness.ts"

/** What a store-less worker provides to sessions: one Host, no store, the session services. */
export const libraryServices = (cacheDir: string) =>
  layerCodexServices({ binaryCache: { cacheDir } }).pipe(
    Layer.provideMerge(Layer.merge(Store.layerNone, LocalHost.layer()))
  )

/** A span as the probe saw it, on the `now()` clock. */
export interface SpanSeen {
  readonly name: string
  readonly attributes: Readonly<Record<string, unknown>>
  readonly start: number
  readonly end: number
}

/** A session started under a probe. */
export interface ProbedSession {
  readonly startedAt: number
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly upstream: Deferred.Deferred<{ readonly url: string; readonly innerAuth: InnerAuth | undefined; readonly at: number }>
  readonly conversation: Deferred.Deferred<CodexConversation>
  readonly spans: ReadonlyArray<SpanSeen>
}

/**
 * The task root of a bench session: beside its workdir, on the run's work tree (tmpfs when it
 * can), like the bare clients' homes. The default root (on the host's disk) would make every
 * rollout and state-database write of codex's turn slower than the baselines' for reasons of
 * the disk, not of the library.
 */
export const benchTaskRoot = (workdir: string): string => `${workdir}.root`

/**
 * Starts `runCodexSession` in a fiber of the current scope, in `workdir`, against the scripted
 * server at `baseUrl`. Conversation mode serves the conversation UI (as the dashboard uses it).
 */
export const startSession = (options: {
  readonly mode: "conversation" | "tui"
  readonly processId: string
  readonly workdir: string
  readonly baseUrl: string
}) =>
  Effect.gen(function*() {
    const recording = yield* Layer.build(TaskContext.layerRecording({ processId: options.processId }))
    const inner = Context.get(recording, TaskContext)
    const upstream = yield* Deferred.make<{ readonly url: string; readonly innerAuth: InnerAuth | undefined; readonly at: number }>()
    const conversation = yield* Deferred.make<CodexConversation>()
    const spans: Array<SpanSeen> = []
    const context = TaskContext.of({
      ...inner,
      setWidgetUpstream: (url, innerAuth) =>
        inner.setWidgetUpstream(url, innerAuth).pipe(Effect.andThen(Deferred.succeed(upstream, { url, innerAuth, at: now() })))
    })
    const config = {
      consumerInstructions: "benchmark",
      ...(options.mode === "conversation" ? { mode: "conversation", conversationUi: true } : {}),
      ...demoTaskSettings(options.baseUrl)
    }
    const startedAt = now()
    const fiber = yield* runCodexSession(config, {
      workdir: options.workdir,
      taskRoot: benchTaskRoot(options.workdir),
      stopGracePeriod: "2 seconds",
      onConversation: (started) => Deferred.succeed(conversation, started)
    }).pipe(
      Effect.provideService(TaskContext, context),
      Effect.withTracer(recordingTracer(spans)),
      Effect.forkScoped
    )
    const session: ProbedSession = { startedAt, fiber, upstream, conversation, spans }
    return session
  })

/** Waits until the session published its upstream; fails if the session ends first. */
export const awaitPublished = (session: ProbedSession) =>
  Effect.raceFirst(
    Deferred.await(session.upstream),
    Fiber.await(session.fiber).pipe(Effect.flatMap((exit) => Effect.die(new Error(`the session ended before it was live: ${describe(exit)}`))))
  ).pipe(Effect.timeoutOrElse({ duration: "60 seconds", orElse: () => Effect.die(new Error("the session was not live within 60 s")) }))

/** Waits for the session's conversation (conversation mode only). */
export const awaitConversation = (session: ProbedSession) =>
  Effect.raceFirst(
    Deferred.await(session.conversation),
    Fiber.await(session.fiber).pipe(Effect.flatMap((exit) => Effect.die(new Error(`the session ended early: ${describe(exit)}`))))
  )

/**
 * A turn runner on a live conversation: `turn(text)` sends a user turn and completes when the
 * conversation reports TurnCompleted for it, with the time codex acknowledged the turn.
 * Subscribed once, in the caller's scope.
 */
export const turnRunner = (conversation: CodexConversation) =>
  Effect.gen(function*() {
    const completed = yield* Queue.unbounded<string>()
    const events = yield* conversation.subscribe
    yield* events.pipe(
      turnEvents(conversation.threadId),
      Stream.runForEach((event) => event._tag === "TurnCompleted" ? Queue.offer(completed, event.turnId) : Effect.void),
      Effect.forkScoped
    )
    return (text: string) =>
      Effect.gen(function*() {
        const turnId = yield* conversation.sendTurn(text)
        const acknowledged = now()
        while ((yield* Queue.take(completed)) !== turnId) {
          // A completion of an earlier turn: keep waiting for this one.
        }
        return acknowledged
      })
  })

/** Phases of a session's start from its spans, as offsets from `startedAt`. */
export const timelineOf = (session: ProbedSession, extra: Readonly<Record<string, readonly [number, number]>> = {}): Timeline => {
  const phases: Record<string, readonly [number, number]> = {}
  const at = (t: number) => t - session.startedAt
  for (const span of session.spans) {
    const phase = phaseOf(span)
    if (phase === undefined || phases[phase] !== undefined) continue
    phases[phase] = [at(span.start), at(span.end)]
  }
  for (const [name, [start, end]] of Object.entries(extra)) phases[name] = [at(start), at(end)]
  return phases
}

const phaseOf = (span: SpanSeen): string | undefined => {
  const program = String(span.attributes["program"] ?? "")
  switch (span.name) {
    case "Workdir.prepare":
      return "prepare workdir"
    case "BinaryCache.linkForTask":
      return "binary link"
    case "LocalHost.run":
      return program === "sh" ? "host PATH (sh -c)" : undefined
    case "LocalHost.spawn":
      return program.endsWith("/codex") ? "spawn app-server" : undefined
    case "AppServerProtocol.request":
      return `rpc ${String(span.attributes["method"])}`
    case "CodexConversation.start":
      return "conversation start (spawn → thread)"
    case "ConversationListener.serve":
      return "listener serve"
    case "TmuxSession.start":
      return "tmux start"
    case "TtydSession.serve":
      return "web terminal serve"
    default:
      return undefined
  }
}

const describe = (exit: Exit.Exit<unknown, unknown>) => exit._tag === "Success" ? "success" : String(exit.cause)

/** A tracer that keeps every ended span with its start and end on the `now()` clock. */
const recordingTracer = (sink: Array<SpanSeen>): Tracer.Tracer =>
  Tracer.make({
    span: (options) => new RecordedSpan(options, sink)
  })

class RecordedSpan extends Tracer.NativeSpan {
  readonly begun: number
  readonly sink: Array<SpanSeen>
  constructor(options: ConstructorParameters<typeof Tracer.NativeSpan>[0], sink: Array<SpanSeen>) {
    super(options)
    this.begun = now()
    this.sink = sink
  }
  override end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    super.end(endTime, exit)
    this.sink.push({ name: this.name, attributes: Object.fromEntries(this.attributes), start: this.begun, end: now() })
  }
}
