/**
 * WidgetData: the `widgetData` object the dashboard hands to the conversation widget, which makes
 * it pick CodexView (`protocol: "codex"`) and tells it how to render (tool and thinking
 * verbosity), which session controls to offer and whether uploads and downloads are on. Both
 * generations of the view are served: the current one reads `showSessionControls`/`controls`,
 * the older one `showModelSelector`/`models`/`currentModel`, derived here from the `model`
 * control. Pure; publishing it is the session's business (TaskContext `setWidgetData`).
 *
 * @since 0.1.0
 */
import type { CodexTaskConfig, ThinkingVerbosity, ToolVerbosity } from "../config/CodexTaskConfig.ts"
import type { SessionControl } from "../appserver/ConversationHandle.ts"

/**
 * The configuration fields the widget data is built from.
 * @category models
 */
export type WidgetDataConfig = Pick<
  CodexTaskConfig,
  | "toolVerbosity"
  | "thinkingVerbosity"
  | "defaultModel"
  | "showModelSelector"
  | "showFileUpload"
  | "maxUploadBytes"
  | "fileDownload"
  | "maxDownloadBytes"
>

/**
 * Where the view sends what does not go to the listener itself.
 * @category models
 */
export interface WidgetEndpoint {
  /**
   * optio-api's widget-upload route for this task, when uploads go through it (they then reach
   * the task's registered writer). Without it the view posts to the listener's own `upload`.
   */
  readonly uploadUrl?: string
}

/**
 * A model entry of the older view's picker.
 * @category models
 */
export interface WidgetModel {
  readonly id: string
  readonly label: string
  readonly disabled: boolean
}

/**
 * The published widget data.
 * @category models
 */
export interface ConversationWidgetData {
  readonly protocol: "codex"
  readonly toolVerbosity: ToolVerbosity
  readonly thinkingVerbosity: ThinkingVerbosity
  readonly showSessionControls: boolean
  readonly controls: ReadonlyArray<SessionControl>
  readonly showFileUpload: boolean
  readonly maxUploadBytes: number
  readonly fileDownload: boolean
  readonly maxDownloadBytes: number
  readonly showModelSelector: boolean
  readonly models: ReadonlyArray<WidgetModel>
  readonly currentModel: string | null
  readonly uploadUrl?: string
}

/**
 * Builds the widget data from the task configuration, the conversation's current controls and
 * the upload endpoint.
 * @category constructors
 */
export const conversationWidgetData = (
  config: WidgetDataConfig,
  controls: ReadonlyArray<SessionControl>,
  endpoint: WidgetEndpoint = {}
): ConversationWidgetData => {
  const modelControl = controls.find((control) => control.id === "model")
  const models = (modelControl?.options ?? []).map((option) => ({
    id: option.value,
    label: option.label,
    disabled: option.disabled
  }))
  return {
    protocol: "codex",
    toolVerbosity: config.toolVerbosity,
    thinkingVerbosity: config.thinkingVerbosity,
    showSessionControls: config.showModelSelector,
    controls,
    showFileUpload: config.showFileUpload,
    maxUploadBytes: config.maxUploadBytes,
    fileDownload: config.fileDownload,
    maxDownloadBytes: config.maxDownloadBytes,
    showModelSelector: config.showModelSelector,
    models,
    currentModel: config.defaultModel ?? modelControl?.value ?? null,
    ...(endpoint.uploadUrl === undefined ? {} : { uploadUrl: endpoint.uploadUrl })
  }
}
