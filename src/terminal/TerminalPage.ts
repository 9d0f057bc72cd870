/**
 * TerminalPage: the browser side of the web terminal — the HTML page, its small script, and the
 * xterm.js files it loads. Owns what the browser receives; the server that sends it and the
 * WebSocket protocol's server side live in `TtydSession`.
 *
 * Every URL in the page is relative, because the optio dashboard serves the terminal through
 * its widget proxy under a path prefix. optio-api injects `<base href="<prefix>/">` into the page
 * and then rewrites the address bar to the path without the prefix, so URLs are resolved against
 * `document.baseURI` (the prefix when a base is injected, the page's own URL otherwise), never
 * against `location`.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"

/**
 * A file the page needs could not be found in the installed xterm packages.
 * @category errors
 */
export class TerminalAssetsMissing extends Schema.TaggedError<TerminalAssetsMissing>()("TerminalAssetsMissing", {
  asset: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `web terminal asset ${this.asset} is missing: ${this.detail}`
  }
}

/**
 * One static file of the page.
 * @category models
 */
export interface Asset {
  readonly contentType: string
  readonly body: Uint8Array
}

/**
 * The page's static files by path (`/assets/...`), read once per server.
 * @category models
 */
export type Assets = ReadonlyMap<string, Asset>

/**
 * Reads xterm.js, its stylesheet and the fit addon from the installed packages (the worker's own
 * files, not the task host's: the web terminal always runs on the worker), plus the page script.
 * @category constructors
 */
export const loadAssets: Effect.Effect<Assets, TerminalAssetsMissing> = Effect.gen(function*() {
  const require = createRequire(import.meta.url)
  const packaged = [
    ["/assets/xterm.js", "@xterm/xterm/lib/xterm.js", JAVASCRIPT],
    ["/assets/xterm.css", "@xterm/xterm/css/xterm.css", "text/css; charset=utf-8"],
    ["/assets/addon-fit.js", "@xterm/addon-fit/lib/addon-fit.js", JAVASCRIPT]
  ] as const
  const assets = new Map<string, Asset>()
  for (const [path, specifier, contentType] of packaged) {
    const body = yield* Effect.tryPromise({
      try: async () => new Uint8Array(await readFile(require.resolve(specifier))),
      catch: (error) => new TerminalAssetsMissing({ asset: specifier, detail: error instanceof Error ? error.message : String(error) })
    })
    assets.set(path, { contentType, body })
  }
  assets.set("/assets/terminal.js", { contentType: JAVASCRIPT, body: new TextEncoder().encode(PAGE_SCRIPT) })
  return assets
})

/**
 * The terminal page. `window.optioTerminal` is the xterm `Terminal` (tests read its buffer).
 * @category constants
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>optio-codex terminal</title>
<link rel="stylesheet" href="assets/xterm.css">
<style>
  html, body { margin: 0; height: 100%; background: #1e1e1e; overflow: hidden; }
  #terminal { position: absolute; inset: 4px; }
</style>
</head>
<body>
<div id="terminal"></div>
<script src="assets/xterm.js"></script>
<script src="assets/addon-fit.js"></script>
<script src="assets/terminal.js"></script>
</body>
</html>
`

/**
 * Security headers of every response: no caching of pages that carry a credential, no
 * Referer leaking it, scripts only from this server. Styles must allow inline: xterm.js sets
 * them at runtime. `base-uri 'self'` admits the proxy's injected `<base href>` (a path on the
 * same origin) and nothing else.
 * @category constants
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'self'; form-action 'none'"
}

const JAVASCRIPT = "text/javascript; charset=utf-8"

// The page script: one xterm bound to one WebSocket. Messages to the server are JSON
// ({type:"input",data} / {type:"resize",columns,rows}); messages from it are terminal output.
const PAGE_SCRIPT = `"use strict";
(() => {
  const term = new Terminal({
    cursorBlink: true,
    scrollback: 10000,
    fontSize: 14,
    fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace"
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  window.optioTerminal = term;
  // The credential now travels in an HttpOnly cookie: keep it out of the address bar and history.
  if (location.search !== "") history.replaceState(null, "", location.pathname);

  const url = new URL("ws", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const decoder = new TextDecoder();
  const send = (message) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  };
  const sendSize = () => send({ type: "resize", columns: term.cols, rows: term.rows });
  const refit = () => {
    try { fit.fit(); } catch (error) { /* not laid out yet */ }
  };

  socket.addEventListener("open", () => { refit(); sendSize(); term.focus(); });
  socket.addEventListener("message", (event) => {
    term.write(typeof event.data === "string" ? event.data : decoder.decode(event.data, { stream: true }));
  });
  socket.addEventListener("close", () => {
    term.write("\\r\\n\\x1b[2m[terminal disconnected]\\x1b[0m\\r\\n");
  });
  term.onData((data) => send({ type: "input", data }));
  term.onResize(sendSize);
  window.addEventListener("resize", refit);
  refit();
})();
`
