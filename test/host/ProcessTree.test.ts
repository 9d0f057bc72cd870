/**
 * ProcessTree under descriptor pressure: a worker with few descriptors left (100 terminal
 * viewers closing at once) must still read the whole process table, or fail — never return a
 * table with holes that makes a teardown miss processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync, spawn } from "node:child_process"
import { readdirSync } from "node:fs"
import { join } from "node:path"

const MODULE = join(process.cwd(), "src", "host", "ProcessTree.ts")

/** The pids a fresh node process sees in its table when it may hold at most `limit` descriptors. */
const tableWithDescriptorLimit = (limit: number): { readonly pids?: ReadonlyArray<number>; readonly error?: string } => {
  const script = `Promise.all([import(${JSON.stringify(MODULE)}), import("effect")])` +
    `.then(([m, { Effect }]) => Effect.runPromise(Effect.flatMap(m.makeProcessTable, (table) => table.read))).then(` +
    `(t) => process.stdout.write(JSON.stringify({ pids: t.map((e) => e.pid) })),` +
    `(e) => process.stdout.write(JSON.stringify({ error: String(e?.cause?.code ?? e) })))`
  const out = execFileSync("sh", ["-c", `ulimit -n ${limit} && exec "$0" -e "$1"`, process.execPath, script], { encoding: "utf8" })
  return JSON.parse(out) as { readonly pids?: ReadonlyArray<number>; readonly error?: string }
}

describe("readProcessTable", () => {
  it("finding 6: with few descriptors left the table still holds every process (bounded opens, no swallowed EMFILE)", () => {
    const sleeper = spawn("sleep", ["60"], { stdio: "ignore" })
    // A quiet machine (CI) may run fewer processes than the limit allows descriptors: add enough.
    const running = () => readdirSync("/proc").filter((name) => /^\d+$/.test(name)).length
    const extra = Array.from({ length: Math.max(0, 140 - running()) }, () => spawn("sleep", ["60"], { stdio: "ignore" }))
    try {
      const expected = running()
      assert.isAbove(expected, 100, "enough processes on the machine to exhaust 64 descriptors")
      const result = tableWithDescriptorLimit(64)
      assert.isUndefined(result.error)
      const pids = result.pids ?? []
      assert.include(pids, sleeper.pid)
      assert.include(pids, process.pid)
      // Processes come and go meanwhile; a hole from failed opens would be far larger.
      assert.isAtLeast(pids.length, expected - 20)
    } finally {
      sleeper.kill("SIGKILL")
      for (const child of extra) child.kill("SIGKILL")
    }
  })
})
