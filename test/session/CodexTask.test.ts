import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createCodexTask } from "../../src/session/CodexTask.ts"

describe("createCodexTask", () => {
  it.effect.each([
    [{ consumerInstructions: "x" }, "iframe"],
    [{ consumerInstructions: "x", mode: "conversation" }, null],
    [{ consumerInstructions: "x", mode: "conversation", conversationUi: true }, "conversation"]
  ] as const)("the widget follows mode and conversationUi: %j → %s", ([config, widget]) =>
    Effect.gen(function*() {
      const task = yield* createCodexTask({ processId: "p1", name: "codex", config })
      assert.strictEqual(task.uiWidget, widget)
      assert.isTrue(task.supportsResume)
      assert.isTrue(task.cancellable)
      assert.deepStrictEqual(task.metadata, {})
      assert.isNull(task.description)
    }))

  it.effect("an invalid config is rejected when the task is defined", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(createCodexTask({ processId: "p1", name: "codex", config: { consumerInstructions: "x", hostProtocol: false } }))
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, "hostProtocol")
    }))

  it.effect("supportsResume and metadata flow to the definition", () =>
    Effect.gen(function*() {
      const task = yield* createCodexTask({ processId: "p1", name: "n", description: "d", metadata: { team: "a" }, config: { consumerInstructions: "x", supportsResume: false } })
      assert.isFalse(task.supportsResume)
      assert.deepStrictEqual(task.metadata, { team: "a" })
      assert.strictEqual(task.description, "d")
    }))

  it.effect("autoResume is opt-in (P38) and needs supportsResume", () =>
    Effect.gen(function*() {
      const plain = yield* createCodexTask({ processId: "p1", name: "n", config: { consumerInstructions: "x" } })
      assert.isFalse(plain.autoResume)
      const auto = yield* createCodexTask({ processId: "p1", name: "n", autoResume: true, config: { consumerInstructions: "x" } })
      assert.isTrue(auto.autoResume)
      const noSnapshots = yield* createCodexTask({ processId: "p1", name: "n", autoResume: true, config: { consumerInstructions: "x", supportsResume: false } })
      assert.isFalse(noSnapshots.autoResume)
    }))
})
