/**
 * The web terminal as the dashboard shows it: embedded in an iframe whose source is the
 * published `iframeSrc`, every request going through a stand-in of optio-api's widget proxy
 * (prefix stripped, Basic inner auth injected, `<base href>` injected, WebSockets forwarded).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import type { Frame, Page } from "playwright-core"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { startTmuxSession } from "../support/services.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { launchBrowser, terminalBufferText } from "../support/browser.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { startWidgetProxy } from "../support/widgetProxy.ts"
import { makeFixtures, removeFixtures, socketPath } from "./fixtures.ts"

const fx = makeFixtures("proxied")
afterAll(removeFixtures)

const widgetFrame = (page: Page) =>
  waitUntil("the widget's iframe has loaded", Effect.sync(() => page.frames().find((frame) => frame !== page.mainFrame())), "10 seconds")

const frameShows = (frame: () => Effect.Effect<Frame, Error>, text: string) =>
  waitUntil(`the iframe's terminal shows ${JSON.stringify(text)}`, frame().pipe(
    Effect.flatMap(terminalBufferText),
    Effect.map((screen) => screen.includes(text) ? screen : undefined),
    Effect.orElseSucceed(() => undefined)
  ), "10 seconds")

describe("the web terminal through the dashboard's widget proxy", () => {
  it.live("issue 14: in the dashboard's iframe the screen shows, keys reach the pane, reload reconnects, /control works", () =>
    Effect.gen(function*() {
      const log = join(fx.dir, "proxied-input.log")
      const tmux = yield* startTmuxSession({
        socketPath: socketPath(),
        configPath: join(fx.dir, "proxied.conf"),
        command: { argv: [fx.fakeTui, "0", log] },
        columns: 100,
        rows: 30
      })
      const endpoint = yield* (yield* TtydSession).serve(tmux)
      const proxy = yield* startWidgetProxy({ upstreamUrl: endpoint.url, innerAuth: endpoint.innerAuth, iframeSrc: endpoint.iframeSrc })

      const browser = yield* launchBrowser
      const page = yield* Effect.tryPromise(() => browser.newPage({ viewport: { width: 1100, height: 700 } }))
      const failures: Array<string> = []
      page.on("response", (response) => {
        if (response.status() >= 400) failures.push(`${response.status()} ${response.url()}`)
      })
      page.on("console", (message) => {
        if (message.type() === "error") failures.push(message.text())
      })
      const opened = yield* Effect.tryPromise(() => page.goto(`${proxy.origin}/dashboard/terminal`))
      assert.strictEqual(opened?.status(), 200)
      const frame = () => widgetFrame(page)
      yield* frameShows(frame, "FAKE-TUI ready")

      yield* Effect.tryPromise(() => page.click("#widget"))
      yield* Effect.tryPromise(() => page.keyboard.type("through the proxy\n"))
      yield* frameShows(frame, "echo: through the proxy")

      yield* Effect.tryPromise(() => page.reload())
      yield* frameShows(frame, "FAKE-TUI ready")
      yield* Effect.tryPromise(() => page.click("#widget"))
      yield* Effect.tryPromise(() => page.keyboard.type("after reload\n"))
      yield* frameShows(frame, "echo: after reload")

      // The operator's control route, called through the proxy with the dashboard's origin.
      const control = yield* Effect.tryPromise(() =>
        page.evaluate((url) =>
          fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "via control" }) })
            .then((answer) => answer.status), `${proxy.widgetProxyUrl}control`))
      assert.strictEqual(control, 200)
      yield* waitUntil("the control line is logged", Effect.sync(() =>
        existsSync(log) && readFileSync(log, "utf8").includes("via control") ? true : undefined))

      assert.deepStrictEqual(failures, [])
      // The published source is the proxy URL itself: it already ends in `/`.
      assert.strictEqual(proxy.iframeUrl, proxy.widgetProxyUrl)
      // The browser held no credential: every forwarded path is plain, and the upstream alone refuses.
      assert.isTrue(proxy.forwarded().every((path) => !path.includes("token")))
      assert.isTrue(proxy.forwarded().includes("/ws"))
      assert.strictEqual((yield* Effect.promise(() => fetch(endpoint.url))).status, 401)
    }).pipe(Effect.scoped, Effect.provide(TtydSession.layer.pipe(Layer.provideMerge(LocalHost.layer())))), 60_000)
})
