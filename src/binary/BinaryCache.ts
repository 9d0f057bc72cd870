/**
 * BinaryCache: provides the pinned codex binary on a host. It owns the host-side cache directory,
 * its version stamp, the atomic install from the npm platform package on the worker, and the
 * per-task launch symlink. It does not download anything: the binary comes from the
 * `@openai/codex` platform package installed beside this library (or, failing that, from a codex
 * on the host's PATH that reports exactly the pinned version).
 *
 * Cache layout: `<cacheDir>/codex-<version>-<target>/` holds the platform package's vendor tree
 * (`bin/codex`, `codex-resources/`, `codex-path/`) plus `optio-codex.stamp`, a JSON record of the
 * version, target and file sizes. The directory appears by one rename, so a reader sees either no
 * install or a complete one, and concurrent first uses race harmlessly.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema } from "effect"
import { randomBytes } from "node:crypto"
import { readdir, readFile, stat } from "node:fs/promises"
import { createRequire } from "node:module"
import { dirname, join, relative } from "node:path"
import { Host, HostError } from "../host/Host.ts"
import type { HostShape } from "../host/Host.ts"
import { PINNED_CODEX_VERSION } from "../package/PackageInfo.ts"
import { copyHomeTemplate, ensureHomeTemplate } from "./CodexHomeTemplate.ts"

export { PINNED_CODEX_VERSION }

/**
 * Why the pinned codex could not be provided on a host.
 * @category errors
 * @since 0.1.0
 */
export class CodexUnavailable extends Schema.TaggedError<CodexUnavailable>()("CodexUnavailable", {
  host: Schema.String,
  reason: Schema.Literals([
    "not-cached",
    "unsupported-platform",
    "platform-package-missing",
    "identity-mismatch",
    "cache-dir-unresolved"
  ]),
  detail: Schema.String
}) {
  override get message(): string {
    return `codex ${PINNED_CODEX_VERSION} is not available on ${this.host} (${this.reason}): ${this.detail}`
  }
}

/**
 * A codex binary ready to launch on a host.
 * @category models
 */
export interface ResolvedCodex {
  readonly version: string
  /** Host path of the binary every task's launch link points at. */
  readonly binaryPath: string
  /** How this resolution found it. */
  readonly source: "cache" | "installed" | "host-path"
  /** The cache directory on the host (also home of the CODEX_HOME template). */
  readonly cacheDir: string
}

/**
 * Options of the live layer.
 * @category models
 */
export interface BinaryCacheOptions {
  /** Cache directory on the host; `~`/`~/…` expand against the host's home. */
  readonly cacheDir?: string | undefined
  /** Whether a cache miss may be filled. Default true. */
  readonly installIfMissing?: boolean | undefined
  /** The vendor root on the worker (`…/vendor`); defaults to the installed platform package's. */
  readonly vendorRoot?: string | undefined
}

/**
 * Provides the pinned codex on the current Host.
 * @category services
 * @since 0.1.0
 */
