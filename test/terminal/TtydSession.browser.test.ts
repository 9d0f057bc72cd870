import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { join } from "node:path"
import type { Page } from "playwright-core"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { startTmuxSession } from "../../src/terminal/TmuxSession.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { launchBrowser, terminalBufferText } from "../support/browser.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { makeFixtures, removeFixtures, socketPath, tmuxQuery } from "./fixtures.ts"

const fx = makeFixtures("browser")
afterAll(removeFixtures)

const bufferText = terminalBufferText

const bufferShows = (page: Page, text: string) =>
  waitUntil(`the browser terminal shows ${JSON.stringify(text)}`, bufferText(page).pipe(
    Effect.map((screen) => screen.includes(text) ? screen : undefined)
  ), "8 seconds")

describe("TtydSession in a browser", () => {
  it.live("a human opens the viewer URL, sees the pane and types into it", () =>
    Effect.gen(function*() {
      const tmux = yield* startTmuxSession({
        socketPath: socketPath(),
        configPath: join(fx.dir, "browser.conf"),
        command: { argv: [fx.fakeTui] },
        columns: 100,
        rows: 30
      })
      const terminal = yield* TtydSession
      const endpoint = yield* terminal.serve(tmux)
      const browser = yield* launchBrowser
      const stranger = yield* Effect.tryPromise(() => browser.newPage())
      const page = yield* Effect.tryPromise(() => browser.newPage({ viewport: { width: 900, height: 500 } }))

      // Chromium answers the Basic challenge with a login prompt that headless mode cancels, so
      // the navigation fails; the response it got is still observable.
      const denied = yield* Effect.tryPromise(() =>
        Promise.all([stranger.waitForResponse(endpoint.url, { timeout: 5000 }), stranger.goto(endpoint.url).catch(() => null)])
      )
      assert.strictEqual(denied[0].status(), 401)
      assert.isNull(denied[1])

      const opened = yield* Effect.tryPromise(() => page.goto(Redacted.value(endpoint.viewerUrl)))
      assert.strictEqual(opened?.status(), 200)
      yield* bufferShows(page, "FAKE-TUI ready")
      // The token left the address bar once the cookie took over.
      assert.notInclude(page.url(), "token=")

      yield* Effect.tryPromise(() => page.keyboard.type("hello\n"))
      yield* bufferShows(page, "echo: hello")
      yield* waitUntil("tmux shows the echo", tmux.capture(50).pipe(Effect.map((screen) => screen.includes("echo: hello") ? true : undefined)))

      // The page fitted the terminal to the window, and the pane followed the browser's size.
      const columns = yield* Effect.tryPromise(() => page.evaluate(() => globalThis.optioTerminal?.cols ?? 0))
      assert.isAbove(columns, 0)
      assert.notStrictEqual(columns, 100)
      yield* waitUntil("the pane has the browser's width", tmuxQuery(tmux.socketPath, ["display-message", "-p", "-t", "=optio:", "#{window_width}"]).pipe(
        Effect.map((width) => width === String(columns) ? width : undefined)
      ))
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(TtydSession.layer, LocalHost.layer()))), 20_000)
})
