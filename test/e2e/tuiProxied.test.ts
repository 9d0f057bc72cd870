/**
 * Issue 14 item 1 end to end: the real codex TUI of a session, shown the way an operator sees it
 * — the dashboard's iframe, through a stand-in of optio-api's widget proxy, with exactly what the
 * session published (upstream URL, Basic inner auth, `iframeSrc`).
 */
import { noStoreServices } from "../support/sessionServices.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import type { Page } from "playwright-core"
import { DEMO_PROMPT, demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { launchBrowser, terminalBufferText } from "../support/browser.ts"
import { sharedBinaryCache } from "../support/codexCache.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { startWidgetProxy } from "../support/widgetProxy.ts"

const root = join(repoRoot, ".cache", "test", `e2e-tui-proxied-${process.pid}`)

const services = Layer.mergeAll(TaskContext.layerRecording({ processId: "tui-proxied" }), sharedBinaryCache, TtydSession.layer, Tmux.layer, AppServerClient.layer, ConversationListener.layer, noStoreServices).pipe(
  Layer.provideMerge(LocalHost.layer())
)

const iframeShows = (page: Page, text: string) =>
  waitUntil(`the dashboard's iframe shows ${JSON.stringify(text)}`, Effect.suspend(() => {
    const frame = page.frames().find((candidate) => candidate !== page.mainFrame())
    return frame === undefined ? Effect.succeed(undefined) : terminalBufferText(frame).pipe(
      Effect.map((screen) => screen.includes(text) ? screen : undefined),
      Effect.orElseSucceed(() => undefined)
    )
  }), "30 seconds")

describe("TUI mode in the dashboard", () => {
  it.live("issue 14: through the widget proxy the iframe shows codex, keys and /control reach it, reload reconnects", () =>
    Effect.gen(function*() {
      rmSync(root, { recursive: true, force: true })
      const workdir = join(root, "proxied")
      mkdirSync(workdir, { recursive: true })
      const server = yield* ScriptedModelServer.start([ModelScript.text("hello operator"), ModelScript.text("control received")])
      const session = yield* runCodexSession(
        { consumerInstructions: DEMO_PROMPT, ...demoTaskSettings(server.baseUrl) },
        { workdir, stopGracePeriod: "2 seconds" }
      ).pipe(Effect.forkChild)
      const recorder = yield* TaskRecorder
      const published = yield* waitUntil("the widget is published", recorder.current.pipe(Effect.map((record) =>
        record.widgetUpstream !== undefined && record.widgetData !== undefined ? record : undefined
      )), "60 seconds")
      const widgetData = published.widgetData as { readonly iframeSrc: string }
      const proxy = yield* startWidgetProxy({
        upstreamUrl: published.widgetUpstream?.url ?? "",
        innerAuth: published.widgetUpstream?.innerAuth,
        iframeSrc: widgetData.iframeSrc
      })
      const browser = yield* launchBrowser
      const page = yield* Effect.tryPromise(() => browser.newPage({ viewport: { width: 1200, height: 800 } }))
      yield* Effect.tryPromise(() => page.goto(`${proxy.origin}/dashboard/terminal`))
      yield* iframeShows(page, "OpenAI Codex")

      yield* Effect.tryPromise(() => page.click("#widget"))
      yield* Effect.tryPromise(() => page.keyboard.type("say hello"))
      // Submit once the text is on screen: codex takes a burst of keys as a paste.
      yield* iframeShows(page, "› say hello")
      yield* Effect.tryPromise(() => page.keyboard.press("Enter"))
      yield* server.awaitRequests((all) => all.some((request) => request.userTexts.some((text) => text.includes("say hello"))), "30 seconds")
      yield* iframeShows(page, "hello operator")

      yield* Effect.tryPromise(() => page.reload())
      yield* iframeShows(page, "hello operator")

      const control = yield* Effect.tryPromise(() =>
        page.evaluate((url) =>
          fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "from the control route" }) })
            .then((answer) => answer.status), `${proxy.widgetProxyUrl}control`))
      assert.strictEqual(control, 200)
      yield* server.awaitRequests((all) => all.some((request) => request.userTexts.some((text) => text.includes("from the control route"))), "30 seconds")
      yield* iframeShows(page, "control received")

      yield* Fiber.interrupt(session)
      yield* waitUntil("no task process is left", Effect.sync(() => processesMentioning(workdir).length === 0 ? true : undefined), "5 seconds")
    }).pipe(Effect.scoped, Effect.provide(services)), 150_000)
})
