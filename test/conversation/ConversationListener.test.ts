import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Redacted, Scope } from "effect"
import type { ConversationEvent } from "../../src/appserver/ConversationHandle.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import type { ListenerEndpoint, ServeOptions } from "../../src/conversation/ConversationListener.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { holdConnection, rawRequest } from "../support/rawHttp.ts"
import { basicCredential, call, makeFakeConversation, note, openViewer, rawExchange, rawSseViewer } from "./harness.ts"
import type { Auth, FakeConversation } from "./harness.ts"

const serve = (fake: FakeConversation, options?: ServeOptions) =>
  Effect.gen(function*() {
    const listener = yield* ConversationListener
    return yield* listener.serve(fake.handle, options)
  }).pipe(Effect.provide(ConversationListener.layer))

/** A fake conversation and a listener for it, both living in the test's scope. */
const setup = (options?: ServeOptions) =>
  Effect.gen(function*() {
    const fake = yield* makeFakeConversation()
    const endpoint = yield* serve(fake, options)
    return { fake, endpoint }
  })

const ROUTES: ReadonlyArray<readonly ["GET" | "POST", string]> = [
  ["GET", "/events"],
  ["POST", "/send"],
  ["POST", "/interrupt"],
  ["POST", "/control"],
  ["POST", "/model"],
  ["POST", "/permission"],
  ["POST", "/upload"],
  ["GET", "/download?path=a.txt"],
  ["GET", "/no-such-route"]
]

describe("ConversationListener auth", () => {
  it.live("publishes a loopback URL and a Basic credential of 32 random bytes", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* setup()
      assert.match(endpoint.url, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.isAbove(endpoint.port, 0)
      assert.match(Redacted.value(endpoint.password), /^[A-Za-z0-9_-]{43}$/)
      assert.strictEqual(endpoint.innerAuth.kind, "basic")
      assert.strictEqual(endpoint.innerAuth.username, "optio")
      assert.strictEqual(Redacted.value(endpoint.innerAuth.password), Redacted.value(endpoint.password))
      assert.notInclude(String(endpoint.password), Redacted.value(endpoint.password))
      const other = yield* setup()
      assert.notStrictEqual(Redacted.value(other.endpoint.password), Redacted.value(endpoint.password))
    }))

  it.live.each(ROUTES)("%s %s answers 401 {ok:false} without, or with a wrong, credential", ([method, path]) =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      for (const auth of ["none", "wrong-password", "wrong-user"] satisfies ReadonlyArray<Auth>) {
        const reply = yield* call(endpoint, method, path, method === "GET" ? { auth } : { auth, json: { text: "hi", id: "model", model: "m" } })
        assert.strictEqual(reply.status, 401, `${auth}`)
        assert.deepStrictEqual(reply.body, { ok: false })
      }
      const calls = yield* fake.calls
      assert.deepStrictEqual(calls.sent, [])
      assert.deepStrictEqual(calls.controls, [])
    }))

  it.live("a port that is taken fails with ListenerStartFailed", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* setup()
      const fake = yield* makeFakeConversation()
      const error = yield* Effect.flip(serve(fake, { port: endpoint.port }))
      assert.strictEqual(error._tag, "ListenerStartFailed")
      assert.include(error.message, `127.0.0.1:${endpoint.port}`)
    }))

  it.live("with the credential, an unknown route is 404 and a wrong method 405", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* setup()
      const missing = yield* call(endpoint, "GET", "/no-such-route")
      assert.deepStrictEqual([missing.status, missing.body], [404, { ok: false, reason: "not-found" }])
      const wrongMethod = yield* call(endpoint, "GET", "/send")
      assert.deepStrictEqual([wrongMethod.status, wrongMethod.body], [405, { ok: false, reason: "method-not-allowed" }])
      const prefixed = yield* call(endpoint, "POST", "/api/widget/x/send", { json: { text: "hi" } })
      assert.strictEqual(prefixed.status, 404)
    }))
})

