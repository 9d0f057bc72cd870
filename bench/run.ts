/**
 * `npm run bench`: runs every benchmark in this one process, each subject interleaved with its
 * baselines round by round, against the scripted model server; prints the machine, a markdown
 * table and the phase breakdowns, and writes everything to `.cache/bench/latest.json`.
 *
 *   node bench/run.ts [--quick] [--only start,turns,cancel,fanout,memory,tui,snapshot]
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, References } from "effect"
import type { Layer } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { BinaryCache } from "../src/binary/BinaryCache.ts"
import { COUNTS } from "./context.ts"
import type { BenchContext, BenchResult } from "./context.ts"
import { now, renderTable, ROW_NAMES, summarize } from "./harness.ts"
import type { Row } from "./harness.ts"
import { libraryServices } from "./library.ts"
import { runMemory } from "./memory.ts"
import { runCancel } from "./cancel.ts"
import { runFanout } from "./fanout.ts"
import { runSnapshot } from "./snapshot.ts"
import { runStart } from "./start.ts"
import { runTurns } from "./turns.ts"
import { loadNow, machine, workspace } from "./system.ts"
import { runTui } from "./tui.ts"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const benchDir = join(repoRoot, ".cache", "bench")
const quick = process.argv.includes("--quick")
const onlyArg = process.argv[process.argv.indexOf("--only") + 1]
const only = process.argv.includes("--only") && onlyArg !== undefined ? new Set(onlyArg.split(",")) : undefined

// Memory first: the worker's growth is measured before the other benchmarks have grown the heap
// (freed memory stays in the RSS and would hide the growth).
const BENCHMARKS: ReadonlyArray<readonly [string, (ctx: BenchContext) => Effect.Effect<BenchResult, unknown, Services>]> = [
  ["memory", runMemory],
  ["start", runStart],
  ["turns", runTurns],
  ["cancel", runCancel],
  ["tui", runTui],
  ["fanout", runFanout],
  ["snapshot", runSnapshot]
]

type Services = Layer.Success<ReturnType<typeof libraryServices>>

const program = Effect.gen(function*() {
  const began = now()
  const space = yield* workspace(benchDir)
  const codex = yield* (yield* BinaryCache).resolve
  const info = machine(codex.binaryPath, space.filesystem)
  const ctx: BenchContext = {
    counts: quick ? COUNTS.quick : COUNTS.full,
    space,
    binary: codex.binaryPath,
    log: (line) => process.stderr.write(`[bench] ${line}\n`)
  }
  ctx.log(`${quick ? "quick" : "full"} run; work trees on ${space.filesystem} at ${space.root}`)
  const rows: Array<Row> = []
  const sections: Array<string> = []
  const data: Record<string, unknown> = {}
  // Each benchmark's load at its start: a row run right after one that left the machine busy
  // reads differently, and the 1-minute average says so.
  const loadByBenchmark: Array<string> = []
  for (const [name, bench] of BENCHMARKS) {
    if (only !== undefined && !only.has(name)) continue
    loadByBenchmark.push(`${name} ${loadNow()}`)
    const heap = process.memoryUsage()
    ctx.log(`${name}… (load average ${loadNow()}; worker heap ${(heap.heapUsed / 1e6).toFixed(0)} MB used of ${(heap.heapTotal / 1e6).toFixed(0)} MB, RSS ${(heap.rss / 1e6).toFixed(0)} MB)`)
    const result = yield* bench(ctx)
    rows.push(...result.rows)
    sections.push(...(result.sections ?? []))
    data[name] = result.data ?? {}
  }
  const ordered = ROW_NAMES.map((name): Row =>
    rows.find((row) => row.name === name) ?? { name, what: "(not run)", unit: "ms", samples: [] }
  )
  const seconds = (now() - began) / 1000
  const out = [
    `## optio-codex benchmarks (${quick ? "quick" : "full"} run, ${info.date})`,
    "",
    `Machine: ${info.cpu}, ${info.cores} cores, ${info.memoryGiB} GiB, Linux ${info.kernel}, Node ${info.node}, ${info.codex}; ` +
      `work trees on ${info.workTree}. Run took ${seconds.toFixed(0)} s; load average ${info.loadAtStart} at start, ${loadNow()} at end; ` +
        `at each benchmark's start: ${loadByBenchmark.join(", ")}.`,
    "",
    renderTable(ordered),
    "",
    ...sections.flatMap((section) => [section, ""])
  ].join("\n")
  process.stdout.write(`${out}\n`)
  mkdirSync(benchDir, { recursive: true })
  const jsonPath = join(benchDir, "latest.json")
  writeFileSync(jsonPath, JSON.stringify({
    mode: quick ? "quick" : "full",
    machine: { ...info, loadAtEnd: loadNow() },
    seconds,
    rows: ordered.map((row) => ({ ...row, summary: summarize(row.samples), samples: row.samples.length <= 2000 ? Array.from(row.samples) : [] })),
    data
  }, null, 2))
  process.stdout.write(`JSON: ${jsonPath}\n`)
}).pipe(
  Effect.scoped,
  Effect.provide(libraryServices(join(repoRoot, ".cache", "codex-bin"))),
  Effect.provideService(References.MinimumLogLevel, "Error")
)

NodeRuntime.runMain(program)
