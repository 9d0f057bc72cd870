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
        needAttention: (reason) => record((r) => ({ ...r, attentionRequests: [...r.attentionRequests, reason] }))
      })
      return Context.make(TaskContext, context).pipe(Context.add(TaskRecorder, TaskRecorder.of({ current: Ref.get(state) })))
    }))

  /**
   * A context for a terminal: progress and requests are handed to `print` as lines.
   */
  static readonly layerConsole = (
    identity: TaskIdentity,
    print: (line: string) => Effect.Effect<void>,
    options: { readonly revealCredentials?: boolean } = {}
  ): Layer.Layer<TaskContext> =>
    Layer.succeed(TaskContext, TaskContext.of({
      processId: identity.processId,
      params: identity.params ?? {},
      resume: identity.resume ?? false,
      reportProgress: (percent, message) =>
        message === null && percent === null
          ? Effect.void
          : print(`${percent === null ? "" : `[${percent}%] `}${message ?? ""}`),
      setWidgetUpstream: (url, innerAuth) =>
        print(`upstream: ${url}`).pipe(Effect.andThen(
          options.revealCredentials === true && innerAuth?.kind === "basic"
            ? print(`  open in a browser: ${url}?token=${encodeURIComponent(Redacted.value(innerAuth.password))}\n  basic auth: ${innerAuth.username} / ${Redacted.value(innerAuth.password)}`)
            : Effect.void
        )),
      clearWidgetUpstream: Effect.void,
      setControlUpstream: () => Effect.void,
      clearControlUpstream: Effect.void,
      setWidgetData: () => Effect.void,
      clearWidgetData: Effect.void,
      registerUploadWriter: () => Effect.void,
      clearUploadWriter: Effect.void,
      requestBrowserOpen: (url) => print(`codex asks to open: ${url}`),
      needAttention: (reason) => print(`attention: ${reason}`)
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
}

const emptyRecord: TaskRecord = {
  progress: [],
  widgetUpstream: undefined,
  widgetUpstreamHistory: [],
  controlUpstream: undefined,
  widgetData: undefined,
  uploadWriter: undefined,
  browserOpenRequests: [],
  attentionRequests: []
}

/**
 * Reads what a recording TaskContext saw.
 * @category services
 * @since 0.1.0
 */
export class TaskRecorder extends Context.Service<TaskRecorder, {
  readonly current: Effect.Effect<TaskRecord>
}>()("optio-codex/TaskRecorder") {}
