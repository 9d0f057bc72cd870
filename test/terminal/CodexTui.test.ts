/**
 * The real codex TUI in a TmuxSession, offline against the scripted model server: a message
 * delivered with sendText (a bracketed paste, then Enter) is submitted as one user turn, and the
 * session's release leaves no codex behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { appendFileSync } from "node:fs"
import { join } from "node:path"
import { Host } from "../../src/host/Host.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import * as ModelScript from "../../src/modelserver/ModelScript.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { startTmuxSession } from "../support/services.ts"
import type { TmuxSession } from "../../src/terminal/TmuxSession.ts"
import { codexBinary, offlineCodexDirs } from "../support/offlineCodex.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { socketPath } from "./fixtures.ts"

const paneShows = (tmux: TmuxSession, text: string) =>
  waitUntil(`the codex pane shows ${JSON.stringify(text)}`, tmux.capture(400).pipe(
    Effect.map((screen) => screen.includes(text) ? screen : undefined)
  ), "30 seconds")

describe("codex TUI in tmux", () => {
  it.live("sendText delivers a (multi-line) prompt that codex submits as one turn", () =>
    Effect.gen(function*() {
      const host = yield* Host
      const server = yield* ScriptedModelServer.start([
        ModelScript.text("PONG from the scripted model", { match: ModelScript.userSaid("ping over tmux") })
      ])
      const dirs = yield* offlineCodexDirs("tui-send-text", { baseUrl: server.baseUrl })
      // The workdir lies inside this repository: pre-trust it, or codex asks first.
      appendFileSync(join(dirs.codexHome, "config.toml"), `\n[projects.${JSON.stringify(dirs.workdir)}]\ntrust_level = "trusted"\n`)
      const scope = yield* Scope.fork(yield* Effect.scope)
      const tmux = yield* startTmuxSession({
        socketPath: socketPath(),
        configPath: join(dirs.root, "tmux.conf"),
        command: {
          argv: [codexBinary, "-c", "features.daemon_auto_start=false", "--ask-for-approval", "never", "--sandbox", "read-only"],
          cwd: dirs.workdir,
          env: dirs.env
        },
        columns: 120,
        rows: 40
      }).pipe(Scope.provide(scope))
      yield* paneShows(tmux, "Ask Codex to do anything")

      yield* tmux.sendText("ping over tmux\nsecond line of the same message")
      // Codex also asks the model for a thread title quoting the message: look for the turn itself.
      const isTurn = (request: { readonly userTexts: ReadonlyArray<string> }) => (request.userTexts.at(-1) ?? "").startsWith("ping over tmux")
      const requests = yield* server.awaitRequests((seen) => seen.some(isTurn), "30 seconds")
      const turn = requests.find(isTurn)
      assert.strictEqual(turn?.userTexts.at(-1), "ping over tmux\nsecond line of the same message")
      yield* paneShows(tmux, "PONG from the scripted model")

      const pane = yield* tmux.panePid
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(yield* host.isAlive(pane))
    }).pipe(Effect.scoped, Effect.provide(LocalHost.layer())), 90_000)
})
