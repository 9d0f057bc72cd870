/**
 * Downloads and uploads against an agent that swaps symlinks while the worker works: a separate
 * process (true parallelism, like an agent's shell loop) flips a workdir file or directory
 * between a real one and a symlink to a secret outside, as fast as it can, while the worker
 * serves hundreds of requests. Nothing outside may be read or written, and no stray file may
 * remain on either side.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { makeDownloadReader } from "../../src/conversation/Downloads.ts"
import { makeUploadWriter } from "../../src/conversation/Uploads.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { symlinkSwapper as attacker } from "../support/symlinkSwapper.ts"

const root = join(process.cwd(), ".cache", "test", `transfer-races-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

const ATTEMPTS = 600

/** Regular files under `dir` (symlinks not followed), relative to it. */
const regularFilesUnder = (dir: string): ReadonlyArray<string> =>
  tree(dir).filter((path) => lstatSync(join(dir, path)).isFile())

/** Every name under `dir`, recursively, relative to it. */
const tree = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { recursive: true, encoding: "utf8" }).sort()

describe("transfers against a symlink-swapping agent", () => {
  it.live(`finding 6: download symlink race leaks nothing (${ATTEMPTS} attempts each, file and directory swaps)`, () =>
    Effect.gen(function*() {
      const base = join(root, "download")
      const workdir = join(base, "workdir")
      const outside = join(base, "outside")
      mkdirSync(join(workdir, "sub"), { recursive: true })
      mkdirSync(outside, { recursive: true })
      writeFileSync(join(base, "secret.txt"), "SECRET-FILE")
      writeFileSync(join(outside, "public.txt"), "SECRET-DIR")
      writeFileSync(join(workdir, "race.txt"), "public")
      writeFileSync(join(workdir, "sub", "public.txt"), "public")
      const reader = yield* makeDownloadReader({ workdir, maxBytes: 1024 }).pipe(Effect.provide(LocalHost.layer()))
      const counts = { served: 0, refused: 0, leaked: 0 }
      const attempt = (path: string) =>
        reader(path).pipe(
          Effect.map((file) => {
            const text = new TextDecoder().decode(file.bytes)
            if (text.includes("SECRET")) counts.leaked += 1
            else counts.served += 1
          }),
          Effect.catch(() => Effect.sync(() => void (counts.refused += 1)))
        )
      yield* Effect.scoped(Effect.gen(function*() {
        yield* attacker(["file", workdir, join(base, "secret.txt")])
        for (let i = 0; i < ATTEMPTS; i++) yield* attempt("race.txt")
      }))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* attacker(["dir", workdir, outside, "sub"])
        for (let i = 0; i < ATTEMPTS; i++) yield* attempt("sub/public.txt")
      }))
      yield* Effect.logInfo(`download race: ${JSON.stringify(counts)}`)
      assert.strictEqual(counts.leaked, 0, `leaked in ${counts.leaked} of ${2 * ATTEMPTS} attempts`)
      assert.isAbove(counts.served, 0, "the race was real: some attempts were served")
    }))

  it.live(`finding 6: upload directory race writes nothing outside and leaves no stray file (${ATTEMPTS / 2} attempts)`, () =>
    Effect.gen(function*() {
      const base = join(root, "upload")
      const workdir = join(base, "workdir")
      const outside = join(base, "outside")
      mkdirSync(join(workdir, "uploads"), { recursive: true })
      mkdirSync(outside, { recursive: true })
      const writer = yield* makeUploadWriter({ workdir, maxBytes: 1024 }).pipe(Effect.provide(LocalHost.layer()))
      const counts = { stored: 0, refused: 0 }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* attacker(["dir", workdir, outside, "uploads"])
        for (let i = 0; i < ATTEMPTS / 2; i++) {
          yield* writer({ fileName: `f${i}.txt`, bytes: new TextEncoder().encode(`upload ${i}`) }).pipe(
            Effect.map(() => void (counts.stored += 1)),
            Effect.catch(() => Effect.sync(() => void (counts.refused += 1)))
          )
        }
      }))
      yield* Effect.logInfo(`upload race: ${JSON.stringify(counts)}`)
      // The attacker may have been killed between two renames, and a missing uploads/ is
      // recreated by the writer: the stored files are wherever real directories are now.
      const files = regularFilesUnder(workdir)
      assert.deepStrictEqual(tree(outside), [], "nothing was written outside the workdir")
      assert.deepStrictEqual(files.filter((path) => path.includes(".tmp") || /(^|\/)\.[^/]*$/.test(path)), [], "no stray temp files")
      assert.strictEqual(files.length, counts.stored, "exactly the files reported stored are there")
      for (const path of files) assert.match(readFileSync(join(workdir, path), "utf8"), /^upload \d+$/)
      assert.isAbove(counts.stored, 0, "the race was real: some uploads were stored")
    }))
})
