/**
 * EvalFilename: lets `node -e 'import("optio-codex")…'` load the package.
 *
 * `node -e` and `node -p` define a global `__filename` ("[eval]") for the evaluated script.
 * `@effect/platform-node` (4.1.x, `dist/internal/http.js`) prefers a string `__filename` over
 * `import.meta.url` when it calls `createRequire`, so under `node -e` it throws
 * `ERR_INVALID_ARG_VALUE` while loading. The entry modules import this module first (ES modules
 * evaluate their imports in order), which hides that global while the rest of the module graph
 * loads, and call {@link restoreEvalFilename} in their own body, which runs last.
 *
 * @since 0.1.0
 */

const EVAL_FILENAME = "[eval]"

const hidden: boolean = Reflect.get(globalThis, "__filename") === EVAL_FILENAME &&
  Reflect.deleteProperty(globalThis, "__filename")

/**
 * Puts `node -e`'s global `__filename` back once the package's modules are loaded.
 * @category constructors
 * @since 0.1.0
 */
export const restoreEvalFilename = (): void => {
  if (hidden && !Reflect.has(globalThis, "__filename")) Reflect.set(globalThis, "__filename", EVAL_FILENAME)
}
