/**
 * Host.forwardToLocal over a real SSH connection (private sshd on 127.0.0.1): a process on the SSH
 * host reaches a loopback service of the worker — the token broker, as a brokered task's codex does
 * — through a remote port forward, only while the scope that asked for it is open.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { FetchHttpClient } from "effect/http"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import * as RemoteHost from "../../src/host/RemoteHost.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { sshdForSuite } from "../support/sshd.ts"
import { waitUntil } from "../support/waitUntil.ts"

const root = join(process.cwd(), ".cache", "test", `remote-forward-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))
const sshd = sshdForSuite(join(root, "known_hosts"))

const remoteHost = (scope: Scope.Scope) =>
  Layer.buildWithScope(RemoteHost.layer({
    host: "127.0.0.1",
    port: sshd().port,
    user: "root",
    identityFile: sshd().clientKeyPath,
    knownHostsFile: join(root, "known_hosts")
  }), scope).pipe(Effect.map((context) => Context.get(context, Host)))

/** A loopback HTTP service of the worker answering `text`. */
const workerService = (text: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ readonly port: number; readonly close: () => void }>((resolve) => {
        const server = createServer((_request, response) => response.end(text))
        server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as AddressInfo).port, close: () => server.close() }))
      })
    ),
    (service) => Effect.sync(() => service.close())
  )

/**
 * A client on the SSH host. The "remote" is this machine, so connecting to its loopback port from
 * here is connecting on the SSH host: the port is bound by sshd, which carries each connection
 * over the SSH connection back to the worker's relay.
 */
const fetchOnHost = (url: string, init?: RequestInit) =>
  Effect.tryPromise(() => fetch(url, { ...init, signal: AbortSignal.timeout(5000) }).then((response) => response.text()))

/** Succeeds once nothing listens on the port any more (the server drops the forward). */
const waitClosed = (port: number) =>
  waitUntil(
    `nothing answers on 127.0.0.1:${port}`,
    Effect.result(fetchOnHost(`http://127.0.0.1:${port}/`)).pipe(Effect.map((outcome) => outcome._tag === "Failure" ? true : undefined)),
    "5 seconds"
  )

describe("Host.forwardToLocal", () => {
  it.live("a process on the SSH host reaches the worker's loopback service through the forward, only while it is held", () =>
    Effect.gen(function*() {
      const host = yield* remoteHost(yield* Effect.scope)
      const service = yield* workerService("hello-from-worker")
      assert.isDefined(host.forwardToLocal)
      const forwardScope = yield* Scope.make()
      const remotePort = yield* host.forwardToLocal!(service.port).pipe(Scope.provide(forwardScope))
      assert.notStrictEqual(remotePort, service.port)
      const answers = yield* Effect.all([1, 2, 3].map(() => fetchOnHost(`http://127.0.0.1:${remotePort}/`)), { concurrency: "unbounded" })
      assert.deepStrictEqual(answers, ["hello-from-worker", "hello-from-worker", "hello-from-worker"])
      yield* Scope.close(forwardScope, Exit.void)
      const after = yield* Effect.result(waitClosed(remotePort))
      assert.strictEqual(after._tag, "Success", "no forward once its scope closed")
    }).pipe(Effect.scoped), 60_000)

  it.live("the token broker answers through the forward (an unknown handle gets codex's log-in-again answer)", () =>
    Effect.gen(function*() {
      const hostScope = yield* Effect.scope
      const host = yield* remoteHost(hostScope)
      const context = yield* Layer.build(TokenBroker.layer({}).pipe(
        Layer.provide(Layer.mergeAll(Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)), FetchHttpClient.layer))
      ))
      const live = Context.get(context, TokenBroker)
      const remotePort = yield* host.forwardToLocal!(live.port)
      const answer = yield* fetchOnHost(`http://127.0.0.1:${remotePort}/oauth/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ grant_type: "refresh_token", refresh_token: "optio-handle.unknown" })
      })
      assert.include(answer, "refresh_token_expired")
    }).pipe(Effect.scoped), 60_000)

  it.effect("is the identity on the local host", () =>
    Effect.gen(function*() {
      const host = yield* Host
      assert.strictEqual(yield* Effect.scoped(host.forwardToLocal!(4321)), 4321)
    }).pipe(Effect.provide(LocalHost.layer())))
})
