/**
 * CodexTaskConfig: the data configuration of one codex task, decoded and checked once.
 *
 * Owns the schema (camelCase fields, defaults), the cross-field validation rules of the
 * reference in their order plus the checks it lacked ([P3], [P17]), and the derived sandbox
 * mode. The decoded value is deeply frozen ([P20]); failures are `ConfigError` (re-exported).
 * Functions (hooks, seed provider) are not data and live in `Hooks.ts`; turning the config
 * into codex flags is `SandboxPosture.ts`.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { isIP } from "node:net"
import { ConfigError, fromSchemaError, renderFieldPath } from "./ConfigError.ts"
import { tomlKeyPath, TomlValueSchema } from "./Toml.ts"

export { ConfigError } from "./ConfigError.ts"

/**
 * How the operator sees the task: codex's TUI in a web terminal, or the app-server conversation. @category models
 * @since 0.1.0
 */
export const ConversationMode = Schema.Literals(["iframe", "conversation"])
export type ConversationMode = typeof ConversationMode.Type
/**
 * How much of each tool call the conversation widget shows. @category models
 * @since 0.1.0
 */
export const ToolVerbosity = Schema.Literals(["silent", "description-only", "verbose"])
export type ToolVerbosity = typeof ToolVerbosity.Type
/**
 * Whether the conversation widget shows the model's reasoning. @category models
 * @since 0.1.0
 */
export const ThinkingVerbosity = Schema.Literals(["hidden", "visible"])
export type ThinkingVerbosity = typeof ThinkingVerbosity.Type
/**
 * codex `--ask-for-approval` policy (iframe mode). @category models
 * @since 0.1.0
 */
export const ApprovalPolicy = Schema.Literals(["untrusted", "on-failure", "on-request", "never"])
export type ApprovalPolicy = typeof ApprovalPolicy.Type
/**
 * codex sandbox mode, kebab-case as codex spells it. @category models
 * @since 0.1.0
 */
export const SandboxMode = Schema.Literals(["read-only", "workspace-write", "danger-full-access"])
export type SandboxMode = typeof SandboxMode.Type
/**
 * codex `model_reasoning_effort`. @category models
 * @since 0.1.0
 */
export const ReasoningEffort = Schema.Literals(["none", "minimal", "low", "medium", "high", "xhigh"])
export type ReasoningEffort = typeof ReasoningEffort.Type
/** SSH host key policy: `strict` needs a known key, `accept-new` trusts the first one seen. @category models */
export const HostKeyPolicy = Schema.Literals(["strict", "accept-new"])
export type HostKeyPolicy = typeof HostKeyPolicy.Type

/**
 * An extra directory grant; `rw` widens codex's writable roots, `ro` is accepted and changes nothing. @category models
 * @since 0.1.0
 */
export const AllowedDir = Schema.Struct({ path: Schema.String, mode: Schema.Literals(["ro", "rw"]) })
export type AllowedDir = typeof AllowedDir.Type

/**
 * Where to run codex when it is not the local machine. @category models
 * @since 0.1.0
 */
export const SshConfig = Schema.Struct({
  host: Schema.String,
  user: Schema.String,
  port: Schema.Number.pipe(Schema.withDecodingDefaultKey(Effect.succeed(22))),
  identityFile: Schema.optionalKey(Schema.String),
  knownHostsFile: Schema.optionalKey(Schema.String),
  hostKeyFingerprint: Schema.optionalKey(Schema.String),
  hostKey: HostKeyPolicy.pipe(Schema.withDecodingDefaultKey(Effect.succeed<HostKeyPolicy>("strict"))),
})
export type SshConfig = typeof SshConfig.Type

const LOOPBACK = "127.0.0.1"
const TEN_MB = 10_000_000

/**
 * How workdir snapshots are compressed: `zstd` (fast, the default) or `gzip` (readable by the
 * Python reference workers that share the store).
 * @category schemas
 * @since 0.1.0
 */
export const SnapshotCompression = Schema.Literals(["zstd", "gzip"])
/** @category models */
export type SnapshotCompression = typeof SnapshotCompression.Type

