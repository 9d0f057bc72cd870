/**
 * CodexConversation: one codex conversation over a `codex app-server` process, started through
 * the {@link Host} (so it runs locally or over SSH unchanged) and shown to viewers through the
 * {@link ConversationHandle} seam.
 *
 * Owns the process's protocol session: launch, the bootstrap of spec §3.5 (as corrected for
 * codex 0.169), turn tracking, interrupts, the model / reasoning-effort controls, the permission
 * gate (`Approvals`) and the event fan-out. Does not own the workdir, the isolated HOME or the
 * sandbox flags (the caller passes env and args), history replay to viewers, or task completion
 * (the optio.log keyword channel decides that).
 *
 * Gotchas:
 * - Turns are tracked by id (`turn/start` ACK, `turn/started`, `turn/completed`), never counted:
 *   codex 0.169 steers a `turn/start` sent during an active turn into that turn, so two sends can
 *   end in one `turn/completed` (spec §11 P2).
 * - `send` resolves once codex acknowledged the turn, not when it ends. A turn codex rejects is
 *   visible to viewers as the error response; {@link CodexConversation.sendTurn} fails typed.
 * - Events are live only; `x-optio-closed` is always the last one.
 *
 * @since 0.1.0
 */
import { Deferred, Duration, Effect, PubSub, Ref, Schedule, Schema, Stream, SubscriptionRef } from "effect"
import type { Scope } from "effect"
import { ConversationClosed, InvalidControl } from "./ConversationHandle.ts"
import type { ConversationEvent, ConversationHandle } from "./ConversationHandle.ts"
import { Host } from "../host/Host.ts"
import type { HostError, HostProcess, HostShape } from "../host/Host.ts"
import * as AppServerProtocol from "./AppServerProtocol.ts"
import { AppServerExited } from "./AppServerProtocol.ts"
import type { AppServerRequestError, AppServerRequestTimedOut, Incoming, JsonObject } from "./AppServerProtocol.ts"
import {
  ClientMethod,
  ClientNotificationMethod,
  GetAccountRateLimitsResponse,
  GetAccountResponse,
  InitializeResponse,
  ModelListResponse,
  ServerNotificationMethod,
  ServerRequestMethod,
  ThreadStartResponse,
  Turn,
  TurnCompletedNotification,
  TurnStartedNotification,
  TurnStartResponse
} from "./AppServerSchema.ts"
import type { Account, RateLimitSnapshot, SandboxMode, TurnStatus } from "./AppServerSchema.ts"
import * as Approvals from "./Approvals.ts"
import { buildControls, ControlId, defaultEffortOf, emptyCatalog, findModel, orFallback, parseModelList } from "./ModelCatalog.ts"
import type { ControlValues, ModelCatalog } from "./ModelCatalog.ts"
import { turnEvents } from "./TurnEvents.ts"
import type { TurnEvent } from "./TurnEvents.ts"

export type { TurnEvent } from "./TurnEvents.ts"

/**
 * How to start a conversation.
 * @category models
 */
export interface ConversationOptions {
  /** The codex executable on the host (the pinned binary's launch link). */
  readonly launchPath: string
  /** Arguments after `app-server`, e.g. the sandbox `-c` overrides. */
  readonly args?: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string>>
  readonly envRemove?: ReadonlyArray<string>
  /** The only inherited variables kept (see `Command.envAllow`). */
  readonly envAllow?: ReadonlyArray<string>
  /** The workdir: the process's cwd and the thread's `cwd` (also on resume). */
  readonly cwd: string
  readonly sandbox: SandboxMode
  /** Whether approvals go to an operator (`approvalPolicy: "on-request"`) or are never asked. */
  readonly permissionGate: boolean
  readonly model?: string
  /** Sent as `effort` on every `turn/start` until a control changes it. */
  readonly reasoningEffort?: string
  /** Resume this thread instead of starting one. */
  readonly resumeThreadId?: string
  /** How long an approval waits for the operator before it is declined. Default 10 minutes. */
  readonly permissionTimeout?: Duration.Input
  /** Timeout of each request to codex. Default 30 seconds. */
  readonly requestTimeout?: Duration.Input
  /** How long `close` waits for codex to exit after its stdin closed. Default 5 seconds. */
  readonly closeTimeout?: Duration.Input
  /** Sent as `clientInfo.version`. Default `0.1.0`. */
  readonly clientVersion?: string
}

