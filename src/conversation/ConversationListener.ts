/**
 * ConversationListener: the per-task HTTP/SSE server the dashboard's conversation widget
 * (CodexView, behind optio-api's widget proxy) talks to. It replays and follows a conversation's
 * events as Server-Sent Events and turns the operator's requests (send, interrupt, session
 * controls, approvals, uploads, downloads) into calls on a {@link ConversationHandle}.
 *
 * Owns: the per-run Basic credential and its check on every route, the routes and their
 * status codes (spec conversation-mode §5.3, with §6.6 where the real UI differs), the event
 * history for the life of the task ([P8]), and the teardown of open streams. Does not own the
 * conversation itself, how files are stored or read (`Uploads.ts`, `Downloads.ts`), or the
 * widget registration (the session publishes `innerAuth` and the widget data).
 *
 * @since 0.1.0
 */
import { NodeHttpServer, NodeHttpServerRequest } from "@effect/platform-node"
import { ByteSize, Context, Duration, Effect, Exit, Layer, Redacted, Schema, Stream } from "effect"
import type { Scope } from "effect"
import { HttpIncomingMessage, HttpServerRequest, HttpServerResponse, Multipart } from "effect/http"
import type { HttpServerError } from "effect/http"
import { createServer } from "node:http"
import { HostError } from "../host/Host.ts"
import { destroyUpgradeWhenEnded, trackConnections } from "../http/ConnectionTracker.ts"
import { fromAnotherSite, LOOPBACK_USERNAME, makeLoopbackAuth, splitTarget } from "../http/LoopbackAuth.ts"
import type { LoopbackAuth } from "../http/LoopbackAuth.ts"
import type { InnerAuth, UploadWriter } from "../task/TaskContext.ts"
import { ConversationClosed, InvalidControl } from "../appserver/ConversationHandle.ts"
import type { ConversationEvent, ConversationHandle } from "../appserver/ConversationHandle.ts"
import { contentDisposition, DownloadRefused } from "./Downloads.ts"
import type { DownloadReader } from "./Downloads.ts"
import { makeEventLog } from "./EventLog.ts"
import type { EventLog } from "./EventLog.ts"
import { makeSseFanout } from "./SseFanout.ts"
import type { SseFanout } from "./SseFanout.ts"
import { makeViewerFilter } from "./ViewerFilter.ts"
import { UploadRefused } from "./Uploads.ts"
import type { StoredUpload, UploadStreamWriter } from "./Uploads.ts"

/**
 * Uploads accepted by `POST /upload`.
 * @category models
 */
export interface ListenerUploads {
  /** Stores one complete file; usually the writer the task also registers with TaskContext. */
  readonly writer: UploadWriter
  /** Streams a file part straight to the host (the host writer's `stream`); preferred when given. */
  readonly stream?: UploadStreamWriter
  /** Most file content accepted per request, in bytes, all parts together. */
  readonly maxBytes: number
}

/**
 * Options of {@link ConversationListener}'s `serve`.
 * @category models
 */
export interface ServeOptions {
  /** Interface to bind; default `127.0.0.1`. Anything but loopback relies on the secret alone ([P18]). */
  readonly bindHost?: string
  /** Host name put in the returned URL; default `127.0.0.1`. */
  readonly advertisedHost?: string
  /** Port to bind; default 0 (the OS picks). */
  readonly port?: number
  /**
   * Events that come before the live ones: on resume, the previous turns' items re-emitted as
   * `item/completed` + `turn/completed` objects. They get the first numbers.
   */
  readonly history?: ReadonlyArray<ConversationEvent>
  /** Without it `POST /upload` answers 409 `no-writer`. */
  readonly uploads?: ListenerUploads
  /** Without it `GET /download` answers 409 `no-reader`. */
  readonly download?: DownloadReader
  /** SSE keep-alive comment interval; default 15 seconds. */
  readonly pingInterval?: Duration.Input
  /** How long `POST /interrupt` waits for codex before answering 504 `timeout` ([P9]); default 10 seconds. */
  readonly interruptTimeout?: Duration.Input
  /**
   * How long events stay held after the answer to `POST /send` is written, so the page has the
   * answer before the turn's echo (CodexView confirms its bubble with it). Default 100 ms.
   */
  readonly sendEchoMargin?: Duration.Input
  /** Whether closing the listener denies the approvals still waiting for an answer; default true. */
  readonly denyPendingOnClose?: boolean
}

