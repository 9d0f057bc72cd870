/**
 * The CODEX_HOME template: primed once per codex version by the real binary, holding codex's
 * state databases and skills and nothing task-specific; copied into a fresh home without
 * clobbering what the task put there; and a primed home still gets its own installation id.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { BinaryCache, PINNED_CODEX_VERSION } from "../../src/binary/BinaryCache.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { sharedCodexCacheDir } from "../support/codexCache.ts"

const root = join(repoRoot, ".cache", "test", `home-template-${process.pid}`)
rmSync(root, { recursive: true, force: true })

describe("CODEX_HOME template", () => {
  it.live("primes once from the real codex; a fresh home gets databases and skills, keeps its own files", () =>
    Effect.gen(function*() {
      // A private cache dir (hard links into node_modules, cheap) so this test primes for real.
      const cacheDir = join(root, "cache")
      const cache = yield* BinaryCache
      const codexHome = join(root, "task-a", "home", ".codex")
      mkdirSync(codexHome, { recursive: true })
      writeFileSync(join(codexHome, "config.toml"), "model = \"mine\"\n")
      assert.isTrue(yield* cache.primeCodexHome(codexHome))

      const template = join(cacheDir, `codex-home-${PINNED_CODEX_VERSION}`)
      const templateFiles = readdirSync(template)
      assert.include(templateFiles, "state_5.sqlite")
      assert.include(templateFiles, "skills")
      for (const shared of ["installation_id", "config.toml", "auth.json", "tmp", ".tmp", "sessions"]) {
        assert.notInclude(templateFiles, shared, `${shared} is never shared between tasks`)
      }
      assert.isFalse(templateFiles.some((name) => name.endsWith("-shm")))

      assert.strictEqual(readFileSync(join(codexHome, "config.toml"), "utf8"), "model = \"mine\"\n", "the task's file is kept")
      assert.isTrue(existsSync(join(codexHome, "state_5.sqlite")))
      assert.isTrue(existsSync(join(codexHome, "skills")))
      assert.isFalse(existsSync(join(codexHome, ".optio-template")))

      // A second task is served from the same template (no new priming: same marker file).
      const marker = readFileSync(join(template, ".optio-template"), "utf8")
      const second = join(root, "task-b", "home", ".codex")
      mkdirSync(second, { recursive: true })
      assert.isTrue(yield* cache.primeCodexHome(second))
      assert.strictEqual(readFileSync(join(template, ".optio-template"), "utf8"), marker)
      assert.isFalse(existsSync(join(second, "installation_id")), "codex mints a new installation id per task")
    }).pipe(Effect.provide(BinaryCache.layer({ cacheDir: join(root, "cache") }).pipe(Layer.provideMerge(LocalHost.layer())))), 60_000)

  it.live("the shared test cache primes the same way (every e2e task starts from it)", () =>
    Effect.gen(function*() {
      const cache = yield* BinaryCache
      const codexHome = join(root, "task-c", "home", ".codex")
      mkdirSync(codexHome, { recursive: true })
      assert.isTrue(yield* cache.primeCodexHome(codexHome))
      assert.isTrue(existsSync(join(sharedCodexCacheDir, `codex-home-${PINNED_CODEX_VERSION}`, ".optio-template")))
    }).pipe(Effect.provide(BinaryCache.layer({ cacheDir: sharedCodexCacheDir }).pipe(Layer.provideMerge(LocalHost.layer())))), 60_000)
})
