/**
 * transferMemory: the worker's memory per download and per upload request (issue #13, finding 6).
 *
 *   node bench/transferMemory.ts
 *
 * - downloads: 50 downloads of a 3-byte file with maxDownloadBytes 10 MiB, 10 at a time: peak
 *   growth of RSS and `arrayBuffers` while they run.
 * - one upload: POST /upload (curl, another process) of one 8 MiB, then one 64 MiB file, with
 *   maxUploadBytes equal to the file: peak growth of RSS and `arrayBuffers` while it runs.
 * - a 32-part upload: 32 parts of 4 MiB with maxUploadBytes 4 MiB: same peak figures (the
 *   listener used to buffer every part up to the limit before writing any).
 *
 * Figures are printed as one JSON object; nothing is asserted (speed and size targets live here,
 * never in timed tests).
 */
import { Effect, Redacted } from "effect"
import { spawn } from "node:child_process"
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { ConversationListener } from "../src/conversation/ConversationListener.ts"
import { makeDownloadReader } from "../src/conversation/Downloads.ts"
import { makeUploadWriter } from "../src/conversation/Uploads.ts"
import * as LocalHost from "../src/host/LocalHost.ts"
import { makeFakeConversation } from "../test/conversation/harness.ts"

setFlagsFromString("--expose-gc")
const gc: unknown = runInNewContext("gc")
const collectGarbage = () => {
  if (typeof gc === "function") {
    gc()
    gc()
  }
}
const MiB = 1024 * 1024
const mib = (bytes: number) => Math.round((bytes / MiB) * 10) / 10

const root = join(process.cwd(), ".cache", "bench", `transfer-memory-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })

/** Peak growth of RSS and arrayBuffers over the baseline while `effect` runs. */
const peakDuring = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    collectGarbage()
    const base = process.memoryUsage()
    let peakRss = 0
    let peakBuffers = 0
    const sample = () => {
      const now = process.memoryUsage()
      peakRss = Math.max(peakRss, now.rss - base.rss)
      peakBuffers = Math.max(peakBuffers, now.arrayBuffers - base.arrayBuffers)
    }
    // A bench may poll with a timer; src/ may not.
    const timer = setInterval(sample, 2)
    const result = yield* effect.pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
    sample()
    return { result, peakRssMiB: mib(peakRss), peakArrayBuffersMiB: mib(peakBuffers) }
  })

/** POSTs `files` as multipart `file` parts with curl; the HTTP status. Credentials go on stdin. */
const curlUpload = (url: string, password: string, files: ReadonlyArray<string>) =>
  Effect.callback<number>((resume) => {
    const args = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-K", "-", ...files.flatMap((file) => ["-F", `file=@${file}`]), url]
    const child = spawn("curl", args, { stdio: ["pipe", "pipe", "ignore"] })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.on("exit", () => resume(Effect.succeed(Number(out))))
    child.stdin.end(`user = "optio:${password}"\n`)
  })

const downloads = Effect.gen(function*() {
  const workdir = join(root, "download")
  mkdirSync(workdir, { recursive: true })
  writeFileSync(join(workdir, "tiny.txt"), "abc")
  const reader = yield* makeDownloadReader({ workdir, maxBytes: 10 * MiB })
  const measured = yield* peakDuring(Effect.forEach(Array.from({ length: 50 }), () => reader("tiny.txt"), { concurrency: 10 }))
  return { files: measured.result.length, peakRssMiB: measured.peakRssMiB, peakArrayBuffersMiB: measured.peakArrayBuffersMiB }
})

const upload = (parts: number, partBytes: number, maxBytes: number) =>
  Effect.gen(function*() {
    const workdir = join(root, `upload-${parts}x${partBytes}`)
    mkdirSync(workdir, { recursive: true })
    const fake = yield* makeFakeConversation()
    const writer = yield* makeUploadWriter({ workdir, maxBytes })
    const listener = yield* ConversationListener
    const endpoint = yield* listener.serve(fake.handle, { uploads: { writer, stream: writer.stream, maxBytes } })
    const files = Array.from({ length: parts }, (_, i) => {
      const path = join(root, `part-${parts}-${i}.bin`)
      writeFileSync(path, new Uint8Array(partBytes).fill(65 + (i % 26)))
      return path
    })
    // The client is another process (curl), so only the worker's side is measured.
    const measured = yield* peakDuring(curlUpload(`${endpoint.url}/upload`, Redacted.value(endpoint.password), files))
    return { parts, partMiB: mib(partBytes), status: measured.result, peakRssMiB: measured.peakRssMiB, peakArrayBuffersMiB: measured.peakArrayBuffersMiB }
  }).pipe(Effect.scoped, Effect.provide(ConversationListener.layer))

const program = Effect.gen(function*() {
  const figures = {
    downloads: yield* downloads,
    oneUpload: yield* upload(1, 8 * MiB, 8 * MiB),
    bigUpload: yield* upload(1, 64 * MiB, 64 * MiB),
    manyParts: yield* upload(32, 4 * MiB, 4 * MiB)
  }
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`)
}).pipe(Effect.provide(LocalHost.layer()), Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true }))))

Effect.runPromise(program).catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exitCode = 1
})
