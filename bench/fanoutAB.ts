/**
 * The fan-out rows for this tree and an older commit, interleaved round by round in one process,
 * so both builds see the same machine load:
 *
 *   node bench/fanoutAB.ts --before <git ref> [--rounds 4] [--seconds 5] [--viewers 10,100]
 *
 * The older commit's `src/` is exported to `.cache/ab/<ref>/` and its ConversationListener is
 * loaded from there. Prints one line per run (p50, p99, loops' utilization, load average) and the
 * medians per build and viewer count.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, References } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { loadavg } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { ConversationListener } from "../src/conversation/ConversationListener.ts"
import { COUNTS } from "./context.ts"
import type { BenchContext } from "./context.ts"
import { measureFanout } from "./fanout.ts"
import type { FanoutRun, ServeListener } from "./fanout.ts"
import { quantile } from "./harness.ts"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const argument = (name: string, fallback: string) => {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] ?? fallback : fallback
}
const beforeRef = argument("--before", "")
if (beforeRef === "") throw new Error("usage: node bench/fanoutAB.ts --before <git ref> [--rounds N] [--seconds S] [--viewers 10,100]")
const rounds = Number(argument("--rounds", "4"))
const seconds = Number(argument("--seconds", "5"))
const viewerCounts = argument("--viewers", "10,100").split(",").map(Number)

/** The older build's `serve`, from its own copy of `src/` (it resolves `effect` from here). */
const loadBefore = async (): Promise<ServeListener> => {
  const sha = execFileSync("git", ["rev-parse", "--short", beforeRef], { cwd: repoRoot, encoding: "utf8" }).trim()
  const dir = join(repoRoot, ".cache", "ab", sha)
  if (!existsSync(join(dir, "src"))) {
    mkdirSync(dir, { recursive: true })
    execFileSync("sh", ["-c", `git archive ${sha} src | tar -x -C "${dir}"`], { cwd: repoRoot })
  }
  const module: { readonly ConversationListener: typeof ConversationListener } = await import(
    pathToFileURL(join(dir, "src", "conversation", "ConversationListener.ts")).href
  )
  return serveWith(module.ConversationListener)
}

const serveWith = (service: typeof ConversationListener): ServeListener => (handle) =>
  Effect.gen(function*() {
    const listener = yield* service
    return yield* listener.serve(handle)
  }).pipe(Effect.provide(service.layer))

const afterServe = serveWith(ConversationListener)

interface Sample {
  readonly build: "before" | "after"
  readonly viewers: number
  readonly p50: number
  readonly p99: number
  readonly listenerBusy: number
  readonly viewersBusy: number
  readonly listenerCpu: number
  readonly viewersCpu: number
  readonly liveP99: number
  readonly resumed: number
  readonly gapP50: number
  readonly gapP99: number
  readonly listenerDelay: number
  readonly viewersDelay: number
  readonly load: number
  readonly lost: number
  readonly duplicates: number
}

const median = (values: ReadonlyArray<number>) => quantile(values, 0.5)

const program = Effect.gen(function*() {
  const beforeServe = yield* Effect.promise(loadBefore)
  const ctx: BenchContext = {
    counts: { ...COUNTS.full, fanoutSeconds: seconds },
    space: { root: "", filesystem: "tmpfs", fresh: () => "" },
    binary: "",
    log: () => {}
  }
  const samples: Array<Sample> = []
  process.stdout.write(`A/B fan-out: before ${beforeRef}, after = this tree; ${rounds} rounds × ${seconds} s at ${ctx.counts.fanoutRate} events/s\n`)
  for (let round = 0; round < rounds; round++) {
    // Alternate which build goes first, so a trend in the load does not favour one of them.
    const order = round % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const)
    for (const viewers of viewerCounts) {
      for (const build of order) {
        const run: FanoutRun = yield* measureFanout(ctx, viewers, build === "before" ? beforeServe : afterServe)
        const sample: Sample = {
          build,
          viewers,
          p50: quantile(run.latencies, 0.5),
          p99: run.p99,
          listenerBusy: run.listenerLoop.utilization,
          viewersBusy: run.viewerLoop.utilization,
          listenerCpu: run.listenerLoop.cpu,
          viewersCpu: run.viewerLoop.cpu,
          liveP99: run.liveP99,
          resumed: run.resumed,
          gapP50: run.reconnectGap.p50,
          gapP99: run.reconnectGap.p99,
          listenerDelay: run.listenerLoop.delayP99,
          viewersDelay: run.viewerLoop.delayP99,
          load: loadavg()[0] ?? Number.NaN,
          lost: run.lost,
          duplicates: run.duplicates
        }
        samples.push(sample)
        process.stdout.write(
          `round ${round + 1} ${build.padEnd(6)} ${String(viewers).padStart(3)} viewers: p50 ${sample.p50.toFixed(2)} ms, p99 ${sample.p99.toFixed(2)} ms ` +
            `(live only ${sample.liveP99.toFixed(2)} ms; ${sample.resumed} waited for a reconnect, reconnect p50 ${sample.gapP50.toFixed(1)} / p99 ${sample.gapP99.toFixed(1)} ms), ` +
            `listener loop ${(sample.listenerBusy * 100).toFixed(0)}% busy / ${(sample.listenerCpu * 100).toFixed(0)}% CPU / p99 delay ${sample.listenerDelay.toFixed(1)} ms, ` +
            `viewers' loop ${(sample.viewersBusy * 100).toFixed(0)}% / ${(sample.viewersCpu * 100).toFixed(0)}% CPU / p99 delay ${sample.viewersDelay.toFixed(1)} ms, ` +
            `lost ${sample.lost}, dup ${sample.duplicates}, load ${sample.load.toFixed(2)}\n`
        )
      }
    }
  }
  process.stdout.write("\n| build | viewers | p50 (median of runs) | p99 (median) | p99 (each run) | p99 live only (median) | reconnect p50 / p99 (median) | listener loop busy (median) | listener thread CPU (median) | viewers' thread CPU (median) | loop delay p99, listener / viewers (median) | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
  for (const viewers of viewerCounts) {
    for (const build of ["before", "after"] as const) {
      const runs = samples.filter((sample) => sample.build === build && sample.viewers === viewers)
      process.stdout.write(
        `| ${build} | ${viewers} | ${median(runs.map((r) => r.p50)).toFixed(2)} ms | ${median(runs.map((r) => r.p99)).toFixed(2)} ms | ` +
          `${runs.map((r) => r.p99.toFixed(1)).join(", ")} | ${median(runs.map((r) => r.liveP99)).toFixed(2)} ms | ` +
          `${median(runs.map((r) => r.gapP50)).toFixed(1)} / ${median(runs.map((r) => r.gapP99)).toFixed(1)} ms | ${(median(runs.map((r) => r.listenerBusy)) * 100).toFixed(0)}% | ` +
          `${(median(runs.map((r) => r.listenerCpu)) * 100).toFixed(0)}% | ${(median(runs.map((r) => r.viewersCpu)) * 100).toFixed(0)}% | ` +
          `${median(runs.map((r) => r.listenerDelay)).toFixed(1)} / ${median(runs.map((r) => r.viewersDelay)).toFixed(1)} ms | ${runs.map((r) => r.load.toFixed(2)).join(", ")} |\n`
      )
    }
  }
}).pipe(Effect.provideService(References.MinimumLogLevel, "Error"))

NodeRuntime.runMain(program)
