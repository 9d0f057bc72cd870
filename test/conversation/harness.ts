/**
 * Test harness for the conversation listener: a fake ConversationHandle driven by a PubSub, an
 * HTTP caller that speaks the listener's Basic auth, and an SSE viewer that records frames.
 */
import { Effect, Fiber, PubSub, Ref, Stream } from "effect"
import type { Scope } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { Redacted } from "effect"
import { ConversationClosed, InvalidControl } from "../../src/appserver/ConversationHandle.ts"
import type { ConversationEvent, ConversationHandle, PermissionBehavior, SessionControl } from "../../src/appserver/ConversationHandle.ts"
import type { ListenerEndpoint } from "../../src/conversation/ConversationListener.ts"
import { connect } from "node:net"
import type { Socket } from "node:net"
import { waitUntil } from "../support/waitUntil.ts"

/** What the fake conversation was asked to do. */
export interface FakeCalls {
  readonly sent: ReadonlyArray<string>
  readonly interrupts: number
  readonly controls: ReadonlyArray<readonly [string, unknown]>
  readonly answers: ReadonlyArray<readonly [string, PermissionBehavior]>
}

export interface FakeConversation {
  readonly handle: ConversationHandle
  readonly emit: (event: ConversationEvent) => Effect.Effect<void>
  /** Marks the conversation closed and emits `x-optio-closed`. */
  readonly close: (reason: string) => Effect.Effect<void>
  /** Makes an approval request answerable (`answerPermission` returns true once). */
  readonly addPending: (requestId: string) => Effect.Effect<void>
  readonly calls: Effect.Effect<FakeCalls>
}

export const modelControl: SessionControl = {
  id: "model",
  kind: "select",
  label: "Model",
  value: "gpt-5.5",
  disabled: false,
  category: "model",
  options: [
    { value: "gpt-5.5", label: "GPT-5.5", disabled: false },
    { value: "gpt-5.4-mini", label: "GPT-5.4 Mini", disabled: false }
  ]
}

/**
 * A conversation whose events are whatever the test emits. `onSend` runs inside `send`. With a
 * `capacity`, emitting waits while that many events are not yet taken by the subscriber.
 */
export const makeFakeConversation = (options: {
  readonly onSend?: (text: string, emit: (event: ConversationEvent) => Effect.Effect<void>) => Effect.Effect<void>
  readonly capacity?: number
  /** When true, `interrupt` never completes (codex never answers `turn/interrupt`). */
  readonly hangInterrupt?: boolean
} = {}) =>
  Effect.gen(function*() {
    const onSend = options.onSend
    const pubsub = options.capacity === undefined
      ? yield* PubSub.unbounded<ConversationEvent>()
      : yield* PubSub.bounded<ConversationEvent>(options.capacity)
    const state = yield* Ref.make({ closed: false, pending: new Set<string>() })
    const calls = yield* Ref.make<FakeCalls>({ sent: [], interrupts: 0, controls: [], answers: [] })
    const emit = (event: ConversationEvent) => Effect.asVoid(PubSub.publish(pubsub, event))
    const ifOpen = Effect.flatMap(Ref.get(state), (s) => s.closed ? Effect.fail(new ConversationClosed({ reason: "test" })) : Effect.void)
    const handle: ConversationHandle = {
      events: Stream.fromPubSub(pubsub).pipe(Stream.takeUntil((event) => event["type"] === "x-optio-closed")),
      send: (text) =>
        ifOpen.pipe(
          Effect.andThen(Ref.update(calls, (c) => ({ ...c, sent: [...c.sent, text] }))),
          Effect.andThen(onSend === undefined ? Effect.void : onSend(text, emit))
        ),
      interrupt: ifOpen.pipe(
        Effect.andThen(Ref.update(calls, (c) => ({ ...c, interrupts: c.interrupts + 1 }))),
        Effect.andThen(options.hangInterrupt === true ? Effect.never : Effect.void)
      ),
      setControl: (id, value) =>
        ifOpen.pipe(
          Effect.andThen(id === "model" || id === "reasoning_effort"
            ? Ref.update(calls, (c) => ({ ...c, controls: [...c.controls, [id, value] as const] }))
            : Effect.fail(new InvalidControl({ id, detail: "unknown control" })))
        ),
      controls: Effect.succeed([modelControl]),
      answerPermission: (requestId, behavior) =>
        Ref.modify(state, (s) => {
          if (!s.pending.has(requestId)) return [false, s] as const
          const pending = new Set(s.pending)
          pending.delete(requestId)
          return [true, { ...s, pending }] as const
        }).pipe(Effect.tap((answered) =>
          answered ? Ref.update(calls, (c) => ({ ...c, answers: [...c.answers, [requestId, behavior] as const] })) : Effect.void
        ))
    }
    return {
      handle,
      emit,
      close: (reason) =>
        Ref.update(state, (s) => ({ ...s, closed: true })).pipe(
          Effect.andThen(PubSub.publish(pubsub, { type: "x-optio-closed", reason })),
          Effect.asVoid
        ),
      addPending: (requestId) => Ref.update(state, (s) => ({ ...s, pending: new Set([...s.pending, requestId]) })),
      calls: Ref.get(calls)
    } satisfies FakeConversation
  })

