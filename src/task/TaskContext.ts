/**
 * TaskContext: the optio ProcessContext as a codex task uses it — who the task is (process id,
 * params, resume flag) and how it talks back to the worker and the dashboard (progress, widget
 * and control upstreams, widget data, uploads, browser-open requests, attention requests). The
 * worker provides it; this module owns only the contract and two layers: a recording one for
 * tests and a console one for the CLI.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Redacted, Ref } from "effect"
import type { ConversationHandle } from "../appserver/ConversationHandle.ts"

/**
 * The live conversation of a conversation-mode task, as the worker gets it (the reference's
 * `publish_result(conversation)`): send turns, follow every event, answer approval requests,
 * change the model, and close it — which ends the task successfully.
 * @category models
 * @since 0.1.0
 */
export interface PublishedConversation extends ConversationHandle {
  /** The codex thread id. */
  readonly threadId: string
  /** The ids of approval requests waiting for an answer (stringified JSON-RPC ids). */
  readonly pendingPermissions: Effect.Effect<ReadonlyArray<string>>
  /** Ends the task successfully (as `DONE`), whatever the agent was doing; idempotent. */
  readonly close: Effect.Effect<void>
}

/**
 * How the dashboard's proxy authenticates to an upstream: the credential it adds to every
 * proxied request.
 * @category models
 * @since 0.1.0
 */
export type InnerAuth =
  | { readonly kind: "basic"; readonly username: string; readonly password: Redacted.Redacted<string> }
  | { readonly kind: "query"; readonly name: string; readonly value: Redacted.Redacted<string> }
  | { readonly kind: "header"; readonly name: string; readonly value: Redacted.Redacted<string> }

/**
 * Writes one uploaded file; returns the path it was stored at.
 * @category models
 * @since 0.1.0
 */
export type UploadWriter = (upload: {
  readonly fileName: string
  readonly bytes: Uint8Array
}) => Effect.Effect<string, unknown>

/**
 * The ProcessContext subset a codex task uses.
 * @category services
 * @since 0.1.0
 */
