/**
 * PackageInfo: this package's own manifest, read relative to the module (`src/package/` in a
 * checkout, `dist/package/` when installed: both two levels below the package root), never
 * relative to the working directory or the repository layout.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { createRequire } from "node:module"

const Manifest = Schema.Struct({
  name: Schema.String,
  version: Schema.String,
  dependencies: Schema.Struct({ "@openai/codex": Schema.String })
})

const manifest = Schema.decodeUnknownSync(Manifest)(createRequire(import.meta.url)("../../package.json"))

/**
 * This package's version (`version` of its package.json).
 * @category constants
 * @since 0.1.0
 */
export const PACKAGE_VERSION: string = manifest.version

/**
 * The codex version this package pins (its exact `@openai/codex` dependency).
 * @category constants
 * @since 0.1.0
 */
export const PINNED_CODEX_VERSION: string = manifest.dependencies["@openai/codex"]

/**
 * The version line the CLI's `--version` prints: the package and the codex it pins.
 * @category constants
 * @since 0.1.0
 */
export const VERSION_LINE: string = `${manifest.version} (codex ${PINNED_CODEX_VERSION})`
