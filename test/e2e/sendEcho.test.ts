/**
 * CodexView's optimistic bubble (item 10): the page confirms it with the turn's `userMessage`
 * echo, so the answer to `POST /send` must reach the page before the echo does — over two
 * connections through optio-api's widget proxy (the stand-in, lagging each answer behind the
 * event stream as measured through the real one), with the machine under load. The real codex
 * app-server runs every turn.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { spawn } from "node:child_process"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { sseEvents } from "../support/sse.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { startWidgetProxy } from "../support/widgetProxy.ts"

const TURNS = 15

const root = join(repoRoot, ".cache", "test", `e2e-send-echo-${process.pid}`)

// Two busy processes for the test's duration: the ordering must hold on a loaded machine.
const cpuLoad = Effect.acquireRelease(
  Effect.sync(() => [0, 1].map(() => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }))),
  (children) => Effect.sync(() => children.forEach((child) => child.kill("SIGKILL")))
)

const echoedText = (data: unknown): string | undefined => {
  const event = data as { method?: unknown; params?: { item?: { type?: unknown; content?: ReadonlyArray<{ text?: unknown }> } } } | null
  if (event?.method !== "item/started" || event.params?.item?.type !== "userMessage") return undefined
  const text = event.params.item.content?.[0]?.text
  return typeof text === "string" ? text : undefined
}

describe("send answers before the echo (item 10)", () => {
  it.live(`${TURNS} turns through the proxy under load: every answer reaches the client before its echo`, () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start(Array.from({ length: TURNS }, (_, index) => ModelScript.text(`answer ${index}`)))
      const workdir = join(root, "w")
      mkdirSync(workdir, { recursive: true })
      yield* runCodexSession(
        { consumerInstructions: "echo", mode: "conversation", conversationUi: true, hostProtocol: false, ...demoTaskSettings(server.baseUrl) },
        { workdir, stopGracePeriod: "2 seconds" }
      ).pipe(Effect.forkChild)
      const recorder = yield* TaskRecorder
      const upstream = yield* waitUntil("the listener is published", recorder.current.pipe(Effect.map((record) => record.widgetUpstream)), "60 seconds")
      // The proxy hop lags each answer behind the event stream by the skew measured through optio-api.
      const proxy = yield* startWidgetProxy({ upstreamUrl: upstream.url, innerAuth: upstream.innerAuth }, { answerLagMs: 60 })

      const echoes = new Map<string, number>()
      let completed = 0
      yield* sseEvents(`${proxy.widgetProxyUrl}events`, {}).pipe(
        Stream.runForEach((event) =>
          Effect.sync(() => {
            const text = echoedText(event.data)
            if (text !== undefined && !echoes.has(text)) echoes.set(text, performance.now())
            if ((event.data as { method?: unknown } | null)?.method === "turn/completed") completed += 1
          })
        ),
        Effect.forkChild
      )
      yield* cpuLoad
      const answers = new Map<string, number>()
      for (let index = 0; index < TURNS; index++) {
        const text = `turn ${index}`
        const answer = yield* Effect.tryPromise(() =>
          fetch(`${proxy.widgetProxyUrl}send`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text }) })
            .then(async (response) => ({ status: response.status, body: await response.json() as unknown }))
        )
        answers.set(text, performance.now())
        assert.strictEqual(answer.status, 200, JSON.stringify(answer.body))
        yield* waitUntil(`turn ${index} completes`, Effect.sync(() => completed > index ? true : undefined), "60 seconds")
      }
      const late = [...answers].filter(([text, answeredAt]) => {
        const echoedAt = echoes.get(text)
        return echoedAt === undefined || echoedAt <= answeredAt
      })
      assert.deepStrictEqual(late.map(([text]) => text), [], "every echo arrives after its answer")
      assert.strictEqual(echoes.size, TURNS)
    }).pipe(Effect.scoped, Effect.provide(sessionServices("send-echo", { state: new MemoryStoreState() }))), 180_000)
})
