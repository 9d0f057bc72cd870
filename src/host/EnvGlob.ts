/**
 * EnvGlob: the case-sensitive glob (`*`, `?`, `[…]`, `[!…]`) used to remove inherited
 * environment variables by name (`scrubEnv`), and the environment merge every host applies.
 *
 * @since 0.1.0
 */

/** Compiles a glob on variable names to an anchored regular expression. */
export const envGlobToRegExp = (glob: string): RegExp => {
  let source = ""
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] ?? ""
    if (char === "*") source += "[\\s\\S]*"
    else if (char === "?") source += "[\\s\\S]"
    else if (char === "[") {
      const close = glob.indexOf("]", i + 2)
      if (close < 0) {
        source += "\\["
        continue
      }
      let body = glob.slice(i + 1, close)
      const negate = body.startsWith("!")
      if (negate) body = body.slice(1)
      source += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, (c) => `\\${c}`)}]`
      i = close
    } else source += char.replace(/[.*+?^${}()|[\]\\/]/g, (c) => `\\${c}`)
  }
  return new RegExp(`^${source}$`)
}

/**
 * Inherited environment — only the names matching an `allow` glob when `allow` is given — minus
 * names matching any `remove` glob, with `overrides` applied last.
 */
export const mergeEnv = (
  inherited: Readonly<Record<string, string | undefined>>,
  remove: ReadonlyArray<string>,
  overrides: Readonly<Record<string, string>>,
  allow?: ReadonlyArray<string>
): Record<string, string> => {
  const patterns = remove.map(envGlobToRegExp)
  const allowed = allow?.map(envGlobToRegExp)
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(inherited)) {
    if (value === undefined || patterns.some((pattern) => pattern.test(name))) continue
    if (allowed !== undefined && !allowed.some((pattern) => pattern.test(name))) continue
    env[name] = value
  }
  return Object.assign(env, overrides)
}
