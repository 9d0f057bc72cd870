/**
 * turns: sequential user turns, each timed from sending it to its completion, through the
 * library (`CodexConversation.sendTurn` + TurnCompleted, with the conversation UI listening),
 * through a bare app-server over stdio, and through `@openai/codex-sdk` (`thread.run`, one
 * `codex exec` per turn). The three are interleaved turn by turn; all answer from one server,
 * which runs in a thread of its own (as the model runs elsewhere in production) and times each
 * model request's arrival itself.
 */
import { Codex } from "@openai/codex-sdk"
import { Effect, Fiber } from "effect"
import { DEMO_MODEL } from "../src/cli/OfflineDemo.ts"
import { freshHome, initialize, minimalHome, runTurn, startAppServer, startThread } from "./bare.ts"
import type { BenchContext, BenchResult } from "./context.ts"
import { now, summarize } from "./harness.ts"
import { awaitConversation, awaitPublished, startSession, turnRunner } from "./library.ts"
import { startModelServerThread } from "./modelServerThread.ts"
import { runTurnParts } from "./turnParts.ts"

export const runTurns = (ctx: BenchContext) =>
  Effect.gen(function*() {
    const server = yield* startModelServerThread
    const library: Array<number> = []
    const bare: Array<number> = []
    const minimal: Array<number> = []
    const minimalToModel: Array<number> = []
    const sdk: Array<number> = []
    // Send → codex's acknowledgement of turn/start, for the library and the bare client.
    const libraryAck: Array<number> = []
    const bareAck: Array<number> = []
    // Bare turn/start → the model request reaching the scripted server (codex's own work).
    const bareToModel: Array<number> = []
    // The library's send → the model request reaching the scripted server.
    const libraryToModel: Array<number> = []
    const { turnRounds, turnsPerRound, warmup } = ctx.counts
    for (let round = 0; round < warmup + turnRounds; round++) {
      const timed = round >= warmup
      yield* Effect.gen(function*() {
        const session = yield* startSession({
          mode: "conversation",
          processId: `bench-turns-${round}`,
          workdir: ctx.space.fresh("turns-lib"),
          baseUrl: server.baseUrl
        })
        yield* awaitPublished(session)
        const turn = yield* turnRunner(yield* awaitConversation(session))

        const bareHome = freshHome(ctx.space.fresh("turns-bare"), server.baseUrl)
        const appServer = yield* Effect.acquireRelease(
          Effect.promise(() => startAppServer(ctx.binary, bareHome, now)),
          (started) => Effect.promise(() => started.stop())
        )
        const threadId = yield* Effect.promise(async () => {
          await initialize(appServer)
          return startThread(appServer, bareHome)
        })

        const leastHome = minimalHome(ctx.space.fresh("turns-minimal"), server.baseUrl)
        const leastServer = yield* Effect.acquireRelease(
          Effect.promise(() => startAppServer(ctx.binary, leastHome, now)),
          (started) => Effect.promise(() => started.stop())
        )
        const leastThread = yield* Effect.promise(async () => {
          await initialize(leastServer)
          return startThread(leastServer, leastHome)
        })

        const sdkHome = freshHome(ctx.space.fresh("turns-sdk"), server.baseUrl)
        const thread = new Codex({ codexPathOverride: ctx.binary, env: sdkHome.env }).startThread({
          model: DEMO_MODEL,
          workingDirectory: sdkHome.workdir,
          sandboxMode: "workspace-write",
          approvalPolicy: "never",
          skipGitRepoCheck: true
        })

        for (let index = 0; index < turnsPerRound; index++) {
          const text = `turn ${index + 1}`
          const libraryFirst = yield* server.requestCount
          const t0 = now()
          const libraryAcked = yield* turn(text)
          const t1 = now()
          const libraryModelAt = yield* server.arrivalOf(libraryFirst + 1)
          const seen = yield* server.requestCount
          const bareAcked = yield* Effect.promise(() => runTurn(appServer, threadId, text, now))
          const t2 = now()
          const modelAt = yield* server.arrivalOf(seen + 1)
          const beforeLeast = yield* server.requestCount
          const leastStart = now()
          yield* Effect.promise(() => runTurn(leastServer, leastThread, text, now))
          const leastDone = now()
          const leastModelAt = yield* server.arrivalOf(beforeLeast + 1)
          const sdkStart = now()
          const answer = yield* Effect.promise(() => thread.run(text))
          const t3 = now()
          if (answer.finalResponse !== "pong") return yield* Effect.die(new Error(`the SDK answered ${JSON.stringify(answer.finalResponse)}`))
          if (!timed) continue
          library.push(t1 - t0)
          bare.push(t2 - t1)
          libraryAck.push(libraryAcked - t0)
          bareAck.push(bareAcked - t1)
          bareToModel.push(modelAt - t1)
          libraryToModel.push(libraryModelAt - t0)
          minimal.push(leastDone - leastStart)
          minimalToModel.push(leastModelAt - leastStart)
          sdk.push(t3 - sdkStart)
        }
        yield* Fiber.interrupt(session.fiber)
      }).pipe(Effect.scoped)
      if (timed) {
        ctx.log(`turns round ${round + 1 - warmup}/${turnRounds}: library ${summarize(library).median.toFixed(1)} ms, ` +
          `bare ${summarize(bare).median.toFixed(1)} ms, sdk ${summarize(sdk).median.toFixed(1)} ms (medians so far)`)
      }
    }
    const parts = yield* runTurnParts(ctx, server, turnRounds * turnsPerRound + 1)
    const lib = summarize(library).median
    const median = (samples: ReadonlyArray<number>) => summarize(samples).median.toFixed(1)
    const paired = library.map((value, index) => value - (bare[index] ?? Number.NaN))
    const afterAck = (total: ReadonlyArray<number>, ack: ReadonlyArray<number>) => total.map((value, index) => value - (ack[index] ?? Number.NaN))
    const result: BenchResult = {
      rows: [
        {
          name: "turns",
          what: `library: sendTurn → TurnCompleted, ${turnsPerRound} sequential turns per session`,
          unit: "ms",
          samples: library,
          baseline: "turns/bare",
          goal: "≤ bare + 2 ms, turn by turn (paired median)",
          // Judged turn by turn (each library turn against the bare turn right after it): the
          // medians of two noisy distributions can meet the goal while most turns do not.
          met: summarize(paired).median <= 2,
          notes: `library − bare = ${(lib - summarize(bare).median).toFixed(1)} ms (median of paired turns ${median(paired)} ms); ` +
            `send → ack ${median(libraryAck)} vs ${median(bareAck)} ms, ack → completed ` +
            `${median(afterAck(library, libraryAck))} vs ${median(afterAck(bare, bareAck))} ms; ` +
            `send → model request ${median(libraryToModel)} vs ${median(bareToModel)} ms, model request → completed ` +
            `${median(afterAck(library, libraryToModel))} vs ${median(afterAck(bare, bareToModel))} ms`
        },
        {
          name: "turns/bare",
          what: "bare app-server over stdio: turn/start → turn/completed",
          unit: "ms",
          samples: bare,
          notes: `codex's own time: turn/start → model request ${median(bareToModel)} ms, then the (instant) answer → ` +
            `turn/completed ${median(afterAck(bare, bareToModel))} ms`
        },
        {
          name: "turns/bare-minimal",
          what: "minimal bare client (clean environment, provider-only config.toml): turn/start → turn/completed",
          unit: "ms",
          samples: minimal,
          baseline: "turns/bare",
          goal: "the library's codex turn (turns/bare) ≤ this + 5 ms",
          met: summarize(bare).median <= summarize(minimal).median + 5,
          notes: `turn/start → model request ${median(minimalToModel)} ms (ours: ${median(bareToModel)} ms)`
        },
        {
          name: "turns/sdk",
          what: "@openai/codex-sdk thread.run (codex exec per turn)",
          unit: "ms",
          samples: sdk,
          baseline: "turns",
          goal: "≥ 4.5× the library",
          met: summarize(sdk).median >= 4.5 * lib
        }
      ],
      sections: [parts]
    }
    return result
  }).pipe(Effect.scoped)
