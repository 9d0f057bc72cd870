/**
 * ScriptedModelServer: an OpenAI Responses API stand-in on loopback that plays a ModelScript to a
 * real codex binary, with no network and no account.
 *
 * Tests and the CLI's offline demo start it in a scope, point codex at `baseUrl` (see
 * OfflineCodexConfig) and read back every request codex made. Owns HTTP serving, the script
 * cursor and the request log; does not own the script model (ModelScript), event shapes
 * (ResponsesStream) or codex's configuration.
 *
 * Endpoints: `POST /v1/responses` (SSE stream or scripted error), `GET /v1/models` (a small list;
 * codex 0.169.0 with an `env_key` provider never asks), anything else 404 JSON. Every request is
 * recorded, including 404s.
 *
 * Import as `import { ScriptedModelServer } from "./ScriptedModelServer.ts"`.
 *
 * @since 0.1.0
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Clock, Deferred, Duration, Effect, Option, Random, Schema, Scope, Stream, SubscriptionRef } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { trackConnections } from "../http/ConnectionTracker.ts"
import { brotliDecompressSync, gunzipSync, zstdDecompressSync } from "node:zlib"
import type { ModelRequest, SideRequestKind } from "./ModelRequest.ts"
import { decodeModelRequest, sideRequestKind } from "./ModelRequest.ts"
import type { OutputItem, Script } from "./ModelScript.ts"
import { decide, message } from "./ModelScript.ts"
import type { RenderedReply, ResponsesEvent } from "./ResponsesStream.ts"
import { encodeEvent, renderReply } from "./ResponsesStream.ts"
import type { ScriptedQuotas } from "./ScriptedQuota.ts"
import { rateLimitHeaders, USAGE_PATH, usageLimitBody, usagePayload } from "./ScriptedQuota.ts"

/**
 * The server could not listen on its address.
 * @category errors
 * @since 0.1.0
 */
export class ModelServerError extends Schema.TaggedError<ModelServerError>()("ModelServerError", {
  host: Schema.String,
  port: Schema.Number,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `scripted model server could not listen on ${this.host}:${this.port}`
  }
}

/**
 * `awaitRequests` gave up: the condition did not hold within `timeout`.
 * @category errors
 * @since 0.1.0
 */
export class AwaitRequestsTimeout extends Schema.TaggedError<AwaitRequestsTimeout>()("AwaitRequestsTimeout", {
  timeout: Schema.String,
  /** How many requests had been recorded when it gave up. */
  seen: Schema.Number,
  /** `METHOD path -> answer` of each recorded request, for the failure message. */
  summary: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `condition on model server requests not met within ${this.timeout} (${this.seen} seen: ${this.summary.join("; ")})`
  }
}

/**
 * How the server answered a request.
 * @category models
 * @since 0.1.0
 */
export type Answer =
  | { readonly _tag: "Step"; readonly index: number; readonly kind: "Reply" | "HttpError" }
  | { readonly _tag: "SideRequest"; readonly kind: SideRequestKind }
  | { readonly _tag: "Unmatched"; readonly index: number; readonly matcher: string }
  | { readonly _tag: "Exhausted" }
  | { readonly _tag: "Models" }
  | { readonly _tag: "NotFound" }
  /** The account's scripted quota is exhausted: HTTP 429 `usage_limit_reached`, no step consumed. */
  | { readonly _tag: "UsageLimit" }
  /** The ChatGPT backend's usage read (`account/rateLimits/read`), answered from the quota. */
  | { readonly _tag: "Usage" }

/**
 * A request as recorded, with the answer it got.
 * @category models
 * @since 0.1.0
 */
export interface RecordedRequest extends ModelRequest {
  /** Arrival order, from 0. */
  readonly seq: number
  readonly answer: Answer
  /** Call ids of the function calls streamed in the answer (generated ones included). */
  readonly callIds: ReadonlyArray<string>
}

