/**
 * AppServerSchema: the `codex app-server` wire messages optio-codex reads and writes, as Effect
 * Schemas, plus {@link WireContract}, the one list of method names and definitions we rely on.
 *
 * Owns the shapes only, not the transport (`AppServerProtocol`) or the conversation logic
 * (`CodexConversation`). Every schema is forward compatible: unknown fields are ignored, enums
 * codex may grow (turn status) decode unknown members to `"unknown"`, and lists that could hold
 * one odd element (models, history turns, items) are decoded element by element by their users,
 * so a codex upgrade never fails a whole payload. A drift-guard test checks {@link WireContract}
 * against the pinned binary's `codex app-server generate-json-schema` output.
 *
 * @since 0.1.0
 */
import { Schema, SchemaGetter } from "effect"

/**
 * Methods of the requests we send.
 * @category models
 */
export const ClientMethod = {
  initialize: "initialize",
  accountRead: "account/read",
  /** The account's usage windows, from the ChatGPT backend (`/wham/usage`). */
  accountRateLimitsRead: "account/rateLimits/read",
  modelList: "model/list",
  threadStart: "thread/start",
  threadResume: "thread/resume",
  turnStart: "turn/start",
  turnInterrupt: "turn/interrupt",
  /** In-memory list of loaded threads: the cheapest request, used as a liveness probe. */
  threadLoadedList: "thread/loaded/list"
} as const

/**
 * Methods of the notifications we send.
 * @category models
 */
export const ClientNotificationMethod = { initialized: "initialized" } as const

/**
 * Methods of the notifications codex sends that we read (or opt out of, for the output delta).
 * @category models
 */
export const ServerNotificationMethod = {
  turnStarted: "turn/started",
  turnCompleted: "turn/completed",
  itemStarted: "item/started",
  itemCompleted: "item/completed",
  agentMessageDelta: "item/agentMessage/delta",
  error: "error",
  commandExecutionOutputDelta: "item/commandExecution/outputDelta",
  /** A sparse rate-limit snapshot after each model answer (from codex's `x-codex-*` headers). */
  accountRateLimitsUpdated: "account/rateLimits/updated"
} as const

/**
 * Methods of the server requests we answer with a decision (the permission gate).
 * @category models
 */
export const ServerRequestMethod = {
  commandExecutionRequestApproval: "item/commandExecution/requestApproval",
  fileChangeRequestApproval: "item/fileChange/requestApproval"
} as const

/**
 * A string enum codex may extend: known members decode to themselves, anything else to
 * `"unknown"` instead of failing the payload.
 */
const openEnum = <const L extends ReadonlyArray<string>>(known: L) => {
  const isKnown = (value: string): value is L[number] => known.includes(value)
  return Schema.String.pipe(Schema.decodeTo(Schema.Union([Schema.Literals(known), Schema.Literal("unknown")]), {
    decode: SchemaGetter.transform((value: string) => isKnown(value) ? value : "unknown" as const),
    encode: SchemaGetter.transform((value: string) => value)
  }))
}

/** An optional member codex may also write as `null`. */
const optionalNullable = <S extends Schema.Top>(schema: S) => Schema.optionalKey(Schema.NullOr(schema))

/**
 * The JSON-RPC error object of an error response.
 * @category models
 */
export const JSONRPCErrorError = Schema.Struct({ code: Schema.Number, message: Schema.String })

/**
 * Who we are, sent with `initialize`.
 * @category models
 */
export const ClientInfo = Schema.Struct({ name: Schema.String, title: Schema.String, version: Schema.String })

/**
 * The capabilities we declare. We never set `experimentalApi`.
 * @category models
 */
export const InitializeCapabilities = Schema.Struct({ optOutNotificationMethods: Schema.Array(Schema.String) })

/**
 * Params of `initialize`.
 * @category models
 */
export const InitializeParams = Schema.Struct({ clientInfo: ClientInfo, capabilities: InitializeCapabilities })

/**
 * Result of `initialize` (all members optional: only informative).
 * @category models
 */
export const InitializeResponse = Schema.Struct({
  userAgent: Schema.optionalKey(Schema.String),
  codexHome: Schema.optionalKey(Schema.String),
  platformFamily: Schema.optionalKey(Schema.String),
  platformOs: Schema.optionalKey(Schema.String)
})
export type InitializeResponse = typeof InitializeResponse.Type

/**
 * Params of `account/read`.
 * @category models
 */
export const GetAccountParams = Schema.Struct({ refreshToken: Schema.Boolean })

