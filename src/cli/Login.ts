/**
 * Login: the CLI's `optio-codex login` — codex's device-code login as a setup task in a web
 * terminal, ending with the id of the captured seed on stdout. Owns the flags and the layers the
 * task runs with; the task itself is LoginBody's.
 *
 * The seed goes to the store {@link storeFlags} select (the embedded store by default). The issuer
 * is OpenAI's unless `--issuer` (env `OPTIO_CODEX_ISSUER`) names another, e.g. a stand-in.
 *
 * @since 0.1.0
 */
import { Config, Console, Effect, Layer, Logger, Option, Result } from "effect"
import { Command, Flag } from "effect/cli"
import { runCodexLogin } from "../session/LoginBody.ts"
import { layerCodexServices } from "../session/SessionServices.ts"
import { TaskContext } from "../task/TaskContext.ts"
import { hostFlags, hostLayerFrom } from "./HostFlags.ts"
import { describeStore, storeChoice, storeFlags, storeLayer } from "./StoreFlags.ts"

/**
 * `optio-codex login [--issuer URL] [--pool KEY] [store flags] [host flags]`.
 * @category commands
 * @since 0.1.0
 */
export const loginCommand = Command.make("login", {
  issuer: Flag.String("issuer").pipe(
    Flag.withDescription("OAuth issuer to log in at instead of OpenAI's (env OPTIO_CODEX_ISSUER)"),
    Flag.withFallbackConfig(Config.String("OPTIO_CODEX_ISSUER")),
    Flag.optional
  ),
  pool: Flag.String("pool").pipe(Flag.withDescription("pool the captured seed joins"), Flag.optional),
  processId: Flag.String("process-id").pipe(Flag.withDescription("task id (names the task dir)"), Flag.withDefault("login")),
  codexCacheDir: Flag.String("codex-cache-dir").pipe(
    Flag.withDescription("codex binary cache on the host (default $OPTIO_CODEX_CACHE_DIR there, else ~/.cache/optio-codex/bin)"),
    Flag.optional
  ),
  ...storeFlags,
  ...hostFlags
}, (flags) =>
  Effect.gen(function*() {
    const host = hostLayerFrom(flags)
    if (Result.isFailure(host)) return yield* host.failure
    yield* Console.error(`seeds go to the ${describeStore(storeChoice(flags))}`)
    const result = yield* runCodexLogin({ consumerInstructions: "" }, {
      issuer: Option.getOrUndefined(flags.issuer),
      poolKey: Option.getOrUndefined(flags.pool)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        Layer.mergeAll(
          TaskContext.layerConsole({ processId: flags.processId }, (line) => Console.error(line), { revealCredentials: true }),
          layerCodexServices({ binaryCache: { cacheDir: Option.getOrUndefined(flags.codexCacheDir) } })
        ).pipe(Layer.provideMerge(Layer.merge(storeLayer(flags), host.success)))
      )
    )
    // The seed id alone on stdout, for scripts; everything else went to stderr.
    yield* Console.log(result.seedId)
  }).pipe(
    Effect.tapError((error) => Console.error(`failed: ${error instanceof Error ? error.message : String(error)}`)),
    // stdout carries only the seed id.
    Effect.provideService(Logger.LogToStderr, true)
  ))
