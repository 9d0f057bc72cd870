/**
 * ConversationBody: the conversation mode of a session — `codex app-server` driven over
 * JSON-RPC, optionally served to the optio conversation UI by the listener (uploads, downloads,
 * approvals, model and effort controls), until optio.log reports the outcome or codex exits.
 *
 * @since 0.1.0
 */
import { Deferred, Effect } from "effect"
import { startConversation } from "../appserver/CodexConversation.ts"
import { appServerSandboxArgs, threadStartSandbox } from "../config/SandboxPosture.ts"
import { ConversationListener } from "../conversation/ConversationListener.ts"
import { makeDownloadReader } from "../conversation/Downloads.ts"
import { makeUploadWriter } from "../conversation/Uploads.ts"
import { conversationWidgetData } from "../conversation/WidgetData.ts"
import { AUTO_START_PROMPT } from "../protocol/SystemMessages.ts"
import { TaskContext } from "../task/TaskContext.ts"
import { watchUntilOutcome } from "./LogWatch.ts"
import { afterExecute } from "./PrepareTask.ts"
import type { PreparedTask } from "./PrepareTask.ts"

/**
 * Runs codex app-server for a prepared task and returns when the outcome is known.
 * @category constructors
 */
export const runConversationBody = Effect.fnUntraced(function*(prepared: PreparedTask) {
  const { config, paths } = prepared
  const task = yield* TaskContext
  yield* task.reportProgress(null, "Launching Codex (conversation)…")
  const conversation = yield* startConversation({
    launchPath: paths.launchLink,
    args: appServerSandboxArgs(prepared.posture),
    env: prepared.env,
    ...(config.scrubEnv === undefined ? {} : { envRemove: config.scrubEnv }),
    cwd: paths.workdir,
    sandbox: threadStartSandbox(prepared.posture),
    permissionGate: config.permissionGate,
    ...(config.model === undefined ? {} : { model: config.model }),
    ...(config.reasoningEffort === undefined ? {} : { reasoningEffort: config.reasoningEffort })
  })
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
      uploads: { writer, maxBytes: config.maxUploadBytes },
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
  if (config.autoStart) yield* conversation.sendTurn(AUTO_START_PROMPT)

  const gone = yield* Deferred.make<number | null>()
  yield* conversation.exited.pipe(
    Effect.map((code): number | null => code),
    Effect.orElseSucceed(() => null),
    Effect.flatMap((code) => Deferred.succeed(gone, code)),
    Effect.forkScoped
  )
  return yield* watchUntilOutcome({
    paths,
    hooks: prepared.hooks,
    hookContext: prepared.hookContext,
    send: conversation.send,
    codexGone: Deferred.await(gone),
    screenTail: Effect.succeed("(codex app-server has no screen; see the task's progress and events)")
  }).pipe(Effect.ensuring(afterExecute(prepared)))
})
