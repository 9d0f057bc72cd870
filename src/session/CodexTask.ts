/**
 * CodexTask: wraps a codex session as an optio task definition — the metadata a worker registers
 * (id, name, which dashboard widget shows it, whether it can resume) plus the effect that runs it.
 * The config is decoded here, so a bad config is rejected when the task is defined, long before
 * anything would start.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { decodeCodexTaskConfig } from "../config/CodexTaskConfig.ts"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import { runCodexSession } from "./CodexSession.ts"
import type { SessionOptions } from "./PrepareTask.ts"

/**
 * The dashboard widget that shows a task: the web terminal, the conversation view, or none.
 * @category models
 * @since 0.1.0
 */
export type UiWidget = "iframe" | "conversation" | null

/**
 * A codex task as a worker registers it.
 * @category models
 * @since 0.1.0
 */
export interface CodexTaskDefinition {
  readonly processId: string
  readonly name: string
  readonly description: string | null
  readonly uiWidget: UiWidget
  readonly supportsResume: boolean
  /**
   * Whether the worker relaunches the task (with `resume`) after its own restart, when the task
   * was cancelled by the shutdown and has a snapshot (spec §8.11; the reference had no way to ask
   * for it, P38). Only meaningful with `supportsResume`.
   */
  readonly autoResume: boolean
  readonly cancellable: true
  readonly metadata: Readonly<Record<string, unknown>>
  readonly config: CodexTaskConfig
  /** Runs the task; the worker provides TaskContext, Host and the services. Cancel = interrupt. */
  readonly execute: ReturnType<typeof runCodexSession>
}

/**
 * Defines a codex task. Fails with a ConfigError when the config is invalid.
 * @category constructors
 * @since 0.1.0
 */
export const createCodexTask = (definition: {
  readonly processId: string
  readonly name: string
  readonly config: unknown
  readonly description?: string
  readonly metadata?: Readonly<Record<string, unknown>>
  readonly options?: SessionOptions
  /** Relaunch with `resume` after a worker restart; default false. */
  readonly autoResume?: boolean
}) =>
  Effect.gen(function*() {
    const config = yield* decodeCodexTaskConfig(definition.config)
    const task: CodexTaskDefinition = {
      processId: definition.processId,
      name: definition.name,
      description: definition.description ?? null,
      uiWidget: uiWidgetOf(config),
      supportsResume: config.supportsResume,
      autoResume: config.supportsResume && definition.autoResume === true,
      cancellable: true,
      metadata: definition.metadata ?? {},
      config,
      execute: runCodexSession(config, definition.options ?? {})
    }
    return task
  })

const uiWidgetOf = (config: CodexTaskConfig): UiWidget => {
  if (config.conversationUi) return "conversation"
  return config.mode === "conversation" ? null : "iframe"
}
