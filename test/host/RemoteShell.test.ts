/**
 * RemoteShell: the launch wrapper run by a local `sh` (no SSH), the marker scanner and the
 * remote glob matcher.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { globRegExp } from "../../src/host/ssh/RemoteFiles.ts"
import { invalidCommand, launchScript, MarkerScanner, remoteCommandLine } from "../../src/host/ssh/RemoteShell.ts"

/** Runs a remote command line the way sshd does (`$SHELL -c <line>`), with sh as the login shell. */
const viaLoginShell = (line: string, env: Record<string, string>) => {
  const result = spawnSync("sh", ["-c", line], { env, encoding: "utf8" })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe("RemoteShell", () => {
  it("launches with env removed by glob, overrides exported, and the pid reported before exec", () => {
    const script = launchScript({
      argv: ["sh", "-c", "printf '%s|%s|%s|%s' \"$$\" \"${KEEP_ME-unset}\" \"${DROP_ME-unset}\" \"$NEW\""],
      env: { NEW: "v'$(x)`y`" },
      envRemove: ["DROP_*", "[!K]*_GONE"]
    }, { nonce: "n0nce", discardStdout: false })
    const result = viaLoginShell(remoteCommandLine(script), { PATH: process.env["PATH"] ?? "/usr/bin:/bin", KEEP_ME: "k", DROP_ME: "d", X_GONE: "x" })
    const [pid, keep, drop, added] = result.stdout.split("|")
    assert.strictEqual(result.stderr, `\nn0nce ready ${pid}\n`)
    assert.deepStrictEqual([keep, drop, added], ["k", "unset", "v'$(x)`y`"])
  })

  it("reports a missing cwd or program instead of running anything", () => {
    const missing = viaLoginShell(remoteCommandLine(launchScript({ argv: ["/no/such/program"] }, { nonce: "n", discardStdout: false })), {})
    assert.strictEqual(missing.status, 127)
    assert.include(missing.stderr, "n notfound program")
    const cwd = viaLoginShell(remoteCommandLine(launchScript({ argv: ["true"], cwd: "/no/such/dir" }, { nonce: "n", discardStdout: false })), { PATH: "/usr/bin:/bin" })
    assert.include(cwd.stderr, "n notfound cwd")
  })

  it("refuses what a shell cannot carry", () => {
    assert.isUndefined(invalidCommand({ argv: ["echo", "fine"], env: { OK_1: "x" } }))
    assert.isDefined(invalidCommand({ argv: ["echo", "a\u0000"] }))
    assert.isDefined(invalidCommand({ argv: ["echo"], env: { "NOT-OK": "x" } }))
    assert.isDefined(invalidCommand({ argv: ["-e"] }))
  })

  it("finds the marker across chunks, after login-shell noise, and passes the rest through", () => {
    const scanner = new MarkerScanner("abc")
    const bytes = Buffer.from("motd noise\n\nabc ready 42\nprogram says hi")
    const out: Array<string> = []
    for (let i = 0; i < bytes.length; i += 5) out.push(scanner.push(bytes.subarray(i, i + 5)).toString())
    assert.deepStrictEqual(scanner.marker, { kind: "ready", pid: 42 })
    assert.strictEqual(out.join(""), "program says hi")
    assert.strictEqual(scanner.preambleText(), "motd noise")
  })

  it("matches globs like the local host: ** spans directories, wildcards skip dotfiles", () => {
    const matches = (pattern: string, path: string) => globRegExp(pattern.split("/")).test(path)
    assert.isTrue(matches("s/**/rollout-*.jsonl", "s/2026/01/rollout-b.jsonl"))
    assert.isTrue(matches("s/**/rollout-*.jsonl", "s/rollout-a.jsonl"))
    assert.isFalse(matches("s/**/rollout-*.jsonl", "s/.git/rollout-a.jsonl"))
    assert.isFalse(matches("*.txt", ".hidden.txt"))
    assert.isTrue(matches(".*", ".hidden.txt"))
    assert.isTrue(matches("file-[0-9]?.log", "file-1a.log"))
    assert.isFalse(matches("file-[!0-9].log", "file-1.log"))
    assert.isFalse(matches("*", "a/b"))
  })
})
