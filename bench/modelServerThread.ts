/**
 * The turn benchmarks' model server, in a worker thread of its own: in production the model
 * answers from another machine, so the worker's event loop must not also be the server's. (In
 * one loop, whatever the library does while a turn streams delays the server's answer, and the
 * library's cost would be counted twice.) The arrival of each request is timed in the server's
 * thread and reported on the bench's clock.
 */
import { Deferred, Effect } from "effect"
import type { Scope } from "effect"
import { Worker } from "node:worker_threads"

/** A scripted model server ("pong" to everything) running in its own thread. */
export interface BenchModelServer {
  readonly baseUrl: string
  /** How many requests it has received so far. */
  readonly requestCount: Effect.Effect<number>
  /** When (bench clock, `performance.now()`) request number `count` arrived; waits for it. */
  readonly arrivalOf: (count: number) => Effect.Effect<number>
}

type FromWorker =
  | { readonly _tag: "Ready"; readonly baseUrl: string }
  | { readonly _tag: "Request"; readonly count: number; readonly at: number }

export const startModelServerThread: Effect.Effect<BenchModelServer, never, Scope.Scope> = Effect.gen(function*() {
  const worker = yield* Effect.acquireRelease(
    Effect.sync(() => new Worker(new URL("./modelServerWorker.ts", import.meta.url))),
    (running) => Effect.promise(() => running.terminate())
  )
  const ready = yield* Deferred.make<string>()
  const arrivals = new Map<number, number>()
  const waiters = new Map<number, Deferred.Deferred<number>>()
  let received = 0
  worker.on("message", (message: FromWorker) => {
    if (message._tag === "Ready") {
      Deferred.doneUnsafe(ready, Effect.succeed(message.baseUrl))
      return
    }
    // The worker's epoch-based time on this thread's performance clock.
    const at = message.at - performance.timeOrigin
    received = Math.max(received, message.count)
    arrivals.set(message.count, at)
    const waiter = waiters.get(message.count)
    if (waiter !== undefined) Deferred.doneUnsafe(waiter, Effect.succeed(at))
  })
  worker.on("error", (error) => Deferred.doneUnsafe(ready, Effect.die(error)))
  const baseUrl = yield* Deferred.await(ready)
  return {
    baseUrl,
    requestCount: Effect.sync(() => received),
    arrivalOf: (count) =>
      Effect.suspend(() => {
        const known = arrivals.get(count)
        if (known !== undefined) return Effect.succeed(known)
        const waiter = waiters.get(count) ?? Deferred.makeUnsafe<number>()
        waiters.set(count, waiter)
        return Deferred.await(waiter)
      })
  }
})