export class BinaryCache extends Context.Service<BinaryCache, {
  /** Ensures the pinned codex is installed on the host, once per layer (memoized). */
  readonly resolve: Effect.Effect<ResolvedCodex, CodexUnavailable | HostError>
  /**
   * Points `linkPath` (a task's `home/.local/bin/codex`) at the cached binary. Tasks always launch
   * codex by this per-task path, so a process search by path finds exactly one task's codex.
   */
  readonly linkForTask: (
    linkPath: string,
    onProgress?: (message: string) => Effect.Effect<void>
  ) => Effect.Effect<ResolvedCodex, CodexUnavailable | HostError>
  /**
   * Fills a FRESH `codexHome` from a template this codex version initialized once (its state
   * databases and skills), so codex starts as fast as with a reused home; see CodexHomeTemplate.
   * False when it could not (the task then starts as codex would anyway). Never for a resumed home.
   */
  readonly primeCodexHome: (codexHome: string) => Effect.Effect<boolean>
}>()("optio-codex/BinaryCache") {
  /** The live layer, on whatever Host is provided. */
  static readonly layer = (options: BinaryCacheOptions = {}): Layer.Layer<BinaryCache, never, Host> =>
    Layer.effect(BinaryCache, Effect.gen(function*() {
      const host = yield* Host
      // Everyone waiting on the (memoized) install hears its progress.
      const listeners = new Set<(message: string) => Effect.Effect<void>>()
      const report = (message: string) => Effect.forEach([...listeners], (listener) => listener(message), { discard: true })
      const resolve = yield* Effect.cached(resolveOn(host, options, report).pipe(Effect.withSpan("BinaryCache.resolve")))
      const linkForTask = Effect.fn("BinaryCache.linkForTask")(function*(linkPath: string, onProgress?: (message: string) => Effect.Effect<void>) {
        const codex = onProgress === undefined ? yield* resolve : yield* Effect.acquireUseRelease(
          Effect.sync(() => listeners.add(onProgress)),
          () => resolve,
          () => Effect.sync(() => listeners.delete(onProgress))
        )
        yield* host.makeDirectory(dirname(linkPath))
        yield* host.symlink(codex.binaryPath, linkPath)
        return codex
      })
      const template = yield* Effect.cached(
        resolve.pipe(Effect.flatMap((codex) => ensureHomeTemplate(host, codex.binaryPath, codex.cacheDir, codex.version)))
      )
      const primeCodexHome = (codexHome: string) =>
        template.pipe(
          Effect.flatMap((path) => copyHomeTemplate(host, path, codexHome)),
          Effect.catch((error) => Effect.logWarning(`could not prime ${codexHome} from the template: ${error.message}`).pipe(Effect.as(false))),
          Effect.withSpan("BinaryCache.primeCodexHome")
        )
      return BinaryCache.of({ resolve, linkForTask, primeCodexHome })
    }))

  /** A test layer that resolves to a fixed binary path and links to it. */
  static readonly layerTest = (binaryPath: string): Layer.Layer<BinaryCache, never, Host> =>
    Layer.effect(BinaryCache, Effect.gen(function*() {
      const host = yield* Host
      const codex: ResolvedCodex = { version: PINNED_CODEX_VERSION, binaryPath, source: "cache", cacheDir: dirname(dirname(binaryPath)) }
      return BinaryCache.of({
        primeCodexHome: () => Effect.succeed(false),
        resolve: Effect.succeed(codex),
        linkForTask: (linkPath) =>
          host.makeDirectory(dirname(linkPath)).pipe(Effect.andThen(host.symlink(binaryPath, linkPath)), Effect.as(codex))
      })
    }))
}

// --- resolution ------------------------------------------------------------------------------

const STAMP = "optio-codex.stamp"

const Stamp = Schema.Struct({
  version: Schema.String,
  target: Schema.String,
  files: Schema.Record(Schema.String, Schema.Number)
})
type Stamp = typeof Stamp.Type

const TARGETS: Readonly<Record<string, { readonly triple: string; readonly packageName: string }>> = {
  x86_64: { triple: "x86_64-unknown-linux-musl", packageName: "@openai/codex-linux-x64" },
  aarch64: { triple: "aarch64-unknown-linux-musl", packageName: "@openai/codex-linux-arm64" },
  arm64: { triple: "aarch64-unknown-linux-musl", packageName: "@openai/codex-linux-arm64" }
}

const resolveOn = (host: HostShape, options: BinaryCacheOptions, report: (message: string) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const unavailable = (reason: CodexUnavailable["reason"], detail: string) =>
      new CodexUnavailable({ host: host.label, reason, detail })
    const target = yield* hostTarget(host, unavailable)
    const cacheDir = yield* cacheDirOn(host, options.cacheDir, unavailable)
    const installDir = `${cacheDir}/codex-${PINNED_CODEX_VERSION}-${target.triple}`
    const cached = yield* readValidStamp(host, installDir, target.triple)
    if (cached) return found(installDir, cacheDir, "cache")
    if (options.installIfMissing === false) {
      return yield* unavailable("not-cached", `${installDir} holds no valid install and installIfMissing is false`)
    }
    const vendor = yield* Effect.promise(() => locateVendorTree(options.vendorRoot, target))
    if (vendor === undefined) {
      const fromPath = yield* hostCodexOnPath(host)
      if (fromPath !== undefined) return { version: PINNED_CODEX_VERSION, binaryPath: fromPath, source: "host-path", cacheDir } as const
      return yield* unavailable(
        "platform-package-missing",
        `${target.packageName}@${PINNED_CODEX_VERSION} is not installed beside optio-codex and no codex ${PINNED_CODEX_VERSION} is on the host's PATH; run npm install (optional dependencies enabled)`
      )
    }
    yield* installFrom(host, vendor, cacheDir, installDir, target.triple, unavailable, report)
    return found(installDir, cacheDir, "installed")
  })