/**
 * A turn of the resumed thread, for replay to viewers.
 * @category models
 */
export interface HistoryTurn {
  readonly id: string
  readonly status: TurnStatus
  /** The thread items, as codex wrote them. */
  readonly items: ReadonlyArray<ConversationEvent>
}

/**
 * Codex answered a bootstrap or turn request with a result we cannot use.
 * @category errors
 */
export class AppServerUnexpectedResult extends Schema.TaggedError<AppServerUnexpectedResult>()("AppServerUnexpectedResult", {
  method: Schema.String,
  issue: Schema.String
}) {
  override get message(): string {
    return `codex app-server answered ${this.method} unexpectedly: ${this.issue}`
  }
}

/**
 * Why a conversation could not start.
 * @category errors
 */
export type ConversationStartError = HostError | AppServerRequestError | AppServerUnexpectedResult

/**
 * Why a turn could not be sent.
 * @category errors
 */
export type SendTurnError = ConversationClosed | AppServerRequestError | AppServerUnexpectedResult

/**
 * A running codex conversation: the viewer seam plus what the session and tests need.
 * @category models
 * @since 0.1.0
 */
export interface CodexConversation extends ConversationHandle {
  readonly threadId: string
  readonly pid: number
  /** The `initialize` result (user agent, CODEX_HOME, platform). */
  readonly serverInfo: InitializeResponse
  /** The account, or null when unknown (API key, offline, or `account/read` failed). */
  readonly account: Account | null
  /** The usage windows at start (`account/rateLimits/read`), or null when unknown (API key, offline, a failed read). */
  readonly rateLimits: RateLimitSnapshot | null
  readonly models: ModelCatalog
  /** The turns of a resumed thread (empty for a new one). */
  readonly history: ReadonlyArray<HistoryTurn>
  readonly currentModel: Effect.Effect<string | null>
  readonly currentEffort: Effect.Effect<string | null>
  /** Like `events`, but subscribed when this effect runs (within its scope). */
  readonly subscribe: Effect.Effect<Stream.Stream<ConversationEvent>, never, Scope.Scope>
  /**
   * Turn starts and ends (with the answer) from the moment the stream starts; ends when the
   * conversation closes.
   */
  readonly turns: Stream.Stream<TurnEvent>
  /** Sends a user turn and returns the turn id codex put it in (an active turn's id when steered). */
  readonly sendTurn: (text: string) => Effect.Effect<string, SendTurnError>
  /** The ids of approval requests waiting for an operator (stringified JSON-RPC ids). */
  readonly pendingPermissions: Effect.Effect<ReadonlyArray<string>>
  /** The active turn's id, or null when idle. */
  readonly activeTurn: Effect.Effect<string | null>
  /** Waits until no turn is active or being started; fails if the conversation closes first. */
  readonly awaitIdle: Effect.Effect<void, ConversationClosed>
  /**
   * A liveness probe: one cheap request (`thread/loaded/list`) that must be answered within
   * `timeout`. Any answer, an error response included, proves codex is alive; a timeout means it
   * hangs (stopped, deadlocked); a conversation that ended fails with `ConversationClosed`.
   */
  readonly ping: (timeout: Duration.Input) => Effect.Effect<void, AppServerRequestTimedOut | ConversationClosed>
  /** The process's exit code, once it has exited. */
  readonly exited: Effect.Effect<number, HostError>
  /** Declines pending approvals, closes codex's stdin, waits for it to exit; idempotent. */
  readonly close: Effect.Effect<void>
}

interface TurnState {
  readonly active: string | null
  /** `turn/start` requests sent and not answered yet. */
  readonly starting: number
  /** Recently completed turn ids, so a late ACK does not revive a finished turn. */
  readonly completed: ReadonlyArray<string>
  readonly closed: ConversationClosed | null
}