describe("ConversationListener auth, strictly", () => {
  it.live("finding 7: the Basic decoder refuses trailing junk", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* setup()
      const valid = `Basic ${Buffer.from(`optio:${Redacted.value(endpoint.password)}`).toString("base64")}`
      for (const junk of [`${valid} junk`, `${valid}!!`, `${valid}\tx`, `${valid.replace("Basic ", "Basic  ")}`, `${valid}====`]) {
        const answer = yield* rawRequest(endpoint.port, "/send", { method: "POST", headers: { authorization: junk, "content-type": "application/json" }, body: "{}" })
        assert.strictEqual(answer.status, 401, junk)
      }
      const accepted = yield* rawRequest(endpoint.port, "/send", { method: "POST", headers: { authorization: valid, "content-type": "application/json" }, body: "{}" })
      assert.strictEqual(accepted.status, 400) // authenticated; the body is refused
    }))
})

describe("ConversationListener and other sites", () => {
  it.live("finding 6: a state-changing request a browser marks as from another site is refused, even with the credential", () =>
    Effect.gen(function*() {
      const { fake, endpoint } = yield* setup()
      const auth = `Basic ${Buffer.from(`optio:${Redacted.value(endpoint.password)}`).toString("base64")}`
      const headers = { authorization: auth, "content-type": "application/json" }
      for (const site of ["cross-site", "same-site"]) {
        const answer = yield* rawRequest(endpoint.port, "/send", { method: "POST", headers: { ...headers, "sec-fetch-site": site, origin: "http://127.0.0.1:1" }, body: JSON.stringify({ text: "injected" }) })
        assert.strictEqual(answer.status, 403, site)
      }
      // The dashboard's own page through its proxy: same-origin, with its Origin passed on.
      const own = yield* rawRequest(endpoint.port, "/send", { method: "POST", headers: { ...headers, "sec-fetch-site": "same-origin", origin: "https://dashboard.example" }, body: JSON.stringify({ text: "mine" }) })
      assert.strictEqual(own.status, 200)
      assert.deepStrictEqual((yield* fake.calls).sent, ["mine"])
    }))
})

