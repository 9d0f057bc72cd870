/**
 * DeploymentDefaults on a swapped ConfigProvider: environment values fill what the task left
 * unset, the task's own values win, and the notes name the source (never a secret-bearing value).
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option } from "effect"
import { decodeWithDeploymentDefaults } from "../../src/config/DeploymentDefaults.ts"
import { withDeploymentTaskRoot } from "../../src/session/CodexSession.ts"

const withEnv = (env: Record<string, string>) => Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))

const SSH = { host: "build-box", user: "ci", identityFile: "/keys/id" }

describe("deployment defaults (item 5)", () => {
  it.effect("fill unset fields, env included, and say where each came from", () =>
    Effect.gen(function*() {
      const decoded = yield* decodeWithDeploymentDefaults({ consumerInstructions: "x", env: { KEEP: "1" } })
      assert.strictEqual(decoded.config.widgetBindHost, "0.0.0.0")
      assert.strictEqual(decoded.config.widgetAdvertisedHost, "worker-7.internal")
      assert.deepStrictEqual(decoded.config.env, { KEEP: "1", CODEX_REFRESH_TOKEN_URL_OVERRIDE: "https://issuer.internal/oauth/token" })
      assert.deepStrictEqual(decoded.notes, [
        `widgetBindHost "0.0.0.0" from OPTIO_WIDGET_TUNNEL_BIND`,
        `widgetAdvertisedHost "worker-7.internal" from OPTIO_WIDGET_TUNNEL_HOST`,
        "env.CODEX_REFRESH_TOKEN_URL_OVERRIDE from CODEX_REFRESH_TOKEN_URL_OVERRIDE"
      ])
    }).pipe(withEnv({
      OPTIO_WIDGET_TUNNEL_BIND: "0.0.0.0",
      OPTIO_WIDGET_TUNNEL_HOST: "worker-7.internal",
      CODEX_REFRESH_TOKEN_URL_OVERRIDE: "https://issuer.internal/oauth/token"
    })))

  it.effect("the task's config wins over the environment", () =>
    Effect.gen(function*() {
      const decoded = yield* decodeWithDeploymentDefaults({
        consumerInstructions: "x",
        widgetBindHost: "127.0.0.1",
        env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: "http://127.0.0.1:9/token" }
      })
      assert.strictEqual(decoded.config.widgetBindHost, "127.0.0.1")
      assert.strictEqual(decoded.config.env?.["CODEX_REFRESH_TOKEN_URL_OVERRIDE"], "http://127.0.0.1:9/token")
      assert.deepStrictEqual(decoded.notes, [
        "widgetBindHost from the task config (overrides OPTIO_WIDGET_TUNNEL_BIND)",
        "env.CODEX_REFRESH_TOKEN_URL_OVERRIDE from the task config (overrides CODEX_REFRESH_TOKEN_URL_OVERRIDE)"
      ])
    }).pipe(withEnv({ OPTIO_WIDGET_TUNNEL_BIND: "0.0.0.0", CODEX_REFRESH_TOKEN_URL_OVERRIDE: "https://issuer.internal/oauth/token" })))

  it.effect("OPTIO_CODEX_REMOTE_TASK_ROOT is the task root of SSH hosts only; an explicit taskRoot wins", () =>
    Effect.gen(function*() {
      const remote = yield* decodeWithDeploymentDefaults({ consumerInstructions: "x", ssh: SSH })
      assert.deepStrictEqual(Option.getOrUndefined(remote.remoteTaskRoot), "/srv/optio")
      const filled = withDeploymentTaskRoot({}, remote)
      assert.strictEqual(filled.options.taskRoot, "/srv/optio")
      assert.include(filled.notes, `task root "/srv/optio" from OPTIO_CODEX_REMOTE_TASK_ROOT`)
      const explicit = withDeploymentTaskRoot({ taskRoot: "/data/tasks" }, remote)
      assert.strictEqual(explicit.options.taskRoot, "/data/tasks")
      const local = yield* decodeWithDeploymentDefaults({ consumerInstructions: "x" })
      assert.isUndefined(withDeploymentTaskRoot({}, local).options.taskRoot)
    }).pipe(withEnv({ OPTIO_CODEX_REMOTE_TASK_ROOT: "/srv/optio" })))
})