interface ControlState extends ControlValues {
  /** Whether `model` / `effort` are the thread's, set by the task or the operator. */
  readonly pinModel: boolean
  readonly pinEffort: boolean
  /**
   * What codex's thread already uses (a `turn/start` override lasts for later turns too). An
   * override is sent only when it differs: codex 0.171 takes 10–20 ms longer to acknowledge a
   * `turn/start` that carries one, even an unchanged one.
   */
  readonly applied: ControlValues
}

const CLIENT_NAME = "optio_codex"
const OPTED_OUT = [ServerNotificationMethod.commandExecutionOutputDelta]
const MODEL_LIST_PAGES = 20
const REMEMBERED_TURNS = 64
const METHOD_NOT_FOUND = -32601
const APPROVAL_METHODS: ReadonlyArray<string> = Object.values(ServerRequestMethod)

const decodeInitialize = Schema.decodeUnknownOption(InitializeResponse)
const decodeAccount = Schema.decodeUnknownOption(GetAccountResponse)
const decodeRateLimits = Schema.decodeUnknownOption(GetAccountRateLimitsResponse)
const decodeModelPage = Schema.decodeUnknownOption(ModelListResponse)
const decodeThread = Schema.decodeUnknownOption(ThreadStartResponse)
const decodeTurn = Schema.decodeUnknownOption(Turn)
const decodeTurnAck = Schema.decodeUnknownOption(TurnStartResponse)
const decodeTurnStarted = Schema.decodeUnknownOption(TurnStartedNotification)
const decodeTurnCompleted = Schema.decodeUnknownOption(TurnCompletedNotification)

/**
 * Launches `codex app-server` on the host and bootstraps a conversation. The process lives as
 * long as the scope; closing the scope closes the conversation gracefully first.
 * @category constructors
 * @since 0.1.0
 */
