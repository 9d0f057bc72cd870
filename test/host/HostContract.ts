/**
 * The Host contract suite: every Host implementation (local, SSH) must pass it unchanged.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { CommandFailed, Host, HostError, runChecked } from "../../src/host/Host.ts"
import type { TailChunk } from "../../src/host/Host.ts"
import { waitUntil } from "../support/waitUntil.ts"

const HOSTILE = [
  "plain",
  "with space",
  "it's",
  "double \"quoted\"",
  "$(touch /tmp/optio-pwned)",
  "`id`",
  "line\nbreak",
  "tab\there",
  "*.glob?",
  "-leading-dash",
  "ünïcödé ✓ 🚀",
  ""
]

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** Text of a tail's data chunks since its last reset. */
const textSinceReset = (chunks: ReadonlyArray<TailChunk>) => {
  let text = ""
  for (const chunk of chunks) text = chunk._tag === "Reset" ? "" : text + decode(chunk.bytes)
  return text
}

/**
 * What the suite needs from a host beyond the contract: whether it runs real programs (a memory
 * host runs scripted ones, so the cases that need sh, a pty or real process trees are left to the
 * live hosts), and how to plant a FIFO and truncate a file in place there.
 */
export interface HostOs {
  readonly realPrograms: boolean
  readonly mkfifo: (path: string) => Effect.Effect<void, unknown, Host>
  readonly truncateAndWrite: (path: string, text: string) => Effect.Effect<void, unknown, Host>
}

const realOs: HostOs = {
  realPrograms: true,
  mkfifo: (path) => Effect.asVoid(runChecked({ argv: ["mkfifo", path] })),
  truncateAndWrite: (path, text) => Effect.asVoid(runChecked({ argv: ["sh", "-c", ": > \"$1\"; printf %s \"$2\" >> \"$1\"", "sh", path, text] }))
}

/**
 * Runs the contract against `layer`. `root` is a fresh, empty directory on that host.
 */
