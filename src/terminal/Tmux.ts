/**
 * Tmux: the service that starts a task's tmux session (see {@link TmuxSession} for what a session
 * is and how it is torn down). The live layer captures the {@link Host} when it is built, so
 * `start` needs nothing but the Scope the session lives in; `layerTest` is a scripted pane — its
 * screen, exit status and the text sent to it are the test's to set and read — so a session runs
 * without tmux.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Effect, Layer, Ref } from "effect"
import type { Duration, Scope } from "effect"
import { Host } from "../host/Host.ts"
import type { HostError } from "../host/Host.ts"
import { ALLOWED_KEY, startTmuxSessionOn, TmuxKeyRejected, TmuxSessionGone, TmuxStartFailed } from "./TmuxSession.ts"
import type { PaneStatus, TmuxSession, TmuxSessionOptions } from "./TmuxSession.ts"

/**
 * Starts tmux sessions on the host the layer was built with.
 * @category services
 * @since 0.1.0
 */
export class Tmux extends Context.Service<Tmux, {
  /** Starts the task's tmux session; it is torn down (pane program stopped first) with the scope. */
  readonly start: (options: TmuxSessionOptions) => Effect.Effect<TmuxSession, TmuxStartFailed | HostError, Scope.Scope>
}>()("optio-codex/Tmux") {
  /** The live layer: real tmux on the provided Host. */
  static readonly layer: Layer.Layer<Tmux, never, Host> = Layer.effect(
    Tmux,
    Effect.gen(function*() {
      const host = yield* Host
      return Tmux.of({ start: (options) => startTmuxSessionOn(host, options) })
    })
  )

  /** A scripted pane (see {@link makeScriptedTmux}) instead of tmux. */
  static readonly layerTest = (scripted: ScriptedTmux): Layer.Layer<Tmux> => Layer.succeed(Tmux, scripted.tmux)
}

/**
 * How a scripted pane behaves.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedTmuxOptions {
  /** What the pane shows when it starts. Default `"codex ready"`. */
  readonly screen?: string
  readonly panePid?: number
  readonly serverPid?: number
  /** Fails every start with this detail (tmux could not start). */
  readonly startFailure?: string
  /**
   * The pane program: runs in a fiber of the session's scope once the session starts (write
   * optio.log, change the screen, exit), interrupted at teardown.
   */
  readonly program?: (pane: ScriptedPane, options: TmuxSessionOptions) => Effect.Effect<void>
  /** Called for every `sendText`, after it is recorded (the agent "reading" a message). */
  readonly onSend?: (text: string, pane: ScriptedPane) => Effect.Effect<void>
  /** Called as the session's teardown runs (to record the order of finalizers). */
  readonly onStop?: Effect.Effect<void>
}

/**
 * The handles a test drives a scripted pane with.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedPane {
  readonly setScreen: (text: string) => Effect.Effect<void>
  /** The pane program exits with `code` (`awaitExit` returns it, `status` says `Exited`). */
  readonly exit: (code: number) => Effect.Effect<void>
  /** The tmux server goes away (`status` says `Gone`, `awaitExit` fails). */
  readonly vanish: Effect.Effect<void>
}

/**
 * A scripted tmux: the service and what the test reads back.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedTmux {
  readonly tmux: Context.Service.Shape<typeof Tmux>
  readonly pane: ScriptedPane
  /** The options of every start, oldest first. */
  readonly starts: Effect.Effect<ReadonlyArray<TmuxSessionOptions>>
  /** Every text sent with `sendText`, in order. */
  readonly sent: Effect.Effect<ReadonlyArray<string>>
  /** Every `sendKeys` call, in order. */
  readonly keys: Effect.Effect<ReadonlyArray<ReadonlyArray<string>>>
  /** Whether the last started session has been torn down. */
  readonly stopped: Effect.Effect<boolean>
}

/**
 * Builds a scripted tmux.
 * @category constructors
 * @since 0.1.0
 */
