/**
 * ConversationBody: the conversation mode of a session — `codex app-server` driven over
 * JSON-RPC, optionally served to the optio conversation UI by the listener (uploads, downloads,
 * approvals, model and effort controls), until optio.log reports the outcome or codex exits.
 *
 * @since 0.1.0
 */
import { Deferred, Duration, Effect, Option } from "effect"
import { AppServerClient } from "../appserver/AppServerClient.ts"
import type { CodexConversation, HistoryTurn } from "../appserver/CodexConversation.ts"
import { ClientMethod, ServerNotificationMethod } from "../appserver/AppServerSchema.ts"
import { appServerSandboxArgs, threadStartSandbox } from "../config/SandboxPosture.ts"
import { ConversationListener } from "../conversation/ConversationListener.ts"
import { makeDownloadReader } from "../conversation/Downloads.ts"
import { makeUploadWriter } from "../conversation/Uploads.ts"
import { conversationWidgetData } from "../conversation/WidgetData.ts"
import type { ConversationEvent } from "../appserver/ConversationHandle.ts"
import { AUTO_START_PROMPT, RESUME_NOTICE, systemMessage } from "../protocol/SystemMessages.ts"
import { TaskContext } from "../task/TaskContext.ts"
import { recordLaunch } from "./Leftovers.ts"
import { watchUntilOutcome } from "./LogWatch.ts"
import type { SessionResult } from "./LogWatch.ts"
import { afterExecute } from "./PrepareTask.ts"
import { watchQuotaAndHandOff } from "./QuotaHandoff.ts"
import { makeRelaunchable } from "./RelaunchableConversation.ts"
import type { PreparedTask, SessionOptions } from "./PrepareTask.ts"
import { AppServerUnresponsive, CodexExitedEarly } from "./SessionErrors.ts"

/**
 * Runs codex app-server for a prepared task and returns when the outcome is known.
 * @category constructors
 */
export const runConversationBody = Effect.fnUntraced(function*(prepared: PreparedTask) {
  const { config, paths } = prepared
  const task = yield* TaskContext
  yield* task.reportProgress(null, "Launching Codex (conversation)…")
  const client = yield* AppServerClient
  const launch = (resumeThread: Option.Option<string>) => client.start({
    launchPath: paths.launchLink,
    args: appServerSandboxArgs(prepared.posture),
    env: prepared.env,
    envAllow: prepared.envAllow,
    ...(config.scrubEnv === undefined ? {} : { envRemove: config.scrubEnv }),
    cwd: paths.workdir,
    sandbox: threadStartSandbox(prepared.posture),
    permissionGate: config.permissionGate,
    ...(config.model === undefined ? {} : { model: config.model }),
    ...(config.reasoningEffort === undefined ? {} : { reasoningEffort: config.reasoningEffort }),
    ...(prepared.options.appServerRequestTimeout === undefined ? {} : { requestTimeout: prepared.options.appServerRequestTimeout }),
    ...Option.match(resumeThread, { onNone: () => ({}), onSome: (resumeThreadId) => ({ resumeThreadId }) }),
    // The same bound as the TUI's SIGTERM → SIGKILL wait.
    closeTimeout: prepared.options.stopGracePeriod ?? "5 seconds"
  }).pipe(
    // A codex that dies while starting fails the session with its status and stderr, and the
    // operator sees the same text in the task's progress.
    Effect.catchTag("AppServerExited", (exited) =>
      Effect.fail(
        exited.exitCode === undefined
          ? exited
          : new CodexExitedEarly({ exitCode: exited.exitCode, paneTail: exited.stderrTail.trim(), process: APP_SERVER, atLaunch: true })
      )),
    Effect.tapError((error) => task.reportProgress(null, error.message))
  )
  // Relaunchable: a seed hand-off restarts app-server on the same thread under new credentials.
  const conversation = yield* makeRelaunchable(yield* launch(prepared.resumeThread))
  yield* prepared.markLaunched
  yield* prepared.recordThread(conversation.threadId)
  // Recorded for the next start, should this worker die without its teardown.
  yield* recordLaunch(paths, { processes: [{ role: "codex app-server", pid: conversation.pid }] })
  yield* task.reportProgress(null, "Codex conversation is live")

  if (config.conversationUi) {
    const writer = yield* makeUploadWriter({ workdir: paths.workdir, maxBytes: config.maxUploadBytes })
    yield* task.registerUploadWriter(writer)
    yield* Effect.addFinalizer(() => task.clearUploadWriter)
    const download = config.fileDownload
      ? { download: yield* makeDownloadReader({ workdir: paths.workdir, maxBytes: config.maxDownloadBytes }) }
      : {}
    const listener = yield* ConversationListener
    const endpoint = yield* listener.serve(conversation, {
      bindHost: config.widgetBindHost,
      advertisedHost: config.widgetAdvertisedHost,
      uploads: { writer, stream: writer.stream, maxBytes: config.maxUploadBytes },
      history: historyEvents(conversation.threadId, conversation.history),
      ...download
    })
    yield* task.setWidgetUpstream(endpoint.url, endpoint.innerAuth)
    yield* task.setWidgetData(conversationWidgetData(config, yield* conversation.controls))
    yield* task.reportProgress(null, "Conversation UI is live")
  }
  if (prepared.options.onConversation !== undefined) {
    yield* prepared.options.onConversation(conversation).pipe(
      Effect.catch((error) => task.reportProgress(null, `conversation viewer failed: ${String(error)}`)),
      Effect.forkScoped
    )
  }
  // The worker gets the live conversation; its close ends the task as done (the reference wrote
  // DONE for it), so a `hostProtocol: false` task has a clean way to finish.
  const closedByWorker = yield* Deferred.make<void>()
  yield* task.publishConversation({
    threadId: conversation.threadId,
    events: conversation.events,
    send: conversation.send,
    interrupt: conversation.interrupt,
    setControl: conversation.setControl,
    controls: conversation.controls,
    answerPermission: conversation.answerPermission,
    pendingPermissions: conversation.pendingPermissions,
    close: Deferred.succeed(closedByWorker, undefined).pipe(Effect.asVoid)
  })
  // A resumed thread gets the resume notice; a fresh one the kickoff (P36).
  if (Option.isSome(prepared.resumeThread)) yield* conversation.sendTurn(systemMessage(RESUME_NOTICE))
  else if (config.autoStart) yield* conversation.sendTurn(AUTO_START_PROMPT)

  yield* prepared.attachAgentChannel(conversation.send)
  // A hung app-server never exits, so optio.log and the exit alone would wait forever: the
  // liveness watch fails the session instead (the first of the two to finish decides).
  const quotaWatch = Option.match(prepared.seedSlot, {
    onNone: () => Effect.never,
    onSome: (slot) =>
      watchQuotaAndHandOff({
        conversation,
        slot,
        launch: (threadId) => launch(Option.some(threadId)),
        relaunched: (next) => recordLaunch(paths, { processes: [{ role: "codex app-server", pid: next.pid }] }).pipe(Effect.ignore)
      })
  })
  return yield* Effect.raceFirst(
    watchUntilOutcome({
      paths,
      hooks: prepared.hooks,
      hookContext: prepared.hookContext,
      ...(prepared.config.compat === undefined ? {} : { replyWording: prepared.config.compat }),
      send: conversation.send,
      codexExit: conversation.exited,
      codexProcess: APP_SERVER,
      screenTail: Effect.succeed("(codex app-server has no screen; see the task's progress and events)")
    }),
    Effect.raceFirst(
      watchLiveness(conversation, prepared.options.appServerLiveness ?? {}),
      Effect.raceFirst(
        Deferred.await(closedByWorker).pipe(
          Effect.andThen(task.reportProgress(null, "The worker closed the conversation")),
          Effect.as<SessionResult>({ outcome: "done", endedBy: "worker", summary: null, workdir: paths.workdir })
        ),
        quotaWatch
      )
    )
  ).pipe(Effect.ensuring(afterExecute(prepared)))
})