export const startConversationOn = Effect.fn("CodexConversation.start")(function*(host: HostShape, options: ConversationOptions) {
  // Fibers that outlive one call (a send waiting for codex's acknowledgement) live as long as the conversation.
  const conversationScope = yield* Effect.scope
  const appServer = yield* host.spawn({
    argv: [options.launchPath, "app-server", ...(options.args ?? [])],
    cwd: options.cwd,
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.envRemove === undefined ? {} : { envRemove: options.envRemove }),
    ...(options.envAllow === undefined ? {} : { envAllow: options.envAllow })
  }, { stdin: true })
  const protocol = yield* AppServerProtocol.make(AppServerProtocol.fromHostProcess(appServer), {
    ...(options.requestTimeout === undefined ? {} : { requestTimeout: options.requestTimeout })
  })
  const incoming = yield* protocol.subscribe
  const events = yield* Effect.acquireRelease(PubSub.unbounded<ConversationEvent>(), PubSub.shutdown)
  const publish = (event: ConversationEvent) => PubSub.publish(events, event).pipe(Effect.asVoid)
  const subscribe = PubSub.subscribe(events).pipe(
    Effect.map((subscription) => Stream.fromSubscription(subscription).pipe(Stream.takeUntil(isClosedEvent)))
  )
  const turnState = yield* SubscriptionRef.make<TurnState>({ active: null, starting: 0, completed: [], closed: null })
  const finished = yield* Deferred.make<void>()
  let closeRequested = false

  const approvals = yield* Approvals.make({
    gate: options.permissionGate,
    timeout: options.permissionTimeout ?? "10 minutes",
    publish,
    respond: (id, decision) =>
      protocol.respond(id, { decision }).pipe(
        Effect.catch((error) => Effect.logWarning("could not answer a codex approval request", { error: error._tag }))
      )
  })

  /** Ends the conversation once: declines what is pending, then publishes the last event. */
  const finish = (reason: string) =>
    Effect.gen(function*() {
      if (yield* Deferred.isDone(finished)) return
      yield* SubscriptionRef.update(turnState, (state) => ({ ...state, closed: new ConversationClosed({ reason }) }))
      yield* approvals.declineAll
      yield* PubSub.end(events, { type: "x-optio-closed", reason })
      yield* Deferred.succeed(finished, undefined)
    }).pipe(Effect.uninterruptible)

  // Set by the bootstrap; the dispatcher only tracks turns of our own thread.
  let threadId = ""

  const onTurnStarted = (turnId: string) =>
    SubscriptionRef.update(turnState, (state) => state.completed.includes(turnId) ? state : { ...state, active: turnId })

  const onTurnCompleted = (turnId: string) =>
    SubscriptionRef.update(turnState, (state) => ({
      ...state,
      active: state.active === turnId ? null : state.active,
      completed: [...state.completed, turnId].slice(-REMEMBERED_TURNS)
    }))

  const onNotification = (method: string, params: unknown) => {
    if (method === ServerNotificationMethod.turnStarted) {
      const started = decodeTurnStarted(params)
      return started._tag === "Some" && started.value.threadId === threadId ? onTurnStarted(started.value.turn.id) : Effect.void
    }
    if (method === ServerNotificationMethod.turnCompleted) {
      const completed = decodeTurnCompleted(params)
      return completed._tag === "Some" && completed.value.threadId === threadId
        ? onTurnCompleted(completed.value.turn.id)
        : Effect.void
    }
    return Effect.void
  }

  const dispatch = (item: Incoming): Effect.Effect<void> => {
    switch (item._tag) {
      case "Notification":
        return onNotification(item.method, item.params).pipe(Effect.andThen(publish(item.raw)))
      case "ServerRequest":
        if (APPROVAL_METHODS.includes(item.method)) return approvals.handle({ id: item.id, method: item.method, raw: item.raw })
        return publish(item.raw).pipe(
          Effect.andThen(protocol.respondError(item.id, METHOD_NOT_FOUND, `optio codex client does not implement ${item.method}`)),
          Effect.catch((error) => Effect.logWarning("could not refuse a codex server request", { error: error._tag }))
        )
      case "Response":
        // An interrupt that lost the race against the turn's end is answered with an error;
        // viewers would show it as a failure (spec §11 P13), so it is only logged.
        if (item.isError && item.method === ClientMethod.turnInterrupt) {
          return Effect.logDebug("codex refused turn/interrupt; the turn had already ended")
        }
        return publish(item.raw)
      case "Other":
        return publish(item.raw)
      case "Unparseable":
        return Effect.logWarning("codex app-server wrote a line that is not a JSON object", {
          bytes: item.bytes,
          oversized: item.oversized
        }).pipe(Effect.andThen(publish({
          type: "x-optio-unparseable",
          line: item.excerpt,
          bytes: item.bytes,
          oversized: item.oversized
        })))
      case "End":
        return finish(closeRequested ? "closed" : endReason(item.exited))
    }
  }

  yield* incoming.pipe(Stream.runForEach(dispatch), Effect.forkScoped)

  const closeTimeout = options.closeTimeout ?? "5 seconds"
  const close = Effect.gen(function*() {
    if (closeRequested) return yield* Deferred.await(finished)
    closeRequested = true
    // Answer pending approvals while codex can still read the answers.
    yield* approvals.declineAll
    // A stopped app-server (SIGSTOP: a debugger, a frozen cgroup) can neither read the EOF nor
    // act on SIGTERM, so every graceful step would wait out its timeout and the host's SIGKILL
    // would end it. SIGCONT is harmless to a running process (fault suite: a SIGSTOPped codex
    // now exits on EOF in milliseconds instead of after 2 × closeTimeout + the host's grace).
    yield* appServer.signal("SIGCONT").pipe(Effect.ignore)
    yield* appServer.endInput
    const exited = yield* Deferred.await(finished).pipe(Effect.timeoutOption(closeTimeout))
    if (exited._tag === "Some") return
    yield* appServer.signal("SIGTERM").pipe(Effect.ignore)
    yield* appServer.signal("SIGCONT").pipe(Effect.ignore)
    const terminated = yield* Deferred.await(finished).pipe(Effect.timeoutOption(closeTimeout))
    if (terminated._tag === "None") yield* finish("closed (codex app-server did not exit)")
  }).pipe(Effect.uninterruptible, Effect.withSpan("CodexConversation.close"))
  yield* Effect.addFinalizer(() => close)

  yield* protocol.start
  // A conversation that failed to start is closed at once, not when the caller's scope ends.
  const bootstrap = yield* runBootstrap(protocol, options, (id) => {
    threadId = id
  }).pipe(
    Effect.catch((error) => Effect.flatMap(diedAtLaunch(appServer, error), Effect.fail)),
    Effect.onError(() => close)
  )

  const controlState = yield* Ref.make<ControlState>({
    model: bootstrap.model,
    effort: options.reasoningEffort ?? bootstrap.effort ??
      (bootstrap.model === null ? null : defaultEffortOf(bootstrap.models, bootstrap.model)),
    pinModel: false,
    pinEffort: options.reasoningEffort !== undefined,
    applied: { model: bootstrap.model, effort: bootstrap.effort }
  })

  const ensureOpen = SubscriptionRef.get(turnState).pipe(
    Effect.flatMap((state) => state.closed === null ? Effect.void : Effect.fail(state.closed))
  )
  const closedBecause = (error: AppServerExited | AppServerProtocol.AppServerWriteFailed) =>
    SubscriptionRef.get(turnState).pipe(
      Effect.flatMap((state) => Effect.fail(state.closed ?? new ConversationClosed({ reason: error.message })))
    )

  const sendTurn = (text: string, onWritten?: Effect.Effect<void>) =>
    Effect.gen(function*() {
      const refused = yield* SubscriptionRef.modify(turnState, (state) =>
        state.closed === null
          ? [undefined, { ...state, starting: state.starting + 1 }] as const
          : [state.closed, state] as const)
      if (refused !== undefined) return yield* refused
      const controls = yield* Ref.get(controlState)
      const model = controls.pinModel && controls.model !== null && controls.model !== controls.applied.model ? controls.model : undefined
      const effort = controls.pinEffort && controls.effort !== null && controls.effort !== controls.applied.effort ? controls.effort : undefined
      const params = {
        threadId: bootstrap.threadId,
        input: [{ type: "text" as const, text }],
        ...(model === undefined ? {} : { model }),
        ...(effort === undefined ? {} : { effort })
      }
      const ack = yield* protocol.request(ClientMethod.turnStart, params, onWritten === undefined ? {} : { onWritten }).pipe(
        Effect.map((result) => decodeTurnAck(result)),
        Effect.tap(() =>
          model === undefined && effort === undefined ? Effect.void : Ref.update(controlState, (state) => ({
            ...state,
            applied: { model: model ?? state.applied.model, effort: effort ?? state.applied.effort }
          }))
        ),
        Effect.onExit((exit) =>
          SubscriptionRef.update(turnState, (state) => {
            const turnId = exit._tag === "Success" && exit.value._tag === "Some" ? exit.value.value.turn.id : undefined
            const revived = turnId !== undefined && !state.completed.includes(turnId)
            return { ...state, starting: state.starting - 1, active: revived ? turnId : state.active }
          })
        ),
        Effect.catchTags({ AppServerExited: closedBecause, AppServerWriteFailed: closedBecause })
      )
      if (ack._tag === "None") {
        return yield* new AppServerUnexpectedResult({ method: ClientMethod.turnStart, issue: "no turn.id in the acknowledgement" })
      }
      return ack.value.turn.id
    }).pipe(Effect.withSpan("CodexConversation.sendTurn"))

  // Resolves as soon as turn/start is written, not when codex acknowledges it (the reference's
  // timing): CodexView confirms its optimistic bubble with the turn's echo, which must not beat
  // this answer, so codex's own processing time stays between the two. What codex answers later
  // reaches viewers as events (its error response, or the turn's own events).
  const send = (text: string) =>
    Effect.gen(function*() {
      const written = yield* Deferred.make<void, ConversationClosed>()
      yield* sendTurn(text, Deferred.succeed(written, undefined).pipe(Effect.asVoid)).pipe(
        Effect.asVoid,
        Effect.catchTags({
          ConversationClosed: (closed) => Deferred.fail(written, closed).pipe(Effect.asVoid),
          AppServerRequestFailed: (error) => Effect.logWarning("codex refused a turn", { code: error.code }),
          AppServerRequestTimedOut: () => Effect.logWarning("codex did not acknowledge a turn in time"),
          AppServerUnexpectedResult: () => Effect.logWarning("codex acknowledged a turn without an id")
        }),
        // Whatever happened, the caller must not wait forever.
        Effect.ensuring(Deferred.succeed(written, undefined)),
        Effect.forkIn(conversationScope)
      )
      return yield* Deferred.await(written)
    })

  const interrupt = Effect.gen(function*() {
    yield* ensureOpen
    const { active } = yield* SubscriptionRef.get(turnState)
    // 0.169 answers an interrupt without an active turn with an error: don't ask when idle.
    if (active === null) return
    yield* protocol.request(ClientMethod.turnInterrupt, { threadId: bootstrap.threadId, turnId: active }).pipe(
      Effect.asVoid,
      Effect.catchTags({
        AppServerRequestFailed: () => Effect.logDebug("turn/interrupt refused; the turn had already ended"),
        AppServerRequestTimedOut: () => Effect.logWarning("codex did not acknowledge turn/interrupt in time"),
        AppServerExited: closedBecause,
        AppServerWriteFailed: closedBecause
      })
    )
  }).pipe(Effect.withSpan("CodexConversation.interrupt"))

  const controls = Ref.get(controlState).pipe(Effect.map((values) => buildControls(bootstrap.models, values)))

  const setControl = (id: string, value: unknown) =>
    Effect.gen(function*() {
      yield* ensureOpen
      const current = yield* Ref.get(controlState)
      if (id === ControlId.model) {
        if (typeof value !== "string" || value === "") {
          return yield* new InvalidControl({ id, detail: "the model must be a non-empty string" })
        }
        if (value !== current.model && findModel(bootstrap.models, value) === undefined) {
          return yield* new InvalidControl({
            id,
            detail: bootstrap.models.source === "codex"
              ? `codex does not list the model ${JSON.stringify(value)}`
              : `the model ${JSON.stringify(value)} is not among the known models (codex listed none)`
          })
        }
        const effort = defaultEffortOf(bootstrap.models, value)
        yield* Ref.set(controlState, { ...current, model: value, effort, pinModel: true, pinEffort: effort !== null })
      } else if (id === ControlId.reasoningEffort) {
        const levels = findModel(bootstrap.models, current.model)?.efforts ?? []
        if (typeof value !== "string" || !levels.includes(value)) {
          return yield* new InvalidControl({
            id,
            detail: levels.length === 0
              ? "the current model offers no reasoning effort levels"
              : `the effort must be one of ${levels.join(", ")}`
          })
        }
        yield* Ref.set(controlState, { ...current, effort: value, pinEffort: true })
      } else {
        return yield* new InvalidControl({ id, detail: "unknown control" })
      }
      yield* publish({ type: "x-optio-control-update", controls: yield* controls })
    }).pipe(Effect.withSpan("CodexConversation.setControl", { attributes: { id } }))

  const awaitIdle = SubscriptionRef.changes(turnState).pipe(
    Stream.filter((state) => state.closed !== null || (state.active === null && state.starting === 0)),
    Stream.runHead,
    Effect.flatMap((state) =>
      state._tag === "Some" && state.value.closed !== null ? Effect.fail(state.value.closed) : Effect.void
    )
  )

  const ping = (timeout: Duration.Input) =>
    protocol.request(ClientMethod.threadLoadedList, { limit: 1 }, { timeout }).pipe(
      Effect.asVoid,
      Effect.catchTags({
        // An error response is still an answer: codex's request loop is alive.
        AppServerRequestFailed: () => Effect.void,
        AppServerExited: closedBecause,
        AppServerWriteFailed: closedBecause
      }),
      Effect.withSpan("CodexConversation.ping")
    )

  const conversation: CodexConversation = {
    threadId: bootstrap.threadId,
    pid: appServer.pid,
    serverInfo: bootstrap.serverInfo,
    account: bootstrap.account,
    rateLimits: bootstrap.rateLimits,
    models: bootstrap.models,
    history: bootstrap.history,
    currentModel: Ref.get(controlState).pipe(Effect.map((state) => state.model)),
    currentEffort: Ref.get(controlState).pipe(Effect.map((state) => state.effort)),
    events: Stream.unwrap(subscribe),
    subscribe,
    turns: Stream.unwrap(subscribe).pipe(turnEvents(bootstrap.threadId)),
    send,
    sendTurn,
    interrupt,
    setControl,
    controls,
    answerPermission: approvals.answer,
    pendingPermissions: approvals.pending,
    activeTurn: SubscriptionRef.get(turnState).pipe(Effect.map((state) => state.active)),
    awaitIdle,
    ping,
    exited: appServer.exitCode,
    close
  }
  return conversation
})

