/**
 * AppServerClient: the service that starts codex conversations over `codex app-server` (the
 * design card's name for it; see {@link CodexConversation} for what a conversation is). The live
 * layer captures the {@link Host} when it is built, so `start` needs nothing but the Scope the
 * conversation lives in; `layerTest` is a scripted conversation — its bootstrap, what each turn
 * does, approvals, hangs and codex's exit are the test's to set — so a session runs without codex.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Duration, Effect, Layer, PubSub, Ref, Stream } from "effect"
import type { Scope } from "effect"
import { ConversationClosed } from "./ConversationHandle.ts"
import type { ConversationEvent, PermissionBehavior } from "./ConversationHandle.ts"
import { Host } from "../host/Host.ts"
import { AppServerExited, AppServerRequestTimedOut } from "./AppServerProtocol.ts"
import { ClientMethod, ServerNotificationMethod } from "./AppServerSchema.ts"
import { startConversationOn } from "./CodexConversation.ts"
import type { CodexConversation, ConversationOptions, ConversationStartError, HistoryTurn } from "./CodexConversation.ts"
import { emptyCatalog } from "./ModelCatalog.ts"
import { turnEvents } from "./TurnEvents.ts"

/**
 * Starts codex conversations on the host the layer was built with.
 * @category services
 * @since 0.1.0
 */
export class AppServerClient extends Context.Service<AppServerClient, {
  /** Launches codex app-server and bootstraps a conversation; closed gracefully with the scope. */
  readonly start: (options: ConversationOptions) => Effect.Effect<CodexConversation, ConversationStartError, Scope.Scope>
}>()("optio-codex/AppServerClient") {
  /** The live layer: codex app-server on the provided Host. */
  static readonly layer: Layer.Layer<AppServerClient, never, Host> = Layer.effect(
    AppServerClient,
    Effect.gen(function*() {
      const host = yield* Host
      return AppServerClient.of({ start: (options) => startConversationOn(host, options) })
    })
  )

  /** A scripted conversation (see {@link makeScriptedAppServer}) instead of codex. */
  static readonly layerTest = (scripted: ScriptedAppServer): Layer.Layer<AppServerClient> =>
    Layer.succeed(AppServerClient, scripted.client)
}

/**
 * How a scripted conversation behaves.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedAppServerOptions {
  /** The new thread's id (a resume keeps the requested id). Default `thread-1`. */
  readonly threadId?: string
  readonly pid?: number
  /** codex dies during the bootstrap with this exit code and stderr. */
  readonly dieAtLaunch?: { readonly exitCode: number; readonly stderr: string }
  /** The turns of a resumed thread. */
  readonly history?: ReadonlyArray<HistoryTurn>
  /**
   * What codex does with a turn, between `turn/started` and `turn/completed` (write optio.log,
   * emit items, ask for approval, exit). Runs in the conversation's scope.
   */
  readonly onTurn?: (text: string, codex: ScriptedCodex) => Effect.Effect<void>
  /** Called as the conversation's scope closes (to record the order of finalizers). */
  readonly onClose?: Effect.Effect<void>
}

/**
 * The handles a turn script (or a test) drives the scripted codex with.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedCodex {
  readonly emit: (event: ConversationEvent) => Effect.Effect<void>
  /** codex exits with `code` (the conversation closes). */
  readonly exit: (code: number) => Effect.Effect<void>
  /** codex stops answering: pings time out from now on. */
  readonly hang: Effect.Effect<void>
  /** Parks an approval request with this id until the operator answers it. */
  readonly askPermission: (requestId: string) => Effect.Effect<PermissionBehavior>
}

/**
 * A scripted app-server: the service and what the test reads back.
 * @category models
 * @since 0.1.0
 */
export interface ScriptedAppServer {
  readonly client: Context.Service.Shape<typeof AppServerClient>
  readonly codex: ScriptedCodex
  /** The options of every start, oldest first. */
  readonly starts: Effect.Effect<ReadonlyArray<ConversationOptions>>
  /** The text of every turn sent, in order. */
  readonly turns: Effect.Effect<ReadonlyArray<string>>
  /** Operators' answers to approvals, in order. */
  readonly answers: Effect.Effect<ReadonlyArray<{ readonly requestId: string; readonly behavior: PermissionBehavior }>>
  /** Whether the conversation was closed (by the session or the scope). */
  readonly closed: Effect.Effect<boolean>
}

/**
 * Builds a scripted app-server.
 * @category constructors
 * @since 0.1.0
 */