const found = (installDir: string, cacheDir: string, source: ResolvedCodex["source"]): ResolvedCodex => ({
  version: PINNED_CODEX_VERSION,
  binaryPath: `${installDir}/bin/codex`,
  source,
  cacheDir
})

const hostTarget = (host: HostShape, unavailable: (reason: CodexUnavailable["reason"], detail: string) => CodexUnavailable) =>
  Effect.gen(function*() {
    const uname = yield* host.run({ argv: ["uname", "-sm"] })
    const [os = "", machine = ""] = uname.stdout.trim().split(/\s+/)
    const target = TARGETS[machine]
    if (uname.exitCode !== 0 || os !== "Linux" || target === undefined) {
      return yield* unavailable("unsupported-platform", `uname reports ${JSON.stringify(uname.stdout.trim())}; only Linux x86_64 and aarch64 are supported`)
    }
    return target
  })

const cacheDirOn = (
  host: HostShape,
  configured: string | undefined,
  unavailable: (reason: CodexUnavailable["reason"], detail: string) => CodexUnavailable
) =>
  Effect.gen(function*() {
    if (configured !== undefined) {
      const home = yield* host.home
      const expanded = configured === "~" ? home : configured.startsWith("~/") ? `${home}${configured.slice(1)}` : configured
      return stripTrailingSlash(expanded)
    }
    // Evaluated by the host's shell so the host's environment decides (right for remote hosts too).
    const printed = yield* host.run({
      argv: ["sh", "-c", "printf %s \"${OPTIO_CODEX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/optio-codex/bin}\""]
    })
    const dir = stripTrailingSlash(printed.stdout.trim())
    if (printed.exitCode !== 0 || !dir.startsWith("/")) {
      return yield* unavailable("cache-dir-unresolved", `the host printed ${JSON.stringify(printed.stdout)} (exit ${printed.exitCode})`)
    }
    return dir
  })

const readValidStamp = (host: HostShape, installDir: string, triple: string) =>
  Effect.gen(function*() {
    const text = yield* host.readFile(`${installDir}/${STAMP}`).pipe(
      Effect.map((bytes) => new TextDecoder().decode(bytes)),
      Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed(undefined))
    )
    if (text === undefined) return false
    const stamp = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(Stamp))(text).pipe(Effect.option)
    if (stamp._tag === "None" || stamp.value.version !== PINNED_CODEX_VERSION || stamp.value.target !== triple) return false
    // Sizes catch a truncated or replaced file without hashing 400 MB on every task start.
    for (const [path, size] of Object.entries(stamp.value.files)) {
      const info = yield* host.stat(`${installDir}/${path}`).pipe(Effect.option)
      if (info._tag === "None" || info.value.size !== size) return false
    }
    const binary = yield* host.stat(`${installDir}/bin/codex`)
    return (binary.mode & 0o111) !== 0
  })

interface VendorTree {
  readonly root: string
  readonly files: ReadonlyArray<{ readonly path: string; readonly size: number; readonly mode: number }>
}

const locateVendorTree = async (
  vendorRoot: string | undefined,
  target: { readonly triple: string; readonly packageName: string }
): Promise<VendorTree | undefined> => {
  const root = vendorRoot === undefined ? platformPackageVendor(target.packageName) : vendorRoot
  if (root === undefined) return undefined
  const tree = join(root, target.triple)
  const manifest = await readFile(join(tree, "codex-package.json"), "utf8").catch(() => undefined)
  if (manifest === undefined || !manifest.includes(`"${PINNED_CODEX_VERSION}"`)) return undefined
  const entries = await readdir(tree, { recursive: true, withFileTypes: true })
  const files = await Promise.all(entries.filter((entry) => entry.isFile()).map(async (entry) => {
    const absolute = join(entry.parentPath, entry.name)
    const info = await stat(absolute)
    return { path: relative(tree, absolute), size: info.size, mode: info.mode & 0o777 }
  }))
  return { root: tree, files }
}

