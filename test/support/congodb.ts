/**
 * CongoDB, a MongoDB wire-protocol server written in TypeScript, as a test peer for the MongoDB
 * store backend (platform notes, "MongoDB"). It ships inside the tarball of
 * `@push.rocks/smartmongo@2.2.0`, whose own dependency list does not install, so it is fetched with
 * `npm pack` at test setup into `.cache/congodb/` (never committed), unpacked, and given its six
 * runtime dependencies with `npm install --no-save` there.
 *
 * Setup is idempotent and safe across concurrent vitest workers: each worker builds into a private
 * temporary directory and publishes it with one `rename`; a loser of that race discards its copy.
 *
 * Each server runs in its own child process (so its memory is not the test worker's) and dies with
 * its scope, or when the test worker dies (it exits when its stdin closes).
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { mkdir, rename, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

const SMARTMONGO = "@push.rocks/smartmongo@2.2.0"
const TARBALL = "push.rocks-smartmongo-2.2.0.tgz"
/** The runtime dependencies of CongoDB's `dist_ts` (platform notes), pinned. */
const RUNTIME_DEPS = [
  "bson@6.10.4",
  "mingo@7.2.7",
  "@push.rocks/smartfs@1.5.0",
  "@push.rocks/smartpath@5.1.0",
  "@push.rocks/smartpromise@4.2.3",
  "@push.rocks/smartrx@3.0.10"
]

/** Where the unpacked CongoDB lives once set up. */
export const congoDbDir = join(repoRoot, ".cache", "congodb")
const readyMarker = join(congoDbDir, "READY")

const SERVE_SCRIPT = `import { CongoServer } from "./package/dist_ts/congodb/index.js"
const server = new CongoServer({ host: "127.0.0.1", port: 0 })
await server.start()
process.stdout.write("ready " + server.server.address().port + "\\n")
const stop = () => server.stop().finally(() => process.exit(0))
process.on("SIGTERM", stop)
process.stdin.on("end", stop)
process.stdin.resume()
`

const run = promisify(execFile)

/** Fetches and unpacks CongoDB into `.cache/congodb/` unless it is already there. */
export const ensureCongoDb: Effect.Effect<string, Error> = Effect.tryPromise({
  try: async () => {
    if (existsSync(readyMarker)) return congoDbDir
    const staging = `${congoDbDir}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`
    await mkdir(staging, { recursive: true })
    try {
      const npmOptions = { cwd: staging, maxBuffer: 16 * 1024 * 1024 }
      await run("npm", ["pack", SMARTMONGO, "--silent"], npmOptions)
      await run("tar", ["xzf", TARBALL], npmOptions)
      await rm(join(staging, TARBALL), { force: true })
      await writeFile(join(staging, "package.json"), JSON.stringify({ name: "congodb-test-peer", private: true }))
      await run("npm", [
        "install", "--prefix", staging, "--no-save", "--no-package-lock", "--ignore-scripts",
        "--no-audit", "--no-fund", ...RUNTIME_DEPS
      ], npmOptions)
      await writeFile(join(staging, "serve.mjs"), SERVE_SCRIPT)
      await writeFile(join(staging, "READY"), `${SMARTMONGO}\n`)
      // Directories are only ever published complete, so one without READY is debris: replace it.
      if (existsSync(congoDbDir) && !existsSync(readyMarker)) await rm(congoDbDir, { recursive: true, force: true })
      await rename(staging, congoDbDir).catch(async (error: unknown) => {
        if (!existsSync(readyMarker)) throw error
      })
    } finally {
      await rm(staging, { recursive: true, force: true })
    }
    return congoDbDir
  },
  catch: (cause) => new Error(`CongoDB setup failed: ${String(cause)}`)
})

/** A running CongoDB server. */
export interface CongoDbServer {
  readonly uri: string
  readonly port: number
}

/**
 * Starts CongoDB on 127.0.0.1 on a free port (chosen by the server itself), for the life of the
 * scope.
 */
export const startCongoDb: Effect.Effect<CongoDbServer, Error, Scope.Scope> = Effect.gen(function*() {
  const dir = yield* ensureCongoDb
  const child = yield* Effect.acquireRelease(
    Effect.sync(() => spawn(process.execPath, [join(dir, "serve.mjs")], { cwd: dir, stdio: ["pipe", "pipe", "pipe"] })),
    (child) =>
      Effect.callback<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000)
        child.once("exit", () => {
          clearTimeout(timer)
          resume(Effect.void)
        })
        child.kill("SIGTERM")
      })
  )
  const port = yield* Effect.callback<number, Error>((resume) => {
    let out = ""
    let err = ""
    const timer = setTimeout(() => resume(Effect.fail(new Error(`CongoDB did not start: ${err}`))), 30_000)
    child.stderr.on("data", (chunk: Buffer) => {
      err += chunk.toString()
    })
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const match = /ready (\d+)\n/.exec(out)
      if (match?.[1] === undefined) return
      clearTimeout(timer)
      resume(Effect.succeed(Number(match[1])))
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      resume(Effect.fail(new Error(`CongoDB exited with ${code}: ${err}`)))
    })
  })
  return { uri: `mongodb://127.0.0.1:${port}/?directConnection=true`, port }
})
