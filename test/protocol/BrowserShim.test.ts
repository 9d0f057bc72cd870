import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { BROWSER_SHIM_NAMES, browserShimScript } from "../../src/protocol/BrowserShim.ts"
import { OptioLogEvent } from "../../src/protocol/OptioLogEvent.ts"
import { parseOptioLogLine } from "../../src/protocol/OptioLogParser.ts"

// A workdir name full of shell metacharacters: any unquoted use would run `touch pwned`.
const HOSTILE_DIR = "work dir $(touch pwned) `touch pwned` 'sq' \"dq\" ; touch pwned"
const URL_WITH_QUOTES = "http://127.0.0.1:1455/auth?state=\"a b\"&r='x'&c=$(touch pwned)&d=`touch pwned`&e=%s\\n\""

let root = ""
let counter = 0

beforeAll(() => {
  const cache = resolve(import.meta.dirname, "../../.cache")
  mkdirSync(cache, { recursive: true })
  root = mkdtempSync(join(cache, "browser-shim-"))
})

afterAll(() => {
  rmSync(root, { recursive: true, force: true })
})

// A fresh hostile workdir with the shim installed under every name; returns the paths.
const install = () => {
  const workdir = join(root, `${counter++}`, HOSTILE_DIR)
  const bin = join(workdir, "bin")
  mkdirSync(bin, { recursive: true })
  const log = join(workdir, "optio.log")
  for (const name of BROWSER_SHIM_NAMES) {
    writeFileSync(join(bin, name), browserShimScript(log))
    chmodSync(join(bin, name), 0o755)
  }
  return { workdir, bin, log }
}

const run = (file: string, args: ReadonlyArray<string>, cwd: string) =>
  execFileSync(file, [...args], { cwd, stdio: ["ignore", "pipe", "pipe"] })

const allFiles = (dir: string): Array<string> =>
  readdirSync(dir, { recursive: true, encoding: "utf8" })

describe("browserShimScript", () => {
  it("is a POSIX sh script that appends to the shell-quoted log path", () => {
    const script = browserShimScript("/w/my task/workdir/optio.log")
    assert.isTrue(script.startsWith("#!/bin/sh\n"))
    assert.include(script, ">> '/w/my task/workdir/optio.log'\n")
    assert.include(script, "printf 'BROWSER: \"%s\"\\n' \"$url\"")
    assert.isTrue(script.endsWith("exit 0\n"))
  })

  it("leaves a plain path bare, as shlex.quote does", () => {
    assert.include(browserShimScript("/w/task/workdir/optio.log"), ">> /w/task/workdir/optio.log\n")
  })

  it("installs under the five launcher names", () => {
    assert.deepStrictEqual(BROWSER_SHIM_NAMES, ["xdg-open", "gio", "open", "sensible-browser", "www-browser"])
  })

  it("writes exactly one BROWSER line for a URL full of quotes, injecting nothing", () => {
    const { bin, log, workdir } = install()
    run("sh", [join(bin, "xdg-open"), URL_WITH_QUOTES], workdir)

    const content = readFileSync(log, "utf8")
    assert.strictEqual(content, `BROWSER: "${URL_WITH_QUOTES}"\n`)
    assert.deepStrictEqual(parseOptioLogLine(content), OptioLogEvent.Browser({ url: URL_WITH_QUOTES }))
    assert.notInclude(allFiles(root).map((f) => f.split("/").pop()), "pwned")
  })

  it("runs directly through its shebang under every name, one line per call", () => {
    const { bin, log, workdir } = install()
    for (const name of BROWSER_SHIM_NAMES) {
      const args = name === "gio" ? ["open", `https://example.com/${name}`] : [`https://example.com/${name}`]
      run(join(bin, name), args, workdir)
    }
    const lines = readFileSync(log, "utf8").split("\n")
    assert.strictEqual(lines.pop(), "")
    assert.deepStrictEqual(
      lines.map(parseOptioLogLine),
      BROWSER_SHIM_NAMES.map((name) => OptioLogEvent.Browser({ url: `https://example.com/${name}` }))
    )
  })

  it("removes CR and LF so a URL can never forge a second keyword line", () => {
    const { bin, log, workdir } = install()
    run(join(bin, "xdg-open"), ["https://e.x/a\nDONE\r\nb"], workdir)
    const content = readFileSync(log, "utf8")
    assert.strictEqual(content, "BROWSER: \"https://e.x/aDONEb\"\n")
  })

  it("writes nothing when called without a URL", () => {
    const { bin, log, workdir } = install()
    run(join(bin, "xdg-open"), [], workdir)
    run(join(bin, "sensible-browser"), [""], workdir)
    assert.isFalse(existsSync(log))
  })
})
