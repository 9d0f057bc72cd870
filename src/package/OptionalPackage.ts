/**
 * OptionalPackage: loads an optional peer dependency (`mongodb`, `ssh2`) the first time a feature
 * needs it, so workers that use neither MongoDB nor SSH hosts install neither. A missing package
 * becomes a typed error that names the package to install, instead of a module-resolution crash
 * at import time.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"

/**
 * A feature needs an optional package the worker has not installed.
 * @category errors
 * @since 0.1.0
 */
export class OptionalPackageMissing extends Schema.TaggedError<OptionalPackageMissing>()("OptionalPackageMissing", {
  /** The npm package to install, e.g. `mongodb`. */
  packageName: Schema.String,
  /** What needed it, e.g. `the MongoDB store`. */
  feature: Schema.String,
  /** Node's own words on the failed import. */
  detail: Schema.String
}) {
  override get message(): string {
    return `${this.feature} needs the optional package "${this.packageName}", which is not installed: run \`npm install ${this.packageName}\` in the worker's project (${this.detail})`
  }
}

/**
 * Imports `packageName` with `load` (a literal `import("…")`, so bundlers see it). A module that
 * cannot be resolved fails with {@link OptionalPackageMissing}; any other import failure is a
 * defect (the package is there but broken).
 * @category constructors
 * @since 0.1.0
 */
export const loadOptionalPackage = <Module>(
  packageName: string,
  feature: string,
  load: () => Promise<Module>
): Effect.Effect<Module, OptionalPackageMissing> =>
  Effect.tryPromise({ try: load, catch: (error) => error }).pipe(
    Effect.catch((error) =>
      isNotFound(error)
        ? Effect.fail(new OptionalPackageMissing({ packageName, feature, detail: error instanceof Error ? error.message : String(error) }))
        : Effect.die(error)
    )
  )

const isNotFound = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error &&
  (error.code === "ERR_MODULE_NOT_FOUND" || error.code === "MODULE_NOT_FOUND")
