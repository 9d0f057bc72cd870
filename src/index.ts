/**
 * optio-codex: run OpenAI Codex as managed, isolated, resumable tasks inside Effect-based optio
 * workers. The public API: the session and task factory, the services with their layers, the
 * configuration schema and the errors a caller can handle. Test tooling lives in
 * `optio-codex/testing`.
 *
 * @since 0.1.0
 */
// First: see EvalFilename (`node -e` and @effect/platform-node).
import { restoreEvalFilename } from "./package/EvalFilename.ts"
export { createCodexTask } from "./session/CodexTask.ts"
export type { CodexTaskDefinition, UiWidget } from "./session/CodexTask.ts"
export { runCodexSession } from "./session/CodexSession.ts"
export type { SessionOptions, SessionResult } from "./session/CodexSession.ts"
export { layerCodexServices } from "./session/SessionServices.ts"
export type { CodexServices, CodexServicesOptions, CodexSessionServices } from "./session/SessionServices.ts"
export {
  AgentReportedError,
  AppServerUnresponsive,
  CodexExitedEarly,
  HookFailed,
  PersistenceNotConfigured
} from "./session/SessionErrors.ts"
export { SeedUnavailable } from "./session/SessionSeed.ts"
export { QuotaExhausted, SeedQuota } from "./quota/SeedQuota.ts"
export type { PoolHeadroom, QuotaWindow, SeedQuotaRecord } from "./quota/SeedQuota.ts"
export { TeardownFailed } from "./session/Teardown.ts"

export {
  AllowedDir,
  ApprovalPolicy,
  CodexTaskConfig,
  ConfigError,
  ConversationMode,
  decodeCodexTaskConfig,
  effectiveSandboxMode,
  ReasoningEffort,
  SandboxMode,
  SnapshotCompression,
  SshConfig,
  ThinkingVerbosity,
  ToolVerbosity
} from "./config/CodexTaskConfig.ts"
export type { CodexTaskConfigInput } from "./config/CodexTaskConfig.ts"
export type { CodexTaskHooks, DeliverableInfo, DownloadFailure, HookContext } from "./session/Hooks.ts"
export { resolveSandboxPosture } from "./config/SandboxPosture.ts"
export type { SandboxPosture } from "./config/SandboxPosture.ts"

export { CommandFailed, Host, HostError } from "./host/Host.ts"
export type { Command, HostShape } from "./host/Host.ts"
export * as LocalHost from "./host/LocalHost.ts"
export * as RemoteHost from "./host/RemoteHost.ts"
export { HostConnectionLost, HostKeyChanged, HostKeyUnknown } from "./host/RemoteHost.ts"
export { BinaryCache, CodexUnavailable, PINNED_CODEX_VERSION } from "./binary/BinaryCache.ts"
export { OptionalPackageMissing } from "./package/OptionalPackage.ts"
export { TaskContext } from "./task/TaskContext.ts"
export type { InnerAuth, PublishedConversation, TaskIdentity, UploadWriter } from "./task/TaskContext.ts"
export { TtydSession } from "./terminal/TtydSession.ts"
export { Tmux } from "./terminal/Tmux.ts"
export { ConversationListener } from "./conversation/ConversationListener.ts"
export { ConversationClosed } from "./appserver/ConversationHandle.ts"
export type { ConversationEvent, ConversationHandle } from "./appserver/ConversationHandle.ts"
export { AppServerClient } from "./appserver/AppServerClient.ts"
export type { CodexConversation } from "./appserver/CodexConversation.ts"
export { Store } from "./store/Store.ts"
export { BlobCrypto } from "./store/BlobCrypto.ts"
export { SeedStore } from "./seeds/SeedStore.ts"
export { Lease } from "./lease/Lease.ts"
export { SnapshotStore } from "./snapshots/SnapshotStore.ts"
export {
  applyTokenRefresh,
  authShape,
  credentialFingerprint,
  isUsableAuth,
  parseAuthJson,
  parseLastRefresh
} from "./credentials/AuthJson.ts"
export type { AuthObject, AuthShape, RefreshedTokens } from "./credentials/AuthJson.ts"
export {
  AUTH_MEMBER,
  CONFIG_MEMBER,
  mergeSeedArchive,
  packSeedArchive,
  SeedArchiveInvalid,
  unpackSeedArchive
} from "./credentials/SeedArchive.ts"
export type { SeedMember } from "./credentials/SeedArchive.ts"
export { captureSeed, plantSeed, readCredentials, saveCredentials, SeedHasNoCredentials } from "./credentials/SeedEngine.ts"
export type { Credentials, PlantedSeed } from "./credentials/SeedEngine.ts"
export { CredentialSaveBackFailed, CredWatcher } from "./credentials/CredWatcher.ts"
export type { CredWatch, CredWatcherSettings, CredWatchSpec, FinalSaveBack } from "./credentials/CredWatcher.ts"
export { verifyAndRefreshSeed, verifySeedWithProbe } from "./credentials/VerifySeed.ts"
export type { ProbeOptions, VerifyError, VerifyOptions, VerifyOutcome } from "./credentials/VerifySeed.ts"
export { BROKER_HOLDER, HANDLE_PREFIX, TokenBroker } from "./credentials/TokenBroker.ts"
export type { AttachError, AttachRequest, BrokeredTask, BrokerStats, TokenBrokerSettings } from "./credentials/TokenBroker.ts"
export { refreshFenced } from "./credentials/SeedRefresh.ts"
export type { FencedRefresh, RefreshFencedOptions, StoredCredentials } from "./credentials/SeedRefresh.ts"
export { captureSnapshot, newestRolloutId, restoreSnapshot, SnapshotCaptureFailed, SnapshotRestoreFailed } from "./snapshots/WorkdirSnapshot.ts"
export { LoginFailed, runCodexLogin } from "./session/LoginBody.ts"
export type { DeviceCodePrompt, LoginOptions, LoginResult } from "./session/LoginBody.ts"

restoreEvalFilename()
