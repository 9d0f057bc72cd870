#!/usr/bin/env node
/**
 * The optio-codex CLI: `optio-codex run` runs one codex task on this machine with a console
 * TaskContext, printing progress and the web terminal's URL. The only place effects are run.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer, Option, Queue, Result, Schema, Stream } from "effect"
import { Command, Flag } from "effect/cli"
import { isAbsolute, resolve } from "node:path"
import { createInterface } from "node:readline"
import { ScriptedModelServer } from "../modelserver/ScriptedModelServer.ts"
import { runCodexSession } from "../session/CodexSession.ts"
import { TaskContext } from "../task/TaskContext.ts"
import { layerCodexServices } from "../session/SessionServices.ts"
import { VERSION_LINE } from "../package/PackageInfo.ts"
import { DEMO_PROMPT, demoScript, demoTaskSettings } from "./OfflineDemo.ts"
import { doctorChecks } from "./Doctor.ts"
import { hostFlags, hostLayerFrom } from "./HostFlags.ts"
import type { HostFlagValues } from "./HostFlags.ts"
import { loginCommand } from "./Login.ts"
import { seedsCommand } from "./Seeds.ts"
import { storeFlags, storeLayer } from "./StoreFlags.ts"
import { terminalChat } from "./TerminalChat.ts"

// The operator's lines from an interactive terminal.
const stdinLines: Stream.Stream<string> = Stream.callback<string>((queue) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const reader = createInterface({ input: process.stdin })
      reader.on("line", (line) => Queue.offerUnsafe(queue, line))
      return reader
    }),
    (reader) => Effect.sync(() => reader.close())
  ))

class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { detail: Schema.String }) {
  override get message(): string {
    return this.detail
  }
}

const run = Command.make("run", {
  mode: Flag.Literals("mode", ["tui", "conversation"]).pipe(
    Flag.withDescription("tui: the codex TUI in a web terminal; conversation: codex app-server"),
    Flag.withDefault("tui" as const)
  ),
  workdir: Flag.String("workdir").pipe(Flag.withDescription("codex's working directory (kept afterwards)"), Flag.optional),
  prompt: Flag.String("prompt").pipe(Flag.withDescription("the task for codex"), Flag.optional),
  model: Flag.String("model").pipe(Flag.withDescription("the model codex asks for (default: codex's own default)"), Flag.optional),
  processId: Flag.String("process-id").pipe(Flag.withDescription("task id (names the task dir)"), Flag.withDefault("cli")),
  ...hostFlags,
  codexCacheDir: Flag.String("codex-cache-dir").pipe(
    Flag.withDescription("codex binary cache on the host (default $OPTIO_CODEX_CACHE_DIR there, else ~/.cache/optio-codex/bin)"),
    Flag.optional
  ),
  offlineDemo: Flag.Boolean("offline-demo").pipe(
    Flag.withDescription("drive codex with a built-in scripted local model: no account, no network"),
    Flag.withDefault(false)
  ),
  seed: Flag.String("seed").pipe(Flag.withDescription("log codex in with this stored seed (leased for the run)"), Flag.optional),
  seedPool: Flag.String("seed-pool").pipe(Flag.withDescription("lease a seed from this pool for the run"), Flag.optional),
  resume: Flag.String("resume").pipe(
    Flag.withDescription("resume this task (process id) from its newest snapshot"),
    Flag.optional
  ),
  ...storeFlags
}, (flags) =>
  Effect.gen(function*() {
    const workdir = Option.map(flags.workdir, (dir) => isAbsolute(dir) ? dir : resolve(dir))
    const demo = flags.offlineDemo ? Option.some(yield* ScriptedModelServer.start(demoScript)) : Option.none()
    const settings = Option.match(demo, { onNone: () => ({}), onSome: (server) => demoTaskSettings(server.baseUrl) })
    const prompt = Option.getOrElse(flags.prompt, () => flags.offlineDemo ? DEMO_PROMPT : "")
    if (prompt === "") return yield* new UsageError({ detail: "--prompt is required (or use --offline-demo)" })
    const config = {
      consumerInstructions: prompt,
      mode: flags.mode === "tui" ? "iframe" : "conversation",
      // In conversation mode the listener lets a browser watch beside the terminal chat.
      ...(flags.mode === "conversation" ? { conversationUi: true } : {}),
      autoStart: true,
      ...settings,
      ...Option.match(flags.model, { onNone: () => ({}), onSome: (model) => ({ model }) }),
      ...Option.match(flags.seed, { onNone: () => ({}), onSome: (seedId) => ({ seedId }) }),
      ...Option.match(flags.seedPool, { onNone: () => ({}), onSome: (seedPool) => ({ seedPool }) })
    }
    const result = yield* runCodexSession(config, {
      ...Option.match(workdir, { onNone: () => ({}), onSome: (dir) => ({ workdir: dir }) }),
      onConversation: (conversation) =>
        terminalChat(conversation, {
          write: (text) => Effect.sync(() => void process.stdout.write(text)),
          lines: process.stdin.isTTY ? stdinLines : undefined
        })
    })
    yield* Console.log(`DONE${result.summary === null ? "" : `: ${result.summary}`} (workdir ${result.workdir})`)
  }).pipe(
    Effect.scoped,
    Effect.provide(Layer.unwrap(Effect.map(hostLayer(flags), (host) =>
      Layer.mergeAll(
        TaskContext.layerConsole(
          { processId: Option.getOrElse(flags.resume, () => flags.processId), resume: Option.isSome(flags.resume) },
          (line) => Console.log(line),
          { revealCredentials: true }
        ),
        layerCodexServices({
          binaryCache: { cacheDir: Option.getOrUndefined(flags.codexCacheDir) },
          // Seeded runs on this machine go through the token broker (credentialMode defaults to
          // it); a run on --host keeps file mode (brokering over a remote forward is not proven there).
          tokenBroker: Option.isNone(flags.host) ? { upstreamTokenUrl: process.env["CODEX_REFRESH_TOKEN_URL_OVERRIDE"] } : "none"
        })
      ).pipe(Layer.provideMerge(Layer.merge(storeLayer(flags), host)))))),
    Effect.tapError((error) => Console.error(`failed: ${error instanceof Error ? error.message : String(error)}`))
  ))

const hostLayer = (flags: HostFlagValues) => {
  const layer = hostLayerFrom(flags)
  return Result.isFailure(layer) ? Effect.fail(layer.failure) : Effect.succeed(layer.success)
}

const doctor = Command.make("doctor", hostFlags, (flags) =>
  Effect.gen(function*() {
    const layer = yield* hostLayer(flags)
    const checks = yield* doctorChecks.pipe(
      Effect.provide(layer),
      Effect.catch((error) => Effect.succeed([{ check: "reachable", ok: false, detail: error.message }]))
    )
    for (const check of checks) yield* Console.log(`${check.ok ? "ok  " : "FAIL"} ${check.check}: ${check.detail}`)
    if (checks.some((check) => !check.ok)) return yield* new UsageError({ detail: "some checks failed" })
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription("Check that a host (this machine, or --host) can run codex tasks: tools, sandbox, codex binary")
  )

const root = Command.make("optio-codex").pipe(
  Command.withDescription("Run OpenAI Codex as managed, isolated tasks"),
  Command.withSubcommands([
    run.pipe(Command.withDescription(
      "Run one codex task on this machine (or --host): the codex TUI in a web terminal, or a conversation over codex app-server"
    )),
    doctor,
    seedsCommand,
    loginCommand.pipe(Command.withDescription(
      "Log codex in to a ChatGPT account (device code) and store the credentials as a seed; prints the seed id"
    ))
  ])
)

Command.run(root, { version: VERSION_LINE }).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
