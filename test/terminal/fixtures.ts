/**
 * Fixtures of the terminal tests: a scratch tree under .cache/test with small sh programs that
 * stand in for the codex TUI, short tmux socket paths, and a few tmux probes.
 */
import { Effect } from "effect"
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Host } from "../../src/host/Host.ts"

export const root = join(process.cwd(), ".cache", "test", `terminal-${process.pid}-${Math.random().toString(36).slice(2, 8)}`)

/** Creates the scratch tree and the fake programs; returns their paths. */
export const makeFixtures = (name: string) => {
  const dir = join(root, name)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const script = (file: string, body: string) => {
    const path = join(dir, file)
    writeFileSync(path, `#!/bin/sh\n${body}`)
    chmodSync(path, 0o755)
    return path
  }
  return {
    dir,
    /** Banner, then `echo: <line>` per input line; `quit` exits with $1; lines are logged to $2. */
    fakeTui: script("fake-tui.sh", [
      "code=\"${1:-0}\"",
      "log=\"${2:-}\"",
      "printf 'FAKE-TUI ready\\n'",
      "while IFS= read -r line; do",
      "  if [ -n \"$log\" ]; then printf '%s\\n' \"$line\" >> \"$log\"; fi",
      "  if [ \"$line\" = quit ]; then exit \"$code\"; fi",
      "  printf 'echo: %s\\n' \"$line\"",
      "done",
      "exit \"$code\"",
      ""
    ].join("\n")),
    /** Writes its argv (NUL-separated) and the HOSTILE / SECRET_TOKEN variables to files at $1.*. */
    dump: script("dump.sh", [
      "out=\"$1\"",
      "shift",
      "for a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$out.argv\"",
      "printf '%s' \"$HOSTILE\" > \"$out.env\"",
      "printf '%s' \"${SECRET_TOKEN-unset}\" > \"$out.secret\"",
      "echo dumped",
      ""
    ].join("\n")),
    /** Starts a background child, records its pid in $1, and waits. */
    tree: script("tree.sh", [
      "sleep 1000 &",
      "printf '%s' \"$!\" > \"$1\"",
      "echo tree-ready",
      "wait",
      ""
    ].join("\n")),
    /** Ignores SIGTERM (inherited by its children) and loops forever. */
    stubborn: script("stubborn.sh", [
      "trap '' TERM",
      "echo stubborn-ready",
      "while :; do sleep 0.2; done",
      ""
    ].join("\n")),
    script
  }
}

let sockets = 0

/** A short, unique tmux socket path (unix socket paths are limited to ~100 bytes). */
export const socketPath = () => `/tmp/optio-test-${process.pid}-${++sockets}.sock`

/** Runs a tmux command on a socket and returns its trimmed stdout. */
export const tmuxQuery = (socket: string, args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const host = yield* Host
    const result = yield* host.run({ argv: ["tmux", "-u", "-S", socket, ...args], envRemove: ["TMUX", "TMUX_PANE"] })
    return result.stdout.trim()
  })

/** Removes the whole scratch tree (call from afterAll). */
export const removeFixtures = () => rmSync(root, { recursive: true, force: true })