/** Which credential a request carries. */
export type Auth = "valid" | "none" | "wrong-password" | "wrong-user"

const withAuth = (endpoint: ListenerEndpoint, auth: Auth) => (request: HttpClientRequest.HttpClientRequest) => {
  if (auth === "none") return request
  if (auth === "wrong-user") return HttpClientRequest.basicAuth(request, "admin", Redacted.value(endpoint.password))
  const password = auth === "wrong-password" ? `${Redacted.value(endpoint.password)}x` : Redacted.value(endpoint.password)
  return HttpClientRequest.basicAuth(request, "optio", password)
}

export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
  readonly bytes: Uint8Array
}

/** One request to the listener; the body is returned parsed when it is JSON. */
export const call = (
  endpoint: ListenerEndpoint,
  method: "GET" | "POST" | "PUT",
  path: string,
  options: {
    readonly json?: unknown
    readonly text?: string
    /** Content type of `text`; default application/json. */
    readonly contentType?: string
    readonly form?: FormData
    readonly auth?: Auth
    readonly headers?: Readonly<Record<string, string>>
  } = {}
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const base = HttpClientRequest.make(method)(`${endpoint.url}${path}`).pipe(
      withAuth(endpoint, options.auth ?? "valid"),
      HttpClientRequest.setHeaders(options.headers ?? {})
    )
    const request = options.form !== undefined
      ? HttpClientRequest.bodyFormData(base, options.form)
      : options.text !== undefined
      ? HttpClientRequest.bodyText(base, options.text, options.contentType ?? "application/json")
      : options.json !== undefined
      ? HttpClientRequest.bodyJsonUnsafe(base, options.json)
      : base
    const response = yield* client.execute(request)
    const bytes = new Uint8Array(yield* response.arrayBuffer)
    const isJson = (response.headers["content-type"] ?? "").includes("application/json")
    const body: unknown = isJson ? JSON.parse(new TextDecoder().decode(bytes)) : undefined
    return { status: response.status, headers: response.headers, body, bytes } satisfies Reply
  }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer))

/** One SSE frame: an event (`id` + `data`) or a comment. */
export interface Frame {
  readonly id?: string
  readonly data?: string
  readonly comment?: string
}

export interface Viewer {
  /** Every frame so far, comments included. */
  readonly frames: Effect.Effect<ReadonlyArray<Frame>>
  /** The events so far as `[id, parsed data]`. */
  readonly events: Effect.Effect<ReadonlyArray<readonly [number, ConversationEvent]>>
  /** Waits until at least `count` events arrived; returns them. */
  readonly awaitEvents: (count: number) => Effect.Effect<ReadonlyArray<readonly [number, ConversationEvent]>, Error>
  /** The viewer's connection; joins when the stream ends. */
  readonly fiber: Fiber.Fiber<void, unknown>
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
}

/** Opens `GET /events` and records frames in the background until the stream ends or the scope closes. */
export const openViewer = (
  endpoint: ListenerEndpoint,
  options: { readonly lastEventId?: string; readonly onFrame?: (frame: Frame) => Effect.Effect<void> } = {}
): Effect.Effect<Viewer, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const frames = yield* Ref.make<ReadonlyArray<Frame>>([])
    const request = HttpClientRequest.get(`${endpoint.url}/events`).pipe(
      withAuth(endpoint, "valid"),
      HttpClientRequest.setHeaders(options.lastEventId === undefined ? {} : { "last-event-id": options.lastEventId })
    )
    const response = yield* client.execute(request)
    let carry = ""
    const fiber = yield* response.stream.pipe(
      Stream.decodeText,
      Stream.runForEach((text) => {
        carry += text
        const blocks = carry.split("\n\n")
        carry = blocks.pop() ?? ""
        return Effect.forEach(blocks, (block) => {
          const frame = parseFrame(block)
          return Ref.update(frames, (all) => [...all, frame]).pipe(
            Effect.andThen(options.onFrame === undefined ? Effect.void : options.onFrame(frame))
          )
        }, { discard: true })
      }),
      Effect.forkScoped
    )
    const events = Ref.get(frames).pipe(Effect.map((all) =>
      all.flatMap((frame) =>
        frame.id === undefined || frame.data === undefined
          ? []
          : [[Number(frame.id), parseEvent(frame.data)] as const]
      )
    ))
    return {
      frames: Ref.get(frames),
      events,
      awaitEvents: (count: number) =>
        waitUntil(`${count} events arrived`, Effect.map(events, (all) => all.length >= count ? all : undefined), "15 seconds"),
      fiber,
      status: response.status,
      headers: response.headers
    } satisfies Viewer
  }).pipe(Effect.provide(FetchHttpClient.layer))

