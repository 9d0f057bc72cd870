import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { decodeCodexTaskConfig } from "../../src/config/CodexTaskConfig.ts"
import type { SessionControl } from "../../src/appserver/ConversationHandle.ts"
import { conversationWidgetData } from "../../src/conversation/WidgetData.ts"
import { modelControl } from "./harness.ts"

const effortControl: SessionControl = {
  id: "reasoning_effort",
  kind: "slider",
  label: "Effort",
  value: "medium",
  disabled: false,
  category: "thought_level",
  levels: ["low", "medium", "high"]
}

describe("conversationWidgetData", () => {
  it.effect("carries the codex protocol, the render settings, the controls and both view generations' fields", () =>
    Effect.gen(function*() {
      const config = yield* decodeCodexTaskConfig({
        consumerInstructions: "do it",
        mode: "conversation",
        conversationUi: true,
        toolVerbosity: "verbose",
        showModelSelector: true,
        showFileUpload: true,
        fileDownload: true,
        maxUploadBytes: 1234
      })
      const data = conversationWidgetData(config, [modelControl, effortControl])
      assert.deepStrictEqual(data, {
        protocol: "codex",
        toolVerbosity: "verbose",
        thinkingVerbosity: "hidden",
        showSessionControls: true,
        controls: [modelControl, effortControl],
        showFileUpload: true,
        maxUploadBytes: 1234,
        fileDownload: true,
        maxDownloadBytes: 10_000_000,
        showModelSelector: true,
        models: [
          { id: "gpt-5.5", label: "GPT-5.5", disabled: false },
          { id: "gpt-5.4-mini", label: "GPT-5.4 Mini", disabled: false }
        ],
        currentModel: "gpt-5.5"
      })
      assert.deepStrictEqual(JSON.parse(JSON.stringify(data)), data)
    }))

  it.effect("the configured default model wins; no model control means no models; an upload URL is passed on", () =>
    Effect.sync(() => {
      const config = {
        toolVerbosity: "silent",
        thinkingVerbosity: "visible",
        defaultModel: "gpt-5.4-mini",
        showModelSelector: false,
        showFileUpload: false,
        maxUploadBytes: 1,
        fileDownload: false,
        maxDownloadBytes: 2
      } as const
      const withModel = conversationWidgetData(config, [modelControl])
      assert.strictEqual(withModel.currentModel, "gpt-5.4-mini")
      const { defaultModel: _, ...withoutDefault } = config
      const bare = conversationWidgetData(withoutDefault, [], { uploadUrl: "/api/widget-upload/db/p/1" })
      assert.deepStrictEqual([bare.models, bare.currentModel, bare.uploadUrl], [[], null, "/api/widget-upload/db/p/1"])
      assert.isFalse("uploadUrl" in withModel)
    }))
})
