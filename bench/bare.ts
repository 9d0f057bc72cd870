/**
 * The baselines' codex, driven without the library: a fresh CODEX_HOME holding the same
 * config.toml a library task gets, and a minimal JSON-RPC client for `codex app-server` over
 * stdio (one JSON object per line), written directly on node:child_process.
 */
import { spawn } from "node:child_process"
import type { ChildProcessWithoutNullStreams } from "node:child_process"
import { cpSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { Effect, Result } from "effect"
import { DEMO_MODEL, demoTaskSettings } from "../src/cli/OfflineDemo.ts"
import { makeProcessTable, signalAll, treeOf } from "../src/host/ProcessTree.ts"
import { offlineCodexConfig, offlineCodexEnv } from "../src/modelserver/OfflineCodexConfig.ts"
import { renderCodexConfig } from "../src/workdir/CodexConfigToml.ts"
import { stringify } from "smol-toml"

/** A codex home with its workdir, and the environment codex runs with. */
export interface BareHome {
  readonly root: string
  readonly home: string
  readonly codexHome: string
  readonly workdir: string
  readonly env: Record<string, string>
}

/**
 * Creates HOME, CODEX_HOME, TMPDIR and a workdir under `root` and writes the config.toml a
 * library task would get for the scripted server at `baseUrl` (same renderer, same overrides).
 */
export const freshHome = (root: string, baseUrl: string): BareHome => {
  const home = join(root, "home")
  const codexHome = join(home, ".codex")
  const workdir = join(root, "work")
  const tmp = join(root, "tmp")
  for (const dir of [codexHome, workdir, tmp]) mkdirSync(dir, { recursive: true })
  const settings = demoTaskSettings(baseUrl)
  const rendered = renderCodexConfig({ workdir, model: DEMO_MODEL, overrides: settings.configOverrides })
  if (Result.isFailure(rendered)) throw rendered.failure
  writeFileSync(join(codexHome, "config.toml"), rendered.success, { mode: 0o600 })
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value
  Object.assign(env, {
    HOME: home,
    CODEX_HOME: codexHome,
    TMPDIR: tmp,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
    ...settings.env
  })
  return { root, home, codexHome, workdir, env }
}

/**
 * The minimal bare client's home (issue 19's baseline): a clean environment (PATH, the home
 * variables and the provider's key only, nothing of the worker's) and a config.toml with only
 * what reaching the scripted server needs — the model, its provider, and no update check.
 */
export const minimalHome = (root: string, baseUrl: string): BareHome => {
  const home = join(root, "home")
  const codexHome = join(home, ".codex")
  const workdir = join(root, "work")
  const tmp = join(root, "tmp")
  for (const dir of [codexHome, workdir, tmp]) mkdirSync(dir, { recursive: true })
  const full = offlineCodexConfig({ baseUrl, model: DEMO_MODEL })
  const minimal = { model: full["model"], model_provider: full["model_provider"], model_providers: full["model_providers"], check_for_update_on_startup: false }
  writeFileSync(join(codexHome, "config.toml"), stringify(minimal), { mode: 0o600 })
  const env: Record<string, string> = {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: home,
    CODEX_HOME: codexHome,
    TMPDIR: tmp,
    ...offlineCodexEnv()
  }
  return { root, home, codexHome, workdir, env }
}

/**
 * Like {@link freshHome}, but CODEX_HOME starts as a copy of `template` (a home codex already
 * initialized once) without its `installation_id`, so codex gives this home an id of its own.
 * The config.toml is this home's own (its workdir is the one trusted).
 */
export const homeFromTemplate = (root: string, baseUrl: string, template: string): BareHome => {
  const home = freshHome(root, baseUrl)
  cpSync(template, home.codexHome, {
    recursive: true,
    filter: (source) => !source.endsWith("/installation_id") && !source.endsWith("/config.toml")
  })
  return home
}

/** A JSON-RPC notification from codex. */
export interface Notification {
  readonly method: string
  readonly params: unknown
}

/** A running `codex app-server` and the few calls a benchmark makes. */
export interface BareAppServer {
  readonly pid: number
  /** When the process had been spawned (ms, `now()` clock), set by `startAppServer`. */
  readonly spawnedAt: number
  readonly request: (method: string, params: unknown) => Promise<unknown>
  readonly notify: (method: string) => void
  /** Resolves with the first notification from now on that satisfies `accept`. */
  readonly next: (accept: (notification: Notification) => boolean) => Promise<Notification>
  /** Closes stdin, waits for the exit, then kills anything left of its process tree. */
  readonly stop: () => Promise<void>
}

/** Spawns `codex app-server` for `home` (cwd = its workdir); resolves once the process exists. */
export const startAppServer = (
  binary: string,
  home: BareHome,
  clock: () => number,
  args: ReadonlyArray<string> = []
): Promise<BareAppServer> =>
  new Promise((resolve, reject) => {
    const child: ChildProcessWithoutNullStreams = spawn(binary, ["app-server", ...args], { cwd: home.workdir, env: home.env })
    const pending = new Map<number, { readonly resolve: (value: unknown) => void; readonly reject: (error: Error) => void }>()
    const waiters = new Set<{ readonly accept: (n: Notification) => boolean; readonly resolve: (n: Notification) => void }>()
    let nextId = 1
    child.stderr.resume()
    createInterface({ input: child.stdout }).on("line", (line) => {
      const message: unknown = JSON.parse(line)
      if (typeof message !== "object" || message === null) return
      const id = "id" in message ? message.id : undefined
      if (typeof id === "number" && !("method" in message)) {
        const waiter = pending.get(id)
        pending.delete(id)
        if ("error" in message) waiter?.reject(new Error(`codex answered ${id} with ${JSON.stringify(message.error)}`))
        else waiter?.resolve("result" in message ? message.result : undefined)
        return
      }
      if (id !== undefined || !("method" in message) || typeof message.method !== "string") return
      const notification: Notification = { method: message.method, params: "params" in message ? message.params : undefined }
      for (const waiter of waiters) {
        if (!waiter.accept(notification)) continue
        waiters.delete(waiter)
        waiter.resolve(notification)
      }
    })
    const exited = new Promise<void>((done) => child.once("exit", () => done()))
    child.once("exit", () => {
      for (const waiter of pending.values()) waiter.reject(new Error("codex app-server exited"))
      pending.clear()
    })
    child.once("error", reject)
    child.once("spawn", () => {
      const spawnedAt = clock()
      const pid = child.pid ?? -1
      resolve({
        pid,
        spawnedAt,
        request: (method, params) =>
          new Promise((answer, fail) => {
            const id = nextId++
            pending.set(id, { resolve: answer, reject: fail })
            child.stdin.write(`${JSON.stringify({ id, method, params })}\n`)
          }),
        notify: (method) => {
          child.stdin.write(`${JSON.stringify({ method })}\n`)
        },
        next: (accept) => new Promise((found) => waiters.add({ accept, resolve: found })),
        stop: async () => {
          const processes = await Effect.runPromise(makeProcessTable)
          const tree = treeOf(await Effect.runPromise(processes.read), pid)
          child.stdin.end()
          const timer = setTimeout(() => child.kill("SIGKILL"), 2000)
          await exited
          clearTimeout(timer)
          signalAll(await Effect.runPromise(processes.alive(tree)), "SIGKILL")
        }
      })
    })
  })

/** `initialize` then `initialized`, as any client must. */
export const initialize = async (server: BareAppServer): Promise<void> => {
  await server.request("initialize", { clientInfo: { name: "bench_bare", title: "Bench", version: "0.1.0" } })
  server.notify("initialized")
}

/** `thread/start` in the home's workdir with the library's defaults; returns the thread id. */
export const startThread = async (server: BareAppServer, home: BareHome): Promise<string> => {
  const result = await server.request("thread/start", {
    cwd: home.workdir,
    sandbox: "workspace-write",
    approvalPolicy: "never",
    model: DEMO_MODEL
  })
  const thread = typeof result === "object" && result !== null && "thread" in result ? result.thread : undefined
  const id = typeof thread === "object" && thread !== null && "id" in thread ? thread.id : undefined
  if (typeof id !== "string") throw new Error(`thread/start answered ${JSON.stringify(result)}`)
  return id
}

/**
 * One user turn: `turn/start`, resolved when codex reports `turn/completed` for the thread, with
 * the time (`clock`) codex acknowledged the turn.
 */
export const runTurn = async (server: BareAppServer, threadId: string, text: string, clock: () => number): Promise<number> => {
  const completed = server.next((n) =>
    n.method === "turn/completed" && typeof n.params === "object" && n.params !== null &&
    "threadId" in n.params && n.params.threadId === threadId
  )
  await server.request("turn/start", { threadId, input: [{ type: "text", text }] })
  const acknowledged = clock()
  await completed
  return acknowledged
}
