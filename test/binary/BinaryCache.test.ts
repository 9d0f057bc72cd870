import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdirSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { BinaryCache, PINNED_CODEX_VERSION } from "../../src/binary/BinaryCache.ts"
import type { BinaryCacheOptions } from "../../src/binary/BinaryCache.ts"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"

const root = join(process.cwd(), ".cache", "test", `binary-cache-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

let counter = 0
const freshDir = (name: string) => join(root, `${name}-${++counter}`)
const INSTALL_NAME = `codex-${PINNED_CODEX_VERSION}-x86_64-unknown-linux-musl`

const resolveWith = (options: BinaryCacheOptions, host = LocalHost.layer()) =>
  Effect.gen(function*() {
    const cache = yield* BinaryCache
    return yield* cache.resolve
  }).pipe(Effect.provide(BinaryCache.layer(options).pipe(Layer.provide(host))))

const runOnHost = (argv: readonly [string, ...Array<string>]) =>
  Effect.gen(function*() {
    const host = yield* Host
    return yield* host.run({ argv })
  }).pipe(Effect.provide(LocalHost.layer()))

describe("BinaryCache", () => {
  it.live("two concurrent resolutions on a cold cache both succeed and leave one stamped binary", () =>
    Effect.gen(function*() {
      const cacheDir = freshDir("cold")
      // Two layers = two independent workers sharing one cache directory.
      const [a, b] = yield* Effect.all([resolveWith({ cacheDir }), resolveWith({ cacheDir })], { concurrency: 2 })
      assert.strictEqual(a.binaryPath, join(cacheDir, INSTALL_NAME, "bin", "codex"))
      assert.strictEqual(a.binaryPath, b.binaryPath)
      assert.deepStrictEqual(readdirSync(cacheDir), [INSTALL_NAME]) // no staging or discarded leftovers
      assert.include(readdirSync(join(cacheDir, INSTALL_NAME)), "optio-codex.stamp")
      const version = yield* runOnHost([a.binaryPath, "--version"])
      assert.strictEqual(version.stdout.trim(), `codex-cli ${PINNED_CODEX_VERSION}`)
      const again = yield* resolveWith({ cacheDir })
      assert.strictEqual(again.source, "cache")
    }))

  it.live("a damaged install fails the stamp check and is replaced", () =>
    Effect.gen(function*() {
      const cacheDir = freshDir("damaged")
      const first = yield* resolveWith({ cacheDir })
      // Replace (never modify in place: cached files may be hard links into node_modules).
      const damaged = join(cacheDir, INSTALL_NAME, "codex-package.json")
      rmSync(damaged)
      writeFileSync(damaged, "{}")
      const second = yield* resolveWith({ cacheDir })
      assert.strictEqual(second.source, "installed")
      assert.strictEqual(second.binaryPath, first.binaryPath)
      assert.deepStrictEqual(readdirSync(cacheDir), [INSTALL_NAME])
      assert.strictEqual((yield* resolveWith({ cacheDir })).source, "cache")
    }))

  it.live("a miss with installIfMissing false is a typed error naming the cache", () =>
    Effect.gen(function*() {
      const cacheDir = freshDir("no-install")
      const error = yield* Effect.flip(resolveWith({ cacheDir, installIfMissing: false }))
      assert.strictEqual(error._tag, "CodexUnavailable")
      if (error._tag !== "CodexUnavailable") return
      assert.strictEqual(error.reason, "not-cached")
      assert.include(error.message, cacheDir)
    }))

  it.live("without a platform package or a pinned codex on PATH the error says how to fix it", () =>
    Effect.gen(function*() {
      const cacheDir = freshDir("no-package")
      const error = yield* Effect.flip(resolveWith({ cacheDir, vendorRoot: join(root, "no-vendor-here") }, LocalHost.layer({ env: { PATH: "/usr/bin:/bin" } })))
      assert.strictEqual(error._tag, "CodexUnavailable")
      if (error._tag !== "CodexUnavailable") return
      assert.strictEqual(error.reason, "platform-package-missing")
      assert.include(error.message, "npm install")
    }))

  it.live("the default cache dir comes from the host's OPTIO_CODEX_CACHE_DIR", () =>
    Effect.gen(function*() {
      const cacheDir = freshDir("from-env")
      const resolved = yield* resolveWith({}, LocalHost.layer({ env: { ...process.env, OPTIO_CODEX_CACHE_DIR: `${cacheDir}/` } }))
      assert.strictEqual(resolved.binaryPath, join(cacheDir, INSTALL_NAME, "bin", "codex"))
    }))

  it.live("a ~/ cache dir expands against the host's home, not the worker's", () =>
    Effect.gen(function*() {
      const home = freshDir("home")
      mkdirSync(home, { recursive: true })
      const resolved = yield* resolveWith({ cacheDir: "~/codex-cache" }, LocalHost.layer({ home }))
      assert.strictEqual(resolved.binaryPath, join(home, "codex-cache", INSTALL_NAME, "bin", "codex"))
    }))

  it.live("linkForTask points a per-task path at the cached binary", () =>
    Effect.gen(function*() {
      const cacheDir = freshDir("link")
      const link = join(freshDir("task"), "home", ".local", "bin", "codex")
      const resolved = yield* Effect.gen(function*() {
        const cache = yield* BinaryCache
        yield* cache.linkForTask(link)
        return yield* cache.linkForTask(link) // idempotent: re-pointing an existing link works
      }).pipe(Effect.provide(BinaryCache.layer({ cacheDir }).pipe(Layer.provide(LocalHost.layer()))))
      assert.strictEqual(readlinkSync(link), resolved.binaryPath)
      const version = yield* runOnHost([link, "--version"])
      assert.strictEqual(version.stdout.trim(), `codex-cli ${PINNED_CODEX_VERSION}`)
    }))
})