/**
 * Interoperability with the Python reference on one store: `python-0.1` writes gzip snapshots,
 * leases seeds with the process id as the holder (as the reference does) and answers the agent
 * with the reference's deliverable replies. Blob encryption is a store setting: keep both scopes
 * plaintext where Python workers read the same store.
 * @category schemas
 */
export const Compat = Schema.Literals(["python-0.1"])
/** @category models */
export type Compat = typeof Compat.Type

/**
 * How a seeded task holds its credentials: `broker` — auth.json holds a per-task handle and codex
 * refreshes through the worker's token broker (the real refresh token never enters the task);
 * `file` — the seed's auth.json as is, rotations saved back by the credential watcher (needed when
 * Python workers share the store). Absent: broker when the worker provides a TokenBroker, else file;
 * `compat: "python-0.1"` implies file.
 * @category models
 * @since 0.1.0
 */
export const CredentialMode = Schema.Literals(["broker", "file"])
/** @category models */
export type CredentialMode = typeof CredentialMode.Type

/**
 * Schema of the task configuration. Field order follows the reference's rule order so
 * that a type error is reported for the same field the reference would name first.
 * @category schemas
 * @since 0.1.0
 */
export const CodexTaskConfig = Schema.Struct({
  consumerInstructions: Schema.String,
  mode: ConversationMode.pipe(Schema.withDecodingDefaultKey(Effect.succeed<ConversationMode>("iframe"))),
  hostProtocol: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(true))),
  permissionGate: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  conversationUi: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  toolVerbosity: ToolVerbosity.pipe(Schema.withDecodingDefaultKey(Effect.succeed<ToolVerbosity>("description-only"))),
  thinkingVerbosity: ThinkingVerbosity.pipe(Schema.withDecodingDefaultKey(Effect.succeed<ThinkingVerbosity>("hidden"))),
  defaultModel: Schema.optionalKey(Schema.String),
  showModelSelector: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  showFileUpload: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  fileDownload: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  askForApproval: ApprovalPolicy.pipe(Schema.withDecodingDefaultKey(Effect.succeed<ApprovalPolicy>("never"))),
  sandbox: Schema.optionalKey(SandboxMode),
  fsIsolation: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(true))),
  extraAllowedDirs: Schema.optionalKey(Schema.Array(AllowedDir)),
  networkAccess: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  codexCacheDir: Schema.optionalKey(Schema.String),
  maxUploadBytes: Schema.Number.pipe(Schema.withDecodingDefaultKey(Effect.succeed(TEN_MB))),
  maxDownloadBytes: Schema.Number.pipe(Schema.withDecodingDefaultKey(Effect.succeed(TEN_MB))),
  configOverrides: Schema.optionalKey(Schema.Record(Schema.String, TomlValueSchema)),
  env: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  scrubEnv: Schema.optionalKey(Schema.Array(Schema.String)),
  ssh: Schema.optionalKey(SshConfig),
  widgetBindHost: Schema.String.pipe(Schema.withDecodingDefaultKey(Effect.succeed(LOOPBACK))),
  widgetAdvertisedHost: Schema.String.pipe(Schema.withDecodingDefaultKey(Effect.succeed(LOOPBACK))),
  model: Schema.optionalKey(Schema.String),
  reasoningEffort: Schema.optionalKey(ReasoningEffort),
  installIfMissing: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(true))),
  autoStart: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  seedId: Schema.optionalKey(Schema.String),
  seedPool: Schema.optionalKey(Schema.String),
  /**
   * How long a pool lease waits when no seed can be leased (all leased or exhausted), saying why
   * and until when in the task's progress; absent or 0 fails at once.
   */
  seedPoolWaitSeconds: Schema.optionalKey(Schema.Number),
  supportsResume: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(true))),
  workdirExclude: Schema.optionalKey(Schema.Array(Schema.String)),
  snapshotCompression: SnapshotCompression.pipe(Schema.withDecodingDefaultKey(Effect.succeed<SnapshotCompression>("zstd"))),
  compat: Schema.optionalKey(Compat),
  credentialMode: Schema.optionalKey(CredentialMode),
})
/** A decoded, validated, deeply frozen task configuration. @category models */
export type CodexTaskConfig = typeof CodexTaskConfig.Type
/**
 * What a caller writes: every field but `consumerInstructions` may be left out. @category models
 * @since 0.1.0
 */