/**
 * Where a started listener can be reached, and the credential the proxy must present.
 * @category models
 */
export interface ListenerEndpoint {
  /** `http://<advertised host>:<port>`; the routes live at its root. */
  readonly url: string
  readonly port: number
  readonly password: Redacted.Redacted<string>
  /** To publish with the widget upstream: Basic `optio:<password>`. */
  readonly innerAuth: Extract<InnerAuth, { readonly kind: "basic" }>
}

/**
 * The listener's HTTP server could not be started (address in use, unknown interface, …).
 * @category errors
 */
export class ListenerStartFailed extends Schema.TaggedError<ListenerStartFailed>()("ListenerStartFailed", {
  host: Schema.String,
  port: Schema.Number,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `the conversation listener could not listen on ${this.host}:${this.port}: ${String(this.cause)}`
  }
}

/**
 * Serves conversations to the dashboard's conversation widget.
 *
 * **Gotchas**: the server, its event history and every open SSE stream live exactly as long as
 * the scope `serve` runs in; closing it ends the streams at once, stops accepting requests and
 * (unless told otherwise) denies the approvals nobody answered.
 * @category services
 * @since 0.1.0
 */
export class ConversationListener extends Context.Service<ConversationListener, {
  /** Starts a listener for one conversation; it stops when the scope closes. */
  readonly serve: (
    conversation: ConversationHandle,
    options?: ServeOptions
  ) => Effect.Effect<ListenerEndpoint, ListenerStartFailed, Scope.Scope>
}>()("optio-codex/ConversationListener") {
  /** Live layer: a real HTTP server per `serve`. */
  static readonly layer: Layer.Layer<ConversationListener> = Layer.sync(
    ConversationListener,
    () => ConversationListener.of({ serve: serveConversation })
  )

  /**
   * Test layer: `serve` opens no socket and returns `endpoint` (default `http://127.0.0.1:0`
   * with the password `test-password`).
   */
  static readonly layerTest = (endpoint?: ListenerEndpoint): Layer.Layer<ConversationListener> =>
    Layer.succeed(ConversationListener, ConversationListener.of({
      serve: () => Effect.succeed(endpoint ?? endpointFor("127.0.0.1", 0, Redacted.make("test-password")))
    }))
}

const LOOPBACK = "127.0.0.1"
const DEFAULT_PING = Duration.seconds(15)
const DEFAULT_INTERRUPT_TIMEOUT = Duration.seconds(10)
/** How long closing waits for in-flight requests before cutting them (the reference's 2 s). */
const SHUTDOWN_GRACE = Duration.seconds(2)
/** How long a send holds back events while its response is being written. */
const SEND_FLUSH_WAIT = Duration.seconds(2)
/** How long events stay held after a send's answer is written (see `afterResponse`). */
const SEND_ECHO_MARGIN = Duration.millis(100)
const MAX_JSON_BYTES = 1024 * 1024
const MAX_FILES_PER_UPLOAD = 32
/** Parts of any kind in one upload request; bounds the work a hostile body can cause. */
const MAX_PARTS_PER_UPLOAD = 64

/** An answer other than 200, as `{"ok":false,"reason":…}` with `status`. */
class Refusal extends Schema.TaggedError<Refusal>()("Refusal", {
  status: Schema.Number,
  reason: Schema.String,
  /** Logged (never sent) for server-side failures. */
  detail: Schema.optionalKey(Schema.String)
}) {
  override get message(): string {
    return `${this.status} ${this.reason}`
  }
}

