/**
 * memory: N conversation sessions live at once, each after one turn. The worker's growth per
 * session (RSS and V8 heap of this process after a full GC, codex excluded since it is another
 * process) and codex's proportional memory per instance (PSS), checking that every codex runs
 * the one cached binary file. Then the same N as bare app-servers, for the PSS baseline.
 */
import { Effect, Fiber } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { ScriptedModelServer } from "../src/modelserver/ScriptedModelServer.ts"
import { freshHome, initialize, runTurn, startAppServer, startThread } from "./bare.ts"
import type { BenchContext, BenchResult } from "./context.ts"
import { now, summarize } from "./harness.ts"
import { awaitConversation, awaitPublished, startSession, turnRunner } from "./library.ts"
import { exeIdentity, pssMiB } from "./system.ts"

setFlagsFromString("--expose-gc")
const gc: unknown = runInNewContext("gc")

const collectGarbage = () => {
  if (typeof gc !== "function") return
  gc()
  gc()
}

export const runMemory = (ctx: BenchContext) =>
  Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([], { exhaustedText: "pong" })
    const count = ctx.counts.memorySessions
    const startOne = (index: number) =>
      Effect.gen(function*() {
        const session = yield* startSession({
          mode: "conversation",
          processId: `bench-memory-${index}`,
          workdir: ctx.space.fresh("memory-lib"),
          baseUrl: server.baseUrl
        })
        yield* awaitPublished(session)
        const conversation = yield* awaitConversation(session)
        yield* (yield* turnRunner(conversation))("hello")
        return { session, pid: conversation.pid }
      })

    // One session first, so loading and compiling the code is not counted as growth.
    yield* startOne(-1).pipe(Effect.flatMap(({ session }) => Fiber.interrupt(session.fiber)), Effect.scoped)
    collectGarbage()
    const before = process.memoryUsage()

    const library = yield* Effect.gen(function*() {
      const began = now()
      const sessions = yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), startOne, { concurrency: "unbounded" })
      ctx.log(`memory: ${count} library sessions live after ${((now() - began) / 1000).toFixed(1)} s`)
      collectGarbage()
      const after = process.memoryUsage()
      const pss = sessions.map(({ pid }) => pssMiB(pid))
      const binaries = new Set(sessions.map(({ pid }) => exeIdentity(pid)))
      yield* Effect.forEach(sessions, ({ session }) => Fiber.interrupt(session.fiber), { concurrency: "unbounded" })
      return {
        rssPerSession: (after.rss - before.rss) / count / 1e6,
        heapPerSession: (after.heapUsed - before.heapUsed) / count / 1e6,
        rssBefore: before.rss / 1e6,
        rssAfter: after.rss / 1e6,
        pss,
        binaries: [...binaries]
      }
    }).pipe(Effect.scoped)

    const bare = yield* Effect.promise(async () => {
      const servers = await Promise.all(Array.from({ length: count }, async () => {
        const home = freshHome(ctx.space.fresh("memory-bare"), server.baseUrl)
        const appServer = await startAppServer(ctx.binary, home, now)
        await initialize(appServer)
        await runTurn(appServer, await startThread(appServer, home), "hello", now)
        return appServer
      }))
      const pss = servers.map((started) => pssMiB(started.pid))
      const binaries = new Set(servers.map((started) => exeIdentity(started.pid)))
      await Promise.all(servers.map((started) => started.stop()))
      return { pss, binaries: [...binaries] }
    })

    const oneBinary = library.binaries.length === 1
    const codexMedian = summarize(library.pss).median
    const result: BenchResult = {
      rows: [
        {
          name: "memory/worker",
          what: `worker RSS growth per live conversation session (${count} sessions, after a GC)`,
          unit: "MB",
          samples: [library.rssPerSession],
          n: count,
          goal: "≤ 25 MB",
          met: library.rssPerSession <= 25,
          notes: `V8 heap growth ${library.heapPerSession.toFixed(2)} MB per session; ` +
            `RSS ${library.rssBefore.toFixed(0)} → ${library.rssAfter.toFixed(0)} MB`
        },
        {
          name: "memory/codex",
          what: `codex app-server PSS per instance, ${count} library sessions`,
          unit: "MiB",
          samples: library.pss,
          baseline: "memory/codex-bare",
          goal: "≤ 40 MiB, one binary file",
          met: codexMedian <= 40 && oneBinary,
          notes: oneBinary ? `all run one file (${library.binaries[0]})` : `${library.binaries.length} different binary files`
        },
        {
          name: "memory/codex-bare",
          what: `bare app-server PSS per instance, ${count} at once`,
          unit: "MiB",
          samples: bare.pss,
          notes: `${bare.binaries.length} binary file(s)`
        }
      ],
      data: { library, bare }
    }
    return result
  }).pipe(Effect.scoped)
