import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"

describe("TaskContext", () => {
  it.effect("the recording layer records every call in order", () =>
    Effect.gen(function*() {
      const task = yield* TaskContext
      assert.strictEqual(task.processId, "p-1")
      assert.isTrue(task.resume)
      yield* task.reportProgress(10, "starting")
      yield* task.reportProgress(null, "no percent")
      yield* task.setWidgetUpstream("http://127.0.0.1:1/", { kind: "basic", username: "optio", password: Redacted.make("pw") })
      yield* task.setWidgetData({ iframeSrc: "{widgetProxyUrl}" })
      yield* task.requestBrowserOpen("https://example.com")
      yield* task.needAttention("look")
      const seen = yield* (yield* TaskRecorder).current
      assert.deepStrictEqual(seen.progress, [{ percent: 10, message: "starting" }, { percent: null, message: "no percent" }])
      assert.strictEqual(seen.widgetUpstream?.url, "http://127.0.0.1:1/")
      assert.deepStrictEqual(seen.widgetData, { iframeSrc: "{widgetProxyUrl}" })
      assert.deepStrictEqual(seen.browserOpenRequests, ["https://example.com"])
      assert.deepStrictEqual(seen.attentionRequests, ["look"])
      yield* task.clearWidgetUpstream
      yield* task.clearWidgetData
      const cleared = yield* (yield* TaskRecorder).current
      assert.isUndefined(cleared.widgetUpstream)
      assert.isUndefined(cleared.widgetData)
      assert.deepStrictEqual(cleared.widgetUpstreamHistory, ["http://127.0.0.1:1/"])
    }).pipe(Effect.provide(TaskContext.layerRecording({ processId: "p-1", resume: true }))))

  it.effect("the console layer prints progress lines and never the upstream credential", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const program = Effect.gen(function*() {
        const task = yield* TaskContext
        yield* task.reportProgress(50, "half")
        yield* task.reportProgress(null, "plain")
        yield* task.reportProgress(null, null)
        yield* task.setWidgetUpstream("http://127.0.0.1:2/", { kind: "basic", username: "optio", password: Redacted.make("s3cret") })
      })
      yield* program.pipe(Effect.provide(TaskContext.layerConsole({ processId: "c" }, (line) => Effect.sync(() => lines.push(line)))))
      assert.deepStrictEqual(lines, ["[50%] half", "plain", "upstream: http://127.0.0.1:2/"])
      assert.notInclude(lines.join("\n"), "s3cret")
    }))

  it.effect("issue 14: the console layer prints the exact path the dashboard's iframe opens", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const program = Effect.gen(function*() {
        const task = yield* TaskContext
        yield* task.setWidgetUpstream("http://127.0.0.1:2/", { kind: "basic", username: "optio", password: Redacted.make("s3cret") })
        yield* task.setWidgetData({ iframeSrc: "{widgetProxyUrl}" })
      })
      yield* program.pipe(Effect.provide(TaskContext.layerConsole({ processId: "p-9" }, (line) => Effect.sync(() => lines.push(line)))))
      assert.include(lines, "dashboard iframe opens: /api/widget/<database>/<prefix>/p-9/")
      assert.notInclude(lines.join("\n"), "s3cret")
    }))

  it.effect("finding 7: the conversation CLI prints no ?token= URL, only what the listener accepts", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const program = Effect.gen(function*() {
        const task = yield* TaskContext
        yield* task.setWidgetUpstream("http://127.0.0.1:3", { kind: "basic", username: "optio", password: Redacted.make("s3cret") })
        yield* task.setWidgetData({ protocol: "codex" })
      })
      yield* program.pipe(Effect.provide(
        TaskContext.layerConsole({ processId: "p-8" }, (line) => Effect.sync(() => lines.push(line)), { revealCredentials: true })
      ))
      const text = lines.join("\n")
      assert.notInclude(text, "token=")
      assert.include(text, "curl -u optio:s3cret http://127.0.0.1:3/events")
      assert.include(text, "/api/widget/<database>/<prefix>/p-8/events")
    }))
})