/**
 * The account codex is logged in with, as far as we read it.
 * @category models
 */
export const Account = Schema.Struct({
  type: Schema.String,
  email: optionalNullable(Schema.String),
  /** The ChatGPT plan (`plus`, `pro`, …); what the seed's quota record shows. */
  planType: optionalNullable(Schema.String)
})
export type Account = typeof Account.Type

/**
 * Result of `account/read`; `account` is null for API-key or offline setups.
 * @category models
 */
export const GetAccountResponse = Schema.Struct({ account: optionalNullable(Account) })

/**
 * Params of `model/list` (one page).
 * @category models
 */
export const ModelListParams = Schema.Struct({ cursor: Schema.optionalKey(Schema.String) })

/**
 * Params of `thread/loaded/list`, the liveness probe (only its answering matters, not its result).
 * @category models
 */
export const ThreadLoadedListParams = Schema.Struct({ limit: Schema.optionalKey(Schema.Number) })

/**
 * One page of `model/list`; entries are decoded one by one with {@link Model}.
 * @category models
 */
export const ModelListResponse = Schema.Struct({
  data: Schema.Array(Schema.Unknown),
  nextCursor: optionalNullable(Schema.String)
})

/**
 * A reasoning effort a model supports (an object since 0.169; the level is an open string).
 * @category models
 */
export const ReasoningEffortOption = Schema.Struct({ reasoningEffort: Schema.String })

/**
 * A model entry of `model/list`.
 * @category models
 */
export const Model = Schema.Struct({
  id: Schema.String,
  displayName: Schema.optionalKey(Schema.String),
  hidden: Schema.optionalKey(Schema.Boolean),
  isDefault: Schema.optionalKey(Schema.Boolean),
  supportedReasoningEfforts: Schema.optionalKey(Schema.Array(Schema.Unknown)),
  defaultReasoningEffort: optionalNullable(Schema.String)
})
export type Model = typeof Model.Type

/**
 * Codex sandbox modes (kebab-case on the wire).
 * @category models
 */
export const SandboxMode = Schema.Literals(["read-only", "workspace-write", "danger-full-access"])
export type SandboxMode = typeof SandboxMode.Type

/**
 * The approval policies we send: `on-request` with the permission gate, else `never`.
 * @category models
 */
export const AskForApproval = Schema.Literals(["on-request", "never"])

/**
 * Params of `thread/start`.
 * @category models
 */
export const ThreadStartParams = Schema.Struct({
  cwd: Schema.String,
  sandbox: SandboxMode,
  approvalPolicy: AskForApproval,
  model: Schema.optionalKey(Schema.String)
})

/**
 * Params of `thread/resume`; `cwd` must be the new workdir (a restored tree lives elsewhere).
 * @category models
 */
export const ThreadResumeParams = Schema.Struct({
  threadId: Schema.String,
  cwd: Schema.String,
  sandbox: SandboxMode,
  approvalPolicy: AskForApproval,
  model: Schema.optionalKey(Schema.String)
})

/**
 * Turn status; unknown future members decode to `"unknown"`.
 * @category models
 */
export const TurnStatus = openEnum(["completed", "interrupted", "failed", "inProgress"] as const)
export type TurnStatus = typeof TurnStatus.Type

/**
 * Why a turn failed.
 * @category models
 */
export const TurnError = Schema.Struct({
  message: Schema.String,
  /** Why the turn failed, e.g. `usageLimitExceeded` (a string, or an object for HTTP failures). */
  codexErrorInfo: Schema.optionalKey(Schema.Unknown)
})

/**
 * One usage window of a rate-limit snapshot (`resetsAt` in unix seconds).
 * @category models
 */
export const RateLimitWindow = Schema.Struct({
  usedPercent: Schema.Number,
  windowDurationMins: optionalNullable(Schema.Number),
  resetsAt: optionalNullable(Schema.Number)
})

/**
 * A rate-limit snapshot (`account/rateLimits/updated`, `account/rateLimits/read`); sparse.
 * @category models
 */
export const RateLimitSnapshot = Schema.Struct({
  limitId: optionalNullable(Schema.String),
  primary: optionalNullable(RateLimitWindow),
  secondary: optionalNullable(RateLimitWindow),
  planType: optionalNullable(Schema.String)
})

/**
 * The `account/rateLimits/updated` notification.
 * @category models
 */
export const AccountRateLimitsUpdatedNotification = Schema.Struct({ rateLimits: RateLimitSnapshot })

/**
 * Result of `account/rateLimits/read` (we read the single-bucket view).
 * @category models
 */