describe("ConversationListener commands", () => {
  it.live("send forwards the text; bad bodies are 400 bad-json / bad-text; a closed conversation is 409", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      const sent = yield* call(endpoint, "POST", "/send", { json: { text: "hello codex" } })
      assert.deepStrictEqual([sent.status, sent.body], [200, { ok: true }])
      assert.deepStrictEqual((yield* fake.calls).sent, ["hello codex"])

      for (const text of ["{not json", "[1,2]", "null", "\"text\""]) {
        const reply = yield* call(endpoint, "POST", "/send", { text })
        assert.deepStrictEqual([reply.status, reply.body], [400, { ok: false, reason: "bad-json" }], text)
      }
      for (const json of [{}, { text: "" }, { text: "   \n" }, { text: 42 }]) {
        const reply = yield* call(endpoint, "POST", "/send", { json })
        assert.deepStrictEqual([reply.status, reply.body], [400, { ok: false, reason: "bad-text" }], JSON.stringify(json))
      }
      const huge = yield* call(endpoint, "POST", "/send", { json: { text: "x".repeat(2 * 1024 * 1024) } })
      assert.deepStrictEqual([huge.status, huge.body], [413, { ok: false, reason: "too-large" }])

      yield* fake.close("process ended")
      const closed = yield* call(endpoint, "POST", "/send", { json: { text: "anyone?" } })
      assert.deepStrictEqual([closed.status, closed.body], [409, { ok: false, reason: "closed" }])
      assert.deepStrictEqual((yield* fake.calls).sent, ["hello codex"])
    }))

  it.live("interrupt forwards whatever the body; a closed conversation is 409", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      assert.strictEqual((yield* call(endpoint, "POST", "/interrupt", { json: {} })).status, 200)
      assert.strictEqual((yield* call(endpoint, "POST", "/interrupt", { text: "garbage" })).status, 200)
      assert.strictEqual((yield* fake.calls).interrupts, 2)
      yield* fake.close("done")
      const closed = yield* call(endpoint, "POST", "/interrupt")
      assert.deepStrictEqual([closed.status, closed.body], [409, { ok: false, reason: "closed" }])
    }))

  it.live("an interrupt codex never answers is 504 timeout instead of hanging", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation({ hangInterrupt: true })
      const endpoint = yield* serve(fake, { interruptTimeout: "100 millis" })
      const reply = yield* call(endpoint, "POST", "/interrupt")
      assert.deepStrictEqual([reply.status, reply.body], [504, { ok: false, reason: "timeout" }])
      assert.strictEqual((yield* fake.calls).interrupts, 1)
    }))

  it.live("control forwards {id, value}; /model is an alias for the model control", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      assert.strictEqual((yield* call(endpoint, "POST", "/control", { json: { id: "reasoning_effort", value: "high" } })).status, 200)
      assert.strictEqual((yield* call(endpoint, "POST", "/model", { json: { model: "gpt-5.4-mini" } })).status, 200)
      assert.deepStrictEqual((yield* fake.calls).controls, [["reasoning_effort", "high"], ["model", "gpt-5.4-mini"]])

      for (const json of [{}, { id: "" }, { id: 3, value: "x" }]) {
        const reply = yield* call(endpoint, "POST", "/control", { json })
        assert.deepStrictEqual([reply.status, reply.body], [400, { ok: false, reason: "bad-id" }], JSON.stringify(json))
      }
      const unknown = yield* call(endpoint, "POST", "/control", { json: { id: "temperature", value: 2 } })
      assert.deepStrictEqual([unknown.status, unknown.body], [400, { ok: false, reason: "bad-value" }])
      for (const json of [{}, { model: "" }, { model: null }]) {
        const reply = yield* call(endpoint, "POST", "/model", { json })
        assert.deepStrictEqual([reply.status, reply.body], [400, { ok: false, reason: "bad-model" }], JSON.stringify(json))
      }
      assert.deepStrictEqual((yield* call(endpoint, "POST", "/model", { text: "{" })).body, { ok: false, reason: "bad-json" })

      yield* fake.close("done")
      const closed = yield* call(endpoint, "POST", "/control", { json: { id: "model", value: "gpt-5.5" } })
      assert.deepStrictEqual([closed.status, closed.body], [409, { ok: false, reason: "closed" }])
      const closedAlias = yield* call(endpoint, "POST", "/model", { json: { model: "gpt-5.5" } })
      assert.deepStrictEqual([closedAlias.status, closedAlias.body], [409, { ok: false, reason: "closed" }])
    }))

  it.live("permission answers a pending request by its JSON-RPC id (0 included), once", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      const viewer = yield* openViewer(endpoint)
      yield* fake.emit({ id: 0, method: "item/commandExecution/requestApproval", params: { command: "echo hi" } })
      yield* fake.addPending("0")
      yield* viewer.awaitEvents(1)

      const bad = yield* call(endpoint, "POST", "/permission", { json: { request_id: "0", behavior: "maybe" } })
      assert.deepStrictEqual([bad.status, bad.body], [400, { ok: false, reason: "bad-behavior" }])
      assert.deepStrictEqual((yield* call(endpoint, "POST", "/permission", { text: "nope" })).body, { ok: false, reason: "bad-json" })
      const unknown = yield* call(endpoint, "POST", "/permission", { json: { request_id: "99", behavior: "allow" } })
      assert.deepStrictEqual([unknown.status, unknown.body], [404, { ok: false, reason: "unknown-request" }])
      const missingId = yield* call(endpoint, "POST", "/permission", { json: { behavior: "allow" } })
      assert.strictEqual(missingId.status, 404)

      const answered = yield* call(endpoint, "POST", "/permission", {
        json: { request_id: 0, behavior: "deny", message: "Denied by the operator." }
      })
      assert.deepStrictEqual([answered.status, answered.body], [200, { ok: true }])
      const again = yield* call(endpoint, "POST", "/permission", { json: { request_id: "0", behavior: "allow" } })
      assert.deepStrictEqual([again.status, again.body], [404, { ok: false, reason: "unknown-request" }])
      assert.deepStrictEqual((yield* fake.calls).answers, [["0", "deny"]])

      // The conversation may announce the answer too: viewers still see it once.
      yield* fake.emit({ type: "x-optio-permission-answered", request_id: "0", behavior: "deny" })
      yield* fake.emit(note(1))
      const events = yield* viewer.awaitEvents(3)
      assert.deepStrictEqual(events.map(([, event]) => event), [
        { id: 0, method: "item/commandExecution/requestApproval", params: { command: "echo hi" } },
        { type: "x-optio-permission-answered", request_id: "0", behavior: "deny" },
        note(1)
      ])
    }))

  it.live("send is answered before the events it caused reach a viewer", () =>
    Effect.gen(function*() {
      const listening = yield* Deferred.make<ListenerEndpoint>()
      const fake = yield* makeFakeConversation({
        // One slot: once the second marker is accepted, the listener has taken, and so recorded,
        // the whole turn. Two more round trips to the listener give a viewer ample time to see
        // those events before `send` returns, unless they are held back.
        capacity: 1,
        onSend: (text, emit) =>
          Effect.forEach([
            { method: "turn/started", params: { turn: { id: "t1" } } },
            { method: "item/agentMessage/delta", params: { delta: `re: ${text}` } },
            { method: "turn/completed", params: { turn: { id: "t1", status: "completed" } } },
            { method: "x-test/marker", params: { n: 1 } },
            { method: "x-test/marker", params: { n: 2 } }
          ], emit, { discard: true }).pipe(
            Effect.andThen(Deferred.await(listening)),
            Effect.flatMap((endpoint) => Effect.repeat(call(endpoint, "GET", "/ping"), { times: 1 })),
            Effect.orDie
          )
      })
      const endpoint = yield* serve(fake)
      yield* Deferred.succeed(listening, endpoint)
      // Raw sockets: what arrives is recorded in arrival order, with nothing scheduled between.
      const arrivals: Array<string> = []
      yield* rawExchange(endpoint, { method: "GET", path: "/events" }, (text) => {
        if (text.includes("turn/completed")) arrivals.push("turn/completed")
        else if (text.includes("text/event-stream")) arrivals.push("viewer connected")
      })
      yield* waitUntil("the viewer is connected", Effect.sync(() => arrivals.length > 0 ? true : undefined))
      yield* rawExchange(endpoint, { method: "POST", path: "/send", body: JSON.stringify({ text: "go" }) }, (text) => {
        if (text.startsWith("HTTP/1.1 200")) arrivals.push("send answered")
      })
      const seen = yield* waitUntil("the turn reached the viewer", Effect.sync(() => arrivals.length >= 3 ? arrivals : undefined))
      assert.deepStrictEqual(seen, ["viewer connected", "send answered", "turn/completed"])
      assert.deepStrictEqual((yield* fake.calls).sent, ["go"])
    }))
})