interface Bootstrap {
  readonly threadId: string
  readonly serverInfo: InitializeResponse
  readonly account: Account | null
  readonly rateLimits: RateLimitSnapshot | null
  readonly models: ModelCatalog
  readonly model: string | null
  readonly effort: string | null
  readonly history: ReadonlyArray<HistoryTurn>
}

/** Spec §3.5 as corrected for 0.169: strictly sequential, the thread request last. */
const runBootstrap = Effect.fnUntraced(function*(
  protocol: AppServerProtocol.AppServerProtocol,
  options: ConversationOptions,
  onThread: (threadId: string) => void
) {
  const initialized = yield* protocol.request(ClientMethod.initialize, {
    clientInfo: { name: CLIENT_NAME, title: "Optio", version: options.clientVersion ?? "0.1.0" },
    capabilities: { optOutNotificationMethods: OPTED_OUT }
  })
  const serverInfo = decodeInitialize(initialized)
  yield* protocol.notify(ClientNotificationMethod.initialized)

  const readAccount = protocol.request(ClientMethod.accountRead, { refreshToken: false }).pipe(
    Effect.map((result) => {
      const decoded = decodeAccount(result)
      return decoded._tag === "Some" ? decoded.value.account ?? null : null
    }),
    // An unknown account is normal (API keys, offline providers, ChatGPT behind a stand-in).
    Effect.catchTags({
      AppServerRequestFailed: (error) =>
        Effect.logWarning("account/read failed; the account is unknown", { code: error.code }).pipe(Effect.as(null)),
      AppServerRequestTimedOut: () => Effect.logWarning("account/read timed out; the account is unknown").pipe(Effect.as(null))
    })
  )

  // Like the account: unknown is normal (the read goes to the ChatGPT backend, absent offline).
  const readRateLimits = protocol.request(ClientMethod.accountRateLimitsRead, undefined).pipe(
    Effect.map((result) => {
      const decoded = decodeRateLimits(result)
      return decoded._tag === "Some" ? decoded.value.rateLimits : null
    }),
    Effect.catchTags({
      AppServerRequestFailed: (error) =>
        Effect.logDebug("account/rateLimits/read failed; the usage windows are unknown", { code: error.code }).pipe(Effect.as(null)),
      AppServerRequestTimedOut: () => Effect.logWarning("account/rateLimits/read timed out; the usage windows are unknown").pipe(Effect.as(null))
    })
  )

  const policy = options.permissionGate ? "on-request" as const : "never" as const
  const method = options.resumeThreadId === undefined ? ClientMethod.threadStart : ClientMethod.threadResume
  const threadParams = {
    ...(options.resumeThreadId === undefined ? {} : { threadId: options.resumeThreadId }),
    cwd: options.cwd,
    sandbox: options.sandbox,
    approvalPolicy: policy,
    ...(options.model === undefined ? {} : { model: options.model })
  }
  // Independent requests, pipelined: codex answers them while the others are in flight.
  const [account, rateLimits, models, started] = yield* Effect.all(
    [readAccount, readRateLimits, listModels(protocol), protocol.request(method, threadParams)],
    { concurrency: "unbounded" }
  )
  const threadResult = decodeThread(started)
  if (threadResult._tag === "None" || threadResult.value.thread.id === "") {
    return yield* new AppServerUnexpectedResult({ method, issue: "no thread.id in the result" })
  }
  const thread = threadResult.value
  onThread(thread.thread.id)
  const result: Bootstrap = {
    threadId: thread.thread.id,
    serverInfo: serverInfo._tag === "Some" ? serverInfo.value : {},
    account,
    rateLimits,
    models,
    model: thread.model ?? options.model ?? null,
    effort: thread.reasoningEffort ?? null,
    history: (thread.thread.turns ?? []).flatMap(historyTurn)
  }
  return result
})

