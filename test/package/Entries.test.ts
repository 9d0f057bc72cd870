/**
 * The package's two entries: `optio-codex` keeps the runtime API only, `optio-codex/testing`
 * holds what a worker's tests swap in.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as main from "../../src/index.ts"
import { Lease } from "../../src/lease/Lease.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { TaskContext } from "../../src/task/TaskContext.ts"
import * as testing from "../../src/testing.ts"

describe("package entries", () => {
  it("the main entry exports no test tooling", () => {
    const leaked = Object.keys(testing).filter((name) => name in main)
    expect(leaked).toEqual([])
    for (const name of ["ScriptedModelServer", "ModelScript", "startStandInIssuer", "TaskRecorder"]) {
      expect(name in main, name).toBe(false)
      expect(name in testing, name).toBe(true)
    }
  })

  it.effect("the recording TaskContext records what a task reports", () =>
    Effect.gen(function*() {
      const context = yield* TaskContext
      yield* context.reportProgress(40, "working")
      yield* context.setWidgetUpstream("http://127.0.0.1:1/")
      const record = yield* (yield* testing.TaskRecorder).current
      expect(record.progress).toEqual([{ percent: 40, message: "working" }])
      expect(record.widgetUpstreamHistory).toEqual(["http://127.0.0.1:1/"])
    }).pipe(Effect.provide(testing.layerRecordingTaskContext({ processId: "entries" }))))

  it.effect("the memory stores provide all three store services, sharing a state", () =>
    Effect.gen(function*() {
      const state = new testing.MemoryStoreState()
      const services = yield* Layer.build(testing.layerMemoryStores({ state }))
      for (const service of [SeedStore, Lease, SnapshotStore]) expect(services.mapUnsafe.has(service.key)).toBe(true)
    }).pipe(Effect.scoped))

  it("offline task settings point codex at the scripted model server", () => {
    const settings = testing.offlineTaskSettings("http://127.0.0.1:9/v1")
    expect(settings.model).toBe(testing.OFFLINE_MODEL)
    expect(JSON.stringify(settings.configOverrides)).toContain("http://127.0.0.1:9/v1")
    expect(Object.keys(settings.env)).toHaveLength(1)
  })
})