export const GetAccountRateLimitsResponse = Schema.Struct({ rateLimits: RateLimitSnapshot })
export type RateLimitSnapshot = typeof RateLimitSnapshot.Type

/**
 * A turn; `items` are kept raw (forwarded to viewers unmodified).
 * @category models
 */
export const Turn = Schema.Struct({
  id: Schema.String,
  status: TurnStatus,
  error: optionalNullable(TurnError),
  items: Schema.optionalKey(Schema.Array(Schema.Unknown))
})
export type Turn = typeof Turn.Type

/**
 * A thread; `turns` (only on resume) are decoded one by one with {@link Turn}.
 * @category models
 */
export const Thread = Schema.Struct({ id: Schema.String, turns: Schema.optionalKey(Schema.Array(Schema.Unknown)) })

/**
 * Result of `thread/start`.
 * @category models
 */
export const ThreadStartResponse = Schema.Struct({
  thread: Thread,
  model: Schema.optionalKey(Schema.String),
  reasoningEffort: optionalNullable(Schema.String)
})

/**
 * Result of `thread/resume` (the history is in `thread.turns[].items[]`).
 * @category models
 */
export const ThreadResumeResponse = ThreadStartResponse

/**
 * A text input of a user turn.
 * @category models
 */
export const TextUserInput = Schema.Struct({ type: Schema.Literal("text"), text: Schema.String })

/**
 * Params of `turn/start`; `model` and `effort` apply to this and later turns.
 * @category models
 */
export const TurnStartParams = Schema.Struct({
  threadId: Schema.String,
  input: Schema.Array(TextUserInput),
  model: Schema.optionalKey(Schema.String),
  effort: Schema.optionalKey(Schema.String)
})

/**
 * The `turn/start` acknowledgement. Under 0.169 steering its `turn.id` is the already active turn.
 * @category models
 */
export const TurnStartResponse = Schema.Struct({ turn: Turn })

/**
 * Params of `turn/interrupt`.
 * @category models
 */
export const TurnInterruptParams = Schema.Struct({ threadId: Schema.String, turnId: Schema.String })

/**
 * `turn/started`.
 * @category models
 */
export const TurnStartedNotification = Schema.Struct({ threadId: Schema.String, turn: Turn })

/**
 * `turn/completed`: the only turn end (status completed, interrupted or failed).
 * @category models
 */
export const TurnCompletedNotification = Schema.Struct({ threadId: Schema.String, turn: Turn })

/**
 * `item/agentMessage/delta`.
 * @category models
 */
export const AgentMessageDeltaNotification = Schema.Struct({
  threadId: Schema.String,
  turnId: Schema.String,
  itemId: Schema.String,
  delta: Schema.String
})

/**
 * The members every thread item has; the rest depends on `type` (an open set).
 * @category models
 */
export const ThreadItemHeader = Schema.Struct({ id: Schema.String, type: Schema.String })

/**
 * An assistant message item (`type: "agentMessage"`); its `text` is authoritative over deltas.
 * @category models
 */
export const AgentMessageThreadItem = Schema.Struct({ type: Schema.Literal("agentMessage"), id: Schema.String, text: Schema.String })

/**
 * `item/started`.
 * @category models
 */
export const ItemStartedNotification = Schema.Struct({ threadId: Schema.String, turnId: Schema.String, item: ThreadItemHeader })

/**
 * `item/completed`.
 * @category models
 */
export const ItemCompletedNotification = Schema.Struct({ threadId: Schema.String, turnId: Schema.String, item: ThreadItemHeader })

/**
 * Params of `item/commandExecution/requestApproval` (`command` is shell-wrapped in 0.169).
 * @category models
 */
export const CommandExecutionRequestApprovalParams = Schema.Struct({
  threadId: Schema.String,
  turnId: Schema.String,
  itemId: Schema.String,
  command: optionalNullable(Schema.String),
  cwd: optionalNullable(Schema.String),
  reason: optionalNullable(Schema.String)
})

/**
 * Params of `item/fileChange/requestApproval`.
 * @category models
 */
export const FileChangeRequestApprovalParams = Schema.Struct({
  threadId: Schema.String,
  turnId: Schema.String,
  itemId: Schema.String,
  reason: optionalNullable(Schema.String)
})

/**
 * The decisions we give: never `cancel` (it would also interrupt the turn) nor session-wide ones.
 * @category models
 */
export const ApprovalDecision = Schema.Literals(["accept", "decline"])
export type ApprovalDecision = typeof ApprovalDecision.Type

