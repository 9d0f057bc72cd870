/**
 * The Tmux service: its live layer starts real tmux on the Host it captured (nothing but a Scope
 * needed at the call), and its scripted test layer behaves like a pane for the session code.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { makeScriptedTmux, Tmux } from "../../src/terminal/Tmux.ts"
import type { TmuxSessionOptions } from "../../src/terminal/TmuxSession.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { makeFixtures, removeFixtures, socketPath } from "./fixtures.ts"

const fx = makeFixtures("tmux-service")
afterAll(removeFixtures)

const options = (argv: readonly [string, ...Array<string>]): TmuxSessionOptions => {
  const socket = socketPath()
  return { socketPath: socket, configPath: join(fx.dir, `${socket.split("/").pop() ?? "x"}.conf`), command: { argv, cwd: fx.dir }, gracePeriod: "2 seconds" }
}

describe("Tmux", () => {
  it.live("layer: start needs only a Scope; the pane runs and is torn down with the scope", () =>
    Effect.gen(function*() {
      const tmux = yield* Tmux
      const scope = yield* Scope.make()
      const session = yield* tmux.start(options(["sh", "-c", "echo service-ready; exec sleep 300"])).pipe(Scope.provide(scope))
      yield* waitUntil("the pane shows its output", session.capture(50).pipe(Effect.map((screen) => screen.includes("service-ready") ? true : undefined)), "10 seconds")
      assert.deepStrictEqual(yield* session.status, { _tag: "Running" })
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* session.status.pipe(Effect.orElseSucceed(() => ({ _tag: "Gone" as const }))))._tag, "Gone")
    }).pipe(Effect.provide(Tmux.layer.pipe(Layer.provide(LocalHost.layer())))))

  it.effect("layerTest: a scripted pane records what is sent, shows its screen and reports its exit", () =>
    Effect.gen(function*() {
      const scripted = yield* makeScriptedTmux({ screen: "hello" })
      const session = yield* Effect.gen(function*() {
        const tmux = yield* Tmux
        return yield* tmux.start(options(["codex"]))
      }).pipe(Effect.provide(Tmux.layerTest(scripted)))
      assert.strictEqual(yield* session.capture(10), "hello")
      yield* session.sendText("do the thing")
      yield* session.sendKeys(["C-c"])
      assert.strictEqual((yield* Effect.flip(session.sendKeys(["; kill-server"])))._tag, "TmuxKeyRejected")
      assert.deepStrictEqual(yield* scripted.sent, ["do the thing"])
      assert.deepStrictEqual(yield* scripted.keys, [["C-c"]])
      const exit = yield* Effect.forkChild(session.awaitExit("1 second"))
      yield* scripted.pane.exit(3)
      assert.strictEqual(yield* Fiber.join(exit), 3)
      assert.deepStrictEqual(yield* session.status, { _tag: "Exited", exitCode: 3 })
    }).pipe(Effect.scoped))
})
