/**
 * A worker as a plain Node process (not inside the test runner, where an uncaught exception goes
 * unnoticed): runs one session with a stand-in codex that writes to stderr and exits 3 at once,
 * then prints one JSON line with the session's error and progress. If anything the session left
 * behind throws later (an unhandled `write EPIPE`), the process dies with a non-zero status.
 *
 * Usage: node test/support/launchFailureWorker.ts <iframe|conversation> <root dir>
 */
import { Effect, Layer } from "effect"
import { chmodSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { BinaryCache } from "../../src/binary/BinaryCache.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { CredWatcher } from "../../src/credentials/CredWatcher.ts"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"

export const STAND_IN_STDERR = "codex: fatal: simulated launch failure"

const [mode = "conversation", root = "."] = process.argv.slice(2)
mkdirSync(join(root, "bin"), { recursive: true })
const standIn = join(root, "bin", "codex")
writeFileSync(standIn, `#!/bin/sh\necho '${STAND_IN_STDERR}' >&2\nexit 3\n`)
chmodSync(standIn, 0o755)
const workdir = join(root, "workdir")
mkdirSync(workdir, { recursive: true })

const services = Layer.mergeAll(
  TaskContext.layerRecording({ processId: `launch-failure-${mode}` }),
  BinaryCache.layerTest(standIn),
  TtydSession.layer, Tmux.layer, AppServerClient.layer,
  ConversationListener.layer,
  CredWatcher.layer,
  TokenBroker.layerNone
).pipe(Layer.provideMerge(Layer.merge(Store.layerMemory({}).pipe(Layer.provide(BlobCrypto.layerPlaintext)), LocalHost.layer())))

const program = Effect.gen(function*() {
  const outcome = yield* runCodexSession(
    { consumerInstructions: "launch failure", mode, ...(mode === "conversation" ? { conversationUi: true } : {}) },
    { workdir, stopGracePeriod: "1 second" }
  ).pipe(Effect.result)
  const record = yield* (yield* TaskRecorder).current
  const error = outcome._tag === "Failure" ? outcome.failure : undefined
  return {
    tag: error?._tag ?? "Success",
    message: error?.message ?? "",
    exitCode: error !== undefined && "exitCode" in error ? error.exitCode : undefined,
    progress: record.progress.map((entry) => entry.message ?? "")
  }
}).pipe(Effect.scoped, Effect.provide(services))

Effect.runPromise(program).then((result) => {
  process.stdout.write(`${JSON.stringify(result)}\n`)
})
