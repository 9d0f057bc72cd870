/**
 * MemoryFiles: the file side of the memory host — a tree of directories, regular files, symlinks
 * and "other" nodes (a planted FIFO or socket) in a map, with the {@link HostShape} file
 * operations over it, the guarded ones included: a final symlink is refused, only regular files
 * are read or appended, `within` is checked on the resolved location, sizes are capped.
 *
 * Owns path resolution (symlinks followed in every component but, where the contract says so, the
 * last) and the file operations; does not own processes (see MemoryHost).
 *
 * @since 0.1.0
 */
import { Effect, Stream } from "effect"
import { isStrictlyInside } from "./GuardedFiles.ts"
import { HostError } from "./Host.ts"
import type { FileInfo, GuardedFileOptions, HostErrorReason, HostShape } from "./Host.ts"

/** One entry of the tree. */
type Node =
  | { readonly type: "File"; data: Uint8Array; mode: number; readonly id: number }
  | { readonly type: "Directory"; mode: number; readonly id: number }
  | { readonly type: "SymbolicLink"; readonly target: string; readonly id: number }
  | { readonly type: "Other"; readonly id: number }

const encoder = new TextEncoder()

/** Text as UTF-8 bytes; bytes as they are. */
export const bytesOf = (data: string | Uint8Array) => typeof data === "string" ? encoder.encode(data) : data

/**
 * The file operations of the Host contract, plus what only a test can do to the tree.
 * @category models
 */
export type MemoryFiles =
  & Pick<
    HostShape,
    | "stat"
    | "readFile"
    | "readRange"
    | "writeFile"
    | "appendFile"
    | "readRegularFile"
    | "appendRegularFile"
    | "createRegularFile"
    | "exists"
    | "realPath"
    | "makeDirectory"
    | "readDirectory"
    | "remove"
    | "rename"
    | "chmod"
    | "symlink"
    | "glob"
    | "importFile"
  >
  & {
    /** A range read with the guards of `readRegularFile` and no size cap (the tail's reads). */
    readonly readRegularRange: (path: string, offset: number, length: number) => Effect.Effect<Uint8Array, HostError>
    /** Plants a node the live hosts would create with an OS call (a FIFO, a socket). */
    readonly plantOther: (path: string) => Effect.Effect<void, HostError>
    /** Truncates a file in place (same identity), as `: > file` would. */
    readonly truncate: (path: string) => Effect.Effect<void, HostError>
  }

/**
 * An empty tree (just `/`); errors name the host `label`.
 * @category constructors
 */
