/**
 * Rollout discovery (spec §8.5, P35) and optio.log rotation (§8.9) on the real local host.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { newestRolloutId, rotateOptioLog } from "../../src/snapshots/WorkdirSnapshot.ts"

const root = join(process.cwd(), ".cache", "test-runs", `resume-files-${process.pid}`)
fs.rmSync(root, { recursive: true, force: true })
fs.mkdirSync(root, { recursive: true })
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

let counter = 0
const freshDir = (name: string) => {
  const dir = join(root, `${name}-${++counter}`)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

const UUID_OLD = "0199a213-81c0-7800-8aa1-bbab2a035a53"
const UUID_NEW = "0199b000-0000-7000-8000-00000000abcd"
const UUID_UPPER = "0199C000-0000-7000-8000-00000000ABCD"

const writeRollout = (codexHome: string, day: string, name: string, mtime?: Date) => {
  const dir = join(codexHome, "sessions", ...day.split("/"))
  fs.mkdirSync(dir, { recursive: true })
  const path = join(dir, name)
  fs.writeFileSync(path, "{}\n")
  if (mtime !== undefined) fs.utimesSync(path, mtime, mtime)
}

describe("newestRolloutId", () => {
  it.live("picks the newest by name in byte order, not by mtime", () =>
    Effect.gen(function*() {
      const home = freshDir("codex-home")
      writeRollout(home, "2026/11/26", `rollout-2026-11-26T23-59-59-${UUID_OLD}.jsonl`, new Date("2030-01-01T00:00:00Z"))
      writeRollout(home, "2026/11/27", `rollout-2026-11-27T08-00-00-${UUID_NEW}.jsonl`, new Date("2020-01-01T00:00:00Z"))
      assert.deepStrictEqual(yield* newestRolloutId(home), Option.some(UUID_NEW))
      // Upper-case hex is accepted; "T10" sorts after "T08" byte-wise.
      writeRollout(home, "2026/11/27", `rollout-2026-11-27T10-00-00-${UUID_UPPER}.jsonl`)
      assert.deepStrictEqual(yield* newestRolloutId(home), Option.some(UUID_UPPER))
    }).pipe(Effect.provide(LocalHost.layer())))

  it.live("P35: an unparseable newest name falls back to the next one", () =>
    Effect.gen(function*() {
      const home = freshDir("codex-home")
      writeRollout(home, "2026/11/27", `rollout-2026-11-27T08-00-00-${UUID_OLD}.jsonl`)
      writeRollout(home, "2026/11/28", "rollout-2026-11-28T09-00-00-not-a-uuid.jsonl")
      writeRollout(home, "2026/11/28", "rollout-zzzz.jsonl")
      fs.writeFileSync(join(home, "sessions", "2026", "11", "28", "notes.jsonl"), "")
      assert.deepStrictEqual(yield* newestRolloutId(home), Option.some(UUID_OLD))
    }).pipe(Effect.provide(LocalHost.layer())))

  it.live("none without a sessions directory or without a parseable rollout", () =>
    Effect.gen(function*() {
      const home = freshDir("codex-home")
      assert.deepStrictEqual(yield* newestRolloutId(home), Option.none())
      writeRollout(home, "2026/11/28", "rollout-broken.jsonl")
      assert.deepStrictEqual(yield* newestRolloutId(home), Option.none())
    }).pipe(Effect.provide(LocalHost.layer())))
})

describe("rotateOptioLog", () => {
  it.live("missing or empty log: an empty log and no .old", () =>
    Effect.gen(function*() {
      const dir = freshDir("rotate-empty")
      const log = join(dir, "optio.log")
      yield* rotateOptioLog(log)
      assert.strictEqual(fs.readFileSync(log, "utf8"), "")
      assert.isFalse(fs.existsSync(`${log}.old`))
      yield* rotateOptioLog(log)
      assert.strictEqual(fs.readFileSync(log, "utf8"), "")
      assert.isFalse(fs.existsSync(`${log}.old`))
    }).pipe(Effect.provide(LocalHost.layer())))

  it.live("moves the log into .old and appends on the next rotation", () =>
    Effect.gen(function*() {
      const dir = freshDir("rotate")
      const log = join(dir, "optio.log")
      fs.writeFileSync(log, "first run\nDONE\n")
      yield* rotateOptioLog(log)
      assert.strictEqual(fs.readFileSync(log, "utf8"), "")
      assert.strictEqual(fs.readFileSync(`${log}.old`, "utf8"), "first run\nDONE\n")
      fs.writeFileSync(log, "second run\nERROR boom\n")
      yield* rotateOptioLog(log)
      assert.strictEqual(fs.readFileSync(log, "utf8"), "")
      assert.strictEqual(fs.readFileSync(`${log}.old`, "utf8"), "first run\nDONE\nsecond run\nERROR boom\n")
    }).pipe(Effect.provide(LocalHost.layer())))

  it.live("finding 4: a restored optio.log that is a symlink or FIFO copies nothing into the workdir and does not hang", () =>
    Effect.gen(function*() {
      const dir = freshDir("rotate-planted")
      const secret = join(root, `secret-${counter}.txt`)
      fs.writeFileSync(secret, "WORKER-ONLY SECRET\n")
      const log = join(dir, "optio.log")
      fs.symlinkSync(secret, log)
      fs.symlinkSync(secret, `${log}.old`)
      yield* rotateOptioLog(log)
      assert.strictEqual(fs.readFileSync(log, "utf8"), "")
      assert.isFalse(fs.readdirSync(dir).some((name) => fs.lstatSync(join(dir, name)).isFile() && fs.readFileSync(join(dir, name), "utf8").includes("SECRET")))
      assert.strictEqual(fs.readFileSync(secret, "utf8"), "WORKER-ONLY SECRET\n")
      fs.rmSync(log)
      execFileSync("mkfifo", [log])
      yield* rotateOptioLog(log).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(fs.readFileSync(log, "utf8"), "")
    }).pipe(Effect.provide(LocalHost.layer())))
})
