/**
 * The memory host against the parts of the Host contract that need no real OS (files, guarded
 * file operations, tail, scripted spawn and signals), plus its own scripting: hang until
 * signalled, survive SIGTERM until SIGKILL (the release escalates on the clock), die on a signal.
 */
import { assert, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Scope, Exit, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Host } from "../../src/host/Host.ts"
import * as MemoryHost from "../../src/host/MemoryHost.ts"
import { hostContract } from "./HostContract.ts"

const cat: MemoryHost.ProcessScript = {
  match: MemoryHost.script.argv("cat"),
  run: (io) => io.stdin.pipe(Stream.runForEach(io.stdout), Effect.as(0))
}
const memory = MemoryHost.makeUnsafe({ scripts: [cat, MemoryHost.script.hangs(MemoryHost.script.argv("sleep"))] })

// Every case uses its own subdirectory of the root, so one shared root serves them all.
hostContract("MemoryHost", Layer.succeed(Host, memory.host), () => "/srv/memory-contract", {
  realPrograms: false,
  mkfifo: (path) => memory.plantOther(path),
  truncateAndWrite: (path, text) => Effect.andThen(memory.truncate(path), memory.host.appendFile(path, text))
})

it.effect("a process that ignores SIGTERM is killed after the grace period, on the clock", () =>
  Effect.gen(function*() {
    const host = yield* MemoryHost.make({ scripts: [MemoryHost.script.hangs(MemoryHost.script.argv("codex"), ["SIGTERM"])] })
    const scope = yield* Scope.make()
    const proc = yield* host.host.spawn({ argv: ["codex"] }, { gracePeriod: "3 seconds" }).pipe(Scope.provide(scope))
    const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
    yield* TestClock.adjust("2 seconds")
    assert.isTrue(yield* proc.isRunning)
    yield* TestClock.adjust("2 seconds")
    yield* Fiber.join(closing)
    assert.strictEqual(yield* proc.exitCode, 137)
    const [record] = yield* host.processes
    assert.deepStrictEqual(record?.signals, ["SIGTERM", "SIGKILL"])
  }))

it.effect("run reports a scripted exit code and output; an unscripted program is NotFound", () =>
  Effect.gen(function*() {
    const host = yield* MemoryHost.make({
      env: { PATH: "/bin", SECRET: "x" },
      scripts: [MemoryHost.script.exits(MemoryHost.script.argv("uname"), 3, { stdout: "Linux x86_64\n", stderr: "warn" })]
    })
    const result = yield* host.host.run({ argv: ["uname", "-sm"], envAllow: ["PATH"], env: { A: "1" } })
    assert.deepStrictEqual(result, { exitCode: 3, stdout: "Linux x86_64\n", stderr: "warn", truncated: false })
    const [record] = yield* host.processes
    assert.deepStrictEqual(record?.env, { PATH: "/bin", A: "1" })
    const missing = yield* Effect.flip(host.host.run({ argv: ["tmux"] }))
    assert.strictEqual(missing.reason, "NotFound")
  }))

it.effect("Host.layerMemory provides a memory host: files in memory, scripted programs", () =>
  Effect.gen(function*() {
    const host = yield* Host
    assert.strictEqual(host.label, "memory")
    yield* host.makeDirectory("/work")
    yield* host.writeFile("/work/a.txt", "in memory")
    assert.deepStrictEqual(yield* host.readDirectory("/work"), ["a.txt"])
    assert.strictEqual((yield* host.run({ argv: ["true"] })).exitCode, 0)
  }).pipe(Effect.provide(Host.layerMemory({ scripts: [MemoryHost.script.exits(MemoryHost.script.argv("true"), 0)] }))))