describe("ConversationListener events", () => {
  it.live("SSE headers, one id and one data line per event, a ping comment as keep-alive", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup({ pingInterval: "40 millis" })
      yield* fake.emit({ method: "item/agentMessage/delta", params: { delta: "line one\nline two" } })
      const viewer = yield* openViewer(endpoint)
      assert.strictEqual(viewer.status, 200)
      assert.strictEqual(viewer.headers["content-type"], "text/event-stream")
      assert.strictEqual(viewer.headers["cache-control"], "no-cache")
      assert.strictEqual(viewer.headers["x-accel-buffering"], "no")
      const [first] = yield* viewer.awaitEvents(1)
      assert.deepStrictEqual(first, [1, { method: "item/agentMessage/delta", params: { delta: "line one\nline two" } }])
      const pings = yield* waitUntil("two keep-alive pings", Effect.map(viewer.frames, (frames) => {
        const found = frames.filter((frame) => frame.comment === "ping")
        return found.length >= 2 ? found : undefined
      }))
      assert.isAtLeast(pings.length, 2)
    }))

  it.live("keeps events emitted right after serve returns, and the initial history comes first", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation()
      const userItem: ConversationEvent = { method: "item/completed", params: { threadId: "t", turnId: "old", item: { type: "userMessage", id: "u1" } } }
      const turnEnd: ConversationEvent = { method: "turn/completed", params: { threadId: "t", turn: { id: "old", status: "completed" } } }
      const history = [userItem, turnEnd]
      const endpoint = yield* serve(fake, { history })
      yield* fake.emit(note(1))
      yield* fake.emit(note(2))
      const viewer = yield* openViewer(endpoint)
      const events = yield* viewer.awaitEvents(4)
      assert.deepStrictEqual(events, [[1, userItem], [2, turnEnd], [3, note(1)], [4, note(2)]])
    }))

  it.live("a reconnecting viewer gets every missed event exactly once, then the live tail", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      const first = yield* openViewer(endpoint)
      yield* Effect.forEach([1, 2, 3, 4, 5], (n) => fake.emit(note(n)), { discard: true })
      const seen = yield* first.awaitEvents(5)
      yield* Fiber.interrupt(first.fiber)
      yield* Effect.forEach([6, 7, 8], (n) => fake.emit(note(n)), { discard: true })

      const lastId = String(seen.at(-1)?.[0])
      const again = yield* openViewer(endpoint, { lastEventId: lastId })
      const missed = yield* again.awaitEvents(3)
      yield* fake.emit(note(9))
      const all = yield* again.awaitEvents(4)
      assert.deepStrictEqual(missed.slice(0, 3), [[6, note(6)], [7, note(7)], [8, note(8)]])
      assert.deepStrictEqual(all, [[6, note(6)], [7, note(7)], [8, note(8)], [9, note(9)]])
    }))

  it.live("a new viewer after 2,000 events receives the whole history, ids 1..2000 in order", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      const early = yield* openViewer(endpoint)
      yield* Effect.forEach(Array.from({ length: 2000 }, (_, i) => i + 1), (n) => fake.emit(note(n)), { discard: true })
      yield* early.awaitEvents(2000)
      const late = yield* openViewer(endpoint)
      const events = yield* late.awaitEvents(2000)
      assert.strictEqual(events.length, 2000)
      assert.deepStrictEqual(events.map(([id]) => id), Array.from({ length: 2000 }, (_, i) => i + 1))
      assert.deepStrictEqual(events.map(([, event]) => event), Array.from({ length: 2000 }, (_, i) => note(i + 1)))
      yield* fake.emit(note(2001))
      assert.deepStrictEqual((yield* late.awaitEvents(2001)).at(-1), [2001, note(2001)])
    }))

  it.live.each(["abc", "-3", "2.5", "99999", "", "1e3"])("Last-Event-ID %j is not one of ours: the whole history is sent", (lastEventId) =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      yield* Effect.forEach([1, 2, 3], (n) => fake.emit(note(n)), { discard: true })
      yield* (yield* openViewer(endpoint)).awaitEvents(3)
      const viewer = yield* openViewer(endpoint, { lastEventId })
      const events = yield* viewer.awaitEvents(3)
      assert.deepStrictEqual(events.map(([id]) => id), [1, 2, 3])
    }))

  it.live("responses to the client's own requests are not shown; error responses are, except a lost interrupt race", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      const failedTurn = { id: 5, error: { code: -32001, message: "Server overloaded; retry later." } }
      yield* fake.emit({ id: 3, result: { turn: { id: "t1", status: "inProgress" } } })
      yield* fake.emit({ id: 4, error: { code: -32600, message: "no active turn to interrupt" } })
      yield* fake.emit(failedTurn)
      yield* fake.emit(note(1))
      const viewer = yield* openViewer(endpoint)
      const events = yield* viewer.awaitEvents(2)
      assert.deepStrictEqual(events, [[1, failedTurn], [2, note(1)]])
    }))

  it.live("closing the listener's scope ends open streams promptly and stops accepting", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation()
      const listenerScope = yield* Scope.make()
      const endpoint = yield* serve(fake).pipe(Scope.provide(listenerScope))
      yield* fake.emit({ id: 7, method: "item/fileChange/requestApproval", params: {} })
      yield* fake.addPending("7")
      const viewer = yield* openViewer(endpoint)
      yield* viewer.awaitEvents(1)

      yield* Scope.close(listenerScope, Exit.void).pipe(
        Effect.timeoutOrElse({ duration: "3 seconds", orElse: () => Effect.fail(new Error("the listener took too long to stop")) })
      )
      const ended = yield* Fiber.await(viewer.fiber).pipe(
        Effect.timeoutOrElse({ duration: "3 seconds", orElse: () => Effect.fail(new Error("the SSE stream did not end")) })
      )
      assert.isTrue(Exit.isSuccess(ended))
      assert.deepStrictEqual((yield* fake.calls).answers, [["7", "deny"]])
      const refused = yield* Effect.exit(call(endpoint, "GET", "/events"))
      assert.isTrue(Exit.isFailure(refused))
    }))
})

