/**
 * start: a conversation task from `runCodexSession` until its listener is published (thread
 * ready, UI serving), against a bare `codex app-server` spawn → `initialize` → `thread/start`
 * with a fresh CODEX_HOME. Both sides create their directories inside the timed span. A third
 * subject measures the fix for codex's first-use cost: the bare start from a copy of a template
 * CODEX_HOME primed once (initialized, then stopped), without its installation_id.
 */
import { Effect, Fiber } from "effect"
import { ScriptedModelServer } from "../src/modelserver/ScriptedModelServer.ts"
import { freshHome, homeFromTemplate, initialize, minimalHome, startAppServer, startThread } from "./bare.ts"
import type { BareHome } from "./bare.ts"
import type { BenchContext, BenchResult } from "./context.ts"
import { now, renderPhases, summarize } from "./harness.ts"
import type { Timeline } from "./harness.ts"
import { awaitPublished, startSession, timelineOf } from "./library.ts"

export const runStart = (ctx: BenchContext) =>
  Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([], { exhaustedText: "pong" })
    const library: Array<number> = []
    const bare: Array<number> = []
    const templated: Array<number> = []
    const minimal: Array<number> = []
    const minimalTimelines: Array<Timeline> = []
    const libraryTimelines: Array<Timeline> = []
    const bareTimelines: Array<Timeline> = []
    const templateTimelines: Array<Timeline> = []
    const template = yield* Effect.promise(() => primeTemplate(ctx, server.baseUrl))
    const total = ctx.counts.warmup + ctx.counts.start
    for (let round = 0; round < total; round++) {
      const timed = round >= ctx.counts.warmup
      const lib = yield* libraryStart(ctx, server.baseUrl, round)
      const raw = yield* Effect.promise(() => bareStart(ctx, (root) => freshHome(root, server.baseUrl)))
      const copied = yield* Effect.promise(() => bareStart(ctx, (root) => homeFromTemplate(root, server.baseUrl, template)))
      const least = yield* Effect.promise(() => bareStart(ctx, (root) => minimalHome(root, server.baseUrl)))
      if (!timed) continue
      library.push(lib.total)
      libraryTimelines.push(lib.timeline)
      bare.push(raw.total)
      bareTimelines.push(raw.timeline)
      templated.push(copied.total)
      templateTimelines.push(copied.timeline)
      minimal.push(least.total)
      minimalTimelines.push(least.timeline)
      ctx.log(`start ${round + 1 - ctx.counts.warmup}/${ctx.counts.start}: library ${lib.total.toFixed(0)} ms, ` +
        `bare ${raw.total.toFixed(0)} ms, bare from template ${copied.total.toFixed(0)} ms, minimal bare ${least.total.toFixed(0)} ms`)
    }
    const met = summarize(library).median <= 0.75 * summarize(bare).median
    const result: BenchResult = {
      rows: [
        {
          name: "start",
          what: "library: runCodexSession → thread ready, listener published",
          unit: "ms",
          samples: library,
          baseline: "start/bare-fresh",
          goal: "≤ 0.75× bare fresh start",
          met
        },
        {
          name: "start/bare-fresh",
          what: "bare app-server: fresh CODEX_HOME, spawn → initialize → thread/start",
          unit: "ms",
          samples: bare
        },
        {
          name: "start/bare-template",
          what: "bare app-server: CODEX_HOME copied from a primed template (new installation_id), spawn → thread/start",
          unit: "ms",
          samples: templated,
          baseline: "start/bare-fresh",
          notes: "the same template the library primes per codex version (BinaryCache.primeCodexHome)"
        },
        {
          name: "start/bare-minimal",
          what: "minimal bare client: clean environment, config.toml with the provider only, spawn → thread/start",
          unit: "ms",
          samples: minimal,
          baseline: "start/bare-fresh"
        }
      ],
      sections: [
        renderPhases("start phases, library", libraryTimelines),
        renderPhases("start phases, bare app-server", bareTimelines),
        renderPhases("start phases, bare app-server from a template home", templateTimelines),
        renderPhases("start phases, minimal bare client", minimalTimelines)
      ],
      data: { libraryTimelines, bareTimelines, templateTimelines, minimalTimelines }
    }
    return result
  }).pipe(Effect.scoped)

const libraryStart = (ctx: BenchContext, baseUrl: string, round: number) =>
  Effect.gen(function*() {
    const workdir = ctx.space.fresh("start-lib")
    const session = yield* startSession({ mode: "conversation", processId: `bench-start-${round}`, workdir, baseUrl })
    const published = yield* awaitPublished(session)
    yield* Fiber.interrupt(session.fiber)
    return {
      total: published.at - session.startedAt,
      timeline: timelineOf(session, { "upstream published": [published.at, published.at] })
    }
  }).pipe(Effect.scoped)

const bareStart = async (ctx: BenchContext, makeHome: (root: string) => BareHome) => {
  const begun = now()
  const home = makeHome(ctx.space.fresh("start-bare"))
  const homeReady = now()
  const server = await startAppServer(ctx.binary, home, now)
  const initStart = now()
  await initialize(server)
  const initDone = now()
  await startThread(server, home)
  const threadDone = now()
  await server.stop()
  const timeline: Timeline = {
    "home + config.toml": [0, homeReady - begun],
    "spawn app-server": [homeReady - begun, server.spawnedAt - begun],
    "rpc initialize": [initStart - begun, initDone - begun],
    "rpc thread/start": [initDone - begun, threadDone - begun]
  }
  return { total: threadDone - begun, timeline }
}

/** A CODEX_HOME that codex has initialized once (then stopped): the template to copy. */
const primeTemplate = async (ctx: BenchContext, baseUrl: string) => {
  const home = freshHome(ctx.space.fresh("start-template"), baseUrl)
  const server = await startAppServer(ctx.binary, home, now)
  await initialize(server)
  await server.stop()
  return home.codexHome
}
