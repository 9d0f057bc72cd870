/**
 * Runs the example worker: three codex tasks at once — an offline TUI task, an offline
 * conversation, and one cancelled mid-turn — printing their progress and widget upstreams, then
 * one `OUTCOME {…}` line per task. Usage: `node src/main.ts [work-dir]` (default ./work).
 * Exits 1 if a task failed.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer } from "effect"
import { resolve } from "node:path"
import { layerCodexServices, LocalHost, Store } from "optio-codex"
import { CodexRunner, exampleTasks, runTasks } from "./Worker.ts"

const workRoot = resolve(process.argv[2] ?? "work")

const services = CodexRunner.layerOffline(workRoot, Console.log).pipe(
  Layer.provide(
    // This worker keeps nothing between runs: no seeds, no resume (Store.layerEmbedded would).
    layerCodexServices().pipe(Layer.provideMerge(Layer.merge(Store.layerNone, LocalHost.layer())))
  )
)

const program = Effect.gen(function*() {
  const outcomes = yield* runTasks(exampleTasks)
  for (const outcome of outcomes) yield* Console.log(`OUTCOME ${JSON.stringify(outcome)}`)
  if (outcomes.some((outcome) => outcome.status === "failed")) return yield* Effect.fail("a task failed")
})

NodeRuntime.runMain(program.pipe(Effect.provide(services)))
