/**
 * The scripted model server over real HTTP, driven by fetch.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Scope } from "effect"
import { zstdCompressSync } from "node:zlib"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { ScriptedQuota } from "../../src/modelserver/ScriptedQuota.ts"

interface SseMessage {
  readonly event: string
  readonly data: Record<string, unknown>
}

/** Parses an SSE body into events with JSON data. */
const parseSse = (body: string): ReadonlyArray<SseMessage> =>
  body.split("\n\n").filter((block) => block.trim() !== "").map((block) => {
    const lines = block.split("\n")
    const event = lines.find((line) => line.startsWith("event: "))?.slice(7) ?? ""
    const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n")
    return { event, data: JSON.parse(data) }
  })

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  Effect.tryPromise(() =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...headers },
      body: typeof body === "string" ? body : body instanceof Uint8Array ? Buffer.from(body) : JSON.stringify(body)
    })
  )

const text = (response: Response) => Effect.tryPromise(() => response.text())

const turn = (prompt: string, extra: Record<string, unknown> = {}) => ({
  model: "scripted-model",
  stream: true,
  reasoning: { effort: "medium", summary: "auto" },
  tools: [{ type: "function", name: "exec_command" }],
  input: [{ type: "message", role: "user", content: [{ type: "input_text", text: prompt }] }],
  ...extra
})

