/**
 * Scripted stand-ins for the few host programs a session runs besides codex and tmux, for the
 * memory host: the shell's PATH probe and a `tar` that archives and extracts the memory host's
 * files (a JSON list of path, mode and bytes instead of the tar format: what matters to a session
 * is that what was captured comes back).
 */
import { Effect, Stream } from "effect"
import type { HostShape } from "../../src/host/Host.ts"
import * as MemoryHost from "../../src/host/MemoryHost.ts"

type Entry = readonly [path: string, mode: number, base64: string]

const filesUnder = (host: HostShape, root: string, relative: string): Effect.Effect<ReadonlyArray<Entry>> =>
  Effect.gen(function*() {
    const path = `${root}/${relative}`
    const info = yield* host.stat(path)
    if (info.type === "File") return [[relative, info.mode, Buffer.from(yield* host.readFile(path)).toString("base64")] as const]
    if (info.type !== "Directory") return []
    const names = yield* host.readDirectory(path)
    const nested = yield* Effect.forEach(names, (name) => filesUnder(host, root, `${relative}/${name}`))
    return nested.flat()
  }).pipe(Effect.orElseSucceed((): ReadonlyArray<Entry> => []))

/** `tar -c -f - [options] (-C dir member…)…` and `tar -x -f - … -C dir` on the memory host's files. */
export const memoryTar: MemoryHost.ProcessScript = {
  match: MemoryHost.script.argv("tar"),
  run: (io) =>
    Effect.gen(function*() {
      const argv = io.command.argv
      if (argv[1] === "-c") {
        const entries: Array<Entry> = []
        let dir: string | undefined
        for (let i = 2; i < argv.length; i++) {
          const arg = argv[i] ?? ""
          if (arg === "-C") {
            dir = argv[++i]
            continue
          }
          if (dir === undefined || arg === "--" || arg.startsWith("-")) continue
          entries.push(...yield* filesUnder(io.host, dir, arg))
        }
        yield* io.stdout(JSON.stringify(entries))
        return 0
      }
      const target = argv[argv.indexOf("-C") + 1] ?? "/"
      const text = yield* io.stdin.pipe(Stream.decodeText(), Stream.mkString)
      const entries = JSON.parse(text === "" ? "[]" : text) as ReadonlyArray<Entry>
      for (const [path, mode, base64] of entries) {
        const full = `${target}/${path}`
        yield* io.host.makeDirectory(full.slice(0, full.lastIndexOf("/")))
        yield* io.host.writeFile(full, Buffer.from(base64, "base64"), { mode })
      }
      return 0
    }).pipe(Effect.catch((error) => io.stderr(String(error)).pipe(Effect.as(2))))
}

/** `sh -c 'printf %s "$PATH"'`: the host's PATH. */
export const pathProbe = MemoryHost.script.exits(
  (command) => command.argv[0] === "sh" && (command.argv[2] ?? "").includes("$PATH"),
  0,
  { stdout: "/usr/bin:/bin" }
)