const platformPackageVendor = (packageName: string): string | undefined => {
  try {
    return join(dirname(createRequire(import.meta.url).resolve(`${packageName}/package.json`)), "vendor")
  } catch {
    return undefined
  }
}

const installFrom = (
  host: HostShape,
  vendor: VendorTree,
  cacheDir: string,
  installDir: string,
  triple: string,
  unavailable: (reason: CodexUnavailable["reason"], detail: string) => CodexUnavailable,
  report: (message: string) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const total = vendor.files.reduce((sum, file) => sum + file.size, 0)
    const megabytes = (bytes: number) => Math.round(bytes / 1024 / 1024)
    yield* report(`Installing codex ${PINNED_CODEX_VERSION} on ${host.label} (${megabytes(total)} MB)…`)
    let copied = 0
    const staging = `${cacheDir}/.staging-${randomBytes(8).toString("hex")}`
    yield* Effect.acquireUseRelease(
      host.makeDirectory(staging),
      () =>
        Effect.gen(function*() {
          for (const file of vendor.files) {
            yield* host.makeDirectory(dirname(`${staging}/${file.path}`))
            yield* host.importFile(join(vendor.root, file.path), `${staging}/${file.path}`, { mode: file.mode })
            copied += file.size
            if (file.size >= 8 * 1024 * 1024) yield* report(`Installing codex: ${megabytes(copied)}/${megabytes(total)} MB`)
          }
          const identity = yield* host.run({ argv: [`${staging}/bin/codex`, "--version"] })
          if (identity.exitCode !== 0 || !identity.stdout.trim().endsWith(` ${PINNED_CODEX_VERSION}`)) {
            return yield* unavailable("identity-mismatch", `${staging}/bin/codex --version printed ${JSON.stringify(identity.stdout.trim())} (exit ${identity.exitCode})`)
          }
          const stamp: Stamp = {
            version: PINNED_CODEX_VERSION,
            target: triple,
            files: Object.fromEntries(vendor.files.map((file) => [file.path, file.size]))
          }
          yield* host.writeFile(`${staging}/${STAMP}`, JSON.stringify(stamp, null, 2))
          const published = yield* host.rename(staging, installDir).pipe(Effect.as(true), Effect.catch(() => Effect.succeed(false)))
          if (published) return
          // Someone else published first. Use theirs when it is valid; replace it when it is not.
          if (yield* readValidStamp(host, installDir, triple)) return
          yield* host.rename(installDir, `${cacheDir}/.discarded-${randomBytes(8).toString("hex")}`).pipe(Effect.ignore)
          yield* host.rename(staging, installDir)
        }),
      () => host.remove(staging).pipe(Effect.ignore)
    )
    yield* cleanupDiscarded(host, cacheDir)
  })

const cleanupDiscarded = (host: HostShape, cacheDir: string) =>
  host.readDirectory(cacheDir).pipe(
    Effect.flatMap((names) =>
      Effect.forEach(names.filter((name) => name.startsWith(".discarded-")), (name) => host.remove(`${cacheDir}/${name}`), { discard: true })
    ),
    Effect.ignore
  )

// A host codex is used only when it is a native binary reporting exactly the pinned version:
// npm's launcher script cannot be linked to and run from another directory reliably.
const hostCodexOnPath = (host: HostShape) =>
  Effect.gen(function*() {
    const lookup = yield* host.run({ argv: ["sh", "-c", "command -v codex"] })
    const path = lookup.stdout.trim()
    if (lookup.exitCode !== 0 || !path.startsWith("/")) return undefined
    const real = yield* host.realPath(path)
    const magic = yield* host.readRange(real, 0, 4)
    if (new TextDecoder("latin1").decode(magic) !== "\u007fELF") return undefined
    const version = yield* host.run({ argv: [real, "--version"] })
    return version.exitCode === 0 && version.stdout.trim().endsWith(` ${PINNED_CODEX_VERSION}`) ? real : undefined
  }).pipe(Effect.catchTag("HostError", () => Effect.succeed(undefined)))

const stripTrailingSlash = (path: string) => path.length > 1 ? path.replace(/\/+$/, "") : path
