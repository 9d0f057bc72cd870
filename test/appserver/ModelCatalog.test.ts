/**
 * ModelCatalog: model/list entries to the catalog, and the session controls built on it.
 */
import { assert, describe, it } from "@effect/vitest"
import { buildControls, defaultEffortOf, fallbackCatalog, orFallback, parseModelList } from "../../src/appserver/ModelCatalog.ts"

const effort = (reasoningEffort: string) => ({ reasoningEffort, description: reasoningEffort })

describe("parseModelList", () => {
  it("skips odd, hidden and duplicate entries; reads effort objects and plain strings; last default wins", () => {
    const catalog = parseModelList([
      { id: "a", displayName: "Model A", supportedReasoningEfforts: [effort("low"), effort("high"), { nope: 1 }], defaultReasoningEffort: "low", isDefault: true },
      { id: "hidden", hidden: true, isDefault: true },
      { id: "", displayName: "empty id" },
      { displayName: "no id" },
      "not an object",
      { id: "b", displayName: "", supportedReasoningEfforts: ["minimal", ""], defaultReasoningEffort: null, isDefault: true, newField: [1] },
      { id: "a", displayName: "duplicate" }
    ])
    assert.deepStrictEqual(catalog, {
      models: [
        { id: "a", label: "Model A", efforts: ["low", "high"], defaultEffort: "low" },
        { id: "b", label: "b", efforts: ["minimal"], defaultEffort: null }
      ],
      default: "b",
      source: "codex"
    })
    assert.strictEqual(defaultEffortOf(catalog, "a"), "low")
    assert.isNull(defaultEffortOf(catalog, "b"))
    assert.isNull(defaultEffortOf(catalog, "unlisted"))
  })
})

describe("buildControls", () => {
  const catalog = parseModelList([
    { id: "a", displayName: "A", supportedReasoningEfforts: [effort("low"), effort("high")], defaultReasoningEffort: "low" }
  ])

  it("offers an unlisted current model and disables a select with one option", () => {
    const [model, slider] = buildControls(catalog, { model: "custom", effort: null })
    assert.deepStrictEqual(model?.options?.map((option) => option.value), ["custom", "a"])
    assert.isFalse(model?.disabled)
    assert.deepStrictEqual(slider?.levels, [])
    assert.isTrue(slider?.disabled)
    assert.isString(slider?.whyDisabled)
  })

  it("renders the HEAD control shapes", () => {
    assert.deepStrictEqual(buildControls(catalog, { model: "a", effort: "high" }), [
      {
        id: "model",
        kind: "select",
        label: "Model",
        category: "model",
        value: "a",
        options: [{ value: "a", label: "A", disabled: false }],
        disabled: true,
        whyDisabled: "Only one option available."
      },
      {
        id: "reasoning_effort",
        kind: "slider",
        label: "Effort",
        category: "thought_level",
        value: "high",
        levels: ["low", "high"],
        disabled: false
      }
    ])
  })
})

describe("orFallback", () => {
  it("keeps codex's list when it has a model and falls back to the static list when it has none", () => {
    const listed = parseModelList([{ id: "a" }])
    assert.strictEqual(orFallback(listed), listed)
    assert.strictEqual(orFallback(parseModelList([])), fallbackCatalog)
    assert.strictEqual(orFallback(parseModelList([{ id: "h", hidden: true }])).source, "fallback")
    assert.isTrue(fallbackCatalog.models.some((model) => model.id === fallbackCatalog.default))
  })
})