export const makeScriptedAppServer = (options: ScriptedAppServerOptions = {}): Effect.Effect<ScriptedAppServer> =>
  Effect.gen(function*() {
    const starts = yield* Ref.make<ReadonlyArray<ConversationOptions>>([])
    const sentTurns = yield* Ref.make<ReadonlyArray<string>>([])
    const answers = yield* Ref.make<ReadonlyArray<{ readonly requestId: string; readonly behavior: PermissionBehavior }>>([])
    const closedFlag = yield* Ref.make(false)
    const exited = yield* Deferred.make<number>()
    const hung = yield* Ref.make(false)
    const pending = yield* Ref.make(new Map<string, Deferred.Deferred<PermissionBehavior>>())
    const events = yield* PubSub.unbounded<ConversationEvent>({ replay: 0 })
    const active = yield* Ref.make<string | null>(null)
    let turnCount = 0

    const close = (reason: string) =>
      Effect.gen(function*() {
        if (yield* Ref.getAndSet(closedFlag, true)) return
        yield* PubSub.publish(events, { type: "x-optio-closed", reason })
      })
    const codex: ScriptedCodex = {
      emit: (event) => PubSub.publish(events, event).pipe(Effect.asVoid),
      exit: (code) => Deferred.succeed(exited, code).pipe(Effect.andThen(close(`codex exited ${code}`))),
      hang: Ref.set(hung, true),
      askPermission: (requestId) =>
        Effect.gen(function*() {
          const answer = yield* Deferred.make<PermissionBehavior>()
          yield* Ref.update(pending, (map) => new Map(map).set(requestId, answer))
          return yield* Deferred.await(answer)
        })
    }
    const ifOpen = Effect.gen(function*() {
      if (yield* Ref.get(closedFlag)) return yield* new ConversationClosed({ reason: "the scripted conversation is closed" })
    })

    const start = (startOptions: ConversationOptions) =>
      Effect.gen(function*() {
        yield* Ref.update(starts, (list) => [...list, startOptions])
        if (options.dieAtLaunch !== undefined) {
          return yield* new AppServerExited({
            method: "initialize",
            reason: "codex app-server exited",
            exitCode: options.dieAtLaunch.exitCode,
            stderrTail: options.dieAtLaunch.stderr
          })
        }
        const scope = yield* Effect.scope
        yield* Effect.addFinalizer(() => Effect.andThen(options.onClose ?? Effect.void, close("closed by the session")))
        const threadId = startOptions.resumeThreadId ?? options.threadId ?? "thread-1"
        const sendTurn = (text: string) =>
          Effect.gen(function*() {
            yield* ifOpen
            yield* Ref.update(sentTurns, (list) => [...list, text])
            turnCount += 1
            const turnId = `turn-${turnCount}`
            yield* Ref.set(active, turnId)
            yield* codex.emit({ method: ServerNotificationMethod.turnStarted, params: { threadId, turn: { id: turnId, status: "inProgress" } } })
            // The turn runs on in the conversation's scope: sendTurn answers at codex's ACK.
            yield* Effect.forkIn(
              Effect.gen(function*() {
                if (options.onTurn !== undefined) yield* options.onTurn(text, codex)
                yield* Ref.set(active, null)
                yield* codex.emit({ method: ServerNotificationMethod.turnCompleted, params: { threadId, turn: { id: turnId, status: "completed" } } })
              }),
              scope
            )
            return turnId
          })
        const ping = (timeout: Duration.Input) =>
          Effect.gen(function*() {
            yield* ifOpen
            if (yield* Ref.get(hung)) {
              yield* Effect.sleep(timeout)
              return yield* new AppServerRequestTimedOut({
                method: ClientMethod.threadLoadedList,
                requestId: 0,
                timeoutMs: Duration.toMillis(Duration.fromInputUnsafe(timeout))
              })
            }
          })
        const conversation: CodexConversation = {
          threadId,
          pid: options.pid ?? 5151,
          serverInfo: { userAgent: "scripted-codex" },
          account: null,
          rateLimits: null,
          models: emptyCatalog,
          history: options.history ?? [],
          currentModel: Effect.succeed(startOptions.model ?? null),
          currentEffort: Effect.succeed(startOptions.reasoningEffort ?? null),
          events: Stream.fromPubSub(events),
          subscribe: Effect.map(PubSub.subscribe(events), Stream.fromSubscription),
          turns: Stream.fromPubSub(events).pipe(turnEvents(threadId)),
          send: (text) => Effect.asVoid(sendTurn(text)),
          sendTurn,
          interrupt: ifOpen,
          setControl: () => ifOpen,
          controls: Effect.succeed([]),
          answerPermission: (requestId, behavior) =>
            Effect.gen(function*() {
              const waiting = (yield* Ref.get(pending)).get(requestId)
              if (waiting === undefined) return false
              yield* Ref.update(pending, (map) => {
                const next = new Map(map)
                next.delete(requestId)
                return next
              })
              yield* Ref.update(answers, (list) => [...list, { requestId, behavior }])
              return yield* Deferred.succeed(waiting, behavior)
            }),
          pendingPermissions: Effect.map(Ref.get(pending), (map) => [...map.keys()]),
          activeTurn: Ref.get(active),
          awaitIdle: ifOpen,
          ping,
          exited: Deferred.await(exited),
          close: close("closed")
        }
        return conversation
      })

    return {
      client: AppServerClient.of({ start }),
      codex,
      starts: Ref.get(starts),
      turns: Ref.get(sentTurns),
      answers: Ref.get(answers),
      closed: Ref.get(closedFlag)
    }
  })