/**
 * A running server.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedModelServerHandle {
  /** `http://127.0.0.1:PORT/v1`: the provider `base_url` for codex. */
  readonly baseUrl: string
  readonly port: number
  /** Every request so far, in arrival order. */
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** Waits until `predicate` holds for the recorded requests and returns them. */
  readonly awaitRequests: (
    predicate: (requests: ReadonlyArray<RecordedRequest>) => boolean,
    timeout: Duration.Input
  ) => Effect.Effect<ReadonlyArray<RecordedRequest>, AwaitRequestsTimeout>
  /** Script steps not consumed yet. */
  readonly remaining: Effect.Effect<number>
  /** Whether any model request arrived after the script ran out. */
  readonly exhausted: Effect.Effect<boolean>
}

/**
 * Options of `start`.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedModelServerOptions {
  /** Default 127.0.0.1. */
  readonly host?: string | undefined
  /** Default 0 (any free port). */
  readonly port?: number | undefined
  /** Model named in responses when a request names none, and listed by GET /v1/models. */
  readonly model?: string | undefined
  /** Title given to codex's thread-title requests. */
  readonly title?: string | undefined
  /** Text answered once the script is exhausted. */
  readonly exhaustedText?: string | undefined
  /** Text answered when the next step's matcher rejects a request. */
  readonly unmatchedText?: string | undefined
  /**
   * Per-account usage windows: their rate-limit headers go on every model answer for that
   * account, and an exhausted account gets the usage-limit failure (see ScriptedQuota).
   */
  readonly quotas?: ScriptedQuotas | undefined
}

/**
 * Starts a server playing `script`; it stops when the scope closes (open streams end first).
 * @category constructors
 * @since 0.1.0
 */
export const start: (
  script: Script,
  options?: ScriptedModelServerOptions
) => Effect.Effect<ScriptedModelServerHandle, ModelServerError, Scope.Scope> = Effect.fn("ScriptedModelServer.start")(function*(
  script: Script,
  options?: ScriptedModelServerOptions
) {
  const host = options?.host ?? "127.0.0.1"
  const settings: Settings = {
    model: options?.model ?? "scripted-model",
    title: options?.title ?? "Scripted task",
    exhaustedText: options?.exhaustedText ?? "(script exhausted)",
    unmatchedText: options?.unmatchedText ?? "(no scripted step matched this request)",
    // Ids differ between servers so call ids stay unique across resumed sessions.
    idTag: (yield* Random.nextIntBetween(0, 0xffffff)).toString(16).padStart(6, "0")
  }
  const state = yield* SubscriptionRef.make<State>({ cursor: 0, modelRequests: 0, exhausted: false, records: [] })
  const nodeServer = createServer()
  const connections = trackConnections(nodeServer)
  const server = yield* NodeHttpServer.make(() => nodeServer, {
    host,
    port: options?.port ?? 0,
    gracefulShutdownTimeout: Duration.seconds(2)
  }).pipe(
    Effect.mapError((error) => new ModelServerError({ host, port: options?.port ?? 0, cause: error.cause }))
  )
  const closing = yield* Deferred.make<void>()
  yield* server.serve(handle(script, settings, state, closing, options?.quotas))
  // Registered after `serve`, so it runs before the server's own shutdown: held-open streams end
  // and the server closes at once instead of waiting out its grace period.
  // Then every connection is cut after a short grace (a client that keeps one open must not hold
  // the close up).
  yield* Effect.addFinalizer(() => connections.close(Duration.seconds(1)))
  yield* Effect.addFinalizer(() => Deferred.succeed(closing, undefined))
  const port = server.address._tag === "UnixPathAddress" ? 0 : server.address.port
  const requests = SubscriptionRef.get(state).pipe(Effect.map((s) => s.records))
  const handleOut: ScriptedModelServerHandle = {
    baseUrl: `http://${host}:${port}/v1`,
    port,
    requests,
    awaitRequests: (predicate, timeout) =>
      SubscriptionRef.changes(state).pipe(
        Stream.map((s) => s.records),
        Stream.filter(predicate),
        Stream.runHead,
        Effect.map(Option.getOrElse((): ReadonlyArray<RecordedRequest> => [])),
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.flatMap(requests, (seen) =>
              Effect.fail(
                new AwaitRequestsTimeout({
                  timeout: Duration.format(Duration.fromInputUnsafe(timeout)),
                  seen: seen.length,
                  summary: seen.map((r) => `${r.method} ${r.path} -> ${describeAnswer(r.answer)}`)
                })
              ))
        })
      ),
    remaining: SubscriptionRef.get(state).pipe(Effect.map((s) => Math.max(0, script.length - s.cursor))),
    exhausted: SubscriptionRef.get(state).pipe(Effect.map((s) => s.exhausted))
  }
  return handleOut
})

