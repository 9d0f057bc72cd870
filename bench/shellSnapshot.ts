/**
 * What codex's shell-snapshot feature costs or saves per tool command: `codex exec` runs 1 and 21
 * scripted `exec_command`s against the scripted model server, with the feature on (codex's
 * default) and off (`-c features.shell_snapshot=false`); the per-command figure is
 * (T21 − T1) / 20, the median of `ROUNDS` runs each. Run: `node bench/shellSnapshot.ts`.
 */
import { Effect } from "effect"
import { ModelScript } from "../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../src/modelserver/ScriptedModelServer.ts"
import { codexExec, offlineCodexDirs } from "../test/support/offlineCodex.ts"

const ROUNDS = Number(process.env["ROUNDS"] ?? 3)

const timedRun = (commands: number, snapshot: boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([
      ...Array.from({ length: commands }, (_, index) => ModelScript.execCommand(`echo step-${index}`)),
      ModelScript.text("done")
    ])
    const dirs = yield* offlineCodexDirs("bench-shell-snapshot", { baseUrl: server.baseUrl, model: "bench-model" })
    const started = performance.now()
    const exit = yield* codexExec(dirs, [
      "--skip-git-repo-check",
      "--sandbox",
      "workspace-write",
      ...(snapshot ? [] : ["-c", "features.shell_snapshot=false"]),
      "go"
    ])
    const elapsed = performance.now() - started
    if (exit.code !== 0) return yield* Effect.fail(new Error(`codex exited ${exit.code}: ${exit.stderr.slice(-500)}`))
    return elapsed
  }))

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN

const main = Effect.gen(function*() {
  const results: Record<string, number> = {}
  for (const snapshot of [true, false]) {
    for (const commands of [1, 21]) {
      const times: Array<number> = []
      for (let round = 0; round < ROUNDS; round++) times.push(yield* timedRun(commands, snapshot))
      results[`${snapshot ? "on" : "off"}-${commands}`] = median(times)
    }
  }
  const perCommand = (mode: string) => ((results[`${mode}-21`] ?? 0) - (results[`${mode}-1`] ?? 0)) / 20
  const lines = [
    `shell snapshot on:  1 command ${results["on-1"]?.toFixed(0)} ms, 21 commands ${results["on-21"]?.toFixed(0)} ms → ${perCommand("on").toFixed(1)} ms per command`,
    `shell snapshot off: 1 command ${results["off-1"]?.toFixed(0)} ms, 21 commands ${results["off-21"]?.toFixed(0)} ms → ${perCommand("off").toFixed(1)} ms per command`
  ]
  process.stdout.write(`${lines.join("\n")}\n`)
})

await Effect.runPromise(main)
