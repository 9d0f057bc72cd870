/**
 * A loopback port nothing listens on (bound, then closed), for "connection refused" cases.
 */
import { Effect } from "effect"
import { createServer } from "node:net"

export const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
)
