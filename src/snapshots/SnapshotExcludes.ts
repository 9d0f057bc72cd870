/**
 * SnapshotExcludes: what a workdir snapshot leaves out, and how that list becomes GNU tar
 * arguments. It owns the matching rules (one engine, so the archive and the config check cannot
 * disagree) and the entries excluded on every capture; it does not own the configured list
 * (`effectiveWorkdirExclude` in `protocol/AgentsMd.ts`) nor running tar.
 *
 * **Matching rules** (spec §8.2, fixing P33's two engines)
 *
 * - A pattern without `/` matches one path segment at any depth (`.git`, `node_modules`,
 *   `*.sqlite*`); `*` and `?` never cross `/` there.
 * - A pattern with `/` is anchored at the workdir root and matched against the whole relative
 *   path (`home/.codex/packages` prunes exactly that subtree, never `x/home/.codex/packages`);
 *   `*` may cross `/` there. A leading `./` or `/` and a trailing `/` are ignored.
 * - A matching directory is pruned with everything below it.
 *
 * @since 0.1.0
 */

/**
 * Excluded on every capture, whatever the configured list: codex's copied binaries (hundreds of
 * MiB) and the sqlite indexes, which hold absolute paths and break resume in another tree.
 * @category constants
 * @since 0.1.0
 */
export const ALWAYS_EXCLUDED: ReadonlyArray<string> = ["home/.codex/packages", "*.sqlite*"]

/** A pattern in canonical form, or undefined for one that matches nothing (empty). */
const normalize = (pattern: string): string | undefined => {
  let p = pattern.trim()
  while (p.startsWith("./")) p = p.slice(2)
  while (p.startsWith("/")) p = p.slice(1)
  while (p.endsWith("/")) p = p.slice(0, -1)
  return p === "" || p === "." ? undefined : p
}

/**
 * The effective list plus {@link ALWAYS_EXCLUDED}, canonical and without duplicates.
 * @category constructors
 * @since 0.1.0
 */
export const withAlwaysExcluded = (exclude: ReadonlyArray<string>): ReadonlyArray<string> => {
  const seen = new Set<string>()
  for (const pattern of [...exclude, ...ALWAYS_EXCLUDED]) {
    const p = normalize(pattern)
    if (p !== undefined) seen.add(p)
  }
  return [...seen]
}

/**
 * GNU tar arguments excluding `patterns`, each pattern its own argv element, for an archive
 * built from the workdir's top-level entries (member names without `./`).
 * @category constructors
 * @since 0.1.0
 */
export const tarExcludeArgs = (patterns: ReadonlyArray<string>): ReadonlyArray<string> => {
  const canonical = patterns.flatMap((pattern) => {
    const p = normalize(pattern)
    return p === undefined ? [] : [p]
  })
  const segments = canonical.filter((p) => !p.includes("/"))
  const anchored = canonical.filter((p) => p.includes("/"))
  // Matching flags are positional in GNU tar: they apply to the --exclude options after them.
  return [
    ...(segments.length === 0 ? [] : ["--no-anchored", "--no-wildcards-match-slash", ...segments.map((p) => `--exclude=${p}`)]),
    ...(anchored.length === 0 ? [] : ["--anchored", "--wildcards-match-slash", ...anchored.map((p) => `--exclude=${p}`)])
  ]
}

/** fnmatch-style glob (`*`, `?`, `[…]` with `!`/`^`, `\` escapes) as an anchored RegExp. */
const globRegExp = (glob: string, starCrossesSlash: boolean): RegExp => {
  const any = starCrossesSlash ? "[\\s\\S]" : "[^/]"
  let out = ""
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? ""
    if (c === "*") out += `${any}*`
    else if (c === "?") out += any
    else if (c === "\\" && i + 1 < glob.length) out += escapeRegExp(glob[++i] ?? "")
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2)
      if (close === -1) {
        out += "\\["
        continue
      }
      let body = glob.slice(i + 1, close)
      const negated = body.startsWith("!") || body.startsWith("^")
      if (negated) body = body.slice(1)
      out += `[${negated ? "^" : ""}${body.replace(/[\\\]^]/g, (ch) => `\\${ch}`)}]`
      i = close
    } else out += escapeRegExp(c)
  }
  return new RegExp(`^${out}$`, "u")
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, (ch) => `\\${ch}`)

/**
 * Whether `pattern` excludes the workdir-relative `path` (or one of its parent directories), by
 * the rules in the module docs — the same rules {@link tarExcludeArgs} gives tar.
 * @category guards
 * @since 0.1.0
 */
export const excludes = (pattern: string, path: string): boolean => {
  const p = normalize(pattern)
  if (p === undefined) return false
  const parts = path.split("/").filter((part) => part !== "" && part !== ".")
  if (!p.includes("/")) {
    const regex = globRegExp(p, false)
    return parts.some((part) => regex.test(part))
  }
  const regex = globRegExp(p, true)
  return parts.some((_, i) => regex.test(parts.slice(0, i + 1).join("/")))
}

const SAMPLE_ROLLOUT =
  "home/.codex/sessions/2026/11/27/rollout-2026-11-27T10-00-00-0199a213-81c0-7800-8aa1-bbab2a035a53.jsonl"

/**
 * Whether a user exclude pattern would drop codex's rollouts (`home/.codex/sessions` or a file
 * in it) from snapshots, which would make every resume start a new conversation.
 * @category guards
 * @since 0.1.0
 */
export const hidesRollouts = (pattern: string): boolean => {
  const p = normalize(pattern)
  if (p === undefined) return false
  // Anything spelled under the sessions tree hides some rollout, whatever date it names.
  if (p.startsWith("home/.codex/sessions/")) return true
  return excludes(p, SAMPLE_ROLLOUT)
}
