import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { loadOptionalPackage, OptionalPackageMissing } from "../../src/package/OptionalPackage.ts"

describe("loadOptionalPackage", () => {
  it.effect("loads an installed package", () =>
    Effect.gen(function*() {
      const toml = yield* loadOptionalPackage("smol-toml", "a test", () => import("smol-toml"))
      expect(typeof toml.parse).toBe("function")
    }))

  it.effect("a missing package is a typed error naming the package to install", () =>
    Effect.gen(function*() {
      const error = yield* loadOptionalPackage(
        "optio-codex-no-such-package",
        "The test feature",
        // A computed specifier keeps the type checker from resolving it.
        () => import(["optio-codex", "no-such-package"].join("-"))
      ).pipe(Effect.flip)
      expect(error).toBeInstanceOf(OptionalPackageMissing)
      expect(error.packageName).toBe("optio-codex-no-such-package")
      expect(error.message).toContain("npm install optio-codex-no-such-package")
      expect(error.message).toContain("The test feature")
    }))

  it.effect("a package that is there but throws while loading is a defect, not a missing package", () =>
    Effect.gen(function*() {
      const exit = yield* loadOptionalPackage("broken", "The test feature", () => Promise.reject(new SyntaxError("bad module"))).pipe(Effect.exit)
      expect(Exit.hasDies(exit)).toBe(true)
    }))
})
