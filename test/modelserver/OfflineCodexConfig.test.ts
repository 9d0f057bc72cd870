/**
 * The offline config.toml rendering (codex itself accepting it is checked in OfflineCodex.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { parse } from "smol-toml"
import {
  chatgptCodexConfigToml,
  OFFLINE_API_KEY_ENV,
  OFFLINE_API_KEY_VALUE,
  offlineCodexConfigToml,
  offlineCodexEnv
} from "../../src/modelserver/OfflineCodexConfig.ts"

describe("offlineCodexConfigToml", () => {
  it.effect("points a custom responses provider at the server and turns off network extras", () =>
    Effect.sync(() => {
      const toml = offlineCodexConfigToml({ baseUrl: "http://127.0.0.1:4321/v1", model: "m-test", providerId: "local.test" })
      assert.deepStrictEqual(parse(toml), {
        model: "m-test",
        model_provider: "local.test",
        check_for_update_on_startup: false,
        model_providers: {
          "local.test": {
            name: "optio offline (scripted)",
            base_url: "http://127.0.0.1:4321/v1",
            wire_api: "responses",
            env_key: OFFLINE_API_KEY_ENV,
            request_max_retries: 1,
            stream_max_retries: 1
          }
        },
        features: { unbounded_connection_retries: false },
        analytics: { enabled: false },
        feedback: { enabled: false }
      })
    }))

  it.effect("uses the defaults and a custom env key", () =>
    Effect.sync(() => {
      const config = parse(offlineCodexConfigToml({ baseUrl: "http://x/v1", envKey: "MY_KEY", requestMaxRetries: 0 }))
      assert.strictEqual(config["model"], "scripted-model")
      assert.strictEqual(config["model_provider"], "optio-offline")
      assert.deepInclude(config["model_providers"], {
        "optio-offline": {
          name: "optio offline (scripted)",
          base_url: "http://x/v1",
          wire_api: "responses",
          env_key: "MY_KEY",
          request_max_retries: 0,
          stream_max_retries: 1
        }
      })
      assert.deepStrictEqual(offlineCodexEnv({ envKey: "MY_KEY" }), { MY_KEY: OFFLINE_API_KEY_VALUE })
      assert.deepStrictEqual(offlineCodexEnv(), { [OFFLINE_API_KEY_ENV]: OFFLINE_API_KEY_VALUE })
    }))

  it.effect("ChatGPT mode: the provider authenticates with auth.json and backend calls stay local", () =>
    Effect.sync(() => {
      const config = parse(chatgptCodexConfigToml({ baseUrl: "http://127.0.0.1:4321/v1" }))
      assert.strictEqual(config["model_provider"], "optio-offline-chatgpt")
      assert.strictEqual(config["chatgpt_base_url"], "http://127.0.0.1:4321/backend-api")
      assert.strictEqual(config["cli_auth_credentials_store"], "file")
      assert.deepStrictEqual(config["model_providers"], {
        "optio-offline-chatgpt": {
          name: "optio offline (scripted, ChatGPT auth)",
          base_url: "http://127.0.0.1:4321/v1",
          wire_api: "responses",
          requires_openai_auth: true,
          request_max_retries: 1,
          stream_max_retries: 1
        }
      })
      const custom = parse(chatgptCodexConfigToml({ baseUrl: "http://x/v1", chatgptBaseUrl: "http://y/backend-api", providerId: "p" }))
      assert.strictEqual(custom["chatgpt_base_url"], "http://y/backend-api")
      assert.strictEqual(custom["model_provider"], "p")
    }))
})
