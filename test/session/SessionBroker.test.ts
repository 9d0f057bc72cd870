/**
 * Which seeded tasks go through the token broker: `credentialMode` and its defaults (broker when
 * the worker provides one; file under `compat: "python-0.1"`, on SSH hosts, or when asked), and the
 * config refusals.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { FetchHttpClient } from "effect/http"
import { decodeCodexTaskConfig } from "../../src/config/CodexTaskConfig.ts"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { brokerFor } from "../../src/session/SessionBroker.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"

const SEED = "0123456789abcdef01234567"
const withBroker = TokenBroker.layer({}).pipe(
  Layer.provide(Layer.mergeAll(Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)), FetchHttpClient.layer))
)
const noForwarding = Layer.effect(Host, Effect.map(Host.use(Effect.succeed), (host) => Host.of({ ...host, forwardToLocal: undefined }))).pipe(
  Layer.provide(LocalHost.layer())
)
const modeOn = (hostLayer: Layer.Layer<Host>) => (input: Record<string, unknown>) =>
  Effect.gen(function*() {
    const config = yield* decodeCodexTaskConfig({ consumerInstructions: "x", ...input })
    return Option.isSome(yield* brokerFor(config, {})) ? "broker" : "file"
  }).pipe(Effect.provide(hostLayer))
const modeOf = modeOn(LocalHost.layer())

describe("credentialMode", () => {
  it.effect("a seeded task defaults to the broker, and to file when the worker provides TokenBroker.layerNone", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* modeOf({ seedId: SEED }).pipe(Effect.provide(withBroker)), "broker")
      assert.strictEqual(yield* modeOf({ seedPool: "team" }).pipe(Effect.provide(withBroker)), "broker")
      assert.strictEqual(yield* modeOf({ seedId: SEED }).pipe(Effect.provide(TokenBroker.layerNone)), "file")
      assert.strictEqual(yield* modeOf({}).pipe(Effect.provide(withBroker)), "file", "no seed, nothing to broker")
    }))

  it.effect("file, compat python-0.1 and a host that cannot forward a port keep the file mode", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* modeOf({ seedId: SEED, credentialMode: "file" }).pipe(Effect.provide(withBroker)), "file")
      assert.strictEqual(yield* modeOf({ seedId: SEED, compat: "python-0.1", snapshotCompression: "gzip" }).pipe(Effect.provide(withBroker)), "file")
      assert.strictEqual(yield* modeOn(noForwarding)({ seedId: SEED }).pipe(Effect.provide(withBroker)), "file")
    }))

  it.effect("asking for the broker where it cannot work is refused", () =>
    Effect.gen(function*() {
      const python = yield* Effect.flip(modeOf({ seedId: SEED, compat: "python-0.1", credentialMode: "broker" }).pipe(Effect.provide(TokenBroker.layerNone)))
      assert.strictEqual(python._tag, "ConfigError")
      assert.include(python.message, "python-0.1")
      const unreachable = yield* Effect.flip(modeOn(noForwarding)({ seedId: SEED, credentialMode: "broker" }).pipe(Effect.provide(withBroker)))
      assert.strictEqual(unreachable._tag, "ConfigError")
      assert.include(unreachable.message, "forward")
      const missing = yield* Effect.flip(modeOf({ seedId: SEED, credentialMode: "broker" }).pipe(Effect.provide(TokenBroker.layerNone)))
      assert.strictEqual(missing._tag, "ConfigError")
      assert.include(missing.message, "TokenBroker")
    }))
})