const JsonObject = Schema.fromJsonString(Schema.Record(Schema.String, Schema.Unknown))
const SendBody = Schema.Struct({ text: Schema.String.check(Schema.makeFilter((text) => text.trim() !== "" || "blank text")) })
const ControlBody = Schema.Struct({ id: Schema.NonEmptyString, value: Schema.optionalKey(Schema.Unknown) })
const ModelBody = Schema.Struct({ model: Schema.NonEmptyString })
const PermissionBody = Schema.Struct({ behavior: Schema.Literals(["allow", "deny"]) })

const serveConversation = Effect.fn("ConversationListener.serve")(function*(
  conversation: ConversationHandle,
  options: ServeOptions = {}
) {
  const bindHost = options.bindHost ?? LOOPBACK
  const requestedPort = options.port ?? 0
  const scope = yield* Effect.scope
  const auth = makeLoopbackAuth("conversation listener password")
  const log = yield* makeEventLog
  const fanout = yield* makeSseFanout(log.reader)
  const viewers = makeViewerFilter()

  const record = (event: ConversationEvent) =>
    Effect.suspend(() => {
      if (!viewers.admit(event)) return Effect.void
      // JSON text never holds a raw newline, so each event is exactly one `data:` line.
      return Effect.try(() => JSON.stringify(event)).pipe(
        Effect.flatMap((json) => log.append(json)),
        Effect.catch((error) => Effect.logWarning("conversation listener: an event could not be serialized; skipped", error)),
        Effect.asVoid
      )
    })

  yield* Effect.forEach(options.history ?? [], record, { discard: true })
  // One keep-alive clock for all viewers (not a timer per stream); a viewer with events to send
  // at that moment skips the comment.
  yield* log.ping.pipe(
    Effect.delay(options.pingInterval ?? DEFAULT_PING),
    Effect.forever,
    Effect.forkScoped
  )
  // Started immediately: the fiber runs up to its first wait (the subscription made, the first
  // take pending) before `serve` goes on, so events emitted once `serve` returned are not missed.
  yield* conversation.events.pipe(
    Stream.runForEach(record),
    Effect.forkScoped({ startImmediately: true })
  )

  const nodeServer = createServer()
  const connections = trackConnections(nodeServer)
  const context: RouteContext = {
    conversation,
    options,
    log,
    fanout,
    record,
    afterResponse: (request, release) =>
      connections.responseFinished(request.source).pipe(
        Effect.timeoutOrElse({ duration: SEND_FLUSH_WAIT, orElse: () => Effect.void }),
        // The answer and the event stream are separate connections (through optio-api's proxy
        // too): a written answer can still reach the page after events sent right behind it.
        Effect.andThen(Effect.sleep(options.sendEchoMargin ?? SEND_ECHO_MARGIN)),
        Effect.andThen(release),
        Effect.forkIn(scope),
        Effect.asVoid
      )
  }

  const server = yield* NodeHttpServer.make(() => nodeServer, {
    host: bindHost,
    port: requestedPort,
    gracefulShutdownTimeout: SHUTDOWN_GRACE
  }).pipe(Effect.mapError((error) => new ListenerStartFailed({ host: bindHost, port: requestedPort, cause: error.cause })))
  yield* server.serve(handleRequest(context, auth))

  // Added after the server, so it runs before the server's own shutdown (finalizers run in
  // reverse): open SSE streams end, the server stops accepting, in-flight requests get a short
  // grace, and leftover connections are closed, so the server's shutdown has nothing to wait for.
  yield* Effect.addFinalizer(() =>
    log.close.pipe(
      Effect.andThen(
        options.denyPendingOnClose === false
          ? Effect.void
          : Effect.forEach(viewers.pendingApprovals(), (id) => conversation.answerPermission(id, "deny"), { discard: true })
      ),
      Effect.timeoutOrElse({ duration: SHUTDOWN_GRACE, orElse: () => Effect.void }),
      Effect.andThen(connections.close(SHUTDOWN_GRACE))
    )
  )

  const port = server.address._tag === "UnixPathAddress" ? requestedPort : server.address.port
  if (!isLoopback(bindHost)) {
    yield* Effect.logWarning(`conversation listener bound to ${bindHost}: only its Basic credential protects it`)
  }
  yield* Effect.logDebug(`conversation listener on ${bindHost}:${port}`)
  return endpointFor(options.advertisedHost ?? LOOPBACK, port, auth.credential)
})

