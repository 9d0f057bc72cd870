/**
 * Generates docs/api.md, the API reference of the package's public entries (`optio-codex` and
 * `optio-codex/testing`), from the declarations the build emits in dist/. Every export must carry
 * JSDoc with `@since`.
 *
 *   node scripts/api-docs.ts           write docs/api.md (run `npm run build` first)
 *   node scripts/api-docs.ts --check   fail if docs/api.md is stale or an export lacks `@since`
 *
 * Reads the .d.ts text directly: an export is followed through `export … from`, `export * as`
 * and `import … ; export { … }` to the declaration it names, whose preceding JSDoc block and
 * first line make its entry.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const dist = join(root, "dist")
const output = join(root, "docs", "api.md")
const entries = [
  { specifier: "optio-codex", file: "index.d.ts" },
  { specifier: "optio-codex/testing", file: "testing.d.ts" }
] as const

interface Doc {
  readonly text: string
  readonly tags: ReadonlyMap<string, string>
}

interface Entry {
  readonly name: string
  readonly kind: string
  readonly signature: string
  readonly doc: Doc | undefined
  readonly source: string
  readonly members: ReadonlyArray<Entry>
}

const sources = new Map<string, string>()
const read = (file: string): string => {
  let text = sources.get(file)
  if (text === undefined) {
    text = readFileSync(file, "utf8")
    sources.set(file, text)
  }
  return text
}

const target = (from: string, specifier: string): string | undefined => {
  if (!specifier.startsWith(".")) return undefined
  const base = resolve(dirname(from), specifier).replace(/\.(ts|js)$/, "")
  const file = `${base}.d.ts`
  return existsSync(file) ? file : undefined
}

const parseDoc = (block: string): Doc => {
  const lines = block.replace(/^\/\*\*/, "").replace(/\*\/$/, "").split("\n").map((line) => line.replace(/^\s*\* ?/, ""))
  const text: Array<string> = []
  const tags = new Map<string, string>()
  let tag: string | undefined
  for (const line of lines) {
    const match = /^@(\w+)\s*(.*)$/.exec(line.trim())
    if (match !== null) {
      tag = match[1] ?? ""
      tags.set(tag, match[2] ?? "")
    } else if (tag !== undefined) {
      if (line.trim() !== "") tags.set(tag, `${tags.get(tag) ?? ""}\n${line}`)
    } else {
      text.push(line)
    }
  }
  return { text: text.join("\n").trim(), tags }
}

// The JSDoc block that ends right before `index` (only whitespace between).
const docBefore = (text: string, index: number): Doc | undefined => {
  const before = text.slice(0, index).trimEnd()
  if (!before.endsWith("*/")) return undefined
  const start = before.lastIndexOf("/**")
  return start < 0 ? undefined : parseDoc(before.slice(start))
}

// A module's leading JSDoc. The declaration emit drops it when the module's first statement is an
// import that only the JavaScript needs, so the emitted .js (comments kept) is read as well.
const moduleDoc = (file: string): Doc | undefined => {
  for (const candidate of [file, file.replace(/\.d\.ts$/, ".js")]) {
    const text = existsSync(candidate) ? read(candidate).replace(/^#!.*\n/, "").trimStart() : ""
    if (text.startsWith("/**")) return parseDoc(text.slice(0, text.indexOf("*/") + 2))
  }
  return undefined
}

const escape = (name: string) => name.replace(/[$]/g, "\\$")

const DECLARATION = (name: string) =>
  new RegExp(`^export (?:declare )?(const|function|class|interface|type|namespace|enum|abstract class) ${escape(name)}\\b.*$`, "m")

// Follows `name` from `file` to its declaration.
const resolveExport = (file: string, name: string, seen = new Set<string>(), modules: ReadonlyArray<string> = []): Entry | undefined => {
  const key = `${file}#${name}`
  if (seen.has(key)) return undefined
  seen.add(key)
  const text = read(file)
  const declared = DECLARATION(name).exec(text)
  if (declared !== null) {
    const kind = declared[1] ?? ""
    return {
      name,
      kind,
      signature: declared[0].replace(/^export (declare )?/, "").replace(/\s*\{$/, "").replace(/;$/, ""),
      doc: docBefore(text, declared.index),
      source: relative(dist, file),
      members: []
    }
  }
  // `export * as name from "./x"`: a namespace of the module's exports.
  const namespace = new RegExp(`^export \\* as ${escape(name)} from "([^"]+)";`, "m").exec(text)
  if (namespace !== null) {
    const module = target(file, namespace[1] ?? "")
    // A module that exports itself as a namespace (`export * as ModelScript from "./ModelScript.ts"`).
    if (module === undefined || modules.includes(module)) return undefined
    return {
      name,
      kind: "namespace",
      signature: `namespace ${name}`,
      doc: moduleDoc(module),
      source: relative(dist, module),
      members: exportsOf(module, [...modules, module])
    }
  }
  // `export { a, b as name } from "./x"` or `import { name } from "./x"; export { name }`.
  for (const match of text.matchAll(/^(?:export|import)(?: type)? \{([^}]*)\} from "([^"]+)";/gm)) {
    for (const part of (match[1] ?? "").split(",")) {
      const [original = "", alias] = part.trim().replace(/^type /, "").split(/\s+as\s+/)
      if ((alias ?? original) !== name) continue
      const module = target(file, match[2] ?? "")
      const found = module === undefined ? undefined : resolveExport(module, original, seen)
      if (found !== undefined) return { ...found, name }
    }
  }
  return undefined
}