export * as ScriptedModelServer from "./ScriptedModelServer.ts"

// ---------------------------------------------------------------------------------------------

interface Settings {
  readonly model: string
  readonly title: string
  readonly exhaustedText: string
  readonly unmatchedText: string
  readonly idTag: string
}

interface State {
  readonly cursor: number
  readonly modelRequests: number
  readonly exhausted: boolean
  readonly records: ReadonlyArray<RecordedRequest>
}

type Plan =
  | {
    readonly _tag: "Stream"
    readonly reply: RenderedReply
    readonly eventDelay: Duration.Input | undefined
    readonly holdOpen: boolean
  }
  | {
    readonly _tag: "Json"
    readonly status: number
    readonly body: unknown
    readonly headers: Readonly<Record<string, string>>
  }

const handle = (
  script: Script,
  settings: Settings,
  state: SubscriptionRef.SubscriptionRef<State>,
  closing: Deferred.Deferred<void>,
  quotas: ScriptedQuotas | undefined
) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const bytes = yield* request.arrayBuffer.pipe(Effect.orElseSucceed(() => new ArrayBuffer(0)))
    const text = yield* bodyText(bytes, request.headers["content-encoding"])
    const decoded = decodeModelRequest({
      method: request.method,
      url: request.url,
      headers: request.headers,
      body: text === "" ? undefined : Option.getOrUndefined(decodeJson(text))
    })
    if (quotas !== undefined && decoded.method === "GET" && decoded.path === USAGE_PATH) {
      const usage = yield* quotas.forRequest(decoded)
      const answer: Answer = usage === undefined ? { _tag: "NotFound" } : { _tag: "Usage" }
      yield* SubscriptionRef.update(state, (current) => ({
        ...current,
        records: [...current.records, { ...decoded, seq: current.records.length, answer, callIds: [] }]
      }))
      return usage === undefined
        ? HttpServerResponse.jsonUnsafe({ detail: "no scripted usage" }, { status: 404 })
        : HttpServerResponse.jsonUnsafe(usagePayload(usage, yield* Clock.currentTimeMillis), { status: 200 })
    }
    const quota = quotas !== undefined && decoded.path === "/v1/responses" ? yield* quotas.forRequest(decoded) : undefined
    const plan = yield* SubscriptionRef.modify(state, (current) => {
      const { answer, plan, next } = quota?.exhausted === true
        ? { answer: { _tag: "UsageLimit" } as const, plan: json(429, usageLimitBody(quota)), next: current }
        : route(script, settings, current, decoded)
      const callIds = plan._tag === "Stream" ? plan.reply.callIds : []
      const record: RecordedRequest = { ...decoded, seq: current.records.length, answer, callIds }
      return [plan, { ...next, records: [...current.records, record] }] as const
    })
    if (decoded.path !== "/v1/responses") yield* Effect.logDebug("scripted model server: side endpoint", decoded.method, decoded.path)
    const limits = quota === undefined ? {} : rateLimitHeaders(quota)
    if (plan._tag === "Json") {
      return HttpServerResponse.jsonUnsafe(plan.body, { status: plan.status, headers: { ...plan.headers, ...limits } })
    }
    return HttpServerResponse.stream(sseBody(plan, closing), {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", ...limits }
    })
  }).pipe(Effect.withSpan("ScriptedModelServer.request"))

