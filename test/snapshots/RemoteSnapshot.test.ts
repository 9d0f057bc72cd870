/**
 * Snapshots over SSH: the same capture and restore through RemoteHost (a real sshd on
 * 127.0.0.1), on a workdir whose path holds shell syntax, so every tar argument must reach the
 * remote as data. The member names and the restored tree are the same as locally (P33).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"
import * as RemoteHost from "../../src/host/RemoteHost.ts"
import { captureSnapshot, restoreSnapshot } from "../../src/snapshots/WorkdirSnapshot.ts"
import { SnapshotStore } from "../../src/snapshots/SnapshotStore.ts"
import { BlobCrypto } from "../../src/store/BlobCrypto.ts"
import { Store } from "../../src/store/Store.ts"
import { repoRoot } from "../support/offlineCodex.ts"
import { sshdForSuite } from "../support/sshd.ts"

const root = join(repoRoot, ".cache", "test", `remote-snapshot-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))
const sshd = sshdForSuite(join(root, "known_hosts"))

const services = Layer.unwrap(Effect.sync(() =>
  Layer.mergeAll(
    RemoteHost.layer({
      host: "127.0.0.1",
      port: sshd().port,
      user: "root",
      identityFile: sshd().clientKeyPath,
      knownHostsFile: join(root, "known_hosts")
    }),
    Store.layerMemory().pipe(Layer.provide(BlobCrypto.layerPlaintext))
  )
))

describe("snapshots on a remote host", () => {
  it.live("capture and restore over SSH keep the tree, honour the excludes and quote hostile paths", () =>
    Effect.gen(function*() {
      const workdir = join(root, "w $(touch pwned) `id` 'q'")
      mkdirSync(join(workdir, "home/.codex/sessions/2026/11/27"), { recursive: true })
      mkdirSync(join(workdir, "home/.codex/packages"), { recursive: true })
      mkdirSync(join(workdir, "notes"), { recursive: true })
      writeFileSync(join(workdir, "home/.codex/sessions/2026/11/27/rollout-2026-11-27T10-00-00-0a1b2c3d-0000-4000-8000-000000000001.jsonl"), "{}\n")
      writeFileSync(join(workdir, "home/.codex/packages/big.bin"), "x".repeat(4096))
      writeFileSync(join(workdir, "home/.codex/state_5.sqlite"), "db")
      writeFileSync(join(workdir, "notes/a file; rm -rf ~.txt"), "kept\n")
      symlinkSync("notes", join(workdir, "link"))

      const doc = yield* captureSnapshot({
        workdir,
        processId: "remote-snap",
        endState: "done",
        sessionId: null,
        exclude: [],
        codec: "zstd"
      })
      const target = join(root, "restored $(id)")
      yield* restoreSnapshot(doc, target)

      assert.strictEqual(readFileSync(join(target, "notes/a file; rm -rf ~.txt"), "utf8"), "kept\n")
      assert.strictEqual(readlinkSync(join(target, "link")), "notes")
      assert.isTrue(lstatSync(join(target, "home/.codex/sessions/2026/11/27")).isDirectory(), "rollouts travel")
      assert.throws(() => lstatSync(join(target, "home/.codex/packages/big.bin")), /ENOENT/)
      assert.throws(() => lstatSync(join(target, "home/.codex/state_5.sqlite")), /ENOENT/)
      for (const dir of [root, homedir()]) assert.throws(() => lstatSync(join(dir, "pwned")), /ENOENT/, "no shell ever saw the path")
      assert.lengthOf(yield* SnapshotStore.use((store) => store.list("remote-snap")), 1)
    }).pipe(Effect.provide(services)), 120_000)
})