export const makeScriptedTmux = (options: ScriptedTmuxOptions = {}): Effect.Effect<ScriptedTmux> =>
  Effect.gen(function*() {
    const screen = yield* Ref.make(options.screen ?? "codex ready")
    const status = yield* Ref.make<PaneStatus>({ _tag: "Running" })
    const changed = yield* Ref.make(yield* Deferred.make<void>())
    const starts = yield* Ref.make<ReadonlyArray<TmuxSessionOptions>>([])
    const sent = yield* Ref.make<ReadonlyArray<string>>([])
    const keys = yield* Ref.make<ReadonlyArray<ReadonlyArray<string>>>([])
    const stopped = yield* Ref.make(false)

    // Wakes everyone waiting on a status change.
    const setStatus = (next: PaneStatus) =>
      Effect.gen(function*() {
        yield* Ref.set(status, next)
        const previous = yield* Ref.getAndSet(changed, yield* Deferred.make<void>())
        yield* Deferred.succeed(previous, undefined)
      })
    const pane: ScriptedPane = {
      setScreen: (text) => Ref.set(screen, text),
      exit: (code) => setStatus({ _tag: "Exited", exitCode: code }),
      vanish: setStatus({ _tag: "Gone" })
    }

    const start = (startOptions: TmuxSessionOptions) =>
      Effect.gen(function*() {
        const socketPath = startOptions.socketPath
        const sessionName = startOptions.sessionName ?? "optio"
        yield* Ref.update(starts, (list) => [...list, startOptions])
        if (options.startFailure !== undefined) {
          return yield* new TmuxStartFailed({ socketPath, sessionName, detail: options.startFailure })
        }
        yield* Ref.set(stopped, false)
        yield* Effect.addFinalizer(() =>
          Effect.andThen(options.onStop ?? Effect.void, Ref.set(stopped, true))
        )
        if (options.program !== undefined) yield* Effect.forkScoped(options.program(pane, startOptions))
        const gone = (operation: string) => new TmuxSessionGone({ socketPath, sessionName, operation, detail: "scripted pane is gone" })
        const alive = (operation: string) =>
          Ref.get(status).pipe(Effect.flatMap((state) => state._tag === "Gone" ? Effect.fail(gone(operation)) : Effect.void))
        const awaitExit = (_pollInterval: Duration.Input): Effect.Effect<number, TmuxSessionGone> =>
          Effect.gen(function*() {
            while (true) {
              const wake = yield* Ref.get(changed)
              const state = yield* Ref.get(status)
              if (state._tag === "Exited") return state.exitCode
              if (state._tag === "Gone") return yield* gone("await exit")
              yield* Deferred.await(wake)
            }
          })
        const session: TmuxSession = {
          socketPath,
          sessionName,
          columns: startOptions.columns ?? 200,
          rows: startOptions.rows ?? 50,
          attachCommand: { argv: ["tmux", "-u", "-S", socketPath, "attach-session", "-t", `=${sessionName}`] },
          panePid: Effect.succeed(options.panePid ?? 4242),
          serverPid: Effect.succeed(options.serverPid ?? 4241),
          status: Ref.get(status),
          awaitExit,
          capture: (lines) =>
            alive("capture-pane").pipe(Effect.andThen(Ref.get(screen)), Effect.map((text) => text.split("\n").slice(-Math.max(1, lines)).join("\n"))),
          sendText: (text) =>
            alive("send-keys").pipe(
              Effect.andThen(Ref.update(sent, (list) => [...list, text])),
              Effect.andThen(options.onSend === undefined ? Effect.void : options.onSend(text, pane))
            ),
          sendKeys: (pressed) => {
            const rejected = pressed.find((key) => !ALLOWED_KEY.test(key))
            if (rejected !== undefined) return Effect.fail(new TmuxKeyRejected({ key: rejected }))
            return alive("send-keys").pipe(Effect.andThen(Ref.update(keys, (list) => [...list, pressed])))
          }
        }
        return session
      })

    return {
      tmux: Tmux.of({ start }),
      pane,
      starts: Ref.get(starts),
      sent: Ref.get(sent),
      keys: Ref.get(keys),
      stopped: Ref.get(stopped)
    }
  })