export const makeMemoryFiles = (label: string): MemoryFiles => {
  const nodes = new Map<string, Node>([["/", { type: "Directory", mode: 0o755, id: 0 }]])
  let nextId = 1

  const fail = (operation: string, reason: HostErrorReason, path: string, detail?: string) =>
    new HostError({ host: label, operation, reason, path, detail: detail ?? reason })

  // --- paths ---------------------------------------------------------------------------------

  const normalize = (path: string): string => {
    const parts: Array<string> = []
    for (const part of path.split("/")) {
      if (part === "" || part === ".") continue
      if (part === "..") parts.pop()
      else parts.push(part)
    }
    return `/${parts.join("/")}`
  }
  const parentOf = (path: string) => normalize(`${path}/..`)
  const nameOf = (path: string) => path.split("/").pop() ?? ""

  /** The real path of `path`, following symlinks in every component (or all but the last). */
  const resolve = (path: string, followLast: boolean, depth = 0): string | HostErrorReason => {
    if (depth > 40) return "BadArgument"
    const parts = normalize(path).split("/").filter((part) => part !== "")
    let current = "/"
    for (let i = 0; i < parts.length; i++) {
      const next = normalize(`${current}/${parts[i]}`)
      const node = nodes.get(next)
      const last = i === parts.length - 1
      if (node?.type === "SymbolicLink" && (!last || followLast)) {
        const target = node.target.startsWith("/") ? node.target : `${current}/${node.target}`
        const resolved = resolve(target, true, depth + 1)
        if (isReason(resolved)) return resolved
        current = resolved
        continue
      }
      if (!last && node !== undefined && node.type !== "Directory") return "NotADirectory"
      current = next
    }
    return current
  }
  const resolved = (operation: string, path: string, followLast: boolean): Effect.Effect<string, HostError> => {
    const real = resolve(path, followLast)
    return isReason(real) ? Effect.fail(fail(operation, real, path)) : Effect.succeed(real)
  }
  const lookup = (operation: string, path: string, followLast: boolean): Effect.Effect<{ readonly real: string; readonly node: Node }, HostError> =>
    resolved(operation, path, followLast).pipe(Effect.flatMap((real) => {
      const node = nodes.get(real)
      return node === undefined ? Effect.fail(fail(operation, "NotFound", path)) : Effect.succeed({ real, node })
    }))
  /** The resolved parent directory of a path that is about to be created. */
  const parentDir = (operation: string, path: string): Effect.Effect<string, HostError> =>
    lookup(operation, parentOf(path), true).pipe(Effect.flatMap(({ real, node }) =>
      node.type === "Directory" ? Effect.succeed(real) : Effect.fail(fail(operation, "NotADirectory", path))
    ))
  const put = (path: string, node: Node) => {
    nodes.set(path, node)
  }
  const newFile = (data: Uint8Array, mode: number): Node => ({ type: "File", data, mode, id: nextId++ })

  // --- files ---------------------------------------------------------------------------------

  const stat = (path: string) =>
    lookup("stat", path, false).pipe(Effect.map(({ node }): FileInfo => ({
      type: node.type,
      size: node.type === "File" ? node.data.length : node.type === "SymbolicLink" ? node.target.length : 0,
      mode: node.type === "File" || node.type === "Directory" ? node.mode : 0o777,
      identity: String(node.id)
    })))

  const readFile = (path: string) =>
    lookup("read", path, true).pipe(Effect.flatMap(({ node }) =>
      node.type === "File" ? Effect.succeed(node.data.slice()) : Effect.fail(fail("read", "BadArgument", path, "not a file"))
    ))

  const writeFile = (path: string, data: string | Uint8Array, writeOptions: { readonly mode?: number } = {}) =>
    Effect.gen(function*() {
      const dir = yield* parentDir("write", path)
      const target = normalize(`${dir}/${nameOf(path)}`)
      if (nodes.get(target)?.type === "Directory") return yield* fail("write", "BadArgument", path, "is a directory")
      // Like a rename over the path: a symlink there is replaced, never followed.
      put(target, newFile(bytesOf(data).slice(), writeOptions.mode ?? 0o644))
    })

  const appendTo = (operation: string, path: string, data: string | Uint8Array, followLast: boolean, mode: number) =>
    Effect.gen(function*() {
      const real = yield* resolved(operation, path, followLast)
      const node = nodes.get(real)
      if (node === undefined) {
        yield* parentDir(operation, real)
        put(real, newFile(bytesOf(data).slice(), mode))
        return
      }
      if (node.type === "SymbolicLink") return yield* fail(operation, "SymlinkRefused", path)
      if (node.type !== "File") return yield* fail(operation, "NotRegularFile", path)
      const added = bytesOf(data)
      const joined = new Uint8Array(node.data.length + added.length)
      joined.set(node.data)
      joined.set(added, node.data.length)
      node.data = joined
    })

  /** A regular file reached without a final symlink, inside `within` when given. */
  const regularFile = (operation: string, path: string, within: string | undefined) =>
    Effect.gen(function*() {
      const { real, node } = yield* lookup(operation, path, false)
      if (node.type === "SymbolicLink") return yield* fail(operation, "SymlinkRefused", path)
      if (node.type !== "File") return yield* fail(operation, "NotRegularFile", path)
      if (within !== undefined && !isStrictlyInside(real, within)) return yield* fail(operation, "OutsideRoot", path)
      return node
    })

  const readRange = (path: string, offset: number, length: number) =>
    readFile(path).pipe(Effect.map((data) => data.slice(offset, offset + length)))
  const readRegularRange = (path: string, offset: number, length: number) =>
    regularFile("read", path, undefined).pipe(Effect.map((node) => node.type === "File" ? node.data.slice(offset, offset + length) : new Uint8Array(0)))

  const readRegularFile = (path: string, guard: GuardedFileOptions & { readonly maxBytes: number }) =>
    regularFile("read", path, guard.within).pipe(Effect.flatMap((node) => {
      if (node.type !== "File") return Effect.fail(fail("read", "NotRegularFile", path))
      if (node.data.length > guard.maxBytes) return Effect.fail(fail("read", "TooLarge", path, `${node.data.length} bytes is more than ${guard.maxBytes}`))
      return Effect.succeed(node.data.slice())
    }))

  const appendRegularFile = (path: string, data: string | Uint8Array, guard?: GuardedFileOptions & { readonly mode?: number }) =>
    Effect.gen(function*() {
      const real = yield* resolved("append", path, false)
      if (guard?.within !== undefined && !isStrictlyInside(real, guard.within)) return yield* fail("append", "OutsideRoot", path)
      yield* appendTo("append", real, data, false, guard?.mode ?? 0o644)
    })

  const createRegularFile = <E, R>(
    path: string,
    content: Stream.Stream<Uint8Array, E, R>,
    guard?: GuardedFileOptions & { readonly mode?: number; readonly maxBytes?: number }
  ): Effect.Effect<number, HostError | E, R> =>
    Effect.gen(function*() {
      const real = yield* resolved("create", path, false)
      if (nodes.has(real)) return yield* fail("create", "AlreadyExists", path)
      yield* parentDir("create", real)
      if (guard?.within !== undefined && !isStrictlyInside(real, guard.within)) return yield* fail("create", "OutsideRoot", path)
      const node = newFile(new Uint8Array(0), guard?.mode ?? 0o644)
      put(real, node)
      const limit = guard?.maxBytes ?? Number.POSITIVE_INFINITY
      return yield* content.pipe(
        Stream.runFoldEffect(() => 0, (written, chunk): Effect.Effect<number, HostError> => {
          const total = written + chunk.byteLength
          if (total > limit) return Effect.fail(fail("create", "TooLarge", path, `more than the limit of ${limit} bytes`))
          return appendTo("create", real, chunk, false, 0o644).pipe(Effect.as(total))
        }),
        // Nothing partial stays behind, and only the node we created is removed.
        Effect.onError(() => Effect.sync(() => nodes.get(real) === node && nodes.delete(real)))
      )
    })

  const makeDirectory = (path: string, dirOptions: { readonly mode?: number } = {}) =>
    Effect.gen(function*() {
      let current = "/"
      for (const part of normalize(path).split("/").filter((p) => p !== "")) {
        const real = yield* resolved("mkdir", `${current}/${part}`, true)
        const node = nodes.get(real)
        if (node === undefined) put(real, { type: "Directory", mode: dirOptions.mode ?? 0o755, id: nextId++ })
        else if (node.type !== "Directory") return yield* fail("mkdir", "AlreadyExists", path)
        current = real
      }
      const last = nodes.get(current)
      if (dirOptions.mode !== undefined && last?.type === "Directory") last.mode = dirOptions.mode
    })

  const childrenOf = (dir: string) => {
    const prefix = dir === "/" ? "/" : `${dir}/`
    return [...nodes.keys()].filter((key) => key.startsWith(prefix) && key !== dir)
  }

  const readDirectory = (path: string) =>
    lookup("readdir", path, true).pipe(Effect.flatMap(({ real, node }) => {
      if (node.type !== "Directory") return Effect.fail(fail("readdir", "NotADirectory", path))
      const prefix = real === "/" ? "/" : `${real}/`
      return Effect.succeed(childrenOf(real).map((key) => key.slice(prefix.length)).filter((rest) => !rest.includes("/")).sort())
    }))

  const remove = (path: string) =>
    resolved("remove", path, false).pipe(Effect.map((real) => {
      if (real === "/") return
      for (const child of childrenOf(real)) nodes.delete(child)
      nodes.delete(real)
    }))

  const rename = (from: string, to: string) =>
    Effect.gen(function*() {
      const source = yield* lookup("rename", from, false)
      const dir = yield* parentDir("rename", to)
      const target = normalize(`${dir}/${nameOf(to)}`)
      const moved = [source.real, ...childrenOf(source.real)]
      for (const child of childrenOf(target)) nodes.delete(child)
      for (const key of moved) {
        const node = nodes.get(key)
        nodes.delete(key)
        if (node !== undefined) put(target + key.slice(source.real.length), node)
      }
    })

  const chmod = (path: string, mode: number) =>
    lookup("chmod", path, true).pipe(Effect.flatMap(({ node }) => {
      if (node.type === "File" || node.type === "Directory") node.mode = mode
      return Effect.void
    }))

  const symlink = (target: string, linkPath: string) =>
    parentDir("symlink", linkPath).pipe(Effect.map((dir) => put(normalize(`${dir}/${nameOf(linkPath)}`), { type: "SymbolicLink", target, id: nextId++ })))

  const glob = (pattern: string, cwd: string) =>
    resolved("glob", cwd, true).pipe(Effect.map((real) => {
      const matcher = globToRegExp(pattern)
      const prefix = real === "/" ? "/" : `${real}/`
      return childrenOf(real)
        .filter((key) => nodes.get(key)?.type === "File" && matcher.test(key.slice(prefix.length)))
        .map((key) => `${real === "/" ? "" : cwd.replace(/\/+$/, "")}/${key.slice(prefix.length)}`)
        .sort()
    }))

  return {
    stat,
    readFile,
    readRange,
    writeFile,
    appendFile: (path, data) => appendTo("append", path, data, true, 0o644),
    readRegularFile,
    readRegularRange,
    appendRegularFile,
    createRegularFile,
    exists: (path) => lookup("exists", path, false).pipe(Effect.as(true), Effect.catch(() => Effect.succeed(false))),
    realPath: (path) => lookup("realpath", path, true).pipe(Effect.map(({ real }) => real)),
    makeDirectory,
    readDirectory,
    remove,
    rename,
    chmod,
    symlink,
    glob,
    // The worker's filesystem is this same map: an import is a copy.
    importFile: (from, to, importOptions = {}) =>
      Effect.gen(function*() {
        const { node } = yield* lookup("import", from, true)
        if (node.type !== "File") return yield* fail("import", "BadArgument", from, "not a file")
        yield* writeFile(to, node.data, { mode: importOptions.mode ?? node.mode })
      }),
    plantOther: (path) => parentDir("plant", path).pipe(Effect.map((dir) => put(normalize(`${dir}/${nameOf(path)}`), { type: "Other", id: nextId++ }))),
    truncate: (path) =>
      lookup("truncate", path, true).pipe(Effect.flatMap(({ node }) => {
        if (node.type === "File") node.data = new Uint8Array(0)
        return Effect.void
      }))
  }
}

// --- helpers -------------------------------------------------------------------------------

const isReason = (value: string): value is HostErrorReason => !value.startsWith("/")

// `**/` spans any number of directories; `*` and `?` stay within one.
const globToRegExp = (pattern: string): RegExp => {
  let source = ""
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] ?? ""
    if (char === "*" && pattern[i + 1] === "*") {
      source += pattern[i + 2] === "/" ? "(?:[^/]*/)*" : ".*"
      i += pattern[i + 2] === "/" ? 2 : 1
    } else if (char === "*") source += "[^/]*"
    else if (char === "?") source += "[^/]"
    else source += char.replace(/[.+^${}()|[\]\\/]/g, (c) => `\\${c}`)
  }
  return new RegExp(`^${source}$`)
}
