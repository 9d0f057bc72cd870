/**
 * The lsb_release shim: codex's one question (`-a`) is answered from the host's recorded answer
 * without running anything; every other question reaches the host's lsb_release with its
 * arguments; the host's text is printed as data, never run. On this machine, prepareWorkdir puts
 * the shim in the worker-owned shim directory and it prints what the host's own `lsb_release -a`
 * prints.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { decodeCodexTaskConfig } from "../../src/config/CodexTaskConfig.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { LSB_RELEASE_SHIM_NAME, lsbReleaseShimScript } from "../../src/workdir/LsbReleaseShim.ts"
import { taskPaths } from "../../src/workdir/TaskPaths.ts"
import { prepareWorkdir } from "../../src/workdir/Workdir.ts"

const root = join(process.cwd(), ".cache", "test", `lsb-shim-${process.pid}`)
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** A stand-in for the host's lsb_release that records its arguments. */
const standIn = (dir: string) => {
  mkdirSync(dir, { recursive: true })
  const path = join(dir, "real-lsb_release")
  const calls = join(dir, "calls")
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${calls}'\necho real answer\n`, { mode: 0o755 })
  return { path, calls }
}

const install = (dir: string, all: string) => {
  const real = standIn(dir)
  const script = lsbReleaseShimScript({ path: "/usr/bin", taskRoot: "/t", zstd: false, lsbRelease: { path: real.path, all } })
  assert.isDefined(script)
  const shim = join(dir, LSB_RELEASE_SHIM_NAME)
  writeFileSync(shim, script ?? "", { mode: 0o755 })
  return { shim, ...real }
}

describe("lsb_release shim", () => {
  it("answers -a with the host's text, exactly, without running the host's lsb_release", () => {
    const text = "Distributor ID:\tDebian\nDescription:\tDebian GNU/Linux 12 (bookworm)\nRelease:\t12\nCodename:\tbookworm\n"
    const { shim, calls } = install(join(root, "answer"), text)
    assert.strictEqual(execFileSync(shim, ["-a"], { encoding: "utf8" }), text)
    assert.isFalse(existsSync(calls), "the host's lsb_release was not run")
  })

  it("hands any other question to the host's lsb_release with its arguments", () => {
    const { shim, calls } = install(join(root, "other"), "Distributor ID:\tX\n")
    assert.strictEqual(execFileSync(shim, ["-s", "-d"], { encoding: "utf8" }), "real answer\n")
    assert.strictEqual(execFileSync(shim, [], { encoding: "utf8" }), "real answer\n")
    assert.strictEqual(execFileSync(shim, ["-a", "-s"], { encoding: "utf8" }), "real answer\n")
    assert.strictEqual(readFileSync(calls, "utf8"), "-s -d\n\n-a -s\n")
  })

  it("prints the host's text as data: quotes and command substitutions in it are not run", () => {
    const dir = join(root, "quoted")
    const pwned = join(dir, "PWNED")
    const text = `Description:\tit's $(touch ${pwned}) \`touch ${pwned}\` "$HOME"\n`
    const { shim } = install(dir, text)
    assert.strictEqual(execFileSync(shim, ["-a"], { encoding: "utf8" }), text)
    assert.isFalse(existsSync(pwned))
  })

  it("is not written for a host without lsb_release", () => {
    assert.isUndefined(lsbReleaseShimScript({ path: "/usr/bin", taskRoot: "/t", zstd: false }))
  })

  it.live("this machine: prepareWorkdir puts it in the task's shim directory, answering what the host's lsb_release -a answers", () =>
    Effect.gen(function*() {
      const host = yield* Host
      const config = yield* decodeCodexTaskConfig({ consumerInstructions: "x" })
      const paths = yield* taskPaths({ processId: "lsb", taskRoot: join(root, "tasks") })
      yield* prepareWorkdir(config, paths)
      const shim = join(paths.binDir, LSB_RELEASE_SHIM_NAME)
      const real = yield* host.run({ argv: ["sh", "-c", "lsb_release -a 2>/dev/null"] })
      if (real.exitCode !== 0) {
        assert.isFalse(existsSync(shim), "no shim on a host without lsb_release")
        return
      }
      assert.strictEqual(execFileSync(shim, ["-a"], { encoding: "utf8" }), real.stdout)
      assert.isFalse(shim.startsWith(paths.workdir), "the shim is not in the agent's workdir")
    }).pipe(Effect.provide(LocalHost.layer())))
})
