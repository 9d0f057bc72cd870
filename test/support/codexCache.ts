/**
 * The one binary cache every real-codex test shares: the pinned codex is installed once (hard
 * links into node_modules) and all tests run the same binary file.
 */
import { Layer } from "effect"
import { join } from "node:path"
import { BinaryCache } from "../../src/binary/BinaryCache.ts"
import type { Host } from "../../src/host/Host.ts"
import { repoRoot } from "./offlineCodex.ts"

export const sharedCodexCacheDir = join(repoRoot, ".cache", "codex-bin")

/** BinaryCache on the shared test cache, over whatever Host is provided. */
export const sharedBinaryCache: Layer.Layer<BinaryCache, never, Host> = BinaryCache.layer({ cacheDir: sharedCodexCacheDir })
