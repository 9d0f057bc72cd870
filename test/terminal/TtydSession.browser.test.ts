import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { join } from "node:path"
import type { Page } from "playwright-core"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { startTmuxSession } from "../support/services.ts"
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

      // Refused without a Basic challenge: a browser never prompts for, so never caches, the credential.
      const denied = yield* Effect.tryPromise(() => stranger.goto(endpoint.url))
      assert.strictEqual(denied?.status(), 401)
      assert.isNull(yield* Effect.tryPromise(() => denied?.headerValue("www-authenticate") ?? Promise.resolve(null)))

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

      // The URL the CLI prints (the token on the server's root) lands in the viewer's path.
      const second = yield* Effect.tryPromise(() => browser.newPage())
      yield* Effect.tryPromise(() => second.goto(`${endpoint.url}?token=${encodeURIComponent(Redacted.value(endpoint.credential))}`))
      yield* waitUntil("the second page shows the pane", bufferText(second).pipe(Effect.map((screen) => screen.includes("echo: hello") ? true : undefined)), "8 seconds")
      assert.strictEqual(new URL(second.url()).pathname, new URL(Redacted.value(endpoint.viewerUrl)).pathname)
    }).pipe(Effect.scoped, Effect.provide(TtydSession.layer.pipe(Layer.provideMerge(LocalHost.layer())))), 45_000)
})