export const hostContract = (name: string, layer: Layer.Layer<Host, unknown>, root: () => string, hostOs: HostOs = realOs) =>
  describe(`Host contract: ${name}`, () => {
    const live = <A, E>(title: string, body: () => Effect.Effect<A, E, Host | Scope.Scope>) =>
      it.live(title, () => Effect.scoped(body()).pipe(Effect.provide(layer)))
    // Cases that run real programs (sh, env, a pty, process trees): registered for live hosts only.
    const os = <A, E>(title: string, body: () => Effect.Effect<A, E, Host | Scope.Scope>) => {
      if (hostOs.realPrograms) live(title, body)
    }

    os("run passes hostile arguments through unchanged", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const result = yield* host.run({ argv: ["sh", "-c", "printf '%s\\0' \"$@\"", "sh", ...HOSTILE] })
        assert.strictEqual(result.exitCode, 0)
        assert.deepStrictEqual(result.stdout.split("\0").slice(0, -1), HOSTILE)
      }))

    os("run layers env over the inherited environment and removes globbed names", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const result = yield* host.run({
          argv: ["sh", "-c", "printf '%s|%s|%s' \"$OPTIO_A\" \"${PATH:+has-path}\" \"${HOME:-no-home}\""],
          env: { OPTIO_A: "it's $(x)" },
          envRemove: ["HOM?"]
        })
        assert.strictEqual(result.stdout, "it's $(x)|has-path|no-home")
      }))

    os("envAllow gives an exact environment: the allowlisted inherited names, then env", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const names = (stdout: string) => stdout.split("\n").filter((line) => line !== "").map((line) => line.slice(0, line.indexOf("=")))
        const exact = yield* host.run({ argv: ["/usr/bin/env"], env: { OPTIO_A: "it's $(x)", PATH: "/usr/bin:/bin" }, envAllow: [] })
        assert.deepStrictEqual(exact.stdout.split("\n").filter((line) => line !== "").sort(), ["OPTIO_A=it's $(x)", "PATH=/usr/bin:/bin"])
        const kept = yield* host.run({ argv: ["/usr/bin/env"], env: { OPTIO_A: "a" }, envAllow: ["PAT?", "HOME"], envRemove: ["HOME"] })
        assert.deepStrictEqual(names(kept.stdout).sort(), ["OPTIO_A", "PATH"])
        // A long-lived process gets the same exact environment (a program found on the given PATH).
        const spawned = yield* host.spawn({ argv: ["env"], env: { OPTIO_B: "b", PATH: "/usr/bin:/bin" }, envAllow: [] }, { stdout: true })
        const printed = yield* spawned.stdout.pipe(Stream.decodeText(), Stream.mkString)
        assert.deepStrictEqual(printed.split("\n").filter((line) => line !== "").sort(), ["OPTIO_B=b", "PATH=/usr/bin:/bin"])
      }))

    os("run feeds stdin, honours cwd, reports non-zero exits without failing", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const dir = `${root()}/cwd dir`
        yield* host.makeDirectory(dir)
        const echoed = yield* host.run({ argv: ["sh", "-c", "pwd; cat; exit 3"], cwd: dir }, { stdin: "piped ✓" })
        assert.strictEqual(echoed.exitCode, 3)
        assert.strictEqual(echoed.stdout, `${dir}\npiped ✓`)
        const failure = yield* Effect.flip(runChecked({ argv: ["sh", "-c", "echo oops >&2; exit 4"] }))
        assert.instanceOf(failure, CommandFailed)
        assert.strictEqual(failure.exitCode, 4)
        assert.include(failure.message, "oops")
      }))

    live("run of a missing program is a typed NotFound", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const error = yield* Effect.flip(host.run({ argv: ["/nonexistent/optio-no-such-binary"] }))
        assert.strictEqual(error._tag, "HostError")
        assert.strictEqual(error.reason, "NotFound")
      }))

    live("spawn streams stdout and accepts stdin", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const proc = yield* host.spawn({ argv: ["cat"] }, { stdin: true })
        const firstLine = yield* proc.stdout.pipe(Stream.decodeText(), Stream.splitLines, Stream.take(1), Stream.runCollect, Effect.forkChild)
        yield* proc.write("hello ✓\n")
        assert.deepStrictEqual(yield* Fiber.join(firstLine), ["hello ✓"])
        yield* proc.endInput
        assert.strictEqual(yield* proc.exitCode, 0)
      }))

    os("a process that exits before its output is read keeps that output (a small workdir's tar, read after it ended)", () =>
      Effect.gen(function*() {
        const host = yield* Host
        // 40 KB: less than a pipe holds, so the child can finish without anyone reading.
        const proc = yield* host.spawn({ argv: ["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo done >&2"] }, { stdout: true })
        assert.strictEqual(yield* proc.exitCode, 0)
        // Let the host's own handling of the exit run first (Node resumes unread pipes then).
        for (let turn = 0; turn < 20; turn++) yield* Effect.yieldNow
        const output = yield* proc.stdout.pipe(Stream.decodeText(), Stream.mkString)
        assert.strictEqual(output.length, 40000, "every byte the process wrote")
        assert.isTrue(output === "x".repeat(40000))
        const run = yield* host.run({ argv: ["sh", "-c", "printf quick"] })
        assert.strictEqual(run.stdout, "quick")
      }))

    os("closing the scope kills the whole tree, escaped sessions included", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const marker = `${root()}/tree-pids`
        const scope = yield* Scope.make()
        // The child ignores TERM (forcing the KILL escalation) and starts a setsid'd grandchild.
        const script = `trap '' TERM; setsid sh -c 'echo $$ >> "$1"; exec sleep 300' sh "$1" & echo $$ >> "$1"; while :; do sleep 1; done`
        yield* host.spawn({ argv: ["sh", "-c", script, "sh", marker] }, { gracePeriod: "300 millis" }).pipe(Scope.provide(scope))
        const pids = yield* waitUntil("both pids recorded", host.readFile(marker).pipe(
          Effect.map((bytes) => decode(bytes).trim().split("\n").filter((line) => line !== "")),
          Effect.map((lines) => lines.length >= 2 ? lines : undefined),
          Effect.orElseSucceed(() => undefined)
        ))
        yield* Scope.close(scope, Exit.void)
        for (const pid of pids) {
          const alive = yield* host.run({ argv: ["sh", "-c", `kill -0 ${pid} 2>/dev/null && ! grep -q '^State:.*Z' /proc/${pid}/status`] })
          assert.notStrictEqual(alive.exitCode, 0, `pid ${pid} survived`)
        }
      }))

    live("a signalled process reports 128 + signal", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const proc = yield* host.spawn({ argv: ["sleep", "300"] }, { stdout: false })
        yield* proc.signal("SIGKILL")
        assert.strictEqual(yield* proc.exitCode, 137)
        assert.isFalse(yield* proc.isRunning)
      }))

    os("spawnPty runs a program on a terminal: output, input, resize, exit", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const pty = yield* host.spawnPty({ argv: ["sh", "-c", "stty size; read line; echo \"got:$line\"; stty size"] }, { columns: 100, rows: 30 })
        const screen: Array<string> = []
        yield* pty.output.pipe(Stream.runForEach((text) => Effect.sync(() => screen.push(text))), Effect.forkChild)
        yield* waitUntil("initial size printed", Effect.sync(() => screen.join("").includes("30 100") ? true : undefined))
        yield* pty.resize(120, 40)
        yield* pty.write("héllo ✓\r")
        assert.strictEqual(yield* pty.exitCode, 0)
        yield* waitUntil("echo and new size", Effect.sync(() => {
          const text = screen.join("")
          return text.includes("got:héllo ✓") && text.includes("40 120") ? true : undefined
        }))
      }))

    os("terminateTree stops a tree the host did not spawn itself; isAlive tracks it", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const pidFile = `${root()}/detached-pid`
        // A daemon-like process: its parent exits at once, as tmux's server does.
        yield* host.run({ argv: ["sh", "-c", "setsid sh -c 'trap \"\" TERM; echo $$ > \"$1\"; while :; do sleep 1; done' sh \"$1\" > /dev/null 2>&1 &", "sh", pidFile] })
        const pid = yield* waitUntil("daemon pid", host.readFile(pidFile).pipe(
          Effect.map((bytes) => Number(decode(bytes).trim()) || undefined),
          Effect.orElseSucceed(() => undefined)
        ))
        assert.isTrue(yield* host.isAlive(pid))
        yield* host.terminateTree(pid, "200 millis")
        assert.isFalse(yield* host.isAlive(pid))
      }))

    live("files: atomic write with mode, append, stat, rename, remove", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const dir = `${root()}/files/a b`
        yield* host.makeDirectory(dir, { mode: 0o700 })
        assert.strictEqual((yield* host.stat(dir)).mode, 0o700)
        const file = `${dir}/secret.json`
        yield* host.writeFile(file, "{\"a\":1}", { mode: 0o600 })
        yield* host.appendFile(file, "\n✓")
        assert.strictEqual(decode(yield* host.readFile(file)), "{\"a\":1}\n✓")
        const info = yield* host.stat(file)
        assert.strictEqual(info.type, "File")
        assert.strictEqual(info.mode, 0o600)
        assert.strictEqual(info.size, 11)
        assert.deepStrictEqual(yield* host.readDirectory(dir), ["secret.json"])
        assert.strictEqual(decode(yield* host.readRange(file, 2, 3)), "a\":")
        yield* host.rename(file, `${dir}/moved`)
        assert.isFalse(yield* host.exists(file))
        yield* host.chmod(`${dir}/moved`, 0o640)
        assert.strictEqual((yield* host.stat(`${dir}/moved`)).mode, 0o640)
        yield* host.remove(`${root()}/files`)
        assert.isFalse(yield* host.exists(dir))
        yield* host.remove(`${root()}/files`) // removing nothing succeeds
        const missing = yield* Effect.flip(host.stat(`${root()}/files`))
        assert.strictEqual(missing.reason, "NotFound")
      }))

    live("symlink replaces atomically and realPath resolves it", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const dir = `${root()}/links`
        yield* host.makeDirectory(dir)
        yield* host.writeFile(`${dir}/one`, "1")
        yield* host.writeFile(`${dir}/two`, "2")
        yield* host.symlink(`${dir}/one`, `${dir}/link`)
        yield* host.symlink(`${dir}/two`, `${dir}/link`)
        assert.strictEqual((yield* host.stat(`${dir}/link`)).type, "SymbolicLink")
        assert.strictEqual(yield* host.realPath(`${dir}/link`), yield* host.realPath(`${dir}/two`))
        assert.strictEqual(decode(yield* host.readFile(`${dir}/link`)), "2")
      }))

    live("glob finds nested files, sorted and absolute", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const base = `${root()}/glob`
        for (const path of ["s/2026/01/rollout-b.jsonl", "s/2026/02/rollout-a.jsonl", "s/other.txt"]) {
          yield* host.makeDirectory(`${base}/${path.split("/").slice(0, -1).join("/")}`)
          yield* host.writeFile(`${base}/${path}`, "x")
        }
        assert.deepStrictEqual(yield* host.glob("s/**/rollout-*.jsonl", base), [
          `${base}/s/2026/01/rollout-b.jsonl`,
          `${base}/s/2026/02/rollout-a.jsonl`
        ])
      }))

    os("importFile places a worker file on the host with a mode", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const source = `${root()}/import-source`
        yield* host.writeFile(source, "#!/bin/sh\necho imported\n", { mode: 0o644 })
        yield* host.importFile(source, `${root()}/imported`, { mode: 0o755 })
        assert.strictEqual((yield* host.stat(`${root()}/imported`)).mode, 0o755)
        assert.strictEqual((yield* host.run({ argv: [`${root()}/imported`] })).stdout, "imported\n")
      }))

    const reasonOf = <A>(effect: Effect.Effect<A, HostError>) =>
      effect.pipe(Effect.flip, Effect.map((error) => error.reason))

    live("finding 4: readRegularFile reads a regular file and refuses a symlink, a FIFO (without blocking), a directory and an oversized file", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const dir = `${root()}/guarded-read`
        yield* host.makeDirectory(dir)
        yield* host.writeFile(`${dir}/secret`, "other tenant's login")
        yield* host.writeFile(`${dir}/auth.json`, "{\"ok\":1}")
        assert.strictEqual(decode(yield* host.readRegularFile(`${dir}/auth.json`, { maxBytes: 64 })), "{\"ok\":1}")
        assert.strictEqual(decode(yield* host.readRegularFile(`${dir}/auth.json`, { maxBytes: 64, within: yield* host.realPath(dir) })), "{\"ok\":1}")
        yield* host.symlink(`${dir}/secret`, `${dir}/link.json`)
        assert.strictEqual(yield* reasonOf(host.readRegularFile(`${dir}/link.json`, { maxBytes: 64 })), "SymlinkRefused")
        yield* hostOs.mkfifo(`${dir}/fifo.json`)
        assert.strictEqual(yield* reasonOf(host.readRegularFile(`${dir}/fifo.json`, { maxBytes: 64, timeout: "20 seconds" })), "NotRegularFile")
        assert.strictEqual(yield* reasonOf(host.readRegularFile(dir, { maxBytes: 64 })), "NotRegularFile")
        assert.strictEqual(yield* reasonOf(host.readRegularFile(`${dir}/auth.json`, { maxBytes: 3 })), "TooLarge")
        assert.strictEqual(yield* reasonOf(host.readRegularFile(`${dir}/missing`, { maxBytes: 3 })), "NotFound")
      }))

    live("finding 4: readRegularFile with a root refuses a file reached through a symlinked directory", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const dir = `${root()}/guarded-within`
        yield* host.makeDirectory(`${dir}/work`)
        yield* host.makeDirectory(`${dir}/outside`)
        yield* host.writeFile(`${dir}/outside/auth.json`, "foreign")
        yield* host.symlink(`${dir}/outside`, `${dir}/work/home`)
        const within = yield* host.realPath(`${dir}/work`)
        assert.strictEqual(yield* reasonOf(host.readRegularFile(`${dir}/work/home/auth.json`, { maxBytes: 64, within })), "OutsideRoot")
      }))

    live("finding 4: appendRegularFile creates and appends, never through a symlink or into a FIFO", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const dir = `${root()}/guarded-append`
        yield* host.makeDirectory(dir)
        yield* host.appendRegularFile(`${dir}/resume.log`, "one\n")
        yield* host.appendRegularFile(`${dir}/resume.log`, "two \\ 100% ünï\n")
        assert.strictEqual(decode(yield* host.readFile(`${dir}/resume.log`)), "one\ntwo \\ 100% ünï\n")
        yield* host.writeFile(`${dir}/victim`, "untouched")
        yield* host.symlink(`${dir}/victim`, `${dir}/link.log`)
        assert.strictEqual(yield* reasonOf(host.appendRegularFile(`${dir}/link.log`, "pwned")), "SymlinkRefused")
        assert.strictEqual(decode(yield* host.readFile(`${dir}/victim`)), "untouched")
        yield* host.symlink(`${dir}/created-through-link`, `${dir}/dangling.log`)
        assert.strictEqual(yield* reasonOf(host.appendRegularFile(`${dir}/dangling.log`, "pwned")), "SymlinkRefused")
        assert.isFalse(yield* host.exists(`${dir}/created-through-link`))
        yield* hostOs.mkfifo(`${dir}/fifo.log`)
        assert.strictEqual(yield* reasonOf(host.appendRegularFile(`${dir}/fifo.log`, "x", { timeout: "20 seconds" })), "NotRegularFile")
      }))

    live("finding 6: createRegularFile creates exclusively, streams with a cap and leaves nothing on failure", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const dir = `${root()}/guarded-create`
        yield* host.makeDirectory(`${dir}/inside`)
        yield* host.makeDirectory(`${dir}/outside`)
        const within = yield* host.realPath(`${dir}/inside`)
        const content = Stream.make(new TextEncoder().encode("hello "), new TextEncoder().encode("world"))
        assert.strictEqual(yield* host.createRegularFile(`${dir}/inside/a.txt`, content, { within, mode: 0o600 }), 11)
        assert.strictEqual(decode(yield* host.readFile(`${dir}/inside/a.txt`)), "hello world")
        assert.strictEqual((yield* host.stat(`${dir}/inside/a.txt`)).mode, 0o600)
        assert.strictEqual(yield* reasonOf(host.createRegularFile(`${dir}/inside/a.txt`, content)), "AlreadyExists")
        yield* host.symlink(`${dir}/outside/planted`, `${dir}/inside/b.txt`)
        assert.strictEqual(yield* reasonOf(host.createRegularFile(`${dir}/inside/b.txt`, content)), "AlreadyExists")
        assert.isFalse(yield* host.exists(`${dir}/outside/planted`))
        assert.strictEqual(yield* reasonOf(host.createRegularFile(`${dir}/inside/c.txt`, content, { maxBytes: 8 })), "TooLarge")
        const failing = Stream.concat(content, Stream.fail(new HostError({ host: "test", operation: "upload", reason: "Unknown", detail: "client went away" })))
        assert.strictEqual(yield* reasonOf(host.createRegularFile(`${dir}/inside/d.txt`, failing)), "Unknown")
        yield* host.symlink(`${dir}/outside`, `${dir}/inside/sub`)
        assert.strictEqual(yield* reasonOf(host.createRegularFile(`${dir}/inside/sub/e.txt`, content, { within })), "OutsideRoot")
        assert.deepStrictEqual(yield* host.readDirectory(`${dir}/inside`), ["a.txt", "b.txt", "sub"])
        assert.deepStrictEqual(yield* host.readDirectory(`${dir}/outside`), [])
      }))

    live("finding 4: tail never follows optio.log swapped for a symlink", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const dir = `${root()}/guarded-tail`
        yield* host.makeDirectory(dir)
        yield* host.writeFile(`${dir}/secret`, "SECRET-BYTES\n")
        const log = `${dir}/optio.log`
        const stop = yield* Deferred.make<void>()
        const seen: Array<TailChunk> = []
        const fiber = yield* host.tail(log, { until: Deferred.await(stop), pollInterval: "10 millis" }).pipe(
          Stream.runForEach((chunk) => Effect.sync(() => seen.push(chunk))),
          Effect.forkChild
        )
        yield* host.appendFile(log, "STATUS: 1\n")
        yield* waitUntil("tail shows the first line", Effect.sync(() => textSinceReset(seen) === "STATUS: 1\n" ? true : undefined))
        yield* host.symlink(`${dir}/secret`, log)
        yield* waitUntil("tail saw the replacement", Effect.sync(() => seen.some((chunk) => chunk._tag === "Reset") ? true : undefined))
        yield* host.appendFile(`${dir}/secret`, "MORE-SECRET\n")
        yield* Deferred.succeed(stop, undefined)
        yield* Fiber.join(fiber)
        assert.notInclude(seen.map((chunk) => chunk._tag === "Data" ? decode(chunk.bytes) : "|").join(""), "SECRET")
      }))

    live("tail follows growth and partial lines, resets on truncation and replacement, drains at the end", () =>
      Effect.gen(function*() {
        const host = yield* Host
        const log = `${root()}/optio.log`
        const stop = yield* Deferred.make<void>()
        const seen: Array<TailChunk> = []
        const fiber = yield* host.tail(log, { until: Deferred.await(stop), pollInterval: "10 millis" }).pipe(
          Stream.runForEach((chunk) => Effect.sync(() => seen.push(chunk))),
          Effect.forkChild
        )
        const sawText = (text: string) => waitUntil(`tail shows ${JSON.stringify(text)}`, Effect.sync(() => textSinceReset(seen) === text ? true : undefined))
        yield* host.appendFile(log, "STATUS: 1")
        yield* sawText("STATUS: 1")
        yield* host.appendFile(log, "0% half\n")
        yield* sawText("STATUS: 10% half\n")
        yield* host.writeFile(`${log}.new`, "fresh\n")
        yield* host.rename(`${log}.new`, log) // rotation by rename: same size class, new file
        yield* sawText("fresh\n")
        yield* hostOs.truncateAndWrite(log, "a\n")
        yield* sawText("a\n")
        // Written right before the writer is declared done: the final drain must still see it.
        yield* host.appendFile(log, "DONE")
        yield* Deferred.succeed(stop, undefined)
        yield* Fiber.join(fiber)
        assert.strictEqual(textSinceReset(seen), "a\nDONE")
        assert.isAtLeast(Chunk.size(Chunk.fromIterable(seen.filter((chunk) => chunk._tag === "Reset"))), 2)
      }))
  })
