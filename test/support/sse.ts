/**
 * A minimal SSE client for tests: reads `id:` / `data:` frames from a fetch response body.
 */
import { Effect, Queue, Stream } from "effect"

/** One received SSE event. */
export interface SseEvent {
  readonly id: string | undefined
  readonly data: unknown
}

/** Connects to `url` and streams its events; the connection closes with the stream's scope. */
export const sseEvents = (url: string, headers: Record<string, string>): Stream.Stream<SseEvent, Error> =>
  Stream.callback<SseEvent, Error>((queue) =>
    Effect.gen(function*() {
      const controller = new AbortController()
      yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
      const response = yield* Effect.tryPromise({
        try: () => fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: controller.signal }),
        catch: (error) => new Error(`SSE connect failed: ${String(error)}`)
      })
      if (!response.ok || response.body === null) return yield* Effect.fail(new Error(`SSE status ${response.status}`))
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ""
      const pump = async (): Promise<void> => {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) return
          buffer += value
          let end = buffer.indexOf("\n\n")
          while (end >= 0) {
            const frame = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            let id: string | undefined
            const data: Array<string> = []
            for (const line of frame.split("\n")) {
              if (line.startsWith("id:")) id = line.slice(3).trim()
              else if (line.startsWith("data:")) data.push(line.slice(5).trimStart())
            }
            if (data.length > 0) Queue.offerUnsafe(queue, { id, data: JSON.parse(data.join("\n")) })
            end = buffer.indexOf("\n\n")
          }
        }
      }
      yield* Effect.tryPromise({ try: pump, catch: (error) => new Error(String(error)) }).pipe(
        Effect.catch(() => Effect.void),
        Effect.andThen(Queue.end(queue)),
        Effect.forkScoped
      )
    }))

/** The Basic authorization header for a listener password. */
export const basicAuth = (username: string, password: string): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`
})
