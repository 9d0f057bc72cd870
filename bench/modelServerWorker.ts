/**
 * The worker-thread side of {@link startModelServerThread}: a scripted model server answering
 * "pong" to everything, which posts its base URL once and then, for every request it records,
 * the request's number and when it arrived (ms since the epoch, sub-millisecond).
 */
import { Effect } from "effect"
import { parentPort } from "node:worker_threads"
import { ScriptedModelServer } from "../src/modelserver/ScriptedModelServer.ts"

const port = parentPort
if (port === null) throw new Error("modelServerWorker.ts runs in a worker thread")

Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const server = yield* ScriptedModelServer.start([], { exhaustedText: "pong" })
  port.postMessage({ _tag: "Ready", baseUrl: server.baseUrl })
  let seen = 0
  for (;;) {
    const requests = yield* server.awaitRequests((recorded) => recorded.length > seen, "1 hour")
    const at = performance.timeOrigin + performance.now()
    for (; seen < requests.length; seen++) port.postMessage({ _tag: "Request", count: seen + 1, at })
  }
})))
