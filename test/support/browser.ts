/**
 * Headless chromium for browser tests: Debian's chromium driven by playwright-core, and a reader
 * for the terminal page's xterm buffer (exposed as `window.optioTerminal`).
 */
import type { Terminal } from "@xterm/xterm"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import type { Frame, Page } from "playwright-core"

declare global {
  // Set by the terminal page (src/terminal/TerminalPage.ts).
  var optioTerminal: Terminal | undefined
}

const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"
]

/** A browser for the scope; never `npx playwright install`: Debian's chromium is used. */
export const launchBrowser = Effect.acquireRelease(
  Effect.tryPromise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS })),
  (browser) => Effect.promise(() => browser.close())
)

/** The text of the page's (or an iframe's) xterm buffer (scrollback included). */
export const terminalBufferText = (page: Page | Frame) =>
  Effect.tryPromise(() =>
    page.evaluate(() => {
      const term = globalThis.optioTerminal
      if (term === undefined) return ""
      const lines: Array<string> = []
      for (let i = 0; i < term.buffer.active.length; i++) lines.push(term.buffer.active.getLine(i)?.translateToString(true) ?? "")
      return lines.join("\n")
    })
  )
