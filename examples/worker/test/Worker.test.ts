/**
 * The worker's own logic, with no codex binary: the task runner is swapped for a mock that
 * reports through a recording TaskContext from optio-codex/testing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Ref } from "effect"
import { TaskContext } from "optio-codex"
import { layerRecordingTaskContext, TaskRecorder } from "optio-codex/testing"
import { CodexRunner, exampleTasks, printingTaskContext, runTasks } from "../src/Worker.ts"

// A runner that does what codex would report, and for a task to cancel starts a turn that never ends.
const mockRunner = Layer.effect(CodexRunner, Effect.gen(function*() {
  const context = yield* TaskContext
  return CodexRunner.of({
    run: (task, midTurn) =>
      Effect.gen(function*() {
        yield* context.setWidgetUpstream(`http://127.0.0.1:9/${task.name}`)
        yield* context.reportProgress(50, `${task.name}: turn started`)
        if (task.cancelMidTurn) {
          yield* Deferred.succeed(midTurn, undefined)
          return yield* Effect.never
        }
        return `${task.name} done`
      })
  })
}))

const testLayer = mockRunner.pipe(Layer.provideMerge(layerRecordingTaskContext({ processId: "worker-test" })))

describe("example worker", () => {
  it.effect("reports each task's outcome; the one cancelled mid-turn ends cancelled", () =>
    Effect.gen(function*() {
      const outcomes = yield* runTasks(exampleTasks)
      expect(outcomes).toEqual([
        { task: "tui", status: "completed", summary: "tui done" },
        { task: "conversation", status: "completed", summary: "conversation done" },
        { task: "cancelled", status: "cancelled" }
      ])
      const record = yield* (yield* TaskRecorder).current
      expect([...record.widgetUpstreamHistory].sort()).toEqual([
        "http://127.0.0.1:9/cancelled",
        "http://127.0.0.1:9/conversation",
        "http://127.0.0.1:9/tui"
      ])
      expect(record.progress).toHaveLength(3)
    }).pipe(Effect.provide(testLayer)))

  it.effect("a task whose runner fails is reported as failed, with the error", () =>
    Effect.gen(function*() {
      const failing = Layer.succeed(CodexRunner, CodexRunner.of({ run: () => Effect.fail(new Error("codex is not installed")) }))
      const outcomes = yield* runTasks(exampleTasks.slice(0, 1)).pipe(Effect.provide(failing))
      expect(outcomes[0]?.status).toBe("failed")
      expect(outcomes[0]?.status === "failed" ? outcomes[0].error : "").toContain("codex is not installed")
    }))

  it.effect("its TaskContext prints progress and widget upstreams with the task's name", () =>
    Effect.gen(function*() {
      const lines = yield* Ref.make<ReadonlyArray<string>>([])
      const print = (line: string) => Ref.update(lines, (all) => [...all, line])
      yield* Effect.gen(function*() {
        const context = yield* TaskContext
        yield* context.reportProgress(10, "Preparing the workdir…")
        yield* context.setWidgetUpstream("http://127.0.0.1:4000")
      }).pipe(Effect.provide(printingTaskContext("tui", print)))
      expect(yield* Ref.get(lines)).toEqual([
        "[tui] progress 10% Preparing the workdir…",
        "[tui] widget upstream: http://127.0.0.1:4000"
      ])
    }))
})
