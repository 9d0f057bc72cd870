/**
 * turnParts: codex's own turn, bisected (issue 19). The minimal bare client's launch, then the
 * library's launch one part at a time — its config.toml, its AGENTS.md, its sandbox `-c`
 * overrides, its environment — each a bare app-server over stdio, interleaved turn by turn
 * against one scripted server. Each line says what adding that part costs codex's turn
 * (turn/start → the model request, and → turn/completed), so what we launch with is paid for.
 */
import { Effect } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Result } from "effect"
import { DEMO_MODEL, demoTaskSettings } from "../src/cli/OfflineDemo.ts"
import { appServerSandboxArgs, resolveSandboxPosture } from "../src/config/SandboxPosture.ts"
import { decodeCodexTaskConfig } from "../src/config/CodexTaskConfig.ts"
import { composeAgentsMd } from "../src/protocol/AgentsMd.ts"
import { renderCodexConfig } from "../src/workdir/CodexConfigToml.ts"
import { initialize, minimalHome, runTurn, startAppServer, startThread } from "./bare.ts"
import type { BareHome } from "./bare.ts"
import type { BenchContext } from "./context.ts"
import type { BenchModelServer } from "./modelServerThread.ts"
import { fmt, now, summarize } from "./harness.ts"

interface Variant {
  readonly name: string
  readonly config: boolean
  readonly agentsMd: boolean
  readonly sandboxArgs: boolean
  readonly env: boolean
}

// Each adds one part of the library's launch to the one before.
const VARIANTS: ReadonlyArray<Variant> = [
  { name: "minimal (clean env, provider-only config.toml)", config: false, agentsMd: false, sandboxArgs: false, env: false },
  { name: "+ the library's config.toml", config: true, agentsMd: false, sandboxArgs: false, env: false },
  { name: "+ the library's AGENTS.md", config: true, agentsMd: true, sandboxArgs: false, env: false },
  { name: "+ the sandbox -c overrides", config: true, agentsMd: true, sandboxArgs: true, env: false },
  { name: "+ the library's environment (= the library's launch)", config: true, agentsMd: true, sandboxArgs: true, env: true }
]

const homeFor = (variant: Variant, root: string, baseUrl: string): BareHome => {
  const home = minimalHome(root, baseUrl)
  const settings = demoTaskSettings(baseUrl)
  if (variant.config) {
    const rendered = renderCodexConfig({ workdir: home.workdir, model: DEMO_MODEL, overrides: settings.configOverrides })
    if (Result.isFailure(rendered)) throw rendered.failure
    writeFileSync(join(home.codexHome, "config.toml"), rendered.success, { mode: 0o600 })
  }
  if (variant.agentsMd) {
    writeFileSync(join(home.workdir, "AGENTS.md"), composeAgentsMd({
      instructions: "benchmark",
      hostProtocol: true,
      supportsResume: false,
      workdirExclude: null,
      fileDownload: false
    }), { mode: 0o600 })
  }
  if (!variant.env) return home
  const bin = join(home.workdir, "bin")
  mkdirSync(bin, { recursive: true })
  return {
    ...home,
    env: {
      ...home.env,
      LANG: process.env["LANG"] ?? "C.UTF-8",
      TERM: process.env["TERM"] ?? "xterm",
      XDG_CONFIG_HOME: join(home.home, ".config"),
      XDG_DATA_HOME: join(home.home, ".local", "share"),
      XDG_CACHE_HOME: join(home.root, "tmp", "cache"),
      BROWSER: join(bin, "xdg-open"),
      PATH: `${home.home}/.local/bin:${bin}:${home.env["PATH"]}`
    }
  }
}

const sandboxArgs = Effect.gen(function*() {
  const config = yield* decodeCodexTaskConfig({ consumerInstructions: "benchmark" })
  return appServerSandboxArgs(resolveSandboxPosture(config, "/root"))
})

/** Runs `turns` turns on every variant, interleaved; a markdown section with the medians. */
export const runTurnParts = (ctx: BenchContext, server: BenchModelServer, turns: number) =>
  Effect.gen(function*() {
    const args = yield* Effect.orDie(sandboxArgs)
    const started = yield* Effect.forEach(VARIANTS, (variant) =>
      Effect.gen(function*() {
        const home = homeFor(variant, ctx.space.fresh("turn-parts"), server.baseUrl)
        const appServer = yield* Effect.acquireRelease(
          Effect.promise(() => startAppServer(ctx.binary, home, now, variant.sandboxArgs ? args : [])),
          (running) => Effect.promise(() => running.stop())
        )
        const threadId = yield* Effect.promise(async () => {
          await initialize(appServer)
          return startThread(appServer, home)
        })
        return { variant, appServer, threadId, toModel: [] as Array<number>, total: [] as Array<number> }
      }))
    for (let index = 0; index < turns; index++) {
      for (const subject of started) {
        const seen = yield* server.requestCount
        const t0 = now()
        yield* Effect.promise(() => runTurn(subject.appServer, subject.threadId, `turn ${index + 1}`, now))
        const t1 = now()
        const modelAt = yield* server.arrivalOf(seen + 1)
        // The first turn of each process warms it up.
        if (index === 0) continue
        subject.toModel.push(modelAt - t0)
        subject.total.push(t1 - t0)
      }
    }
    const base = summarize(started[0]?.total ?? []).median
    const lines = started.map((subject) => {
      const total = summarize(subject.total).median
      return `| ${subject.variant.name} | ${fmt(summarize(subject.toModel).median)} | ${fmt(total)} | ${total - base >= 0 ? "+" : ""}${fmt(total - base)} | ${subject.total.length} |`
    })
    return [
      "**codex's own turn, bisected** (bare app-server; median ms; each line adds one part of the library's launch)",
      "",
      "| launch | turn/start → model request | turn/start → completed | vs minimal | n |",
      "|---|---|---|---|---|",
      ...lines
    ].join("\n")
  }).pipe(Effect.scoped)
