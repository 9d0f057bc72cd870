/**
 * Fault (spec P11): a codex that rewrites auth.json while it shuts down — as codex does when a
 * refresh is in flight at SIGTERM. The seeded session is cancelled; teardown must stop codex
 * gracefully (SIGTERM, then wait) and only then save the credentials back, so the rotation
 * written during the shutdown reaches the seed. The watcher's own polling is slowed to an hour,
 * so only the final save-back can carry it.
 *
 * What would break without the handling: the reference SIGKILLed codex at once and saved back
 * before it was gone; here a save-back before the stop (or a KILL first) stores the pre-rotation
 * token, and the rotated one — whose predecessor is already spent — is lost.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import { chmodSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { BinaryCache } from "../../src/binary/BinaryCache.ts"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { CredWatcher } from "../../src/credentials/CredWatcher.ts"
import { TokenBroker } from "../../src/credentials/TokenBroker.ts"
import { AUTH_MEMBER, findMember, packSeedArchive, unpackSeedArchive } from "../../src/credentials/SeedArchive.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { TaskContext, TaskRecorder } from "../../src/task/TaskContext.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { faultRoot, noProcessMentions } from "./harness.ts"
import { recordOutcome } from "./summary.ts"

const dirs = faultRoot("graceful-save-back")
afterAll(dirs.remove)

const PLANTED = JSON.stringify({ OPENAI_API_KEY: "sk-planted" })
const ROTATED = JSON.stringify({ OPENAI_API_KEY: "sk-rotated-at-shutdown" })

// A stand-in codex TUI: idles until SIGTERM, then takes a second to finish a "refresh" and renames
// the new auth.json into place, as codex does.
const fakeCodex = (dir: string) => {
  const path = join(dir, "fake-codex")
  writeFileSync(path, `#!/bin/sh
rotate() {
  sleep 1
  printf '%s' '${ROTATED}' > "$CODEX_HOME/.auth-new"
  mv "$CODEX_HOME/.auth-new" "$CODEX_HOME/auth.json"
  exit 0
}
trap rotate TERM HUP
echo "fake codex ready"
while :; do sleep 0.1; done
`)
  chmodSync(path, 0o755)
  return path
}

const storedAuth = (seedId: string) =>
  Effect.gen(function*() {
    const blob = yield* SeedStore.use((seeds) => seeds.readBlob(seedId))
    const chunks = yield* Stream.runCollect(blob.bytes)
    const members = yield* unpackSeedArchive(Buffer.concat(chunks.map((chunk) => Buffer.from(chunk))))
    return { generation: blob.seed.generation, auth: new TextDecoder().decode(findMember(members, AUTH_MEMBER)?.bytes) }
  })

describe("fault: codex rotates credentials while it shuts down", () => {
  it.live("cancel: codex gets SIGTERM and time; the final save-back then stores what it wrote", () => {
    const workdir = dirs.workdir()
    const services = Layer.mergeAll(
      TaskContext.layerRecording({ processId: "graceful-save-back" }),
      BinaryCache.layerTest(fakeCodex(dirs.root)),
      TtydSession.layer, Tmux.layer, AppServerClient.layer,
      ConversationListener.layer,
      CredWatcher.layerWith({ pollInterval: "1 hour", renewInterval: "1 second" }),
      TokenBroker.layerNone
    ).pipe(Layer.provideMerge(Layer.merge(Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext)), LocalHost.layer())))
    return Effect.gen(function*() {
      const seed = yield* SeedStore.use((seeds) =>
        seeds.create({ blob: Stream.succeed(packSeedArchive([{ name: AUTH_MEMBER, bytes: new TextEncoder().encode(PLANTED), mode: 0o600 }])), poolKey: "p11" })
      )
      const session = yield* runCodexSession(
        { consumerInstructions: "P11", seedPool: "p11", supportsResume: false },
        { workdir, stopGracePeriod: "5 seconds" }
      ).pipe(Effect.forkChild)
      const recorder = yield* TaskRecorder
      yield* waitUntil("the fake codex is live", recorder.current.pipe(Effect.map((record) =>
        record.progress.some((entry) => entry.message === "Codex is live") ? true : undefined
      )), "30 seconds")
      yield* Fiber.interrupt(session)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(session)))
      const stored = yield* storedAuth(seed.seedId)
      assert.strictEqual(stored.auth, ROTATED, "the rotation written during the graceful stop reached the seed")
      assert.strictEqual(stored.generation, 1)
      const progress = (yield* recorder.current).progress.map((entry) => entry.message ?? "")
      assert.include(progress, `Saved the rotated credentials back to seed ${seed.seedId}`)
      const lease = Option.getOrThrow(yield* SeedStore.use((seeds) => seeds.get(seed.seedId))).lease
      assert.isTrue(lease === undefined || lease.expiresAt <= new Date(), "the lease was released after the save-back")
      yield* noProcessMentions(workdir, "2 seconds")
      recordOutcome(
        "codex rotates auth.json during its graceful stop (P11)",
        "SIGTERM, codex wrote the rotated auth.json 1 s later and exited; the final save-back (after the stop) stored it (generation 1); lease released"
      )
    }).pipe(Effect.scoped, Effect.provide(services))
  }, 60_000)
})