interface RouteContext {
  readonly conversation: ConversationHandle
  readonly options: ServeOptions
  readonly log: EventLog
  readonly fanout: SseFanout
  readonly record: (event: ConversationEvent) => Effect.Effect<void>
  /** Runs `release` once the response to `request` has been written (or after a short bound). */
  readonly afterResponse: (request: HttpServerRequest.HttpServerRequest, release: Effect.Effect<void>) => Effect.Effect<void>
}

type Route = (
  context: RouteContext,
  request: HttpServerRequest.HttpServerRequest,
  query: URLSearchParams
) => Effect.Effect<HttpServerResponse.HttpServerResponse, Refusal>

/**
 * Auth first (before any body is read), then the route; no failure escapes as a bare 500. Only
 * the proxy's Basic credential is accepted, and no challenge is sent, so no browser ever holds
 * it (see LoopbackAuth: that is why there is no Origin check here); a state-changing request a
 * browser marks as coming from another site is refused all the same. The path may come with any
 * number of leading slashes (a proxy prefix ending in `/` plus a forwarded `/x`).
 */
const handleRequest = (context: RouteContext, auth: LoopbackAuth) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.headers["upgrade"] !== undefined) destroyUpgradeWhenEnded(request.source)
    if (!auth.basicMatches(request.headers["authorization"])) {
      return HttpServerResponse.jsonUnsafe({ ok: false }, { status: 401 })
    }
    const { path: pathname, query } = splitTarget(request.url)
    const route = ROUTES.get(pathname)
    if (route === undefined) return yield* new Refusal({ status: 404, reason: "not-found" })
    if (route.method !== request.method) return yield* new Refusal({ status: 405, reason: "method-not-allowed" })
    if (route.method === "POST" && fromAnotherSite(request.headers)) return yield* new Refusal({ status: 403, reason: "cross-site" })
    return yield* route.handle(context, request, query)
  }).pipe(
    Effect.catchTag("Refusal", (refusal) =>
      (refusal.status >= 500 ? Effect.logWarning(`conversation listener: ${refusal.reason}`, refusal.detail ?? "") : Effect.void).pipe(
        Effect.as(refusalResponse(refusal))
      )),
    Effect.catchDefect((defect) =>
      Effect.logError("conversation listener: a request failed unexpectedly", defect).pipe(
        Effect.as(HttpServerResponse.jsonUnsafe({ ok: false, reason: "internal" }, { status: 500 }))
      )
    )
  )

const events: Route = (context, request) =>
  Effect.gen(function*() {
    const size = yield* context.log.size
    const after = parseLastEventId(request.headers["last-event-id"], size)
    // The platform writes the headers and ends the response; in between, the fan-out writes
    // the log's frames into it directly (see SseFanout). The log is closed when the listener
    // stops, which ends the body; a client that leaves interrupts it.
    const body = Stream.fromEffectDrain(context.fanout.serve(NodeHttpServerRequest.toServerResponse(request), after))
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no", "connection": "close" }
    })
  })

const send: Route = (context, request) =>
  Effect.gen(function*() {
    const body = yield* readJsonObject(request)
    const { text } = yield* decodeOr(SendBody, body, "bad-text")
    // CodexView shows the prompt and turns busy only when this answer arrives; events of the
    // turn that reach the page first would leave it "working…" forever (spec §6.6). So events
    // appended meanwhile are held until the answer has been written.
    yield* Effect.acquireUseRelease(
      context.log.hold,
      () => context.conversation.send(text).pipe(Effect.mapError(refusalFor)),
      (release, exit) => Exit.hasInterrupts(exit) ? release : context.afterResponse(request, release)
    )
    return ok()
  })