describe("ScriptedModelServer", () => {
  it.live("streams a reply as a complete Responses event sequence", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([
        ModelScript.reply([
          ModelScript.reasoning("**Plan** look first"),
          ModelScript.message("Hello there world"),
          ModelScript.functionCall("exec_command", { cmd: "ls" })
        ])
      ])
      assert.match(server.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/v1$/)
      const response = yield* post(`${server.baseUrl}/responses`, turn("go"))
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers.get("content-type"), "text/event-stream")
      const events = parseSse(yield* text(response))
      for (const [n, message] of events.entries()) {
        assert.strictEqual(message.data["type"], message.event)
        assert.strictEqual(message.data["sequence_number"], n)
      }
      const names = events.map((message) => message.event)
      assert.strictEqual(names[0], "response.created")
      assert.strictEqual(names.at(-1), "response.completed")
      assert.strictEqual(names.filter((name) => name === "response.output_item.added").length, 3)
      assert.strictEqual(names.filter((name) => name === "response.output_item.done").length, 3)
      const deltas = events.filter((message) => message.event === "response.output_text.delta")
      assert.isAbove(deltas.length, 1)
      assert.strictEqual(deltas.map((message) => message.data["delta"]).join(""), "Hello there world")
      const summary = events.filter((message) => message.event === "response.reasoning_summary_text.delta")
      assert.strictEqual(summary.map((message) => message.data["delta"]).join(""), "**Plan** look first")
      const completed = events.at(-1)?.data["response"]
      assert.deepInclude(completed, { status: "completed", model: "scripted-model" })
      assert.nestedProperty(events.at(-1)?.data, "response.usage.total_tokens")
      const call = events.filter((message) => message.event === "response.output_item.done").at(-1)?.data["item"]
      const [recorded] = yield* server.requests
      assert.strictEqual(recorded?.callIds.length, 1)
      assert.deepInclude(call, { type: "function_call", name: "exec_command", arguments: "{\"cmd\":\"ls\"}", call_id: recorded?.callIds[0] })
      assert.deepInclude(recorded, { model: "scripted-model", reasoningEffort: "medium", hasAuthorization: true, path: "/v1/responses" })
      assert.deepStrictEqual(recorded?.answer, { _tag: "Step", index: 0, kind: "Reply" })
      assert.strictEqual(yield* server.remaining, 0)
    }))

  it.live("answers scripted errors, then exhaustion, and records other paths", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([
        ModelScript.httpError(500, { headers: { "x-scripted": "yes" } }),
        ModelScript.text("ok")
      ])
      const failed = yield* post(`${server.baseUrl}/responses`, turn("a"))
      assert.strictEqual(failed.status, 500)
      assert.strictEqual(failed.headers.get("x-scripted"), "yes")
      assert.deepStrictEqual(JSON.parse(yield* text(failed)), {
        error: { message: "scripted HTTP 500", type: "scripted_error", code: null }
      })
      assert.isFalse(yield* server.exhausted)
      const ok = parseSse(yield* text(yield* post(`${server.baseUrl}/responses`, turn("b"))))
      assert.include(JSON.stringify(ok.at(-1)), "\"text\":\"ok\"")
      const extra = parseSse(yield* text(yield* post(`${server.baseUrl}/responses`, turn("c"))))
      assert.include(JSON.stringify(extra.at(-1)), "(script exhausted)")
      assert.isTrue(yield* server.exhausted)
      const models = yield* Effect.tryPromise(() => fetch(`${server.baseUrl}/models`))
      assert.strictEqual(models.status, 200)
      assert.include(yield* text(models), "scripted-model")
      const missing = yield* Effect.tryPromise(() => fetch(`${server.baseUrl}/nope`))
      assert.strictEqual(missing.status, 404)
      assert.include(yield* text(missing), "no route for GET /v1/nope")
      const answers = (yield* server.requests).map((request) => request.answer._tag)
      assert.deepStrictEqual(answers, ["Step", "Step", "Exhausted", "Models", "NotFound"])
    }))

  it.live("answers codex's title request apart from the script", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("real answer")], { title: "Say hello" })
      const metadata = JSON.stringify({ thread_source: "thread_title", request_kind: "turn" })
      const title = parseSse(yield* text(yield* post(`${server.baseUrl}/responses`, turn("Generate a title"), {
        "x-codex-turn-metadata": metadata
      })))
      const done = title.find((message) => message.event === "response.output_text.done")
      assert.strictEqual(done?.data["text"], "{\"title\":\"Say hello\"}")
      assert.strictEqual(yield* server.remaining, 1)
      const real = parseSse(yield* text(yield* post(`${server.baseUrl}/responses`, turn("hi"))))
      assert.strictEqual(real.find((message) => message.event === "response.output_text.done")?.data["text"], "real answer")
      const answers = (yield* server.requests).map((request) => request.answer)
      assert.deepStrictEqual(answers, [{ _tag: "SideRequest", kind: "title" }, { _tag: "Step", index: 0, kind: "Reply" }])
    }))

  it.live("leaves a step whose matcher rejects the request in place", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([
        ModelScript.text("go reply", { match: ModelScript.userSaid("go") })
      ])
      const early = parseSse(yield* text(yield* post(`${server.baseUrl}/responses`, turn("wait"))))
      assert.include(JSON.stringify(early), "(no scripted step matched this request)")
      assert.strictEqual(yield* server.remaining, 1)
      yield* text(yield* post(`${server.baseUrl}/responses`, turn("go now")))
      assert.strictEqual(yield* server.remaining, 0)
      const answers = (yield* server.requests).map((request) => request.answer._tag)
      assert.deepStrictEqual(answers, ["Unmatched", "Step"])
    }))

  it.live("awaitRequests waits for a later request and times out with the facts", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("one"), ModelScript.text("two")])
      const waiter = yield* Effect.forkChild(
        server.awaitRequests((requests) => requests.some((request) => request.userTexts.includes("second")), "10 seconds")
      )
      yield* text(yield* post(`${server.baseUrl}/responses`, turn("first")))
      yield* text(yield* post(`${server.baseUrl}/responses`, turn("second")))
      const seen = yield* Fiber.join(waiter)
      assert.strictEqual(seen.length, 2)
      const timeout = yield* Effect.flip(server.awaitRequests((requests) => requests.length > 5, "50 millis"))
      assert.strictEqual(timeout._tag, "AwaitRequestsTimeout")
      assert.strictEqual(timeout.seen, 2)
      assert.include(timeout.message, "POST /v1/responses -> step 1 (Reply)")
    }))

  it.live("streams incrementally and ends held-open streams when its scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* ScriptedModelServer.start([
        ModelScript.text("partial answer", { holdOpen: true })
      ]).pipe(Scope.provide(scope))
      const response = yield* post(`${server.baseUrl}/responses`, turn("go"))
      const body = response.body
      assert.isNotNull(body)
      if (body === null) return
      const reader = body.getReader()
      const decoder = new TextDecoder()
      let received = ""
      // The reply's items arrive although the response is not finished.
      while (!received.includes("event: response.output_item.done")) {
        const chunk = yield* Effect.tryPromise(() => reader.read())
        assert.isFalse(chunk.done, "stream ended before the held-open reply was sent")
        received += decoder.decode(chunk.value, { stream: true })
      }
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const rest = yield* Effect.tryPromise(async () => {
        let tail = ""
        for (;;) {
          const chunk = await reader.read()
          if (chunk.done) return tail
          tail += decoder.decode(chunk.value, { stream: true })
        }
      }).pipe(Effect.timeout(Duration.seconds(5)))
      assert.notInclude(received + rest, "response.completed")
      // Well under the server's 2 s graceful-shutdown bound: the held stream ended at once.
      assert.isBelow(Date.now() - started, 1500)
      const after = yield* Effect.exit(Effect.tryPromise(() => fetch(`${server.baseUrl}/models`)))
      assert.isTrue(Exit.isFailure(after), "server still answering after its scope closed")
    }))

  it.live("decodes zstd-compressed request bodies", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([ModelScript.text("ok")])
      const compressed = new Uint8Array(zstdCompressSync(Buffer.from(JSON.stringify(turn("squeezed")))))
      yield* text(yield* post(`${server.baseUrl}/responses`, compressed, { "content-encoding": "zstd" }))
      const [recorded] = yield* server.requests
      assert.deepStrictEqual(recorded?.userTexts, ["squeezed"])
    }))

  it.live("per-account quota: rate-limit headers on every answer; an exhausted account gets 429 usage_limit_reached without consuming a step; the usage read", () =>
    Effect.gen(function*() {
      const quotas = yield* ScriptedQuota.make
      const resetsAt = new Date(Date.parse("2026-12-07T18:05:00Z"))
      yield* quotas.set("acct-a", { planType: "plus", primary: { usedPercent: 42, windowMinutes: 300, resetsAt } })
      yield* quotas.set("acct-b", { planType: "pro", exhausted: true, primary: { usedPercent: 100, windowMinutes: 300, resetsAt } })
      const server = yield* ScriptedModelServer.start([ModelScript.text("the step")], { quotas })
      const limited = yield* post(`${server.baseUrl}/responses`, turn("hi"), { "chatgpt-account-id": "acct-b" })
      assert.strictEqual(limited.status, 429)
      assert.strictEqual(limited.headers.get("x-codex-primary-used-percent"), "100")
      assert.deepStrictEqual(JSON.parse(yield* text(limited)), {
        error: { type: "usage_limit_reached", message: "The usage limit has been reached", plan_type: "pro", resets_at: resetsAt.getTime() / 1000 }
      })
      assert.strictEqual(yield* server.remaining, 1, "no step consumed")
      const answered = yield* post(`${server.baseUrl}/responses`, turn("hi"), { "chatgpt-account-id": "acct-a" })
      assert.strictEqual(answered.status, 200)
      assert.strictEqual(answered.headers.get("x-codex-primary-used-percent"), "42")
      assert.strictEqual(answered.headers.get("x-codex-primary-window-minutes"), "300")
      assert.strictEqual(answered.headers.get("x-codex-primary-reset-at"), String(resetsAt.getTime() / 1000))
      assert.isNull(answered.headers.get("x-codex-secondary-used-percent"))
      assert.include(yield* text(answered), "the step")
      const unknown = yield* post(`${server.baseUrl}/responses`, turn("hi"), { "chatgpt-account-id": "acct-z" })
      assert.isNull(unknown.headers.get("x-codex-primary-used-percent"), "no quota scripted: no headers")
      yield* text(unknown)
      const origin = new URL(server.baseUrl).origin
      const usage = yield* Effect.tryPromise(() => fetch(`${origin}${ScriptedQuota.USAGE_PATH}`, { headers: { "chatgpt-account-id": "acct-a" } }))
      const body = JSON.parse(yield* text(usage)) as { plan_type: string; rate_limit: { primary_window: { used_percent: number; limit_window_seconds: number; reset_at: number } } }
      assert.strictEqual(body.plan_type, "plus")
      assert.deepStrictEqual(
        [body.rate_limit.primary_window.used_percent, body.rate_limit.primary_window.limit_window_seconds, body.rate_limit.primary_window.reset_at],
        [42, 18000, resetsAt.getTime() / 1000]
      )
      assert.deepStrictEqual((yield* server.requests).map((r) => r.answer._tag), ["UsageLimit", "Step", "Exhausted", "Usage"])
    }).pipe(Effect.scoped))

  it.live("fails with ModelServerError when the port is taken", () =>
    Effect.gen(function*() {
      const first = yield* ScriptedModelServer.start([])
      const error = yield* Effect.flip(ScriptedModelServer.start([], { port: first.port }))
      assert.strictEqual(error._tag, "ModelServerError")
      assert.include(error.message, `127.0.0.1:${first.port}`)
    }))
})
