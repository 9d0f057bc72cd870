/**
 * A second worker process for the broker e2e test: its own TokenBroker over the shared embedded
 * store, running one brokered conversation task on a seed. Line protocol: prints `@@ready` once
 * the conversation is live, sends its turn on `go` (stdin), stops the task on `stop`, prints
 * `@@done <stats json>` and exits. Its log lines go to stderr as JSON (the test searches them).
 *
 * Usage: node test/support/brokerWorker.ts <json options>
 */
import { Cause, Deferred, Effect, Fiber, Layer, Logger, Queue } from "effect"
import { FetchHttpClient } from "effect/http"
import { createInterface } from "node:readline"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import { chatgptCodexConfig } from "../../src/modelserver/OfflineCodexConfig.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { sessionServices } from "./sessionServices.ts"

interface Options {
  readonly dataDir: string
  readonly seedId: string
  readonly processId: string
  readonly workdir: string
  readonly baseUrl: string
  readonly issuerTokenUrl: string
}

const options = JSON.parse(process.argv[2] ?? "{}") as Options

const logToStderr = Logger.layer([Logger.make((entry) => {
  process.stderr.write(`${JSON.stringify({ message: entry.message, cause: Cause.pretty(entry.cause) })}\n`)
})])

const stores = Store.layerEmbedded({ dataDir: options.dataDir }).pipe(Layer.provide(BlobCrypto.layerPlaintext), Layer.orDie)
const broker = TokenBroker.layer({ upstreamTokenUrl: options.issuerTokenUrl, renewInterval: "400 millis", leaseTtl: "3 seconds" }).pipe(
  Layer.provide(Layer.mergeAll(stores, FetchHttpClient.layer))
)
const services = Layer.mergeAll(sessionServices(options.processId, { stores, tokenBroker: broker }), broker).pipe(Layer.provideMerge(logToStderr))

const program = Effect.gen(function*() {
  const lines = yield* Queue.unbounded<string>()
  const reader = createInterface({ input: process.stdin })
  reader.on("line", (line) => Queue.offerUnsafe(lines, line.trim()))
  const { model: _model, ...configOverrides } = chatgptCodexConfig({ baseUrl: options.baseUrl, requestMaxRetries: 0 })
  const conversation = yield* Deferred.make<CodexConversation>()
  const session = yield* runCodexSession({
    consumerInstructions: "brokered e2e, second worker",
    mode: "conversation",
    model: "scripted-model",
    configOverrides,
    env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: options.issuerTokenUrl },
    seedId: options.seedId
  }, { workdir: options.workdir, stopGracePeriod: "2 seconds", onConversation: (live) => Deferred.succeed(conversation, live) }).pipe(Effect.forkScoped)
  const live = yield* Deferred.await(conversation)
  process.stdout.write("@@ready\n")
  while ((yield* Queue.take(lines)) !== "go") { /* wait */ }
  yield* live.sendTurn("go")
  while ((yield* Queue.take(lines)) !== "stop") { /* wait */ }
  yield* Fiber.interrupt(session)
  const stats = yield* TokenBroker.use((b) => b.stats)
  reader.close()
  return stats
}).pipe(Effect.scoped, Effect.provide(services))

Effect.runPromise(program).then(
  (stats) => {
    process.stdout.write(`@@done ${JSON.stringify(stats)}\n`)
    process.exit(0)
  },
  (error) => {
    process.stdout.write(`@@failed ${String(error)}\n`)
    process.exit(1)
  }
)
