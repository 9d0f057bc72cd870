/**
 * Host facts: one shell round trip answers PATH, the default task root and zstd; the Host keeps a
 * good answer and asks again after a failed one. On the memory host (a scripted shell) and on
 * this machine.
 */
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { FALLBACK_PATH } from "../../src/host/HostFacts.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import * as MemoryHost from "../../src/host/MemoryHost.ts"
import { taskRootOn } from "../../src/workdir/TaskPaths.ts"

const shellAnswering = (answers: Array<{ readonly exitCode: number; readonly stdout: string }>, asked: { n: number }): MemoryHost.ProcessScript => ({
  match: MemoryHost.script.argv("sh", "-c"),
  run: (io) =>
    Effect.gen(function*() {
      const answer = answers[Math.min(asked.n, answers.length - 1)]!
      asked.n++
      yield* io.stdout(answer.stdout)
      return answer.exitCode
    })
})

it.effect("one probe answers PATH, task root and zstd, and a good answer is kept", () =>
  Effect.gen(function*() {
    const asked = { n: 0 }
    const memory = yield* MemoryHost.make({ scripts: [shellAnswering([{ exitCode: 0, stdout: "/opt/bin:/usr/bin\0/data/optio-codex\0zstd" }], asked)] })
    const facts = yield* memory.host.facts
    assert.deepStrictEqual(facts, { path: "/opt/bin:/usr/bin", taskRoot: "/data/optio-codex", zstd: true })
    assert.strictEqual(yield* taskRootOn(memory.host), "/data/optio-codex")
    assert.deepStrictEqual(yield* memory.host.facts, facts)
    assert.strictEqual(asked.n, 1, "asked once")
  }))

it.effect("the probe's last fields are the host's lsb_release and its -a text, newline kept; a relative or odd path is ignored", () =>
  Effect.gen(function*() {
    const text = "Distributor ID:\tDebian\nRelease:\t12\n"
    const withLsb = yield* MemoryHost.make({ scripts: [shellAnswering([{ exitCode: 0, stdout: `/usr/bin\0/srv\0zstd\0/usr/bin/lsb_release\0${text}` }], { n: 0 })] })
    assert.deepStrictEqual((yield* withLsb.host.facts).lsbRelease, { path: "/usr/bin/lsb_release", all: text })
    const odd = yield* MemoryHost.make({ scripts: [shellAnswering([{ exitCode: 0, stdout: `/usr/bin\0/srv\0\0lsb_release\0${text}` }], { n: 0 })] })
    assert.isUndefined((yield* odd.host.facts).lsbRelease)
  }))

it.effect("a failed probe answers the fallbacks and is asked again", () =>
  Effect.gen(function*() {
    const asked = { n: 0 }
    const memory = yield* MemoryHost.make({
      scripts: [shellAnswering([{ exitCode: 2, stdout: "" }, { exitCode: 2, stdout: "" }, { exitCode: 0, stdout: "/usr/bin\0/srv/tasks\0" }], asked)]
    })
    const failed = yield* memory.host.facts
    assert.deepStrictEqual(failed, { path: FALLBACK_PATH, taskRoot: "", zstd: false })
    assert.strictEqual((yield* Effect.flip(taskRootOn(memory.host)))._tag, "TaskRootUnresolved")
    assert.deepStrictEqual(yield* memory.host.facts, { path: "/usr/bin", taskRoot: "/srv/tasks", zstd: false })
    assert.strictEqual(asked.n, 3)
  }))

it.effect("this machine's shell: its PATH, the task root its environment names, zstd as installed", () =>
  Effect.gen(function*() {
    const host = yield* LocalHost.make({ env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/h", OPTIO_CODEX_TASK_ROOT: "/srv/optio" } })
    const facts = yield* host.facts
    assert.strictEqual(facts.path, "/usr/local/bin:/usr/bin:/bin")
    assert.strictEqual(facts.taskRoot, "/srv/optio")
    const zstd = yield* host.run({ argv: ["sh", "-c", "command -v zstd"] })
    assert.strictEqual(facts.zstd, zstd.exitCode === 0)
    const lsb = yield* host.run({ argv: ["sh", "-c", "lsb_release -a 2>/dev/null"] })
    assert.strictEqual(facts.lsbRelease?.all, lsb.exitCode === 0 ? lsb.stdout : undefined)
  }))
