/**
 * KitHelper: runs the small shell functions of `KIT` (process trees, liveness, file identity,
 * globbing, removal, home) through a few long-lived `sh` helpers per connection instead of one
 * exec channel each.
 *
 * Every exec channel makes sshd start the user's login shell, which on many hosts sources rc
 * files (`~/.bashrc` with pyenv/nvm/conda init) for hundreds of milliseconds. The helpers pay
 * that once per connection; a request is then a fork on the host. Protocol, one request at a
 * time per helper: the worker writes the function call (quoted words) and a line holding the
 * helper's nonce; the helper `eval`s the call in a subshell with stdin from /dev/null and
 * stderr merged into stdout, then prints `\n<nonce> <status>\n`. Anything the login shell prints
 * before the helper's first marker is skipped. A helper whose request is interrupted, or whose
 * channel closes, is discarded; when no helper can be started, the call falls back to a plain
 * exec channel.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Exit, Semaphore } from "effect"
import { randomBytes } from "node:crypto"
import type { ClientChannel } from "ssh2"
import { shellJoin } from "../../config/ShellQuote.ts"
import { HostError } from "../Host.ts"
import { KIT, remoteCommandLine } from "./RemoteShell.ts"
import type { Generation, SshConnection } from "./SshConnection.ts"

/** The outcome of one KIT call: `output` is stdout and stderr together. */
export interface KitResult {
  readonly exitCode: number | undefined
  readonly stdout: string
  readonly stderr: string
}

const HELPERS_PER_CONNECTION = 2

interface Helper {
  readonly channel: ClientChannel
  readonly nonce: string
  readonly needle: Buffer
  buffer: Buffer
  pending: Deferred.Deferred<{ readonly output: Buffer; readonly status: number }, HostError> | undefined
  dead: boolean
}

interface Pool {
  readonly permits: Semaphore.Semaphore
  readonly idle: Array<Helper>
}

/**
 * Builds the KIT runner of a connection. `direct` runs a call on its own exec channel (the
 * fallback).
 */
export const makeKitRunner = (
  connection: SshConnection,
  direct: (generation: Generation, line: string) => Effect.Effect<KitResult, HostError>
) => {
  const pools = new WeakMap<Generation, Pool>()

  const poolOf = (generation: Generation): Pool => {
    const existing = pools.get(generation)
    if (existing !== undefined) return existing
    const pool: Pool = { permits: Semaphore.makeUnsafe(HELPERS_PER_CONNECTION), idle: [] }
    pools.set(generation, pool)
    return pool
  }

  const exchange = (helper: Helper, request: string | undefined) =>
    Effect.suspend(() => {
      if (helper.dead) return Effect.fail(new HostError({ host: connection.label, operation: "kit", reason: "Unknown", detail: "the helper exited" }))
      const pending = Deferred.makeUnsafe<{ readonly output: Buffer; readonly status: number }, HostError>()
      helper.pending = pending
      if (request !== undefined) helper.channel.write(request)
      return Deferred.await(pending)
    })

  const start = (generation: Generation) =>
    Effect.gen(function*() {
      const nonce = randomBytes(8).toString("hex")
      const loop = [
        KIT,
        `__optio_n=${nonce}`,
        `printf '\\n%s 0\\n' "$__optio_n"`,
        "while :; do",
        "  __optio_s=; __optio_ok=",
        "  while IFS= read -r __optio_l; do",
        "    if [ \"$__optio_l\" = \"$__optio_n\" ]; then __optio_ok=1; break; fi",
        "    __optio_s=\"$__optio_s$__optio_l",
        "\"",
        "  done",
        "  [ -n \"$__optio_ok\" ] || exit 0",
        "  (eval \"$__optio_s\") </dev/null 2>&1",
        "  printf '\\n%s %s\\n' \"$__optio_n\" \"$?\"",
        "done"
      ].join("\n")
      const channel = yield* connection.exec(generation, remoteCommandLine(loop))
      const helper: Helper = { channel, nonce, needle: Buffer.from(`\n${nonce} `), buffer: Buffer.alloc(0), pending: undefined, dead: false }
      channel.on("error", () => {})
      channel.stderr.resume()
      channel.on("data", (chunk: Buffer) => {
        helper.buffer = Buffer.concat([helper.buffer, chunk])
        const at = helper.buffer.indexOf(helper.needle)
        const end = at < 0 ? -1 : helper.buffer.indexOf(0x0a, at + helper.needle.length)
        if (end < 0) return
        const status = Number(helper.buffer.subarray(at + helper.needle.length, end).toString("latin1"))
        const output = helper.buffer.subarray(0, at)
        helper.buffer = helper.buffer.subarray(end + 1)
        const pending = helper.pending
        helper.pending = undefined
        if (pending !== undefined) Deferred.doneUnsafe(pending, Exit.succeed({ output, status }))
      })
      channel.once("close", () => {
        helper.dead = true
        const pending = helper.pending
        helper.pending = undefined
        const error = generation.isLost()
          ? connection.lostError("kit", generation.lostDetail)
          : new HostError({ host: connection.label, operation: "kit", reason: "Unknown", detail: "the helper exited" })
        if (pending !== undefined) Deferred.doneUnsafe(pending, Exit.fail(error))
      })
      // The first marker says the helper runs; whatever the login shell printed before it is dropped.
      yield* exchange(helper, undefined).pipe(Effect.onError(() => Effect.sync(() => discard(helper))))
      return helper
    })

  const viaHelper = (generation: Generation, call: string) => {
    const pool = poolOf(generation)
    return Semaphore.withPermit(pool.permits)(Effect.gen(function*() {
      const helper = pool.idle.pop() ?? (yield* start(generation))
      return yield* exchange(helper, `${call}\n${helper.nonce}\n`).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (Exit.isSuccess(exit) && !helper.dead) pool.idle.push(helper)
            else discard(helper)
          })
        )
      )
    }))
  }

  /** Runs one KIT function with arguments (no NUL bytes) on the host. */
  return (operation: string, fn: string, args: ReadonlyArray<string>): Effect.Effect<KitResult, HostError> => {
    if (args.some((arg) => arg.includes("\u0000"))) {
      return Effect.fail(new HostError({ host: connection.label, operation, reason: "BadArgument", detail: "an argument contains a NUL byte" }))
    }
    const call = shellJoin([fn, ...args])
    return connection.use(operation, (generation) =>
      viaHelper(generation, call).pipe(
        Effect.map(({ output, status }): KitResult => ({ exitCode: status, stdout: output.toString("utf8"), stderr: "" })),
        Effect.catchIf(
          (error) => error.reason !== "ConnectionLost" && !generation.isLost(),
          () => direct(generation, remoteCommandLine(`${KIT}\n"$@"`, [fn, ...args]))
        )
      ))
  }
}

const discard = (helper: Helper) => {
  helper.dead = true
  try {
    helper.channel.close()
  } catch {
    // already closed
  }
}
