/**
 * An Effect worker that runs codex tasks with optio-codex. The worker owns three things: how a
 * task's progress reaches its operator (its own `TaskContext` layer), how a task runs (the
 * `CodexRunner` service, swapped for a mock in tests), and what it reports when tasks end.
 */
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer } from "effect"
import type { Scope } from "effect"
import { runCodexSession, TaskContext } from "optio-codex"
import type { CodexSessionServices } from "optio-codex"
import { ModelScript, offlineTaskSettings, ScriptedModelServer } from "optio-codex/testing"

/** One codex task: its name (also its process id), how codex runs, and what the model does. */
export interface TaskSpec {
  readonly name: string
  /** `iframe`: the codex TUI in a web terminal; `conversation`: codex app-server. */
  readonly mode: "iframe" | "conversation"
  readonly prompt: string
  /** The scripted model's turns (this worker runs offline, against a local model server). */
  readonly script: ModelScript.Script
  /** Cancel the task once its first model turn is under way. */
  readonly cancelMidTurn: boolean
}

/** How a task ended. */
export type Outcome =
  | { readonly task: string; readonly status: "completed"; readonly summary: string | null }
  | { readonly task: string; readonly status: "cancelled" }
  | { readonly task: string; readonly status: "failed"; readonly error: string }

/**
 * The worker's `TaskContext`: progress, widget upstreams and requests become lines for `print`,
 * prefixed with the task's name. A real optio worker would forward them to its dashboard.
 */
export const printingTaskContext = (processId: string, print: (line: string) => Effect.Effect<void>): Layer.Layer<TaskContext> => {
  const say = (text: string) => print(`[${processId}] ${text}`)
  return Layer.succeed(TaskContext, TaskContext.of({
    processId,
    params: {},
    resume: false,
    reportProgress: (percent, message) =>
      say(`progress ${percent === null ? "" : `${percent}% `}${message ?? ""}`.trimEnd()),
    setWidgetUpstream: (url) => say(`widget upstream: ${url}`),
    clearWidgetUpstream: say("widget upstream cleared"),
    setControlUpstream: (url) => say(`control upstream: ${url}`),
    clearControlUpstream: Effect.void,
    setWidgetData: () => Effect.void,
    clearWidgetData: Effect.void,
    registerUploadWriter: () => Effect.void,
    clearUploadWriter: Effect.void,
    requestBrowserOpen: (url) => say(`asks to open ${url}`),
    needAttention: (reason) => say(`needs attention: ${reason}`),
    markHasSavedState: say("has saved state (the dashboard may offer Resume)"),
    publishConversation: (conversation) => say(`conversation ${conversation.threadId} is live`)
  }))
}

/** The services every task shares: all a session needs but its TaskContext (the host, the stores, codex's services). */
export type SharedServices = Exclude<CodexSessionServices, TaskContext>

/** Runs one task to its end; `midTurn` completes once the model is answering its first request. */
export class CodexRunner extends Context.Service<CodexRunner, {
  readonly run: (task: TaskSpec, midTurn: Deferred.Deferred<void>) => Effect.Effect<string | null, unknown, Scope.Scope>
}>()("example-worker/CodexRunner") {
  /**
   * Real codex against a scripted local model server (no account, no network): each task gets
   * its own server playing its script, and its own workdir under `workRoot`.
   */
  static readonly layerOffline = (
    workRoot: string,
    print: (line: string) => Effect.Effect<void>
  ): Layer.Layer<CodexRunner, never, SharedServices> =>
    Layer.effect(CodexRunner, Effect.gen(function*() {
      const shared = yield* Effect.context<SharedServices>()
      return CodexRunner.of({
        run: (task, midTurn) =>
          Effect.gen(function*() {
            const server = yield* ScriptedModelServer.start(task.script)
            // Signals once the first model request has arrived: codex is mid-turn.
            yield* server.awaitRequests((requests) => requests.length > 0, "2 minutes").pipe(
              Effect.andThen(Deferred.succeed(midTurn, undefined)),
              Effect.ignore,
              Effect.forkScoped
            )
            const result = yield* runCodexSession(
              {
                consumerInstructions: task.prompt,
                mode: task.mode,
                // A conversation publishes its own browser UI as the widget upstream.
                ...(task.mode === "conversation" ? { conversationUi: true } : {}),
                autoStart: true,
                ...offlineTaskSettings(server.baseUrl)
              },
              { workdir: `${workRoot}/${task.name}` }
            ).pipe(Effect.provide(printingTaskContext(task.name, print)))
            return result.summary
          }).pipe(Effect.provideContext(shared))
      })
    }))
}

/** Runs one task in its own fiber; a task marked `cancelMidTurn` is interrupted mid-turn. */
export const runTask = (task: TaskSpec): Effect.Effect<Outcome, never, CodexRunner> =>
  Effect.gen(function*() {
    const runner = yield* CodexRunner
    const midTurn = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkChild(Effect.scoped(runner.run(task, midTurn)))
    if (task.cancelMidTurn) {
      // Whichever comes first: the turn starts (then cancel it), or the task ends on its own.
      yield* Effect.raceFirst(Deferred.await(midTurn), Fiber.await(fiber))
      yield* Fiber.interrupt(fiber)
    }
    return toOutcome(task.name, yield* Fiber.await(fiber))
  })

/** Maps how a task's fiber ended to what the worker reports. */
export const toOutcome = (task: string, exit: Exit.Exit<string | null, unknown>): Outcome =>
  Exit.isSuccess(exit)
    ? { task, status: "completed", summary: exit.value }
    : Cause.hasInterruptsOnly(exit.cause)
    ? { task, status: "cancelled" }
    : { task, status: "failed", error: Cause.pretty(exit.cause) }

/** Runs all tasks concurrently and returns their outcomes in the order given. */
export const runTasks = (tasks: ReadonlyArray<TaskSpec>): Effect.Effect<ReadonlyArray<Outcome>, never, CodexRunner> =>
  Effect.forEach(tasks, runTask, { concurrency: "unbounded" })

/** The example's three tasks: an offline TUI task, an offline conversation, and one cancelled mid-turn. */
export const exampleTasks: ReadonlyArray<TaskSpec> = [
  {
    name: "tui",
    mode: "iframe",
    prompt: "Create hello.txt, then report DONE on the optio.log channel.",
    script: [
      ModelScript.execCommand("printf 'hello from the TUI task\\n' > hello.txt"),
      ModelScript.execCommand("printf 'DONE: wrote hello.txt\\n' >> optio.log"),
      ModelScript.text("Done.")
    ],
    cancelMidTurn: false
  },
  {
    name: "conversation",
    mode: "conversation",
    prompt: "Create notes.md, then report DONE on the optio.log channel.",
    script: [
      ModelScript.execCommand("printf '# notes\\n' > notes.md"),
      ModelScript.execCommand("printf 'DONE: wrote notes.md\\n' >> optio.log"),
      ModelScript.text("Done.")
    ],
    cancelMidTurn: false
  },
  {
    name: "cancelled",
    mode: "conversation",
    prompt: "Think about it for a long while.",
    // The model starts answering and never finishes: the turn stays open until cancelled.
    script: [ModelScript.text("Thinking", { holdOpen: true })],
    cancelMidTurn: true
  }
]