/**
 * Our answer to `item/commandExecution/requestApproval`.
 * @category models
 */
export const CommandExecutionRequestApprovalResponse = Schema.Struct({ decision: ApprovalDecision })

/**
 * Our answer to `item/fileChange/requestApproval`.
 * @category models
 */
export const FileChangeRequestApprovalResponse = Schema.Struct({ decision: ApprovalDecision })

/**
 * The `error` notification (`willRetry: true` means codex keeps going).
 * @category models
 */
export const ErrorNotification = Schema.Struct({
  error: TurnError,
  threadId: Schema.String,
  turnId: Schema.String,
  willRetry: Schema.Boolean
})

/**
 * Everything optio-codex relies on in the app-server protocol, checked against the pinned
 * binary's JSON Schema by `test/appserver/WireContract.test.ts`:
 * - methods by direction (a `null` params definition means we only rely on the name);
 * - `definitions`: codex definition name → our Struct; every key of the Struct must be a
 *   property codex declares for that definition;
 * - `enums`: values we send or branch on that must be members of codex's enum.
 * @category models
 */
export const WireContract = {
  clientRequests: {
    [ClientMethod.initialize]: "InitializeParams",
    [ClientMethod.accountRead]: "GetAccountParams",
    // Its params are nullable (`anyOf`); we send none, so only the name is relied on.
    [ClientMethod.accountRateLimitsRead]: null,
    [ClientMethod.modelList]: "ModelListParams",
    [ClientMethod.threadStart]: "ThreadStartParams",
    [ClientMethod.threadResume]: "ThreadResumeParams",
    [ClientMethod.turnStart]: "TurnStartParams",
    [ClientMethod.turnInterrupt]: "TurnInterruptParams",
    [ClientMethod.threadLoadedList]: "ThreadLoadedListParams"
  },
  clientNotifications: [ClientNotificationMethod.initialized],
  serverNotifications: {
    [ServerNotificationMethod.turnStarted]: "TurnStartedNotification",
    [ServerNotificationMethod.turnCompleted]: "TurnCompletedNotification",
    [ServerNotificationMethod.itemStarted]: "ItemStartedNotification",
    [ServerNotificationMethod.itemCompleted]: "ItemCompletedNotification",
    [ServerNotificationMethod.agentMessageDelta]: "AgentMessageDeltaNotification",
    [ServerNotificationMethod.error]: "ErrorNotification",
    [ServerNotificationMethod.commandExecutionOutputDelta]: null,
    [ServerNotificationMethod.accountRateLimitsUpdated]: "AccountRateLimitsUpdatedNotification"
  },
  serverRequests: {
    [ServerRequestMethod.commandExecutionRequestApproval]: "CommandExecutionRequestApprovalParams",
    [ServerRequestMethod.fileChangeRequestApproval]: "FileChangeRequestApprovalParams"
  },
  definitions: {
    JSONRPCErrorError,
    ClientInfo,
    InitializeCapabilities,
    InitializeParams,
    InitializeResponse,
    GetAccountParams,
    Account,
    GetAccountResponse,
    ModelListParams,
    ModelListResponse,
    ThreadLoadedListParams,
    ReasoningEffortOption,
    Model,
    ThreadStartParams,
    ThreadResumeParams,
    TurnError,
    Turn,
    Thread,
    ThreadStartResponse,
    ThreadResumeResponse,
    TextUserInput,
    ThreadItem: ThreadItemHeader,
    AgentMessageThreadItem,
    TurnStartParams,
    TurnStartResponse,
    TurnInterruptParams,
    TurnStartedNotification,
    TurnCompletedNotification,
    AgentMessageDeltaNotification,
    ItemStartedNotification,
    ItemCompletedNotification,
    CommandExecutionRequestApprovalParams,
    FileChangeRequestApprovalParams,
    CommandExecutionRequestApprovalResponse,
    FileChangeRequestApprovalResponse,
    ErrorNotification,
    RateLimitWindow,
    RateLimitSnapshot,
    AccountRateLimitsUpdatedNotification,
    GetAccountRateLimitsResponse
  },
  enums: {
    SandboxMode: SandboxMode.literals,
    AskForApproval: AskForApproval.literals,
    TurnStatus: TurnStatus.to.members[0].literals,
    CommandExecutionApprovalDecision: ApprovalDecision.literals,
    FileChangeApprovalDecision: ApprovalDecision.literals,
    ThreadItem: ["agentMessage", "userMessage"],
    /** The turn failure a seed hand-off reacts to. */
    CodexErrorInfo: ["usageLimitExceeded"]
  }
} as const