export class TaskContext extends Context.Service<TaskContext, {
  readonly processId: string
  readonly params: Readonly<Record<string, unknown>>
  /** Whether the worker asks this run to resume from saved state. */
  readonly resume: boolean
  /** A progress report; either part may be null (percent-only or message-only). */
  readonly reportProgress: (percent: number | null, message: string | null) => Effect.Effect<void>
  /** Publishes the http(s) URL the dashboard's widget iframe proxies to. */
  readonly setWidgetUpstream: (url: string, innerAuth?: InnerAuth) => Effect.Effect<void>
  readonly clearWidgetUpstream: Effect.Effect<void>
  readonly setControlUpstream: (url: string, innerAuth?: InnerAuth) => Effect.Effect<void>
  readonly clearControlUpstream: Effect.Effect<void>
  /** Widget configuration the dashboard reads (JSON-serializable). */
  readonly setWidgetData: (data: unknown) => Effect.Effect<void>
  readonly clearWidgetData: Effect.Effect<void>
  readonly registerUploadWriter: (writer: UploadWriter) => Effect.Effect<void>
  readonly clearUploadWriter: Effect.Effect<void>
  /** Asks the operator's browser to open a URL (codex's login flows). */
  readonly requestBrowserOpen: (url: string) => Effect.Effect<void>
  /** Asks for a human's attention. */
  readonly needAttention: (reason: string) => Effect.Effect<void>
  /**
   * Says the process now has saved state to resume from (called after each stored snapshot): the
   * dashboard then offers Resume (optio's `hasSavedState`).
   */
  readonly markHasSavedState: Effect.Effect<void>
  /** Hands the worker the live conversation (conversation mode, once codex is up). */
  readonly publishConversation: (conversation: PublishedConversation) => Effect.Effect<void>
}>()("optio-codex/TaskContext") {
  /**
   * A context that records every call, for tests. Read the record with {@link TaskRecorder}.
   */
  static readonly layerRecording = (identity: TaskIdentity): Layer.Layer<TaskContext | TaskRecorder> =>
    Layer.effectContext(Effect.gen(function*() {
      const state = yield* Ref.make<TaskRecord>(emptyRecord)
      const record = (f: (record: TaskRecord) => TaskRecord) => Ref.update(state, f)
      const context = TaskContext.of({
        processId: identity.processId,
        params: identity.params ?? {},
        resume: identity.resume ?? false,
        reportProgress: (percent, message) =>
          record((r) => ({ ...r, progress: [...r.progress, { percent, message }] })),
        setWidgetUpstream: (url, innerAuth) =>
          record((r) => ({ ...r, widgetUpstream: { url, innerAuth }, widgetUpstreamHistory: [...r.widgetUpstreamHistory, url] })),
        clearWidgetUpstream: record((r) => ({ ...r, widgetUpstream: undefined })),
        setControlUpstream: (url, innerAuth) => record((r) => ({ ...r, controlUpstream: { url, innerAuth } })),
        clearControlUpstream: record((r) => ({ ...r, controlUpstream: undefined })),
        setWidgetData: (data) => record((r) => ({ ...r, widgetData: data })),
        clearWidgetData: record((r) => ({ ...r, widgetData: undefined })),
        registerUploadWriter: (writer) => record((r) => ({ ...r, uploadWriter: writer })),
        clearUploadWriter: record((r) => ({ ...r, uploadWriter: undefined })),
        requestBrowserOpen: (url) => record((r) => ({ ...r, browserOpenRequests: [...r.browserOpenRequests, url] })),
        needAttention: (reason) => record((r) => ({ ...r, attentionRequests: [...r.attentionRequests, reason] })),
        markHasSavedState: record((r) => ({ ...r, hasSavedState: true })),
        publishConversation: (conversation) => record((r) => ({ ...r, conversation }))
      })
      return Context.make(TaskContext, context).pipe(Context.add(TaskRecorder, TaskRecorder.of({ current: Ref.get(state) })))
    }))

  /**
   * A context for a terminal: progress and requests are handed to `print` as lines. Once the
   * widget is published it also prints the path the dashboard's iframe or conversation view will
   * open through optio-api's widget proxy (so a wrong published URL shows without a dashboard)
   * and, with `revealCredentials`, how a person on this machine reaches the upstream directly.
   */
  static readonly layerConsole = (
    identity: TaskIdentity,
    print: (line: string) => Effect.Effect<void>,
    options: { readonly revealCredentials?: boolean } = {}
  ): Layer.Layer<TaskContext> =>
    Layer.effect(TaskContext, Effect.gen(function*() {
      const upstream = yield* Ref.make<{ readonly url: string; readonly innerAuth: InnerAuth | undefined } | undefined>(undefined)
      const widgetProxyUrl = `/api/widget/<database>/<prefix>/${identity.processId}/`
      const describeWidget = (data: unknown) =>
        Effect.gen(function*() {
          const published = yield* Ref.get(upstream)
          const iframeSrc = typeof data === "object" && data !== null && "iframeSrc" in data && typeof data.iframeSrc === "string"
            ? data.iframeSrc
            : undefined
          const lines = iframeSrc === undefined
            ? [`dashboard conversation view calls: ${widgetProxyUrl}events, ${widgetProxyUrl}send, …`]
            : [`dashboard iframe opens: ${iframeSrc.replaceAll("{widgetProxyUrl}", widgetProxyUrl)}`]
          const basic = published?.innerAuth?.kind === "basic" ? published.innerAuth : undefined
          if (options.revealCredentials === true && published !== undefined && basic !== undefined) {
            const password = Redacted.value(basic.password)
            lines.push(
              iframeSrc === undefined
                ? `  listener API: curl -u ${basic.username}:${password} ${published.url.replace(/\/$/, "")}/events`
                : `  open in a browser: ${published.url}?token=${encodeURIComponent(password)}`,
              `  basic auth: ${basic.username} / ${password}`
            )
          }
          yield* print(lines.join("\n"))
        })
      return TaskContext.of({
        processId: identity.processId,
        params: identity.params ?? {},
        resume: identity.resume ?? false,
        reportProgress: (percent, message) =>
          message === null && percent === null
            ? Effect.void
            : print(`${percent === null ? "" : `[${percent}%] `}${message ?? ""}`),
        setWidgetUpstream: (url, innerAuth) =>
          Ref.set(upstream, { url, innerAuth }).pipe(Effect.andThen(print(`upstream: ${url}`))),
        clearWidgetUpstream: Effect.void,
        setControlUpstream: () => Effect.void,
        clearControlUpstream: Effect.void,
        setWidgetData: (data) => describeWidget(data),
        clearWidgetData: Effect.void,
        registerUploadWriter: () => Effect.void,
        clearUploadWriter: Effect.void,
        requestBrowserOpen: (url) => print(`codex asks to open: ${url}`),
        needAttention: (reason) => print(`attention: ${reason}`),
        markHasSavedState: Effect.void,
        publishConversation: () => Effect.void
      })
    }))
}

/**
 * Who a task is, for the layers above.
 * @category models
 * @since 0.1.0
 */
export interface TaskIdentity {
  readonly processId: string
  readonly params?: Readonly<Record<string, unknown>>
  readonly resume?: boolean
}

/**
 * Everything a recording {@link TaskContext} saw.
 * @category models
 * @since 0.1.0
 */
export interface TaskRecord {
  readonly progress: ReadonlyArray<{ readonly percent: number | null; readonly message: string | null }>
  readonly widgetUpstream: { readonly url: string; readonly innerAuth: InnerAuth | undefined } | undefined
  readonly widgetUpstreamHistory: ReadonlyArray<string>
  readonly controlUpstream: { readonly url: string; readonly innerAuth: InnerAuth | undefined } | undefined
  readonly widgetData: unknown
  readonly uploadWriter: UploadWriter | undefined
  readonly browserOpenRequests: ReadonlyArray<string>
  readonly attentionRequests: ReadonlyArray<string>
  /** Whether `markHasSavedState` was called. */
  readonly hasSavedState: boolean
  /** The conversation handed over by `publishConversation`, if any. */
  readonly conversation: PublishedConversation | undefined
}

const emptyRecord: TaskRecord = {
  progress: [],
  widgetUpstream: undefined,
  widgetUpstreamHistory: [],
  controlUpstream: undefined,
  widgetData: undefined,
  uploadWriter: undefined,
  browserOpenRequests: [],
  attentionRequests: [],
  hasSavedState: false,
  conversation: undefined
}

/**
 * Reads what a recording TaskContext saw.
 * @category services
 * @since 0.1.0
 */
export class TaskRecorder extends Context.Service<TaskRecorder, {
  readonly current: Effect.Effect<TaskRecord>
}>()("optio-codex/TaskRecorder") {}