const interrupt: Route = (context) =>
  context.conversation.interrupt.pipe(
    Effect.mapError(refusalFor),
    Effect.timeoutOrElse({
      duration: context.options.interruptTimeout ?? DEFAULT_INTERRUPT_TIMEOUT,
      orElse: () => Effect.fail(new Refusal({ status: 504, reason: "timeout" }))
    }),
    Effect.as(ok())
  )

const control: Route = (context, request) =>
  Effect.gen(function*() {
    const body = yield* readJsonObject(request)
    const { id, value } = yield* decodeOr(ControlBody, body, "bad-id")
    yield* context.conversation.setControl(id, value ?? null).pipe(Effect.mapError(refusalFor))
    return ok()
  })

const model: Route = (context, request) =>
  Effect.gen(function*() {
    const body = yield* readJsonObject(request)
    const { model } = yield* decodeOr(ModelBody, body, "bad-model")
    yield* context.conversation.setControl("model", model).pipe(Effect.mapError(refusalFor))
    return ok()
  })

const permission: Route = (context, request) =>
  Effect.gen(function*() {
    const body = yield* readJsonObject(request)
    const { behavior } = yield* decodeOr(PermissionBody, body, "bad-behavior")
    const rawId = body["request_id"]
    // JSON-RPC ids are compared as strings: `0` and `"0"` are the same request ([P1]).
    const requestId = typeof rawId === "string" ? rawId : typeof rawId === "number" && Number.isFinite(rawId) ? String(rawId) : ""
    const answered = requestId !== "" && (yield* context.conversation.answerPermission(requestId, behavior))
    if (!answered) return yield* new Refusal({ status: 404, reason: "unknown-request" })
    yield* context.record({ type: "x-optio-permission-answered", request_id: requestId, behavior })
    return ok()
  })

const upload: Route = (context, request) =>
  Effect.gen(function*() {
    const uploads = context.options.uploads
    if (uploads === undefined) return yield* new Refusal({ status: 409, reason: "no-writer" })
    if (!(request.headers["content-type"] ?? "").toLowerCase().startsWith("multipart/form-data")) {
      return yield* new Refusal({ status: 400, reason: "bad-multipart" })
    }
    // Each file part streams straight into its file on the host; the whole request may carry at
    // most `maxBytes` of file content. A refused or failed request takes back the files of its
    // earlier parts, so it leaves no file behind ([P10]).
    const deferred = deferredStreamWriter(uploads.writer)
    const stream = uploads.stream ?? deferred.stream
    const stored: Array<{ readonly filename: string; readonly upload: StoredUpload }> = []
    let used = 0
    const storePart = (part: Multipart.Part): Effect.Effect<void, Refusal | Multipart.MultipartError> => {
      if (part.key !== "file") return part._tag === "Field" ? Effect.void : drainBounded(part.content, uploads.maxBytes)
      if (stored.length === MAX_FILES_PER_UPLOAD) return Effect.fail(new Refusal({ status: 413, reason: "too-many-files" }))
      const [fileName, content] = part._tag === "Field"
        ? ["file", Stream.succeed(new TextEncoder().encode(part.value))] as const
        : [part.name, part.content] as const
      const counted = content.pipe(Stream.tap((chunk) => Effect.sync(() => void (used += chunk.byteLength))))
      return stream(fileName, counted, uploads.maxBytes - used).pipe(
        Effect.flatMap((upload) => Effect.sync(() => void stored.push({ filename: fileName, upload }))),
        Effect.mapError((error) => error instanceof Refusal || error instanceof Multipart.MultipartError ? error : uploadWriterRefusal(error))
      )
    }
    yield* request.multipartStream.pipe(
      Stream.runForEach(storePart),
      Effect.provideService(Multipart.MaxParts, MAX_PARTS_PER_UPLOAD),
      Effect.catchTag("MultipartError", (error) => Effect.fail(multipartRefusal(error))),
      Effect.onError(() => Effect.forEach(stored, ({ upload }) => upload.discard, { discard: true }))
    )
    // A request with no file part stores nothing and says so (the reference's answer).
    if (uploads.stream === undefined) yield* deferred.flush
    return HttpServerResponse.jsonUnsafe({ ok: true, files: stored.map(({ filename, upload }) => ({ filename, path: upload.relpath })) })
  })

const download: Route = (context, _request, query) =>
  Effect.gen(function*() {
    const reader = context.options.download
    if (reader === undefined) return yield* new Refusal({ status: 409, reason: "no-reader" })
    // URLSearchParams has decoded the query once; the reader takes the path as it is ([P12]).
    const paths = query.getAll("path")
    const path = paths[0]
    if (paths.length !== 1 || path === undefined || path === "") return yield* new Refusal({ status: 400, reason: "bad-path" })
    const file = yield* reader(path).pipe(Effect.mapError(refusalFor))
    return HttpServerResponse.uint8Array(file.bytes, {
      contentType: file.contentType,
      headers: {
        "content-disposition": contentDisposition(file.fileName),
        "x-content-type-options": "nosniff",
        "content-security-policy": "sandbox; default-src 'none'",
        "cache-control": "no-store"
      }
    })
  })

const ROUTES: ReadonlyMap<string, { readonly method: "GET" | "POST"; readonly handle: Route }> = new Map([
  ["/events", { method: "GET", handle: events }],
  ["/send", { method: "POST", handle: send }],
  ["/interrupt", { method: "POST", handle: interrupt }],
  ["/control", { method: "POST", handle: control }],
  ["/model", { method: "POST", handle: model }],
  ["/permission", { method: "POST", handle: permission }],
  ["/upload", { method: "POST", handle: upload }],
  ["/download", { method: "GET", handle: download }]
])

/** Reads and drops a part that is not a file, under the same bound. */
const drainBounded = (content: Stream.Stream<Uint8Array, Multipart.MultipartError>, maxBytes: number) =>
  content.pipe(
    Stream.runFoldEffect(() => 0, (size, chunk) => size + chunk.byteLength > maxBytes ? Effect.fail(tooLarge) : Effect.succeed(size + chunk.byteLength)),
    Effect.asVoid
  )

/**
 * A stream writer over a writer that takes whole files (an UploadWriter without `stream`): each
 * part is collected (bounded by the request's remaining budget) and held back; `flush` writes
 * them all once every part was read, so a refused request writes nothing ([P10]).
 */
const deferredStreamWriter = (writer: UploadWriter) => {
  const pending: Array<{ readonly fileName: string; readonly bytes: Uint8Array; readonly stored: { relpath: string } }> = []
  const stream = <E>(fileName: string, content: Stream.Stream<Uint8Array, E>, maxBytes?: number): Effect.Effect<StoredUpload, unknown> =>
    content.pipe(
      Stream.runFoldEffect(() => ({ chunks: new Array<Uint8Array>(), size: 0 }), (acc, chunk) => {
        const size = acc.size + chunk.byteLength
        if (maxBytes !== undefined && size > maxBytes) return Effect.fail(tooLarge)
        acc.chunks.push(chunk)
        return Effect.succeed({ chunks: acc.chunks, size })
      }),
      Effect.map((acc) => {
        const stored = { relpath: "" }
        pending.push({ fileName, bytes: Buffer.concat(acc.chunks), stored })
        return { get relpath() { return stored.relpath }, size: acc.size, discard: Effect.void }
      })
    )
  const flush = Effect.forEach(pending, (file) =>
    writer({ fileName: file.fileName, bytes: file.bytes }).pipe(
      Effect.map((relpath) => void (file.stored.relpath = relpath)),
      Effect.mapError(uploadWriterRefusal)
    ), { discard: true })
  return { stream, flush }
}

const tooLarge = new Refusal({ status: 413, reason: "too-large" })

const multipartRefusal = (error: Multipart.MultipartError): Refusal =>
  error.reason._tag === "Parse" || error.reason._tag === "InternalError"
    ? new Refusal({ status: 400, reason: "bad-multipart" })
    : error.reason._tag === "TooManyParts"
    ? new Refusal({ status: 413, reason: "too-many-files" })
    : tooLarge

/** Maps what an UploadWriter may fail with (its error type is open) to an answer. */
const uploadWriterRefusal = (error: unknown): Refusal =>
  error instanceof UploadRefused || error instanceof HostError
    ? refusalFor(error)
    : new Refusal({ status: 500, reason: "upload-failed", detail: String(error) })

/** The one place domain errors become HTTP answers. */
const refusalFor = (
  error: ConversationClosed | InvalidControl | UploadRefused | DownloadRefused | HostError | Refusal
): Refusal => {
  if (error instanceof Refusal) return error
  if (error instanceof ConversationClosed) return new Refusal({ status: 409, reason: "closed" })
  if (error instanceof InvalidControl) return new Refusal({ status: 400, reason: "bad-value" })
  if (error instanceof UploadRefused) {
    const status = { "bad-name": 400, "too-large": 413, "forbidden": 403, "name-taken": 409 }[error.reason]
    return new Refusal({ status, reason: error.reason })
  }
  if (error instanceof DownloadRefused) {
    const status = { "bad-path": 400, "forbidden": 403, "not-found": 404, "too-large": 413 }[error.reason]
    return new Refusal({ status, reason: error.reason })
  }
  return error.reason === "ConnectionLost"
    ? new Refusal({ status: 503, reason: "host-unavailable", detail: hostFailure(error) })
    : new Refusal({ status: 500, reason: "host-error", detail: hostFailure(error) })
}

/**
 * What is logged of a host failure behind a 5xx: the operation, host and reason, never the path
 * or the system's message (both carry names from the request or the agent's workdir).
 */
const hostFailure = (error: HostError) => `${error.operation} on ${error.host} failed (${error.reason})`

const refusalResponse = (refusal: Refusal) =>
  HttpServerResponse.jsonUnsafe({ ok: false, reason: refusal.reason }, { status: refusal.status })

const ok = () => HttpServerResponse.jsonUnsafe({ ok: true })

/** The body as a JSON object (at most 1 MiB); 400 `bad-json` for anything else. */
const readJsonObject = (request: HttpServerRequest.HttpServerRequest) =>
  request.text.pipe(
    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(MAX_JSON_BYTES)),
    Effect.mapError((error: HttpServerError.HttpServerError) =>
      error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"
        ? tooLarge
        : new Refusal({ status: 400, reason: "bad-json" })
    ),
    Effect.flatMap((text) =>
      Schema.decodeUnknownEffect(JsonObject)(text).pipe(
        Effect.mapError(() => new Refusal({ status: 400, reason: "bad-json" }))
      )
    )
  )

const decodeOr = <A>(schema: Schema.Decoder<A>, body: unknown, reason: string) =>
  Schema.decodeUnknownEffect(schema)(body).pipe(Effect.mapError(() => new Refusal({ status: 400, reason })))

/**
 * The viewer's last seen number: only all-digit values count, and only ones this listener gave
 * out (a number from another run, or garbage, means "send everything").
 */
const parseLastEventId = (header: string | undefined, size: number): number => {
  const value = header?.trim() ?? ""
  if (!/^\d{1,15}$/.test(value)) return 0
  const seen = Number(value)
  return seen <= size ? seen : 0
}

const isLoopback = (host: string): boolean => host === "localhost" || host === "::1" || /^127\./.test(host)

const endpointFor = (host: string, port: number, password: Redacted.Redacted<string>): ListenerEndpoint => {
  const authority = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
  return {
    url: `http://${authority}:${port}`,
    port,
    password,
    innerAuth: { kind: "basic", username: LOOPBACK_USERNAME, password }
  }
}