const parseEvent = (data: string): ConversationEvent => {
  const parsed: unknown = JSON.parse(data)
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error(`not an event: ${data}`)
  return { ...parsed }
}

const parseFrame = (block: string): Frame => {
  const frame: { id?: string; data?: string; comment?: string } = {}
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) frame.comment = line.slice(1).trim()
    else if (line.startsWith("id: ")) frame.id = line.slice(4)
    else if (line.startsWith("data: ")) frame.data = frame.data === undefined ? line.slice(6) : `${frame.data}\n${line.slice(6)}`
  }
  return frame
}

/** A notification with a sequence marker, easy to recognize in frames. */
export const note = (n: number): ConversationEvent => ({ method: "item/agentMessage/delta", params: { delta: `d${n}`, n } })

/** A plain TCP connection to the listener, destroyed with the scope. */
const rawSocket = (endpoint: ListenerEndpoint): Effect.Effect<Socket, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Socket, Error>((resume) => {
      const socket = connect(endpoint.port, "127.0.0.1", () => resume(Effect.succeed(socket)))
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** The listener's Basic credential, as the proxy sends it. */
export const basicCredential = (endpoint: ListenerEndpoint): string =>
  Buffer.from(`optio:${Redacted.value(endpoint.password)}`).toString("base64")

/**
 * A raw HTTP/1.1 exchange over a plain socket. `onData` sees every chunk as Node delivers it
 * (no fetch or stream scheduling in between), so chunks of several connections keep the order
 * in which they arrived. The socket is closed with the scope.
 */
export const rawExchange = (
  endpoint: ListenerEndpoint,
  head: { readonly method: "GET" | "POST"; readonly path: string; readonly body?: string },
  onData: (text: string) => void
): Effect.Effect<void, Error, Scope.Scope> =>
  rawSocket(endpoint).pipe(Effect.flatMap((socket) =>
    Effect.sync(() => {
      socket.setEncoding("utf8")
      socket.on("data", onData)
      const credential = basicCredential(endpoint)
      const body = head.body ?? ""
      socket.write(
        `${head.method} ${head.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic ${credential}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
      )
    })
  ))

/** A viewer on a raw socket: the SSE body as it arrived (chunked framing removed), and its socket. */
export interface RawSseViewer {
  /** The body so far; events are `id: <n>\ndata: …\n\n` frames. */
  readonly body: () => string
  /** Event ids in the body so far, in order. */
  readonly ids: () => ReadonlyArray<number>
  readonly socket: Socket
}

/**
 * Opens `GET /events` on a plain socket (closed with the scope), so a test can stop reading
 * (`socket.pause()`) or drop the connection mid-stream the way a browser does.
 */
export const rawSseViewer = (
  endpoint: ListenerEndpoint,
  options: { readonly lastEventId?: number } = {}
): Effect.Effect<RawSseViewer, Error, Scope.Scope> =>
  rawSocket(endpoint).pipe(Effect.map((socket) => {
    socket.on("error", () => {})
    const received: Array<Buffer> = []
    socket.on("data", (data: Buffer) => void received.push(data))
    const credential = basicCredential(endpoint)
    const resumeHeader = options.lastEventId === undefined ? "" : `Last-Event-ID: ${options.lastEventId}\r\n`
    socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic ${credential}\r\n${resumeHeader}\r\n`)
    const body = () => dechunk(Buffer.concat(received))
    return {
      body,
      ids: () => [...body().matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1])),
      socket
    } satisfies RawSseViewer
  }))

/** The body of a chunked HTTP/1.1 response received so far (complete chunks only). */
const dechunk = (raw: Buffer): string => {
  const headEnd = raw.indexOf("\r\n\r\n")
  if (headEnd < 0) return ""
  const parts: Array<Buffer> = []
  let at = headEnd + 4
  while (at < raw.length) {
    const lineEnd = raw.indexOf("\r\n", at)
    if (lineEnd < 0) break
    const size = Number.parseInt(raw.subarray(at, lineEnd).toString("latin1"), 16)
    if (!Number.isFinite(size) || size === 0 || lineEnd + 2 + size + 2 > raw.length) break
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts).toString("utf8")
}