// The names a module exports, in source order.
const exportedNames = (file: string): ReadonlyArray<string> => {
  const found: Array<readonly [number, string]> = []
  const text = read(file)
  for (const match of text.matchAll(/^export (?:declare )?(?:const|function|class|interface|type|namespace|enum|abstract class) ([A-Za-z_$][\w$]*)/gm)) {
    found.push([match.index, match[1] ?? ""])
  }
  for (const match of text.matchAll(/^export \* as ([A-Za-z_$][\w$]*) from/gm)) found.push([match.index, match[1] ?? ""])
  for (const match of text.matchAll(/^export(?: type)? \{([^}]*)\}/gm)) {
    for (const part of (match[1] ?? "").split(",")) {
      const trimmed = part.trim().replace(/^type /, "")
      if (trimmed === "") continue
      const [original = "", alias] = trimmed.split(/\s+as\s+/)
      found.push([match.index, alias ?? original])
    }
  }
  return [...new Set(found.sort((a, b) => a[0] - b[0]).map(([, name]) => name))]
}

const exportsOf = (file: string, modules: ReadonlyArray<string> = []): ReadonlyArray<Entry> =>
  exportedNames(file).flatMap((name) => {
    if (modules.length > 0 && new RegExp(`^export \\* as ${escape(name)} from`, "m").test(read(file))) return [] // the module itself
    return [resolveExport(file, name, new Set(), modules) ?? { name, kind: "unresolved", signature: name, doc: undefined, source: relative(dist, file), members: [] }]
  })

const render = (entry: Entry, depth: number, lines: Array<string>) => {
  const heading = "#".repeat(depth)
  const since = entry.doc?.tags.get("since")
  const category = entry.doc?.tags.get("category")
  lines.push(`${heading} ${entry.name}`, "")
  lines.push(`${entry.kind}${category === undefined ? "" : ` · ${category}`}${since === undefined ? "" : ` · since ${since}`} · \`${entry.source}\``, "")
  if (entry.kind !== "namespace") lines.push("```ts", entry.signature.length > 400 ? `${entry.signature.slice(0, 400)} …` : entry.signature, "```", "")
  if (entry.doc !== undefined && entry.doc.text !== "") lines.push(entry.doc.text, "")
  for (const member of entry.members) render(member, Math.min(depth + 1, 6), lines)
}

const missingSince = (entries: ReadonlyArray<Entry>, path: string): ReadonlyArray<string> =>
  entries.flatMap((entry) => [
    ...(entry.doc?.tags.has("since") === true ? [] : [`${path}${entry.name} (${entry.source})`]),
    ...missingSince(entry.members, `${path}${entry.name}.`)
  ])

if (!existsSync(join(dist, "index.d.ts"))) {
  console.error("dist/ is missing: run `npm run build` first")
  process.exit(1)
}

const lines = [
  "# API reference",
  "",
  "Generated from the declarations in dist/ by `node scripts/api-docs.ts` (after `npm run build`);",
  "CI fails when this file is stale. Do not edit by hand.",
  ""
]
const problems: Array<string> = []
for (const { specifier, file } of entries) {
  const path = join(dist, file)
  const doc = moduleDoc(path)
  const exported = exportsOf(path)
  lines.push(`## \`${specifier}\``, "")
  if (doc !== undefined) lines.push(doc.text, "")
  for (const entry of exported) render(entry, 3, lines)
  problems.push(...missingSince(exported, `${specifier}: `))
}
const text = `${lines.join("\n").replace(/\n{3,}/g, "\n\n").trimEnd()}\n`

if (problems.length > 0) {
  console.error(`exports without @since:\n  ${problems.join("\n  ")}`)
  process.exitCode = 1
}
if (process.argv.includes("--check")) {
  const current = existsSync(output) ? readFileSync(output, "utf8") : ""
  if (current !== text) {
    console.error("docs/api.md is stale: run `npm run build && npm run docs`")
    process.exitCode = 1
  }
} else {
  writeFileSync(output, text)
  console.log(`wrote ${relative(root, output)}`)
}
