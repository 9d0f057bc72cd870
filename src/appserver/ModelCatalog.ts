/**
 * ModelCatalog: the models codex offers (from `model/list`) and the session controls built on
 * them (the model picker and the reasoning-effort slider).
 *
 * Owns the pure mapping only: fetching pages is `CodexConversation`'s job, rendering the
 * controls the UI's. Odd entries are skipped one by one, never failing the list.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { SessionControl } from "./ConversationHandle.ts"
import { Model, ReasoningEffortOption } from "./AppServerSchema.ts"

/**
 * A model as the controls show it.
 * @category models
 */
export interface ModelOption {
  readonly id: string
  readonly label: string
  /** Reasoning effort levels the model supports, in codex's order (may be empty). */
  readonly efforts: ReadonlyArray<string>
  readonly defaultEffort: string | null
}

/**
 * The visible models and codex's default among them.
 * @category models
 */
export interface ModelCatalog {
  readonly models: ReadonlyArray<ModelOption>
  readonly default: string | null
  /**
   * Where the list came from: codex's `model/list`, or the static fallback used when codex listed
   * nothing (the request failed, timed out or returned no usable entry).
   */
  readonly source: "codex" | "fallback"
}

/**
 * What the controls currently say.
 * @category models
 */
export interface ControlValues {
  readonly model: string | null
  readonly effort: string | null
}

/**
 * Control ids (spec §9).
 * @category models
 */
export const ControlId = { model: "model", reasoningEffort: "reasoning_effort" } as const

/**
 * A catalog with no models (model/list failed or listed none).
 * @category constructors
 */
export const emptyCatalog: ModelCatalog = { models: [], default: null, source: "codex" }

const FALLBACK_EFFORTS = ["low", "medium", "high", "xhigh"]

/**
 * The models offered when codex lists none, so the picker is never empty and a switch between
 * well-known models still works (the Python reference had the same safety net). Maintained with
 * the codex pin: review it on every bump of `@openai/codex`.
 * @category constructors
 */
export const fallbackCatalog: ModelCatalog = {
  models: [
    { id: "gpt-5.5", label: "GPT-5.5", efforts: FALLBACK_EFFORTS, defaultEffort: "medium" },
    { id: "gpt-5.5-codex", label: "GPT-5.5 Codex", efforts: FALLBACK_EFFORTS, defaultEffort: "medium" },
    { id: "gpt-5.4-mini", label: "GPT-5.4 Mini", efforts: FALLBACK_EFFORTS, defaultEffort: "medium" }
  ],
  default: "gpt-5.5",
  source: "fallback"
}

/**
 * codex's list when it has a usable entry, the static fallback otherwise.
 * @category constructors
 */
export const orFallback = (catalog: ModelCatalog): ModelCatalog => catalog.models.length > 0 ? catalog : fallbackCatalog

const decodeModel = Schema.decodeUnknownOption(Model)
const decodeEffort = Schema.decodeUnknownOption(ReasoningEffortOption)

/**
 * Builds the catalog from the `data` entries of every `model/list` page: hidden entries, entries
 * without an id and duplicates are skipped; the default is the last entry marked `isDefault`.
 * @category constructors
 */
export const parseModelList = (entries: ReadonlyArray<unknown>): ModelCatalog => {
  const models: Array<ModelOption> = []
  let defaultId: string | null = null
  for (const entry of entries) {
    const decoded = decodeModel(entry)
    if (decoded._tag === "None") continue
    const model = decoded.value
    if (model.id === "" || model.hidden === true || models.some((known) => known.id === model.id)) continue
    const efforts = (model.supportedReasoningEfforts ?? []).flatMap(effortLevel)
    models.push({
      id: model.id,
      label: model.displayName !== undefined && model.displayName !== "" ? model.displayName : model.id,
      efforts,
      defaultEffort: model.defaultReasoningEffort ?? null
    })
    if (model.isDefault === true) defaultId = model.id
  }
  return { models, default: defaultId, source: "codex" }
}

/** 0.169 lists efforts as objects; older servers listed plain strings: accept both. */
const effortLevel = (entry: unknown): ReadonlyArray<string> => {
  if (typeof entry === "string") return entry === "" ? [] : [entry]
  const decoded = decodeEffort(entry)
  return decoded._tag === "Some" && decoded.value.reasoningEffort !== "" ? [decoded.value.reasoningEffort] : []
}

/**
 * The catalog entry of a model id, if listed.
 * @category getters
 */
export const findModel = (catalog: ModelCatalog, id: string | null): ModelOption | undefined =>
  id === null ? undefined : catalog.models.find((model) => model.id === id)

/**
 * The effort a model starts with: its default, or null when it lists no levels.
 * @category getters
 */
export const defaultEffortOf = (catalog: ModelCatalog, id: string): string | null => {
  const model = findModel(catalog, id)
  if (model === undefined || model.efforts.length === 0) return null
  return model.defaultEffort ?? null
}

/**
 * The model picker and effort slider for the current values. A current model missing from the
 * list (a custom provider's) is still offered, so the picker shows the truth.
 * @category constructors
 */
export const buildControls = (catalog: ModelCatalog, values: ControlValues): ReadonlyArray<SessionControl> => {
  const listed = catalog.models.map((model) => ({ value: model.id, label: model.label, disabled: false }))
  const options = values.model !== null && findModel(catalog, values.model) === undefined
    ? [{ value: values.model, label: values.model, disabled: false }, ...listed]
    : listed
  const levels = findModel(catalog, values.model)?.efforts ?? []
  const model: SessionControl = {
    id: ControlId.model,
    kind: "select",
    label: "Model",
    category: "model",
    value: values.model,
    options,
    ...(options.length <= 1 ? { disabled: true, whyDisabled: "Only one option available." } : { disabled: false })
  }
  const effort: SessionControl = {
    id: ControlId.reasoningEffort,
    kind: "slider",
    label: "Effort",
    category: "thought_level",
    value: values.effort,
    levels,
    ...(levels.length <= 1
      ? { disabled: true, whyDisabled: "The current model offers no choice of reasoning effort." }
      : { disabled: false })
  }
  return [model, effort]
}
