/**
 * Issue 14 item 3 on an SSH host: a codex that writes an error and exits 3 at once fails the
 * session with its status and stderr, and the same text reaches progress. Conversation mode:
 * the app-server's stderr travels over the SSH channel, the part that differs from a local host
 * (TUI mode reads the pane through tmux, the same on both).
 */
import { noStoreServices } from "../support/sessionServices.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { afterAll } from "vitest"
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { BinaryCache } from "../../src/binary/BinaryCache.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { sshdForSuite, suiteRemoteHost } from "../support/sshd.ts"

const root = join(repoRoot, ".cache", "test", `e2e-remote-launch-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(join(root, "bin"), { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))
const sshd = sshdForSuite(join(root, "known_hosts"))
const STAND_IN_STDERR = "codex: fatal: simulated launch failure on the remote"
const standIn = join(root, "bin", "codex")
writeFileSync(standIn, `#!/bin/sh\necho '${STAND_IN_STDERR}' >&2\nexit 3\n`)
chmodSync(standIn, 0o755)

const services = (processId: string) =>
  Layer.mergeAll(TaskContext.layerRecording({ processId }), BinaryCache.layerTest(standIn), TtydSession.layer, Tmux.layer, AppServerClient.layer, ConversationListener.layer, noStoreServices).pipe(
    Layer.provideMerge(suiteRemoteHost(sshd, join(root, "known_hosts")))
  )

describe("a codex that exits at launch on an SSH host", () => {
  for (const mode of ["conversation"] as const) {
    it.live(`issue 14: ${mode} mode fails with CodexExitedEarly carrying status 3 and stderr, also in progress`, () =>
      Effect.gen(function*() {
        const workdir = join(root, `workdir-${mode}`)
        mkdirSync(workdir, { recursive: true })
        const error = yield* Effect.flip(runCodexSession(
          { consumerInstructions: "launch failure", mode, ...(mode === "conversation" ? { conversationUi: true } : {}) },
          { workdir, stopGracePeriod: "1 second" }
        ))
        assert.strictEqual(error._tag, "CodexExitedEarly")
        if (error._tag !== "CodexExitedEarly") return
        assert.strictEqual(error.exitCode, 3)
        assert.include(error.paneTail, STAND_IN_STDERR)
        const progress = (yield* (yield* TaskRecorder).current).progress.map((entry) => entry.message)
        assert.include(progress, error.message)
        assert.notInclude(progress, "Codex is live")
      }).pipe(Effect.scoped, Effect.provide(services(`remote-launch-${mode}`))), 240_000)
  }
})