const route = (
  script: Script,
  settings: Settings,
  current: State,
  request: ModelRequest
): { readonly answer: Answer; readonly plan: Plan; readonly next: State } => {
  if (request.method === "GET" && request.path === "/v1/models") {
    return {
      answer: { _tag: "Models" },
      plan: json(200, { object: "list", data: [{ id: settings.model, object: "model", created: 0, owned_by: "optio" }] }),
      next: current
    }
  }
  if (request.method !== "POST" || request.path !== "/v1/responses") {
    return {
      answer: { _tag: "NotFound" },
      plan: json(404, { error: { message: `no route for ${request.method} ${request.path}`, type: "not_found" } }),
      next: current
    }
  }
  const n = current.modelRequests + 1
  const counted = { ...current, modelRequests: n }
  const stream = (items: ReadonlyArray<OutputItem>, eventDelay?: Duration.Input, holdOpen = false): Plan => ({
    _tag: "Stream",
    reply: renderReply(items, {
      responseId: `resp_${settings.idTag}_${n}`,
      itemId: (prefix, index) => `${prefix}_${settings.idTag}_${n}_${index}`,
      callId: (index) => `call_${settings.idTag}_${n}_${index}`
    }, request.model ?? settings.model),
    eventDelay,
    holdOpen
  })
  const side = sideRequestKind(request)
  if (side !== undefined) {
    return {
      answer: { _tag: "SideRequest", kind: side },
      // The title request asks for JSON output matching {"title": string}.
      plan: stream([message(JSON.stringify({ title: settings.title }))]),
      next: counted
    }
  }
  const decision = decide(script, current.cursor, request)
  switch (decision._tag) {
    case "Exhausted":
      return { answer: decision, plan: stream([message(settings.exhaustedText)]), next: { ...counted, exhausted: true } }
    case "Unmatched":
      return { answer: decision, plan: stream([message(settings.unmatchedText)]), next: counted }
    case "Step": {
      const { step, index } = decision
      const next = { ...counted, cursor: current.cursor + 1 }
      if (step._tag === "HttpError") {
        return { answer: { _tag: "Step", index, kind: "HttpError" }, plan: json(step.status, step.body, step.headers), next }
      }
      return { answer: { _tag: "Step", index, kind: "Reply" }, plan: stream(step.items, step.eventDelay, step.holdOpen), next }
    }
  }
}

const sseBody = (plan: Extract<Plan, { _tag: "Stream" }>, closing: Deferred.Deferred<void>) => {
  const events: Stream.Stream<ResponsesEvent> = plan.holdOpen
    ? Stream.concat(Stream.fromIterable(plan.reply.itemEvents), Stream.fromEffect(Deferred.await(closing)).pipe(Stream.drain))
    : Stream.fromIterable([...plan.reply.itemEvents, plan.reply.completed])
  const delay = plan.eventDelay
  const paced = delay === undefined ? events : Stream.mapEffect(events, (event) => Effect.as(Effect.sleep(delay), event))
  return paced.pipe(Stream.map(encodeEvent), Stream.encodeText)
}

const json = (status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): Plan => ({
  _tag: "Json",
  status,
  body,
  headers
})

/** codex may compress request bodies (feature `enable_request_compression`); undecodable bodies
 * are recorded as absent rather than failing the request. */
const bodyText = (bytes: ArrayBuffer, encoding: string | undefined) =>
  Effect.try(() => {
    const raw = Buffer.from(bytes)
    const plain = encoding === "zstd" ? zstdDecompressSync(raw)
      : encoding === "gzip" ? gunzipSync(raw)
      : encoding === "br" ? brotliDecompressSync(raw)
      : raw
    return plain.toString("utf8")
  }).pipe(Effect.orElseSucceed(() => ""))

const decodeJson = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Unknown))

const describeAnswer = (answer: Answer): string => {
  switch (answer._tag) {
    case "Step":
      return `step ${answer.index} (${answer.kind})`
    case "SideRequest":
      return `side request (${answer.kind})`
    case "Unmatched":
      return `unmatched step ${answer.index} (${answer.matcher})`
    default:
      return answer._tag
  }
}