export type CodexTaskConfigInput = typeof CodexTaskConfig.Encoded

/**
 * The sandbox codex runs under: the explicit `sandbox`, else derived from `fsIsolation`.
 * @category accessors
 * @since 0.1.0
 */
export const effectiveSandboxMode = (config: Pick<CodexTaskConfig, "sandbox" | "fsIsolation">): SandboxMode =>
  config.sandbox ?? (config.fsIsolation ? "workspace-write" : "danger-full-access")

/**
 * Decodes and validates a task configuration, failing with the first problem found.
 *
 * Unknown keys are rejected (a misspelt or snake_case key would otherwise be ignored
 * silently); the error suggests the right name when it can guess it.
 * @category decoding
 * @since 0.1.0
 */
export const decodeCodexTaskConfig: (input: unknown) => Effect.Effect<CodexTaskConfig, ConfigError> = Effect.fn(
  "decodeCodexTaskConfig",
)(function*(input: unknown) {
  const decoded = yield* Schema.decodeUnknownEffect(CodexTaskConfig)(withCompatDefaults(input), { onExcessProperty: "error" }).pipe(
    Effect.mapError((error) => fromSchemaError(error, input, { unknownKeyHint, secretFields: ["env"] })),
  )
  for (const rule of RULES) {
    const violation = rule(decoded)
    if (violation !== undefined) return yield* violation
  }
  return deepFreeze(decoded)
})

// `compat: "python-0.1"` changes the defaults the reference could not read: snapshots default to
// gzip (an explicit zstd is then refused by a rule below).
const withCompatDefaults = (input: unknown): unknown =>
  typeof input === "object" && input !== null && !Array.isArray(input) && "compat" in input &&
    input.compat === "python-0.1" && !("snapshotCompression" in input)
    ? { ...input, snapshotCompression: "gzip" }
    : input

// ---------------------------------------------------------------------------------------
// Validation rules, in order: the reference's §2.6 rules 2-17 first (rules 1, 5, 6, 11 and
// 12 are literal checks the schema already made), then the checks the reference lacked.

type Rule = (config: CodexTaskConfig) => ConfigError | undefined

const conversationOnly = (field: "permissionGate" | "conversationUi"): Rule => (c) =>
  c[field] && c.mode !== "conversation"
    ? new ConfigError({
      field,
      value: true,
      message: `${field} needs mode "conversation" (mode is "${c.mode}"); ` +
        `set mode to "conversation" or remove ${field}`,
    })
    : undefined

const widgetOnly =
  (field: "defaultModel" | "showModelSelector" | "showFileUpload" | "fileDownload"): Rule => (c) => {
    const set = field === "defaultModel" ? c.defaultModel !== undefined : c[field]
    if (!set || (c.mode === "conversation" && c.conversationUi)) return undefined
    return new ConfigError({
      field,
      value: c[field],
      message: `${field} only applies to the conversation widget; ` +
        `set mode "conversation" and conversationUi true, or remove ${field}`,
    })
  }

const rwPaths = (c: CodexTaskConfig): ReadonlyArray<string> =>
  (c.extraAllowedDirs ?? []).filter((dir) => dir.mode === "rw").map((dir) => dir.path)

// Paths are expanded on the host against the real home, so only absolute and `~`/`~/` forms
// have a meaning there; a relative path would land somewhere under codex's cwd ([P3], [P17]).
const pathProblem = (path: string): string | undefined => {
  if (path.includes("\0")) return "contains a NUL byte"
  if (path.startsWith("/") || path === "~" || path.startsWith("~/")) return undefined
  if (path.startsWith("~")) return `"~user" paths are not supported; use an absolute path or one starting with "~/"`
  return `must be an absolute path or start with "~/" (expanded against the host user's home)`
}

const checkPath = (field: string, path: string | undefined): ConfigError | undefined => {
  const problem = path === undefined ? undefined : pathProblem(path)
  return problem === undefined ? undefined : new ConfigError({
    field,
    value: path,
    message: `${field} ${JSON.stringify(path)}: ${problem}`,
  })
}

