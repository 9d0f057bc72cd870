/**
 * SessionServices: what a worker provides to run codex sessions, named in one type, and the one
 * layer that builds the session's own services from the worker's Host and stores.
 *
 * A worker provides three things: a {@link TaskContext} per task (its progress and dashboard
 * channel), a {@link Host} (this machine, or one reached over SSH), and its stores (`Store.layerEmbedded`,
 * `Store.layerMongo`, or `Store.layerNone` when it keeps nothing). {@link layerCodexServices}
 * turns the Host and stores into the rest. Forgetting any of them is a type error where the
 * session is run, not a failure at run time.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { AppServerClient } from "../appserver/AppServerClient.ts"
import { BinaryCache } from "../binary/BinaryCache.ts"
import type { BinaryCacheOptions } from "../binary/BinaryCache.ts"
import { ConversationListener } from "../conversation/ConversationListener.ts"
import { CredWatcher } from "../credentials/CredWatcher.ts"
import type { CredWatcherSettings } from "../credentials/CredWatcher.ts"
import { TokenBroker } from "../credentials/TokenBroker.ts"
import type { TokenBrokerSettings } from "../credentials/TokenBroker.ts"
import type { Host } from "../host/Host.ts"
import type { Lease } from "../lease/Lease.ts"
import type { SeedStore } from "../seeds/SeedStore.ts"
import type { SnapshotStore } from "../snapshots/SnapshotStore.ts"
import type { TaskContext } from "../task/TaskContext.ts"
import { TtydSession } from "../terminal/TtydSession.ts"
import { Tmux } from "../terminal/Tmux.ts"

/**
 * The session's own services, built by {@link layerCodexServices}.
 * @category models
 * @since 0.1.0
 */
export type CodexServices = BinaryCache | Tmux | AppServerClient | TtydSession | ConversationListener | CredWatcher | TokenBroker

/**
 * Everything `runCodexSession` requires: the task's context, the host, the stores and the
 * session's own services.
 * @category models
 * @since 0.1.0
 */
export type CodexSessionServices = TaskContext | Host | SeedStore | Lease | SnapshotStore | CodexServices

/**
 * Options of {@link layerCodexServices}.
 * @category models
 * @since 0.1.0
 */
export interface CodexServicesOptions {
  /** Where the codex binary is cached on the host. */
  readonly binaryCache?: BinaryCacheOptions | undefined
  /** The credential watcher's cadences (defaults: poll 5 s, renew 10 s, TTL 60 s). */
  readonly credWatcher?: CredWatcherSettings | undefined
  /**
   * The refresh-token broker (default on, with its default cadences): seeded tasks get a handle in
   * place of the refresh token. `"none"` keeps every seeded task in file mode
   * (`TokenBroker.layerNone`), as Python workers sharing the store need.
   */
  readonly tokenBroker?: TokenBrokerSettings | "none" | undefined
}

/**
 * The live session services on the worker's Host and stores: the codex binary cache, tmux, codex
 * app-server, the web terminal, the conversation listener, the credential watcher and the token
 * broker (its loopback endpoint lives as long as the layer; it reaches issuers with `fetch`).
 * Build it once per worker; every task shares it.
 * @category layers
 * @since 0.1.0
 */
export const layerCodexServices = (
  options: CodexServicesOptions = {}
): Layer.Layer<CodexServices, never, Host | SeedStore | Lease> =>
  Layer.mergeAll(
    BinaryCache.layer(options.binaryCache ?? {}),
    Tmux.layer,
    AppServerClient.layer,
    TtydSession.layer,
    ConversationListener.layer,
    options.credWatcher === undefined ? CredWatcher.layer : CredWatcher.layerWith(options.credWatcher),
    options.tokenBroker === "none"
      ? TokenBroker.layerNone
      : TokenBroker.layer(options.tokenBroker ?? {}).pipe(Layer.provide(FetchHttpClient.layer))
  )
