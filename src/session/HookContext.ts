/**
 * HookContext: the operations a task's hooks get (the reference's `hook_ctx`), built once per
 * session over its Host and TaskContext. Messages to the agent go through whichever channel the
 * running mode attaches (tmux keys for the TUI, a turn for app-server); before codex runs there
 * is none and `sendToAgent` says so instead of failing.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Option, Ref } from "effect"
import { posix } from "node:path"
import { randomBytes } from "node:crypto"
import { HostError } from "../host/Host.ts"
import type { Command, HostShape, RunResult } from "../host/Host.ts"
import { systemMessage } from "../protocol/SystemMessages.ts"
import type { TaskContext } from "../task/TaskContext.ts"
import type { DownloadFailure, HookContext } from "./Hooks.ts"

/** How a running mode delivers a message to the agent. */
export type AgentChannel = (message: string) => Effect.Effect<void, unknown>

/**
 * A session's hook context and the handle its body uses to attach the agent channel.
 * @category models
 */
export interface SessionHookContext {
  readonly context: HookContext
  readonly attachAgentChannel: (channel: AgentChannel) => Effect.Effect<void>
}

const DOWNLOAD_TIMEOUT = Duration.minutes(30)

/**
 * Builds the hook context of one session.
 * @category constructors
 */
export const makeHookContext = (options: {
  readonly processId: string
  readonly workdir: string
  readonly host: HostShape
  readonly task: TaskContext["Service"]
}): Effect.Effect<SessionHookContext> =>
  Effect.gen(function*() {
    const { host, task, workdir } = options
    const channel = yield* Ref.make(Option.none<AgentChannel>())
    const onHost = (path: string) => posix.isAbsolute(path) ? path : posix.join(workdir, path)

    const sendToAgent = (message: string) =>
      Effect.gen(function*() {
        const current = yield* Ref.get(channel)
        if (Option.isNone(current)) {
          yield* task.reportProgress(null, "A hook's message to the agent was not sent: codex is not running yet")
          return false
        }
        return yield* current.value(systemMessage(message)).pipe(
          Effect.as(true),
          Effect.catch((error) => task.reportProgress(null, `A hook's message to the agent failed: ${String(error)}`).pipe(Effect.as(false)))
        )
      })

    // A bounded run: past the timeout the command is interrupted (its process killed) and the
    // caller gets a HostError that says so.
    const runBounded = (command: Command, timeout: Duration.Input): Effect.Effect<RunResult, HostError> =>
      host.run(command).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(new HostError({
              host: host.label,
              operation: `run ${command.argv[0]}`,
              reason: "Unknown",
              detail: `timed out after ${Duration.format(Duration.fromInputUnsafe(timeout))}`
            }))
        })
      )

    const readFromHost = (path: string) => host.readFile(onHost(path))

    const downloadTarget = (target: string) =>
      Effect.gen(function*() {
        if (target === "~") return yield* host.home
        if (target.startsWith("~/")) return posix.join(yield* host.home, target.slice(2))
        if (posix.isAbsolute(target)) return target
        const relative = posix.normalize(target)
        return relative === ".." || relative.startsWith("../") || relative === "." ? undefined : posix.join(workdir, relative)
      })

    const downloadFile = (url: string, target: string) =>
      Effect.gen(function*() {
        const failed = (detail: string): DownloadFailure => ({ _tag: "DownloadFailed", url, target, detail })
        if (!/^https?:\/\//i.test(url)) return yield* Effect.fail(failed("only http(s) URLs are downloaded"))
        const path = yield* downloadTarget(target)
        if (path === undefined) return yield* Effect.fail(failed("a relative target must stay inside the workdir"))
        const partial = `${path}.part-${randomBytes(4).toString("hex")}`
        yield* task.reportProgress(null, `Downloading ${url} to ${path}…`)
        const result = yield* runBounded(
          { argv: ["curl", "-sS", "-f", "-L", "--proto", "=http,https", "--create-dirs", "-o", partial, "--", url], cwd: workdir },
          DOWNLOAD_TIMEOUT
        ).pipe(Effect.onExit((exit) => exit._tag === "Success" && exit.value.exitCode === 0 ? Effect.void : host.remove(partial).pipe(Effect.ignore)))
        if (result.exitCode !== 0) {
          return yield* Effect.fail(failed(`curl exited ${result.exitCode}: ${result.stderr.trim().slice(-300)}`))
        }
        yield* host.rename(partial, path).pipe(Effect.tapError(() => host.remove(partial).pipe(Effect.ignore)))
        yield* task.reportProgress(null, `Downloaded ${url} to ${path}`)
        return path
      })

    const context: HookContext = {
      processId: options.processId,
      workdir,
      reportProgress: task.reportProgress,
      sendToAgent,
      runOnHost: (argv, runOptions) => {
        const command: Command = {
          argv,
          cwd: runOptions?.cwd === undefined ? workdir : onHost(runOptions.cwd),
          ...(runOptions?.env === undefined ? {} : { env: runOptions.env })
        }
        return runOptions?.timeout === undefined ? host.run(command) : runBounded(command, runOptions.timeout)
      },
      copyFile: (workerPath, hostPath, copyOptions) => host.importFile(workerPath, onHost(hostPath), copyOptions),
      readFromHost,
      readTextFromHost: (path) => readFromHost(path).pipe(Effect.map((bytes) => new TextDecoder().decode(bytes))),
      downloadFile
    }
    return { context, attachAgentChannel: (send) => Ref.set(channel, Option.some(send)) }
  })
