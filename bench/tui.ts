/**
 * tui: a TUI task from `runCodexSession` until codex's composer shows in the web terminal (a
 * WebSocket viewer rendering into a headless xterm, as a browser would), against bare `codex` in
 * a tmux session with the same config.toml, polled with `capture-pane` until the composer shows.
 */
import { Effect, Fiber, Redacted } from "effect"
import { execFile } from "node:child_process"
import { rmSync } from "node:fs"
import { promisify } from "node:util"
import { DEMO_MODEL } from "../src/cli/OfflineDemo.ts"
import { ScriptedModelServer } from "../src/modelserver/ScriptedModelServer.ts"
import { TERMINAL_USERNAME } from "../src/terminal/TtydSession.ts"
import type { TerminalEndpoint } from "../src/terminal/TtydSession.ts"
import { openViewer } from "../test/terminal/viewer.ts"
import { freshHome } from "./bare.ts"
import type { BenchContext, BenchResult } from "./context.ts"
import { now, renderPhases, summarize } from "./harness.ts"
import type { Timeline } from "./harness.ts"
import { awaitPublished, startSession, timelineOf } from "./library.ts"
import { killAll, processesMentioning } from "./system.ts"

/** What codex's composer shows when it is ready for input. */
const COMPOSER = "Ask Codex to do anything"
const run = promisify(execFile)

export const runTui = (ctx: BenchContext) =>
  Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([], { exhaustedText: "pong" })
    const library: Array<number> = []
    const bare: Array<number> = []
    const libraryTimelines: Array<Timeline> = []
    const bareTimelines: Array<Timeline> = []
    for (let round = 0; round < ctx.counts.warmup + ctx.counts.tui; round++) {
      const lib = yield* libraryTui(ctx, server.baseUrl, round)
      const raw = yield* Effect.promise(() => bareTui(ctx, server.baseUrl, round))
      if (round < ctx.counts.warmup) continue
      library.push(lib.total)
      libraryTimelines.push(lib.timeline)
      bare.push(raw.total)
      bareTimelines.push(raw.timeline)
      ctx.log(`tui ${round + 1 - ctx.counts.warmup}/${ctx.counts.tui}: library ${lib.total.toFixed(0)} ms, bare ${raw.total.toFixed(0)} ms`)
    }
    const difference = summarize(library).median - summarize(bare).median
    const result: BenchResult = {
      rows: [
        {
          name: "tui",
          what: "library: runCodexSession (TUI) → composer in the web terminal (WebSocket + headless xterm)",
          unit: "ms",
          samples: library,
          baseline: "tui/bare-tmux",
          goal: "≤ bare + 150 ms",
          met: difference <= 150,
          notes: `library − bare = ${difference.toFixed(0)} ms`
        },
        { name: "tui/bare-tmux", what: "bare codex in tmux → composer in capture-pane", unit: "ms", samples: bare }
      ],
      sections: [renderPhases("tui phases, library", libraryTimelines), renderPhases("tui phases, bare tmux", bareTimelines)],
      data: { libraryTimelines, bareTimelines }
    }
    return result
  }).pipe(Effect.scoped)

const libraryTui = (ctx: BenchContext, baseUrl: string, round: number) =>
  Effect.gen(function*() {
    const workdir = ctx.space.fresh("tui-lib")
    const session = yield* startSession({ mode: "tui", processId: `bench-tui-${round}`, workdir, baseUrl })
    const published = yield* awaitPublished(session)
    const password = published.innerAuth?.kind === "basic" ? published.innerAuth.password : Redacted.make("")
    const endpoint: TerminalEndpoint = {
      url: published.url,
      port: Number(new URL(published.url).port),
      credential: password,
      innerAuth: { kind: "basic", username: TERMINAL_USERNAME, password },
      viewerUrl: Redacted.make(published.url),
      iframeSrc: "{widgetProxyUrl}"
    }
    const viewer = yield* openViewer(endpoint)
    const connected = now()
    while (!viewer.screen().includes(COMPOSER)) {
      if (now() - session.startedAt > 30_000) return yield* Effect.die(new Error(`no composer in the web terminal:\n${viewer.screen()}`))
      yield* Effect.sleep("5 millis")
    }
    const shown = now()
    yield* Fiber.interrupt(session.fiber)
    return {
      total: shown - session.startedAt,
      timeline: timelineOf(session, {
        "upstream published": [published.at, published.at],
        "viewer connected": [published.at, connected],
        "composer shown": [connected, shown]
      })
    }
  }).pipe(Effect.scoped)

const bareTui = async (ctx: BenchContext, baseUrl: string, round: number) => {
  const begun = now()
  const home = freshHome(ctx.space.fresh("tui-bare"), baseUrl)
  const socket = `/tmp/bench-tui-${process.pid}-${round}.sock`
  const env: Record<string, string> = { ...home.env, TERM: "xterm-256color" }
  delete env["TMUX"]
  delete env["TMUX_PANE"]
  const homeReady = now()
  await run("tmux", [
    "-S", socket, "-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", "200", "-y", "50", "-c", home.workdir, "--",
    ctx.binary, "--ask-for-approval", "never", "--sandbox", "workspace-write", "--model", DEMO_MODEL
  ], { env })
  const started = now()
  let screen = ""
  while (!screen.includes(COMPOSER)) {
    if (now() - begun > 30_000) throw new Error(`no composer in the bare tmux pane:\n${screen}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
    screen = (await run("tmux", ["-S", socket, "capture-pane", "-p", "-t", "bench"])).stdout
  }
  const shown = now()
  await run("tmux", ["-S", socket, "kill-server"]).catch(() => undefined)
  const deadline = now() + 3000
  let left = processesMentioning([home.root, socket])
  while (left.length > 0 && now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    left = processesMentioning([home.root, socket])
  }
  killAll(left.map((process) => process.pid))
  rmSync(socket, { force: true })
  const timeline: Timeline = {
    "fresh home + config.toml": [0, homeReady - begun],
    "tmux new-session": [homeReady - begun, started - begun],
    "composer shown": [started - begun, shown - begun]
  }
  return { total: shown - begun, timeline }
}
