/**
 * Deployment settings from the worker's environment (as the Python reference read them), with the
 * real codex app-server: `OPTIO_WIDGET_TUNNEL_BIND` / `OPTIO_WIDGET_TUNNEL_HOST` decide where the
 * listener binds and what the published upstream names, unless the task's config says otherwise;
 * progress says which source won.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { demoTaskSettings } from "../../src/cli/OfflineDemo.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { sessionServices } from "../support/sessionServices.ts"

const root = join(repoRoot, ".cache", "test", `e2e-deployment-${process.pid}`)

const deploymentEnv = (env: Record<string, string>) =>
  ConfigProvider.layer(ConfigProvider.fromEnv({
    env: { ...Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined)), ...env }
  }))

const runOnce = (name: string, overrides: Record<string, unknown>) =>
  Effect.gen(function*() {
    const server = yield* ScriptedModelServer.start([ModelScript.execCommand("printf 'DONE: deployed\\n' >> optio.log"), ModelScript.text("ok")])
    const workdir = join(root, name)
    mkdirSync(workdir, { recursive: true })
    let codexEnviron = ""
    const result = yield* runCodexSession(
      { consumerInstructions: "deployment", mode: "conversation", conversationUi: true, ...demoTaskSettings(server.baseUrl), ...overrides },
      {
        workdir,
        stopGracePeriod: "2 seconds",
        // codex's environment is read while it runs; only then is the turn that ends the task sent.
        onConversation: (conversation) =>
          Effect.sync(() => {
            codexEnviron = readFileSync(`/proc/${conversation.pid}/environ`, "utf8")
          }).pipe(Effect.andThen(conversation.sendTurn("go")))
      }
    )
    const record = yield* TaskRecorder.use((recorder) => recorder.current)
    return {
      result,
      codexEnviron,
      published: record.widgetUpstreamHistory,
      progress: record.progress.map((entry) => entry.message ?? "").join("\n")
    }
  })

describe("deployment settings from the environment (item 5)", () => {
  it.live("OPTIO_WIDGET_TUNNEL_BIND / _HOST place the listener and the published upstream; progress names them", () =>
    runOnce("from-env", {}).pipe(
      Effect.tap(({ result, published, progress, codexEnviron }) =>
        Effect.sync(() => {
          assert.strictEqual(result.summary, "deployed")
          assert.include(codexEnviron.split("\0"), "CODEX_REFRESH_TOKEN_URL_OVERRIDE=http://127.0.0.1:9/oauth/token", "codex gets the deployment's token endpoint")
          assert.isAbove(published.length, 0)
          for (const url of published) assert.match(url, /^http:\/\/127\.0\.0\.2:\d+/)
          assert.include(progress, `widgetBindHost "127.0.0.2" from OPTIO_WIDGET_TUNNEL_BIND`)
          assert.include(progress, `widgetAdvertisedHost "127.0.0.2" from OPTIO_WIDGET_TUNNEL_HOST`)
        })
      ),
      Effect.scoped,
      Effect.provide(Layer.mergeAll(sessionServices("deploy-env", { state: new MemoryStoreState() }), deploymentEnv({
        OPTIO_WIDGET_TUNNEL_BIND: "127.0.0.2",
        OPTIO_WIDGET_TUNNEL_HOST: "127.0.0.2",
        CODEX_REFRESH_TOKEN_URL_OVERRIDE: "http://127.0.0.1:9/oauth/token"
      })))
    ), 120_000)

  it.live("the task's config overrides the environment, and progress says so", () =>
    runOnce("from-config", { widgetBindHost: "127.0.0.1", widgetAdvertisedHost: "127.0.0.1" }).pipe(
      Effect.tap(({ published, progress }) =>
        Effect.sync(() => {
          assert.isAbove(published.length, 0)
          for (const url of published) assert.match(url, /^http:\/\/127\.0\.0\.1:\d+/)
          assert.include(progress, "widgetAdvertisedHost from the task config (overrides OPTIO_WIDGET_TUNNEL_HOST)")
        })
      ),
      Effect.scoped,
      Effect.provide(Layer.mergeAll(sessionServices("deploy-config", { state: new MemoryStoreState() }), deploymentEnv({
        OPTIO_WIDGET_TUNNEL_BIND: "127.0.0.2",
        OPTIO_WIDGET_TUNNEL_HOST: "127.0.0.2"
      })))
    ), 120_000)
})