const APP_SERVER = "codex app-server"

/**
 * Probes the app-server until it stops answering; never succeeds. A conversation that ended
 * stops the probes: codex's exit is the exit watch's business, not a hang.
 */
const watchLiveness = (conversation: CodexConversation, settings: NonNullable<SessionOptions["appServerLiveness"]>) =>
  Effect.gen(function*() {
    const interval = Duration.fromInputUnsafe(settings.interval ?? "10 seconds")
    const timeout = Duration.fromInputUnsafe(settings.timeout ?? "10 seconds")
    const allowed = Math.max(1, Math.floor(settings.failures ?? 3))
    let failures = 0
    while (true) {
      yield* Effect.sleep(interval)
      const probe = yield* conversation.ping(timeout).pipe(Effect.result)
      if (probe._tag === "Success") {
        failures = 0
        yield* Effect.logDebug("codex app-server answered a liveness probe")
        continue
      }
      if (probe.failure._tag === "ConversationClosed") return yield* Effect.never
      failures += 1
      yield* Effect.logWarning("codex app-server did not answer a liveness probe", { failures, allowed })
      if (failures >= allowed) {
        return yield* new AppServerUnresponsive({
          pid: conversation.pid,
          method: ClientMethod.threadLoadedList,
          failedProbes: failures,
          probeTimeoutMs: Duration.toMillis(timeout),
          intervalMs: Duration.toMillis(interval),
          boundMs: allowed * (Duration.toMillis(interval) + Duration.toMillis(timeout))
        })
      }
    }
  }).pipe(Effect.withSpan("CodexSession.liveness"))

/**
 * A resumed thread's earlier turns as the events a live turn would have produced (each item
 * completed, then the turn), so a viewer that opens after a resume sees the whole conversation.
 */
const historyEvents = (threadId: string, turns: ReadonlyArray<HistoryTurn>): ReadonlyArray<ConversationEvent> =>
  turns.flatMap((turn) => [
    ...turn.items.map((item) => ({ method: ServerNotificationMethod.itemCompleted, params: { threadId, turnId: turn.id, item } })),
    { method: ServerNotificationMethod.turnCompleted, params: { threadId, turn: { id: turn.id, status: turn.status } } }
  ])