// The keys optio-codex itself sets from the typed fields; letting an override reach them
// would silently change the sandbox or approval posture the config describes.
const MANAGED_KEYS: ReadonlyArray<readonly [string, string]> = [
  ["sandbox_mode", "sandbox / fsIsolation"],
  ["sandbox_workspace_write.writable_roots", "extraAllowedDirs"],
  ["sandbox_workspace_write.network_access", "networkAccess"],
  // Pinned on codex's command line (see SandboxPosture): what tool commands inherit.
  ["shell_environment_policy.inherit", "env / scrubEnv"],
  ["shell_environment_policy.ignore_default_excludes", "env / scrubEnv"],
  ["approval_policy", "askForApproval / permissionGate"],
  ["model", "model"],
  ["model_reasoning_effort", "reasoningEffort"],
]

const overlaps = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean =>
  a.slice(0, Math.min(a.length, b.length)).every((segment, i) => segment === b[i])

const checkOverrides: Rule = (c) => {
  for (const key of Object.keys(c.configOverrides ?? {})) {
    const field = renderFieldPath(["configOverrides", key])
    const parsed = tomlKeyPath(key)
    if (parsed._tag === "Failure") return new ConfigError({ field, value: key, message: `${field}: ${parsed.failure.message}` })
    const managed = MANAGED_KEYS.find(([managedKey]) => overlaps(parsed.success, managedKey.split(".")))
    if (managed !== undefined) {
      return new ConfigError({
        field,
        value: key,
        message: `${field} would override "${managed[0]}", which optio-codex sets itself; use ${managed[1]} instead`,
      })
    }
  }
  return undefined
}

// Values are never echoed: env often carries secrets.
const checkEnv: Rule = (c) => {
  for (const [name, value] of Object.entries(c.env ?? {})) {
    const field = renderFieldPath(["env", name])
    if (name === "" || name.includes("=") || name.includes("\0")) {
      return new ConfigError({ field, message: `${field}: an environment variable name must be non-empty, without "=" or NUL` })
    }
    if (value.includes("\0")) return new ConfigError({ field, message: `${field}: the value contains a NUL byte` })
  }
  const lists = [["scrubEnv", c.scrubEnv], ["workdirExclude", c.workdirExclude]] as const
  for (const [name, list] of lists) {
    const index = (list ?? []).findIndex((pattern) => pattern === "" || pattern.includes("\0"))
    if (index >= 0) {
      return new ConfigError({ field: `${name}[${index}]`, message: `${name}[${index}]: a pattern must be non-empty and free of NUL bytes` })
    }
  }
  return undefined
}

// A seed id is a MongoDB ObjectId in hex, in every backend (so seeds move between them).
const SEED_ID = /^[0-9a-f]{24}$/

const checkSeed: Rule = (c) => {
  if (c.seedId !== undefined && c.seedPool !== undefined) {
    return new ConfigError({
      field: "seedPool",
      value: c.seedPool,
      message: `seedId and seedPool are exclusive: name one seed, or a pool to lease a seed from`,
    })
  }
  if (c.seedId !== undefined && !SEED_ID.test(c.seedId)) {
    return new ConfigError({ field: "seedId", value: c.seedId, message: `seedId must be 24 lower-case hex digits (a seed id as listed by "optio-codex seeds list")` })
  }
  if (c.seedPoolWaitSeconds !== undefined && (!Number.isFinite(c.seedPoolWaitSeconds) || c.seedPoolWaitSeconds < 0)) {
    return new ConfigError({ field: "seedPoolWaitSeconds", value: c.seedPoolWaitSeconds, message: `seedPoolWaitSeconds must be a finite number of seconds, 0 or more` })
  }
  if (c.seedPool !== undefined && (c.seedPool === "" || /[\p{Cc}]/u.test(c.seedPool))) {
    return new ConfigError({ field: "seedPool", value: c.seedPool, message: `seedPool must be a non-empty pool key without control characters` })
  }
  return undefined
}

const HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/
const isHost = (host: string): boolean => isIP(host) !== 0 || HOSTNAME.test(host)
// OpenSSH prints SHA-256 fingerprints as "SHA256:" + unpadded base64 of 32 bytes.
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/

const checkSsh: Rule = (c) => {
  const ssh = c.ssh
  if (ssh === undefined) return undefined
  if (!isHost(ssh.host)) {
    return new ConfigError({ field: "ssh.host", value: ssh.host, message: `ssh.host ${JSON.stringify(ssh.host)} is not a hostname or IP address` })
  }
  if (ssh.user === "" || ssh.user.startsWith("-") || /[\s\p{Cc}]/u.test(ssh.user)) {
    return new ConfigError({
      field: "ssh.user",
      value: ssh.user,
      message: `ssh.user ${JSON.stringify(ssh.user)} must be a non-empty login name without spaces, control characters or a leading "-"`,
    })
  }
  if (!Number.isInteger(ssh.port) || ssh.port < 1 || ssh.port > 65535) {
    return new ConfigError({ field: "ssh.port", value: ssh.port, message: `ssh.port must be an integer from 1 to 65535, got ${ssh.port}` })
  }
  const badPath = checkPath("ssh.identityFile", ssh.identityFile) ?? checkPath("ssh.knownHostsFile", ssh.knownHostsFile)
  if (badPath !== undefined) return badPath
  if (ssh.hostKeyFingerprint !== undefined && !FINGERPRINT.test(ssh.hostKeyFingerprint)) {
    return new ConfigError({
      field: "ssh.hostKeyFingerprint",
      value: ssh.hostKeyFingerprint,
      message: `ssh.hostKeyFingerprint must look like "SHA256:<43 base64 characters>" (as printed by ssh-keygen -lf)`,
    })
  }
  return undefined
}

const checkWidgetHost = (field: "widgetBindHost" | "widgetAdvertisedHost"): Rule => (c) =>
  isHost(c[field]) ? undefined : new ConfigError({
    field,
    value: c[field],
    message: `${field} ${JSON.stringify(c[field])} is not a hostname or IP address`,
  })

const checkByteLimit = (field: "maxUploadBytes" | "maxDownloadBytes"): Rule => (c) =>
  Number.isSafeInteger(c[field]) && c[field] > 0 ? undefined : new ConfigError({
    field,
    value: c[field],
    message: `${field} must be a positive whole number of bytes, got ${c[field]}`,
  })

