/**
 * The real codex 0.169.0 binary against the scripted model server: offline, no account.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { codexExec, offlineCodexDirs } from "../support/offlineCodex.ts"

const MODEL = "optio-test-model"

/** `codex exec --json` prints one event per line; we read `item.completed` items. */
const ExecEvent = Schema.fromJsonString(Schema.Struct({
  type: Schema.String,
  item: Schema.optionalKey(Schema.Struct({ type: Schema.String, text: Schema.optionalKey(Schema.String) }))
}))

const completedItems = (stdout: string) =>
  stdout.split("\n").filter((line) => line.startsWith("{")).flatMap((line) => {
    const event = Schema.decodeUnknownSync(ExecEvent)(line)
    return event.type === "item.completed" && event.item !== undefined ? [event.item] : []
  })

describe("codex exec against the scripted model server", () => {
  it.live("runs a scripted exec_command in the sandbox and sends its output back", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([
        ModelScript.execCommand("printf 'DONE\\n' >> optio.log"),
        ModelScript.text("Wrote DONE to optio.log.")
      ])
      const dirs = yield* offlineCodexDirs("exec-command", { baseUrl: server.baseUrl, model: MODEL })
      // --strict-config makes codex reject any key of the offline config it does not know.
      const exit = yield* codexExec(dirs, [
        "--strict-config",
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
        "Append DONE to optio.log"
      ]).pipe(Effect.timeout("30 seconds"))
      assert.strictEqual(exit.code, 0, exit.stderr)
      assert.include(exit.stdout, "Wrote DONE to optio.log.")
      assert.strictEqual(readFileSync(join(dirs.workdir, "optio.log"), "utf8"), "DONE\n")

      const requests = yield* server.requests
      assert.deepStrictEqual(requests.map((request) => `${request.method} ${request.path} ${request.answer._tag}`), [
        "POST /v1/responses Step",
        "POST /v1/responses Step"
      ])
      const [first, second] = requests
      const callId = first?.callIds[0]
      assert.isString(callId)
      const output = second?.toolOutputs.find((toolOutput) => toolOutput.callId === callId)
      assert.include(output?.output, "Process exited with code 0")
      for (const request of requests) {
        assert.strictEqual(request.model, MODEL)
        assert.isTrue(request.hasAuthorization)
        assert.include(request.toolNames, "exec_command")
        assert.deepInclude(request.userTexts, "Append DONE to optio.log")
      }
      assert.strictEqual(yield* server.remaining, 0)
      assert.isFalse(yield* server.exhausted)
    }))

  it.live("accepts a reasoning summary followed by text", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModelServer.start([
        ModelScript.thinkThenText("**Checking** the request", "The answer is 42.")
      ])
      const dirs = yield* offlineCodexDirs("reasoning", { baseUrl: server.baseUrl, model: MODEL })
      const exit = yield* codexExec(dirs, [
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
        "What is the answer?"
      ]).pipe(Effect.timeout("30 seconds"))
      assert.strictEqual(exit.code, 0, exit.stderr)
      const items = completedItems(exit.stdout)
      assert.deepInclude(items, { type: "reasoning", text: "**Checking** the request" })
      assert.deepInclude(items, { type: "agent_message", text: "The answer is 42." })
      assert.isFalse(yield* server.exhausted)
    }))
})