describe("ConversationListener fan-out", () => {
  const upTo = (count: number) => Array.from({ length: count }, (_, i) => i + 1)
  const hasId = (viewer: { readonly ids: () => ReadonlyArray<number> }, id: number) =>
    Effect.sync(() => viewer.ids().includes(id) ? true : undefined)

  /** A chunked body decoded strictly: any byte out of place throws, and the last chunk must end it. */
  const strictDechunk = (body: string): string => {
    let at = 0
    let out = ""
    for (;;) {
      const lineEnd = body.indexOf("\r\n", at)
      const sizeLine = lineEnd < 0 ? "" : body.slice(at, lineEnd)
      if (!/^[0-9a-f]+$/.test(sizeLine)) throw new Error(`bad chunk size line at ${at}: ${JSON.stringify(body.slice(at, at + 20))}`)
      const size = Number.parseInt(sizeLine, 16)
      const data = lineEnd + 2
      if (size === 0) {
        if (body.slice(data) !== "\r\n") throw new Error(`bytes after the last chunk: ${JSON.stringify(body.slice(data))}`)
        return out
      }
      if (body.slice(data + size, data + size + 2) !== "\r\n") throw new Error(`chunk at ${at} is not ${size} bytes then CRLF`)
      out += body.slice(data, data + size)
      at = data + size + 2
    }
  }

  it.live("over HTTP/1.1 the stream is strictly valid chunked encoding, closed by the last chunk when the listener stops; an HTTP/1.0 viewer gets the same bytes unframed", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation()
      const listenerScope = yield* Scope.make()
      const endpoint = yield* serve(fake).pipe(Scope.provide(listenerScope))
      const credential = basicCredential(endpoint)
      const open = (version: string) =>
        holdConnection(endpoint.port, `GET /events HTTP/${version}\r\nHost: 127.0.0.1\r\nAuthorization: Basic ${credential}\r\n\r\n`)
      const http11 = yield* open("1.1")
      const http10 = yield* open("1.0")
      // One event at a time, so each goes out as its own write.
      for (const n of [1, 2, 3]) {
        yield* fake.emit(note(n))
        yield* waitUntil(`event ${n} reached both viewers`, Effect.sync(() =>
          [http11, http10].every((viewer) => viewer.received().includes(`"n":${n}}`)) ? true : undefined))
      }
      yield* fake.emit(note(4))
      yield* Scope.close(listenerScope, Exit.void)
      yield* waitUntil("the listener closed both connections", Effect.sync(() =>
        http11.closedByServer() && http10.closedByServer() ? true : undefined))

      const split = (received: string) => {
        const headEnd = received.indexOf("\r\n\r\n")
        return [received.slice(0, headEnd), received.slice(headEnd + 4)] as const
      }
      const [head11, body11] = split(http11.received())
      assert.match(head11, /^HTTP\/1\.1 200 /)
      assert.match(head11, /\r\ntransfer-encoding: chunked/i)
      const decoded = strictDechunk(body11)
      const [head10, body10] = split(http10.received())
      assert.match(head10, /^HTTP\/1\.1 200 /)
      assert.notMatch(head10, /transfer-encoding/i)
      assert.strictEqual(body10, decoded)
      assert.match(decoded, /^: ping\n\n/)
      assert.deepStrictEqual([...decoded.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1])), [1, 2, 3, 4])
    }))

  it.live("a viewer that drops its connection mid-stream and resumes with Last-Event-ID misses nothing and repeats nothing; the others are not disturbed", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup()
      const steady = yield* rawSseViewer(endpoint)
      const leavingScope = yield* Scope.make()
      const leaving = yield* rawSseViewer(endpoint).pipe(Scope.provide(leavingScope))
      yield* waitUntil("both viewers are attached", Effect.sync(() => steady.body().startsWith(": ping") && leaving.body().startsWith(": ping") ? true : undefined))
      // Events keep coming while the viewer leaves and comes back.
      // Paced by the steady viewer: every 20 events, the next batch waits until it has them.
      const emitter = yield* Effect.forEach(upTo(600), (n) =>
        n % 20 === 0
          ? Effect.andThen(fake.emit(note(n)), waitUntil(`the steady viewer has event ${n}`, hasId(steady, n)))
          : fake.emit(note(n)), { discard: true }).pipe(Effect.forkChild)
      yield* waitUntil("the leaving viewer saw some events", Effect.sync(() => leaving.ids().length >= 100 ? true : undefined))
      yield* Scope.close(leavingScope, Exit.void)
      const before = leaving.ids()
      const last = before.at(-1) ?? 0
      const back = yield* rawSseViewer(endpoint, { lastEventId: last })
      yield* Fiber.join(emitter)
      yield* waitUntil("everyone has event 600", Effect.map(Effect.all([hasId(steady, 600), hasId(back, 600)]), ([a, b]) => a && b))
      assert.deepStrictEqual(steady.ids(), upTo(600))
      assert.isBelow(last, 600, "the viewer left mid-stream")
      assert.deepStrictEqual([...before, ...back.ids()], upTo(600))
      assert.isTrue(back.body().startsWith(": ping\n\n"), "a resumed stream starts like any other")
    }))

  it.live("a viewer that stops reading holds up no one, and gets every event exactly once when it reads again", () =>
    Effect.gen(function*() {
      const { endpoint, fake } = yield* setup({ pingInterval: "1 hour" })
      const slow = yield* rawSseViewer(endpoint)
      yield* waitUntil("the slow viewer is attached", Effect.sync(() => slow.body().startsWith(": ping") ? true : undefined))
      slow.socket.pause()
      const fast = yield* rawSseViewer(endpoint)
      yield* waitUntil("the fast viewer is attached", Effect.sync(() => fast.body().startsWith(": ping") ? true : undefined))
      // 3,000 events of 4 KB: 12 MB, more than the kernel buffers of a connection nobody reads.
      const big = (n: number) => ({ method: "item/agentMessage/delta", params: { delta: "x".repeat(4000), n } })
      yield* Effect.forEach(upTo(3000), (n) => fake.emit(big(n)), { discard: true })
      yield* waitUntil("the fast viewer has everything", hasId(fast, 3000), "30 seconds")
      assert.deepStrictEqual(fast.ids(), upTo(3000))
      assert.isBelow(slow.ids().length, 3000, "the slow viewer really was held back")
      slow.socket.resume()
      yield* waitUntil("the slow viewer caught up", hasId(slow, 3000), "30 seconds")
      assert.deepStrictEqual(slow.ids(), upTo(3000))
      // The bytes are the SSE stream CodexView parses: a comment, then one id and data line per event.
      const expected = ": ping\n\n" + upTo(3000).map((n) => `id: ${n}\ndata: ${JSON.stringify(big(n))}\n\n`).join("")
      assert.isTrue(slow.body() === expected && fast.body() === expected, "both bodies are exactly the frames")
    }))
})