const RULES: ReadonlyArray<Rule> = [
  (c) =>
    c.mode === "iframe" && !c.hostProtocol
      ? new ConfigError({
        field: "hostProtocol",
        value: false,
        message: `hostProtocol cannot be false in mode "iframe": there the optio.log keyword channel is the ` +
          `only signal that codex finished; set hostProtocol to true or use mode "conversation"`,
      })
      : undefined,
  conversationOnly("permissionGate"),
  conversationOnly("conversationUi"),
  widgetOnly("defaultModel"),
  widgetOnly("showModelSelector"),
  widgetOnly("showFileUpload"),
  widgetOnly("fileDownload"),
  (c) =>
    c.fsIsolation && c.sandbox === "danger-full-access"
      ? new ConfigError({
        field: "sandbox",
        value: c.sandbox,
        message: `sandbox "danger-full-access" turns codex's sandbox off, but fsIsolation is true (the default); ` +
          `set fsIsolation to false to run unconfined, or pick "workspace-write" or "read-only"`,
      })
      : undefined,
  (c) =>
    !c.fsIsolation && (c.sandbox === "read-only" || c.sandbox === "workspace-write")
      ? new ConfigError({
        field: "sandbox",
        value: c.sandbox,
        message: `sandbox "${c.sandbox}" needs codex's sandbox, but fsIsolation=false turns it off; ` +
          `remove sandbox or set fsIsolation to true`,
      })
      : undefined,
  (c) =>
    effectiveSandboxMode(c) === "read-only" && rwPaths(c).length > 0
      ? new ConfigError({
        field: "extraAllowedDirs",
        value: rwPaths(c),
        message: `sandbox "read-only" cannot grant write access, yet extraAllowedDirs has rw entries ` +
          `${rwPaths(c).map((p) => JSON.stringify(p)).join(", ")}; use sandbox "workspace-write" or make them ro (ro grants are fine)`,
      })
      : undefined,
  (c) =>
    c.networkAccess && effectiveSandboxMode(c) === "read-only"
      ? new ConfigError({
        field: "networkAccess",
        value: true,
        message: `networkAccess only works with sandbox "workspace-write"; the sandbox here is "read-only"`,
      })
      : undefined,
  (c) => checkPath("codexCacheDir", c.codexCacheDir),
  (c) => (c.extraAllowedDirs ?? []).reduce<ConfigError | undefined>(
    (found, dir, i) => found ?? checkPath(`extraAllowedDirs[${i}].path`, dir.path),
    undefined,
  ),
  (c) =>
    c.networkAccess && effectiveSandboxMode(c) === "danger-full-access"
      ? new ConfigError({
        field: "networkAccess",
        value: true,
        message: `networkAccess has no effect under "danger-full-access" (nothing is sandboxed, so the network ` +
          `is already open); remove networkAccess or use fsIsolation with sandbox "workspace-write"`,
      })
      : undefined,
  (c) =>
    effectiveSandboxMode(c) === "danger-full-access" && rwPaths(c).length > 0
      ? new ConfigError({
        field: "extraAllowedDirs",
        value: rwPaths(c),
        message: `rw grants in extraAllowedDirs have no effect under "danger-full-access" (everything is ` +
          `writable already); remove them or use fsIsolation with sandbox "workspace-write"`,
      })
      : undefined,
  checkByteLimit("maxUploadBytes"),
  checkByteLimit("maxDownloadBytes"),
  checkOverrides,
  checkEnv,
  checkSsh,
  checkWidgetHost("widgetBindHost"),
  checkWidgetHost("widgetAdvertisedHost"),
  checkSeed,
  (c) =>
    c.compat === "python-0.1" && c.credentialMode === "broker"
      ? new ConfigError({
        field: "credentialMode",
        value: c.credentialMode,
        message: `compat "python-0.1" needs credentialMode "file": Python workers sharing the store read and rotate the seed's own refresh token`,
      })
      : undefined,
  (c) =>
    c.compat === "python-0.1" && c.snapshotCompression !== "gzip"
      ? new ConfigError({
        field: "snapshotCompression",
        value: c.snapshotCompression,
        message: `compat "python-0.1" needs gzip snapshots (the Python reference cannot read ${c.snapshotCompression}); ` +
          `remove snapshotCompression or set it to "gzip"`,
      })
      : undefined,
]

// ---------------------------------------------------------------------------------------
// Unknown-key hints for schema failures

// Hints for keys people carry over from the Python reference or older drafts.
const KEY_HINTS: Readonly<Record<string, string>> = {
  installTtydIfMissing: "optio-codex ships its own web terminal and never installs ttyd; remove it",
  ttydInstallDir: "optio-codex ships its own web terminal and never installs ttyd; remove it",
  codexInstallDir: `it is now called "codexCacheDir"`,
  keyPath: `the SSH key is now "identityFile"`,
  beforeExecute: "hooks are functions; pass them as CodexTaskHooks, not in the data config",
  afterExecute: "hooks are functions; pass them as CodexTaskHooks, not in the data config",
  onDeliverable: "hooks are functions; pass them as CodexTaskHooks, not in the data config",
  onSeedSaved: "hooks are functions; pass them as CodexTaskHooks, not in the data config",
}
const KNOWN_KEYS = new Set([...Object.keys(CodexTaskConfig.fields), ...Object.keys(SshConfig.fields), "path", "mode"])

const camelCase = (key: string): string => key.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase())

const unknownKeyHint = (key: string): string => {
  const camel = camelCase(key)
  const hint = KEY_HINTS[camel]
  if (hint !== undefined) return `; ${hint}`
  return camel !== key && KNOWN_KEYS.has(camel) ? `; did you mean "${camel}"?` : ""
}

const deepFreeze = <A>(value: A): A => {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const item of Object.values(value)) deepFreeze(item)
    Object.freeze(value)
  }
  return value
}
