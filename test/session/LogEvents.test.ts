import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { OptioLogEvent } from "../../src/protocol/OptioLogEvent.ts"
import { Host } from "../../src/host/Host.ts"
import { makeHookContext } from "../../src/session/HookContext.ts"
import type { CodexTaskHooks } from "../../src/session/Hooks.ts"
import { handleLogEvent } from "../../src/session/LogEvents.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { taskPaths } from "../../src/workdir/TaskPaths.ts"
import { symlinkSwapper } from "../support/symlinkSwapper.ts"

const root = join(process.cwd(), ".cache", "test", `log-events-${process.pid}`)
rmSync(root, { recursive: true, force: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))
let counter = 0

const setup = Effect.gen(function*() {
  const workdir = join(root, `w${++counter}`)
  mkdirSync(join(workdir, "deliverables"), { recursive: true })
  const paths = yield* taskPaths({ processId: "p", taskRoot: join(root, "tasks"), workdir })
  const sent: Array<string> = []
  const send = (message: string) => Effect.sync(() => void sent.push(message))
  const hooksOn = yield* makeHookContext({ processId: "p", workdir, host: yield* Host, task: yield* TaskContext })
  yield* hooksOn.attachAgentChannel(send)
  return { workdir, paths, sent, send, hookContext: hooksOn.context }
})

const services = Layer.mergeAll(TaskContext.layerRecording({ processId: "p" }), LocalHost.layer())

describe("handleLogEvent", () => {
  it.live("STATUS, BROWSER, ATTENTION and unknown lines reach the TaskContext", () =>
    Effect.gen(function*() {
      const { paths, send, hookContext } = yield* setup
      const context = { paths, hooks: {}, hookContext, send }
      yield* handleLogEvent(OptioLogEvent.Status({ percent: 40, message: "working" }), context)
      yield* handleLogEvent(OptioLogEvent.Browser({ url: "https://auth.example/login" }), context)
      yield* handleLogEvent(OptioLogEvent.Attention({ reason: "need a human" }), context)
      yield* handleLogEvent(OptioLogEvent.Unknown({ text: "free text" }), context)
      const record = yield* (yield* TaskRecorder).current
      assert.deepStrictEqual(record.progress, [{ percent: 40, message: "working" }, { percent: null, message: "free text" }])
      assert.deepStrictEqual(record.browserOpenRequests, ["https://auth.example/login"])
      assert.deepStrictEqual(record.attentionRequests, ["need a human"])
    }).pipe(Effect.provide(services)))

  it.live("a deliverable is read through the host, handed to the hook, and acknowledged", () =>
    Effect.gen(function*() {
      const { workdir, paths, sent, send, hookContext } = yield* setup
      mkdirSync(join(workdir, "deliverables", "docs"))
      writeFileSync(join(workdir, "deliverables", "docs", "report.md"), "# Report ✓\n")
      const seen: Array<string> = []
      const hooks: CodexTaskHooks = {
        onDeliverable: (ctx, path, text, deliverable) =>
          Effect.gen(function*() {
            seen.push(`${path}|${deliverable.absolutePath}|${text}`)
            assert.isTrue(yield* ctx.sendToAgent("the hook saw it"))
            return Option.some("please add a summary")
          })
      }
      yield* handleLogEvent(OptioLogEvent.Deliverable({ path: "./deliverables/docs/report.md" }), { paths, hooks, hookContext, send })
      // item 4: the path relative to deliverables/ (as the reference passed it) and the absolute one.
      assert.deepStrictEqual(seen, [`docs/report.md|${join(workdir, "deliverables", "docs", "report.md")}|# Report ✓\n`])
      assert.deepStrictEqual(sent, ["System: the hook saw it", "System: deliverable report.md: please add a summary"])
    }).pipe(Effect.provide(services)))

  it.live("without a hook the deliverable is accepted", () =>
    Effect.gen(function*() {
      const { workdir, paths, sent, send, hookContext } = yield* setup
      writeFileSync(join(workdir, "deliverables", "a.txt"), "a")
      yield* handleLogEvent(OptioLogEvent.Deliverable({ path: "deliverables/a.txt" }), { paths, hooks: {}, hookContext, send })
      assert.strictEqual(sent.length, 1)
      assert.match(sent[0] ?? "", /^System: deliverable a\.txt: accepted/)
    }).pipe(Effect.provide(services)))

  it.live("rejected, missing, non-UTF-8 and symlink-escaping deliverables are still acknowledged, never read", () =>
    Effect.gen(function*() {
      const { workdir, paths, sent, send, hookContext } = yield* setup
      writeFileSync(join(root, "secret.txt"), "outside")
      symlinkSync(join(root, "secret.txt"), join(workdir, "deliverables", "escape.txt"))
      writeFileSync(join(workdir, "deliverables", "binary.bin"), Buffer.from([0xff, 0xfe, 0xfd]))
      const calls: Array<string> = []
      const hooks = { onDeliverable: (_: unknown, path: string) => Effect.sync(() => (calls.push(path), Option.none())) }
      const context = { paths, hooks, hookContext, send }
      for (const path of ["../secret.txt", "notes.md", "deliverables/missing.md", "deliverables/binary.bin", "deliverables/escape.txt"]) {
        yield* handleLogEvent(OptioLogEvent.Deliverable({ path }), context)
      }
      assert.strictEqual(sent.length, 5)
      assert.deepStrictEqual(calls, [])
      for (const message of sent) assert.match(message, /^System: deliverable /)
      assert.include(sent[4] ?? "", "refused")
    }).pipe(Effect.provide(services)))

  it.live("finding 4: a deliverable swapped for a symlink while it is fetched never hands out the outside file (300 attempts)", () =>
    Effect.gen(function*() {
      const { workdir, paths, send, hookContext } = yield* setup
      const secret = join(root, `secret-${counter}.txt`)
      writeFileSync(secret, "SECRET outside the workdir")
      writeFileSync(join(workdir, "deliverables", "race.txt"), "public")
      const texts: Array<string> = []
      const hooks = { onDeliverable: (_: unknown, _path: string, text: string) => Effect.sync(() => (texts.push(text), Option.none())) }
      const context = { paths, hooks, hookContext, send }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* symlinkSwapper(["file", join(workdir, "deliverables"), secret])
        for (let i = 0; i < 300; i++) yield* handleLogEvent(OptioLogEvent.Deliverable({ path: "deliverables/race.txt" }), context)
      }))
      assert.deepStrictEqual(texts.filter((text) => text.includes("SECRET")), [])
      assert.isAbove(texts.length, 0, "the race was real: some deliveries were read")
    }).pipe(Effect.provide(services)))

  it.live("a failing hook is reported and the agent is told to deliver again later", () =>
    Effect.gen(function*() {
      const { workdir, paths, sent, send, hookContext } = yield* setup
      writeFileSync(join(workdir, "deliverables", "x.md"), "x")
      const hooks = { onDeliverable: () => Effect.fail("storage down") }
      yield* handleLogEvent(OptioLogEvent.Deliverable({ path: "deliverables/x.md" }), { paths, hooks, hookContext, send })
      assert.include(sent[0] ?? "", "deliver it again")
      const record = yield* (yield* TaskRecorder).current
      assert.isTrue(record.progress.some((entry) => entry.message?.includes("storage down") === true))
    }).pipe(Effect.provide(services)))
})
