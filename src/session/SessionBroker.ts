/**
 * SessionBroker: a seeded session in broker mode (`credentialMode: "broker"`, the default unless the
 * worker provides `TokenBroker.layerNone`). The task attaches to the broker, which leases the seed (shared
 * with every brokered task of the seed, see TokenBroker), and its CODEX_HOME gets an auth.json
 * whose refresh token is the task's handle; codex's environment points its token refreshes at the
 * broker. No credential watcher runs: the broker renews the lease and saves rotations, so nothing
 * of the task (auth.json, snapshot, teardown) ever holds or writes back a real refresh token.
 *
 * On an SSH host codex reaches the broker through a remote port forward over the existing connection
 * (`Host.forwardToLocal`); a host that cannot forward keeps file mode (or fails the config when
 * broker mode was asked for explicitly).
 *
 * @since 0.1.0
 */
import { Effect, Option, Redacted } from "effect"
import { posix } from "node:path"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import { ConfigError } from "../config/ConfigError.ts"
import { CREDENTIAL_FILE_MODE } from "../credentials/SeedEngine.ts"
import { BROKER_HOLDER, BROKER_TOKEN_PATH, TokenBroker } from "../credentials/TokenBroker.ts"
import type { BrokeredTask } from "../credentials/TokenBroker.ts"
import { Host, HostError } from "../host/Host.ts"
import { Lease } from "../lease/Lease.ts"
import type { LeaseGrant, LeaseLost } from "../lease/Lease.ts"
import { TaskContext } from "../task/TaskContext.ts"
import type { TaskPaths } from "../workdir/TaskPaths.ts"
import type { CodexTaskHooks } from "./Hooks.ts"
import { SeedUnavailable, seedSource } from "./SessionSeed.ts"

/**
 * The broker this task's credentials go through; none in file mode (no seed, `credentialMode:
 * "file"`, `compat: "python-0.1"`, a host that cannot forward a port, or no broker in the worker
 * and none asked for).
 * @category constructors
 */
export const brokerFor = (config: CodexTaskConfig, hooks: CodexTaskHooks) =>
  Effect.gen(function*() {
    if (seedSource(config, hooks) === undefined) return Option.none<TokenBroker["Service"]>()
    if (config.credentialMode === "file" || config.compat === "python-0.1") return Option.none<TokenBroker["Service"]>()
    const explicit = config.credentialMode === "broker"
    const host = yield* Host
    if (host.forwardToLocal === undefined) {
      if (!explicit) return Option.none<TokenBroker["Service"]>()
      return yield* new ConfigError({
        field: "credentialMode",
        value: "broker",
        message: `credentialMode "broker" needs a host that can reach the worker's loopback broker (${host.label} cannot forward a port); use "file"`
      })
    }
    const broker = yield* TokenBroker
    if (!broker.enabled) {
      if (!explicit) return Option.none<TokenBroker["Service"]>()
      return yield* new ConfigError({
        field: "credentialMode",
        value: "broker",
        message: `credentialMode "broker" needs the worker's token broker (TokenBroker.layer); this worker provides TokenBroker.layerNone`
      })
    }
    return Option.some(broker)
  })

/**
 * A brokered seed: what the session races its body against, and the variables codex needs.
 * @category models
 */
export interface BrokeredSeed {
  readonly seedId: string
  readonly lost: Effect.Effect<never, LeaseLost>
  /** Set over the task's own env: codex's refreshes go to the broker. */
  readonly env: Readonly<Record<string, string>>
  readonly task: BrokeredTask
}

/**
 * Attaches the task to the broker for the session's scope (the handle is revoked when it closes;
 * the broker releases the seed's lease after its last task). Pool and provider leases are taken
 * under the broker holder and handed to the broker.
 * @category constructors
 */
export const attachBrokeredSeed = (broker: TokenBroker["Service"], config: CodexTaskConfig, hooks: CodexTaskHooks) =>
  Effect.gen(function*() {
    const source = seedSource(config, hooks)
    if (source === undefined) return yield* Effect.die(new Error("attachBrokeredSeed without a seed source"))
    const task = yield* TaskContext
    const upstreamTokenUrl = config.env?.["CODEX_REFRESH_TOKEN_URL_OVERRIDE"]
    const attachTo = (seedId: string, grant: LeaseGrant | undefined, sourceLabel: string) =>
      broker.attach({ seedId, grant, upstreamTokenUrl }).pipe(Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new SeedUnavailable({ source: sourceLabel, detail: "it is leased by a task that does not use the token broker" })),
        onSome: Effect.succeed
      })))
    let attached: BrokeredTask
    switch (source._tag) {
      case "Id":
        attached = yield* attachTo(source.seedId, undefined, `seed ${source.seedId}`)
        break
      case "Pool": {
        const grant = yield* (yield* Lease).acquire(source.poolKey, BROKER_HOLDER)
        if (Option.isNone(grant)) {
          return yield* new SeedUnavailable({ source: `pool ${source.poolKey}`, detail: "every live seed of the pool is leased (or the pool is empty)" })
        }
        attached = yield* attachTo(grant.value.seedId, grant.value, `pool ${source.poolKey}`)
        break
      }
      case "Provider": {
        const chosen = yield* source.provide(BROKER_HOLDER).pipe(
          Effect.mapError((cause) => new SeedUnavailable({ source: "seedProvider", detail: cause instanceof Error ? cause.message : String(cause) }))
        )
        if (typeof chosen !== "string" && chosen.holder !== BROKER_HOLDER) {
          return yield* new SeedUnavailable({
            source: "seedProvider",
            detail: `in broker mode the provider must lease as ${JSON.stringify(BROKER_HOLDER)} (or return a seed id), not ${JSON.stringify(chosen.holder)}`
          })
        }
        attached = typeof chosen === "string"
          ? yield* attachTo(chosen, undefined, "seedProvider")
          : yield* attachTo(chosen.seedId, chosen, "seedProvider")
        break
      }
    }
    yield* task.reportProgress(null, `Leased seed ${attached.seedId} (token broker: the task gets a handle, never the refresh token)`)
    // On an SSH host codex reaches the broker through a remote port forward over the connection.
    const host = yield* Host
    const port = host.forwardToLocal === undefined ? broker.port : yield* host.forwardToLocal(broker.port)
    const brokered: BrokeredSeed = {
      seedId: attached.seedId,
      lost: attached.lost,
      env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: `http://127.0.0.1:${port}${BROKER_TOKEN_PATH}` },
      task: attached
    }
    return brokered
  })

/**
 * Writes the brokered auth.json (handle in place of the refresh token) into the task's
 * CODEX_HOME, 0600; a symlink in CODEX_HOME's place is refused.
 * @category constructors
 */
export const plantBrokeredAuth = (brokered: BrokeredSeed, paths: TaskPaths) =>
  Effect.gen(function*() {
    const host = yield* Host
    const existing = yield* host.stat(paths.codexHome).pipe(
      Effect.map(Option.some),
      Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed(Option.none()))
    )
    if (Option.isSome(existing) && existing.value.type !== "Directory") {
      return yield* new HostError({ host: host.label, operation: "plant brokered auth.json", path: paths.codexHome, reason: "NotADirectory", detail: "CODEX_HOME is not a directory (a symlink is refused)" })
    }
    yield* host.makeDirectory(paths.codexHome, { mode: 0o700 })
    yield* host.writeFile(posix.join(paths.codexHome, "auth.json"), Redacted.value(brokered.task.authJson), { mode: CREDENTIAL_FILE_MODE })
    const task = yield* TaskContext
    yield* task.reportProgress(null, `Planted seed ${brokered.seedId}`)
  })