/**
 * Every page of `model/list` (spec §11 P16). A failure, a timeout or an empty list is never fatal:
 * the picker then offers the static fallback list.
 */
const listModels = (protocol: AppServerProtocol.AppServerProtocol) =>
  Effect.gen(function*() {
    const entries: Array<unknown> = []
    let cursor: string | undefined
    for (let page = 0; page < MODEL_LIST_PAGES; page++) {
      const decoded = decodeModelPage(
        yield* protocol.request(ClientMethod.modelList, cursor === undefined ? {} : { cursor })
      )
      if (decoded._tag === "None") break
      entries.push(...decoded.value.data)
      const next = decoded.value.nextCursor
      if (next === undefined || next === null || next === "" || next === cursor) break
      cursor = next
    }
    return parseModelList(entries)
  }).pipe(
    Effect.catchTags({
      AppServerRequestFailed: (error) =>
        Effect.logWarning("model/list failed; offering the fallback models", { code: error.code }).pipe(Effect.as(emptyCatalog)),
      AppServerRequestTimedOut: () => Effect.logWarning("model/list timed out; offering the fallback models").pipe(Effect.as(emptyCatalog))
    }),
    Effect.map(orFallback)
  )

const historyTurn = (entry: unknown): ReadonlyArray<HistoryTurn> => {
  const decoded = decodeTurn(entry)
  if (decoded._tag === "None") return []
  const turn = decoded.value
  return [{ id: turn.id, status: turn.status, items: (turn.items ?? []).filter(isJsonObject) }]
}

