/**
 * Runs the pinned codex binary offline against a scripted model server: a fresh sandbox of
 * directories under .cache/ (never /tmp: codex refuses its helper binaries there) and a
 * `codex exec` runner that kills codex if the test is interrupted.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { offlineCodexConfigToml, offlineCodexEnv } from "../../src/modelserver/OfflineCodexConfig.ts"
import type { OfflineCodexConfigOptions } from "../../src/modelserver/OfflineCodexConfig.ts"

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

export const codexBinary = join(
  repoRoot,
  "node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
)

/** Directories of one offline codex run. */
export interface OfflineCodexDirs {
  readonly root: string
  readonly home: string
  readonly codexHome: string
  readonly tmp: string
  readonly workdir: string
  /** Environment for codex: HOME, CODEX_HOME, TMPDIR and XDG dirs inside `root`, plus the API key. */
  readonly env: Readonly<Record<string, string>>
}

/** Creates fresh dirs under .cache/test-runs/ with config.toml written; removed with the scope. */
export const offlineCodexDirs = (name: string, config: OfflineCodexConfigOptions) =>
  Effect.acquireRelease(
    Effect.sync((): OfflineCodexDirs => {
      const root = join(repoRoot, ".cache", "test-runs", `${name}-${randomUUID().slice(0, 8)}`)
      const home = join(root, "home")
      const codexHome = join(home, ".codex")
      const tmp = join(root, "tmp")
      const workdir = join(root, "work")
      for (const dir of [codexHome, tmp, workdir]) mkdirSync(dir, { recursive: true })
      writeFileSync(join(codexHome, "config.toml"), offlineCodexConfigToml(config))
      const env = {
        PATH: "/usr/local/bin:/usr/bin:/bin",
        LANG: "C.UTF-8",
        HOME: home,
        CODEX_HOME: codexHome,
        TMPDIR: tmp,
        XDG_CONFIG_HOME: join(home, ".config"),
        XDG_DATA_HOME: join(home, ".local", "share"),
        XDG_CACHE_HOME: join(home, ".cache"),
        XDG_STATE_HOME: join(home, ".local", "state"),
        ...offlineCodexEnv(config.envKey === undefined ? undefined : { envKey: config.envKey })
      }
      return { root, home, codexHome, tmp, workdir, env }
    }),
    (dirs) => Effect.sync(() => rmSync(dirs.root, { recursive: true, force: true }))
  )

/** What a finished codex process left behind. */
export interface CodexExit {
  readonly code: number | null
  readonly signal: string | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `codex exec ARGS` in the workdir with stdin closed; interruption kills codex. */
export const codexExec = (dirs: OfflineCodexDirs, args: ReadonlyArray<string>) =>
  Effect.callback<CodexExit>((resume) => {
    const child = spawn(codexBinary, ["exec", ...args], {
      cwd: dirs.workdir,
      env: dirs.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk))
    child.on("error", (error) => resume(Effect.die(error)))
    child.on("close", (code, signal) =>
      resume(Effect.succeed({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8")
      })))
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })
