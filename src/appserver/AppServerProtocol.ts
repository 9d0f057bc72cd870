/**
 * AppServerProtocol: untyped JSON-RPC over one line-oriented byte channel, the framing of
 * `codex app-server` (one JSON object per line, no `"jsonrpc"` member, no Content-Length).
 *
 * Owns framing, classification of incoming objects, request/response correlation, timeouts,
 * write serialization and the end of the channel. It does not own message shapes
 * (`AppServerSchema`), the process (the caller hands in a {@link Transport}, usually
 * {@link fromHostProcess}) or conversation state (`CodexConversation`). The same code runs over a
 * Host process, local or over SSH, and over an in-memory channel in tests.
 *
 * Gotchas:
 * - Ids may be `0` (codex numbers its own requests from 0): ids are compared by value, never by
 *   truthiness.
 * - Every request has a timeout; nothing waits forever on a silent peer.
 * - Incoming objects are published live: a subscriber only sees what arrives after it subscribed.
 *   The reader starts at {@link AppServerProtocol.start} or at the first write, so subscribe first.
 * - Wire lines never reach errors or logs; an unparseable line reaches subscribers only as a short
 *   excerpt.
 *
 * @since 0.1.0
 */
import { Deferred, Duration, Effect, Latch, PubSub, Schema, Semaphore, Stream } from "effect"
import type { Scope } from "effect"
import type { HostError, HostProcess } from "../host/Host.ts"

/**
 * A JSON-RPC id: ours are integers from 1, codex's start at 0 and may be strings.
 * @category models
 */
export type RequestId = string | number

/**
 * A JSON object as parsed from the wire.
 * @category models
 */
export type JsonObject = { readonly [key: string]: unknown }

/**
 * Facts about the peer's end, when the caller can tell them (a process's exit code and stderr).
 * @category models
 */
export interface ExitInfo {
  readonly exitCode?: number
  readonly stderrTail?: string
}

/**
 * The byte channel: the peer's output and a way to write one line to it.
 * @category models
 */
export interface Transport<E> {
  /** The peer's output; its end is the end of the conversation. */
  readonly input: Stream.Stream<Uint8Array, E>
  /** Writes one complete line, `"\n"` included, so a transport writes it in one piece. */
  readonly write: (line: string) => Effect.Effect<void, E>
  /** Asked once when `input` ends, for the facts put into {@link AppServerExited}. */
  readonly exitInfo?: Effect.Effect<ExitInfo>
}

/**
 * A request got no response within its timeout.
 * @category errors
 */
export class AppServerRequestTimedOut extends Schema.TaggedError<AppServerRequestTimedOut>()("AppServerRequestTimedOut", {
  method: Schema.String,
  requestId: Schema.Union([Schema.String, Schema.Number]),
  timeoutMs: Schema.Number
}) {
  override get message(): string {
    return `codex app-server did not answer ${this.method} (request ${this.requestId}) within ${this.timeoutMs} ms`
  }
}

/**
 * The peer answered a request with a JSON-RPC error.
 * @category errors
 */
export class AppServerRequestFailed extends Schema.TaggedError<AppServerRequestFailed>()("AppServerRequestFailed", {
  method: Schema.String,
  requestId: Schema.Union([Schema.String, Schema.Number]),
  code: Schema.Number,
  errorMessage: Schema.String
}) {
  override get message(): string {
    return `codex app-server rejected ${this.method} (request ${this.requestId}): ${this.errorMessage} (code ${this.code})`
  }
}

/**
 * The peer's output ended (the process exited) before an answer, or before the call was made.
 * @category errors
 */
export class AppServerExited extends Schema.TaggedError<AppServerExited>()("AppServerExited", {
  method: Schema.optionalKey(Schema.String),
  requestId: Schema.optionalKey(Schema.Union([Schema.String, Schema.Number])),
  reason: Schema.String,
  exitCode: Schema.optionalKey(Schema.Number),
  stderrTail: Schema.String
}) {
  override get message(): string {
    const call = this.method === undefined ? "" : ` during ${this.method}`
    const code = this.exitCode === undefined ? "" : ` (exit code ${this.exitCode})`
    const tail = this.stderrTail.trim()
    return `codex app-server ended${call}: ${this.reason}${code}${tail === "" ? "" : `; stderr: ${tail}`}`
  }
}

/**
 * Writing to the peer failed.
 * @category errors
 */
export class AppServerWriteFailed extends Schema.TaggedError<AppServerWriteFailed>()("AppServerWriteFailed", {
  method: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `could not write ${this.method} to codex app-server`
  }
}

/**
 * Every way a request can fail.
 * @category errors
 */
export type AppServerRequestError = AppServerRequestTimedOut | AppServerRequestFailed | AppServerExited | AppServerWriteFailed

/**
 * Every way a notification or a response we send can fail.
 * @category errors
 */
export type AppServerSendError = AppServerExited | AppServerWriteFailed

/**
 * An incoming object, classified (spec §3.3), or the end of the input.
 * @category models
 */
export type Incoming =
  | { readonly _tag: "Notification"; readonly method: string; readonly params: unknown; readonly raw: JsonObject }
  | { readonly _tag: "ServerRequest"; readonly id: RequestId; readonly method: string; readonly params: unknown; readonly raw: JsonObject }
  | {
    readonly _tag: "Response"
    readonly id: RequestId
    /** The method of our request it answers; undefined when no request of ours waits for it. */
    readonly method: string | undefined
    readonly isError: boolean
    readonly raw: JsonObject
  }
  | { readonly _tag: "Other"; readonly raw: JsonObject }
  | { readonly _tag: "Unparseable"; readonly excerpt: string; readonly bytes: number; readonly oversized: boolean }
  | { readonly _tag: "End"; readonly exited: AppServerExited }

/**
 * Options of {@link make}.
 * @category models
 */
export interface ProtocolOptions {
  /** Default timeout of every request. Default 30 seconds. */
  readonly requestTimeout?: Duration.Input
  /** Lines longer than this are dropped without being buffered whole. Default 16 MiB. */
  readonly maxLineBytes?: number
  /** How much of an unparseable line subscribers see. Default 200 characters. */
  readonly excerptChars?: number
}

/**
 * Options of one request.
 * @category models
 */
export interface RequestOptions {
  readonly timeout?: Duration.Input
  /** Runs once the request is written to the peer, before its answer (never when the write fails). */
  readonly onWritten?: Effect.Effect<void>
}

/**
 * A JSON-RPC peer connection.
 * @category models
 */
export interface AppServerProtocol {
  /** Sends a request and waits for its `result`; an error response fails typed. */
  readonly request: (method: string, params?: unknown, options?: RequestOptions) => Effect.Effect<unknown, AppServerRequestError>
  /** Sends a notification (`params` omitted when undefined). */
  readonly notify: (method: string, params?: unknown) => Effect.Effect<void, AppServerSendError>
  /** Answers a server request with a result. */
  readonly respond: (id: RequestId, result: unknown) => Effect.Effect<void, AppServerSendError>
  /** Answers a server request with a JSON-RPC error. */
  readonly respondError: (id: RequestId, code: number, message: string) => Effect.Effect<void, AppServerSendError>
  /**
   * Subscribes now; the stream replays nothing from before, and ends after the `End` element.
   * The subscription lives as long as the enclosing scope.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<Incoming>, never, Scope.Scope>
  /** Starts reading the input (idempotent). */
  readonly start: Effect.Effect<void>
  /** Waits until the input has ended, with the facts of the end. */
  readonly ended: Effect.Effect<AppServerExited>
}

/**
 * A line as cut from the byte stream.
 * @category models
 */
export type Frame =
  | { readonly _tag: "Line"; readonly bytes: Uint8Array }
  | { readonly _tag: "Oversized"; readonly bytes: number; readonly prefix: Uint8Array }

const DEFAULT_TIMEOUT = Duration.seconds(30)
const DEFAULT_MAX_LINE = 16 * 1024 * 1024
const DEFAULT_EXCERPT = 200
const EXIT_INFO_WAIT = Duration.seconds(5)
const NEWLINE = 0x0a

/**
 * Connects to a peer over `transport`. The reader fiber lives in the caller's scope; closing the
 * scope stops it (pending requests then fail with {@link AppServerExited}).
 * @category constructors
 */
export const make = Effect.fnUntraced(function*<E>(transport: Transport<E>, options: ProtocolOptions = {}) {
  const defaultTimeout = options.requestTimeout ?? DEFAULT_TIMEOUT
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE
  const excerptChars = options.excerptChars ?? DEFAULT_EXCERPT

  const incoming = yield* Effect.acquireRelease(PubSub.unbounded<Incoming>(), PubSub.shutdown)
  const writeLock = yield* Semaphore.make(1)
  const started = yield* Latch.make(false)
  const endedDeferred = yield* Deferred.make<AppServerExited>()
  const pending = new Map<RequestId, { readonly method: string; readonly deferred: Deferred.Deferred<unknown, AppServerRequestError> }>()
  let nextId = 1
  let endedWith: AppServerExited | undefined

  const exitedFor = (method: string, requestId?: RequestId): AppServerExited | undefined =>
    endedWith === undefined ? undefined : new AppServerExited({
      ...factsOf(endedWith),
      method,
      ...(requestId === undefined ? {} : { requestId })
    })

  const writeLine = (method: string, message: JsonObject) =>
    started.open.pipe(
      Effect.andThen(writeLock.withPermits(1)(transport.write(`${JSON.stringify(message)}\n`))),
      Effect.mapError((cause) => new AppServerWriteFailed({ method, cause }))
    )

  const send = (method: string, message: JsonObject): Effect.Effect<void, AppServerSendError> =>
    Effect.suspend((): Effect.Effect<void, AppServerSendError> => {
      const exited = exitedFor(method)
      return exited === undefined ? writeLine(method, message) : Effect.fail(exited)
    })

  const request = (method: string, params?: unknown, requestOptions: RequestOptions = {}) =>
    Effect.gen(function*() {
      const deferred = yield* Deferred.make<unknown, AppServerRequestError>()
      // Registration and the ended check happen in one synchronous step, so a request either
      // sees the end or is failed by it: never neither.
      const id = yield* Effect.suspend(() => {
        const exited = exitedFor(method)
        if (exited !== undefined) return Effect.fail(exited)
        const id = nextId++
        pending.set(id, { method, deferred })
        return Effect.succeed(id)
      })
      const timeout = requestOptions.timeout ?? defaultTimeout
      return yield* writeLine(method, params === undefined ? { id, method } : { id, method, params }).pipe(
        Effect.andThen(requestOptions.onWritten ?? Effect.void),
        Effect.andThen(Deferred.await(deferred)),
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () => Effect.fail(new AppServerRequestTimedOut({ method, requestId: id, timeoutMs: Duration.toMillis(timeout) }))
        }),
        Effect.ensuring(Effect.sync(() => pending.delete(id)))
      )
    }).pipe(Effect.withSpan("AppServerProtocol.request", { attributes: { method } }))

  const route = (frame: Frame): Effect.Effect<void> => {
    const classified = classify(frame, excerptChars)
    if (classified._tag === "Skip") return Effect.void
    if (classified._tag !== "Response") return PubSub.publish(incoming, classified).pipe(Effect.asVoid)
    const waiter = pending.get(classified.id)
    if (waiter === undefined) return PubSub.publish(incoming, classified).pipe(Effect.asVoid)
    pending.delete(classified.id)
    // The waiter is completed before the response (and anything after it) is published, so a
    // `send` acknowledged by codex is never reported after the turn's own events.
    return Deferred.complete(waiter.deferred, outcomeOf(waiter.method, classified.id, classified.raw)).pipe(
      Effect.andThen(PubSub.publish(incoming, { ...classified, method: waiter.method }))
    )
  }

  const finish = (reason: string, askExitInfo: boolean) =>
    Effect.gen(function*() {
      const info = askExitInfo && transport.exitInfo !== undefined
        ? yield* transport.exitInfo.pipe(
          Effect.timeoutOption(EXIT_INFO_WAIT),
          Effect.map((found): ExitInfo => found._tag === "Some" ? found.value : {})
        )
        : {}
      const exited = new AppServerExited({
        reason,
        stderrTail: (info.stderrTail ?? "").slice(-2000),
        ...(info.exitCode === undefined ? {} : { exitCode: info.exitCode })
      })
      const waiting = Effect.sync(() => {
        endedWith = exited
        const all = [...pending.entries()]
        pending.clear()
        return all
      })
      for (const [requestId, waiter] of yield* waiting) {
        yield* Deferred.fail(waiter.deferred, exitedFor(waiter.method, requestId) ?? exited)
      }
      yield* Deferred.succeed(endedDeferred, exited)
      yield* PubSub.publish(incoming, { _tag: "End", exited })
    })

  yield* started.await.pipe(
    Effect.andThen(transport.input.pipe(splitFrames(maxLineBytes), Stream.runForEach(route))),
    Effect.matchEffect({
      onFailure: () =>
        Effect.logWarning("codex app-server output could not be read").pipe(
          Effect.andThen(finish("reading its output failed", true))
        ),
      onSuccess: () => finish("its output ended", true)
    }),
    // Closing the scope is not the peer's end: don't wait for an exit code that has not come yet.
    Effect.onInterrupt(() => finish("the connection was closed", false)),
    Effect.forkScoped
  )

  const protocol: AppServerProtocol = {
    request,
    notify: (method, params) => send(method, params === undefined ? { method } : { method, params }),
    respond: (id, result) => send(`response to ${id}`, { id, result }),
    respondError: (id, code, message) => send(`error response to ${id}`, { id, error: { code, message } }),
    subscribe: PubSub.subscribe(incoming).pipe(
      Effect.map((subscription) =>
        Stream.fromSubscription(subscription).pipe(Stream.takeUntil((item) => item._tag === "End"))
      )
    ),
    start: started.open.pipe(Effect.asVoid),
    ended: Deferred.await(endedDeferred)
  }
  return protocol
})

/**
 * A {@link Transport} over a Host process: its stdout, its stdin, its exit code and stderr tail.
 * @category constructors
 */
export const fromHostProcess = (process: HostProcess, exitWait: Duration.Input = "2 seconds"): Transport<HostError> => ({
  input: process.stdout,
  write: (line) => process.write(line),
  exitInfo: Effect.gen(function*() {
    const exitCode = yield* process.exitCode.pipe(Effect.timeoutOption(exitWait), Effect.option)
    const stderrTail = yield* process.stderrTail
    const code = exitCode._tag === "Some" && exitCode.value._tag === "Some" ? exitCode.value.value : undefined
    return code === undefined ? { stderrTail } : { exitCode: code, stderrTail }
  })
})

/**
 * Cuts a byte stream into lines (LF; a final unterminated line counts), counting bytes as it
 * goes: a line longer than `maxLineBytes` is not kept, only its size and first bytes.
 * @category combinators
 */
export const splitFrames = (maxLineBytes: number, prefixBytes = 1024) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Frame, E, R> =>
  self.pipe(Stream.mapAccum(
    (): LineState => ({ parts: [], size: 0, oversized: false, prefix: new Uint8Array(0) }),
    (state, chunk) => {
      const frames: Array<Frame> = []
      let start = 0
      while (start <= chunk.length) {
        const newline = chunk.indexOf(NEWLINE, start)
        const end = newline === -1 ? chunk.length : newline
        append(state, chunk.subarray(start, end), maxLineBytes, prefixBytes)
        if (newline === -1) break
        frames.push(takeFrame(state))
        start = newline + 1
      }
      return [state, frames] as const
    },
    { onHalt: (state) => state.size > 0 ? [takeFrame(state)] : [] }
  ))

interface LineState {
  parts: Array<Uint8Array>
  size: number
  oversized: boolean
  prefix: Uint8Array
}

const append = (state: LineState, piece: Uint8Array, maxLineBytes: number, prefixBytes: number) => {
  if (piece.length === 0) return
  state.size += piece.length
  if (state.oversized) return
  state.parts.push(piece)
  if (state.size <= maxLineBytes) return
  // From here on only the size is counted: the line is never held whole. Only the prefix is
  // copied out of the parts (concatenating them first would hold the limit twice over).
  state.prefix = prefixOf(state.parts, prefixBytes)
  state.parts = []
  state.oversized = true
}

const prefixOf = (parts: ReadonlyArray<Uint8Array>, bytes: number): Uint8Array => {
  const out = new Uint8Array(Math.min(bytes, parts.reduce((sum, part) => sum + part.length, 0)))
  let offset = 0
  for (const part of parts) {
    if (offset >= out.length) break
    const piece = part.subarray(0, out.length - offset)
    out.set(piece, offset)
    offset += piece.length
  }
  return out
}

const takeFrame = (state: LineState): Frame => {
  const frame: Frame = state.oversized
    ? { _tag: "Oversized", bytes: state.size, prefix: state.prefix }
    : { _tag: "Line", bytes: concat(state.parts) }
  state.parts = []
  state.size = 0
  state.oversized = false
  state.prefix = new Uint8Array(0)
  return frame
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 1 && parts[0] !== undefined) return parts[0]
  const total = parts.reduce((sum, part) => sum + part.length, 0)
  const out = new Uint8Array(total)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

const decoder = new TextDecoder("utf-8", { fatal: false })
// Every line codex writes passes here, so it is parsed with JSON.parse directly: through Schema
// the same parse took ~70 µs a line in a worker (code this rarely run stays cold), ~1 ms a turn.
// Shapes are checked afterwards by each method's own schema.
const parseJson = (text: string): { readonly value: unknown } | undefined => {
  try {
    return { value: JSON.parse(text) }
  } catch {
    return undefined
  }
}
const decodeErrorObject = Schema.decodeUnknownOption(Schema.Struct({ code: Schema.Number, message: Schema.String }))

type Classified = Exclude<Incoming, { readonly _tag: "End" }> | { readonly _tag: "Skip" }

/** Classifies a frame per spec §3.3; a `Response`'s `method` is filled in by the router. */
const classify = (frame: Frame, excerptChars: number): Classified => {
  if (frame._tag === "Oversized") {
    return { _tag: "Unparseable", excerpt: excerpt(decoder.decode(frame.prefix), excerptChars), bytes: frame.bytes, oversized: true }
  }
  const text = decoder.decode(frame.bytes).trim()
  if (text === "") return { _tag: "Skip" }
  const parsed = parseJson(text)
  if (parsed === undefined || !isJsonObject(parsed.value)) {
    return { _tag: "Unparseable", excerpt: excerpt(text, excerptChars), bytes: frame.bytes.length, oversized: false }
  }
  const raw = parsed.value
  const id = raw["id"]
  const method = raw["method"]
  const hasId = typeof id === "string" || typeof id === "number"
  if (typeof method === "string") {
    return hasId
      ? { _tag: "ServerRequest", id, method, params: raw["params"], raw }
      : { _tag: "Notification", method, params: raw["params"], raw }
  }
  if (method === undefined && hasId && ("result" in raw || "error" in raw)) {
    return { _tag: "Response", id, method: undefined, isError: "error" in raw && raw["error"] !== null && raw["error"] !== undefined, raw }
  }
  return { _tag: "Other", raw }
}

const excerpt = (text: string, chars: number) => text.length <= chars ? text : `${text.slice(0, chars)}…`

const isJsonObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const outcomeOf = (method: string, requestId: RequestId, raw: JsonObject) => {
  const error = raw["error"]
  if (error === undefined || error === null) return Effect.succeed(raw["result"])
  const decoded = decodeErrorObject(error)
  return Effect.fail(new AppServerRequestFailed({
    method,
    requestId,
    code: decoded._tag === "Some" ? decoded.value.code : 0,
    errorMessage: decoded._tag === "Some" ? decoded.value.message : "malformed error response"
  }))
}

const factsOf = (exited: AppServerExited) => ({
  reason: exited.reason,
  stderrTail: exited.stderrTail,
  ...(exited.exitCode === undefined ? {} : { exitCode: exited.exitCode })
})
