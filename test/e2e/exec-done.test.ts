/**
 * The foundation end to end: the real codex binary, resolved through BinaryCache, runs
 * `codex exec` against the scripted model server; the script makes the agent call exec_command
 * to write DONE into optio.log, and the optio.log monitor yields Done.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { BinaryCache, PINNED_CODEX_VERSION } from "../../src/binary/BinaryCache.ts"
import { decodeCodexTaskConfig } from "../../src/config/CodexTaskConfig.ts"
import { execSandboxArgs, resolveSandboxPosture } from "../../src/config/SandboxPosture.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { followOptioLog } from "../../src/protocol/OptioLogMonitor.ts"
import { sharedBinaryCache } from "../support/codexCache.ts"
import { offlineCodexDirs } from "../support/offlineCodex.ts"

const services = sharedBinaryCache.pipe(Layer.provideMerge(LocalHost.layer()))

describe("codex exec end to end", () => {
  it.live("the agent writes DONE to optio.log through exec_command and the monitor yields Done", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([
        ModelScript.execCommand("printf 'STATUS: 50%% halfway\\nDONE: finished by codex\\n' >> optio.log"),
        ModelScript.text("Reported DONE.")
      ])
      const dirs = yield* offlineCodexDirs("exec-done", { baseUrl: server.baseUrl })
      const host = yield* Host
      const cache = yield* BinaryCache
      const codex = yield* cache.linkForTask(`${dirs.home}/.local/bin/codex`)
      assert.strictEqual(codex.version, PINNED_CODEX_VERSION)
      const config = yield* decodeCodexTaskConfig({ consumerInstructions: "report DONE" })
      const posture = resolveSandboxPosture(config, yield* host.home)

      const log = `${dirs.workdir}/optio.log`
      yield* host.writeFile(log, "")
      const finished = yield* Deferred.make<void>()
      const events = yield* followOptioLog(log, { until: Deferred.await(finished) }).pipe(Stream.runCollect, Effect.forkChild)
      const result = yield* host.run({
        argv: [`${dirs.home}/.local/bin/codex`, "exec", "--skip-git-repo-check", ...execSandboxArgs(posture), "report DONE"],
        cwd: dirs.workdir,
        env: dirs.env
      })
      yield* Deferred.succeed(finished, undefined)
      assert.strictEqual(result.exitCode, 0, result.stderr.slice(-2000))
      const seen = yield* Fiber.join(events)
      assert.deepStrictEqual(seen.map((event) => event._tag), ["Status", "Done"])
      const done = seen[1]
      assert.isTrue(done?._tag === "Done" && done.summary === "finished by codex")
      // What codex sent: the configured model, and our tool's output on the second request.
      const requests = yield* server.requests
      assert.strictEqual(requests[0]?.model, "scripted-model")
      assert.isAtLeast(requests[1]?.toolOutputs.length ?? 0, 1)
    }).pipe(Effect.scoped, Effect.provide(services)))
})