/** How long a failed bootstrap waits for the app-server's exit status before reporting what it has. */
const LAUNCH_EXIT_WAIT = Duration.seconds(2)

/**
 * A bootstrap that failed because codex died (a write into its closed stdin, its output ending,
 * no answer) is reported as codex's exit, with its status and the end of its stderr: "could not
 * write initialize" tells the operator nothing. Other failures pass unchanged.
 */
const diedAtLaunch = (appServer: HostProcess, error: ConversationStartError) =>
  Effect.gen(function*() {
    if (error._tag !== "AppServerWriteFailed" && error._tag !== "AppServerExited" && error._tag !== "AppServerRequestTimedOut") return error
    const exitCode = yield* appServer.exitCode.pipe(Effect.timeoutOption(LAUNCH_EXIT_WAIT))
    if (exitCode._tag === "None") return error
    // The exit can be seen before the last stderr bytes are read; give them a moment.
    const stderrTail = yield* appServer.stderrTail.pipe(
      Effect.flatMap((tail) => tail === "" ? Effect.fail(new NoStderrYet()) : Effect.succeed(tail)),
      Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 20 }),
      Effect.catch(() => appServer.stderrTail)
    )
    return new AppServerExited({
      method: "method" in error ? error.method : ClientMethod.initialize,
      reason: "codex app-server exited while starting",
      exitCode: exitCode.value,
      stderrTail
    })
  })

class NoStderrYet extends Schema.TaggedError<NoStderrYet>()("NoStderrYet", {}) {}

const endReason = (exited: AppServerExited) =>
  exited.exitCode === undefined
    ? `codex app-server ended: ${exited.reason}`
    : `codex app-server exited with code ${exited.exitCode}`

const isClosedEvent = (event: ConversationEvent) => event["type"] === "x-optio-closed"

const isJsonObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)
