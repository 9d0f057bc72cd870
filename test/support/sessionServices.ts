/**
 * The live services a local session needs in tests: a recording TaskContext (fresh or resumed),
 * the shared codex binary cache, the web terminal and the listener, an in-memory store (seeds,
 * leases, snapshots) and optionally a CredWatcher with test cadences, all on the LocalHost.
 */
import { Layer } from "effect"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { CredWatcher } from "../../src/credentials/CredWatcher.ts"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import type { Lease } from "../../src/lease/Lease.ts"
import type { SeedStore } from "../../src/seeds/SeedStore.ts"
import type { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import type { MemoryStoreState } from "../../src/store/Store.ts"
import { TaskContext } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import { sharedBinaryCache } from "./codexCache.ts"

export interface SessionServicesOptions<E> {
  /** Whether the worker asks this run to resume. */
  readonly resume?: boolean
  /** Shared memory-store state, so several runs (or the test itself) see one store. */
  readonly state?: MemoryStoreState
  /** Another store instead of the in-memory one. */
  readonly stores?: Layer.Layer<SeedStore | Lease | SnapshotStore, E>
  /** A CredWatcher with these cadences (default: `CredWatcher.layer`). */
  readonly credWatcher?: Parameters<typeof CredWatcher.layerWith>[0]
  /** The worker's token broker (default `TokenBroker.layerNone`: seeded tasks in file mode). */
  readonly tokenBroker?: Layer.Layer<TokenBroker>
}

export const sessionServices = <E = never>(processId: string, options: SessionServicesOptions<E> = {}) =>
  Layer.mergeAll(
    TaskContext.layerRecording({ processId, resume: options.resume ?? false }),
    sharedBinaryCache,
    TtydSession.layer, Tmux.layer, AppServerClient.layer,
    ConversationListener.layer,
    options.credWatcher === undefined ? CredWatcher.layer : CredWatcher.layerWith(options.credWatcher),
    options.tokenBroker ?? TokenBroker.layerNone
  ).pipe(
    Layer.provideMerge(Layer.merge(
      options.stores ?? Store.layerMemory(options.state === undefined ? {} : { state: options.state }).pipe(Layer.provide(BlobCrypto.layerPlaintext)),
      LocalHost.layer()
    ))
  )

/** A store-less worker's stores (`Store.layerNone`) and the credential watcher over them. */
export const noStoreServices = Layer.mergeAll(Store.layerNone, CredWatcher.layer.pipe(Layer.provide(Store.layerNone)), TokenBroker.layerNone)
