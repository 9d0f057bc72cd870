/**
 * The login setup task end to end: the real `codex login --device-auth` in tmux behind the web
 * terminal, against the stand-in issuer. The URL and code reach progress and the terminal screen,
 * approving the code ends the login, the captured seed holds a refresh token live at the issuer,
 * and that seed, planted into a fresh CODEX_HOME, logs codex app-server in: a turn against the
 * ChatGPT-mode scripted model server succeeds with the seed's bearer token.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option, Redacted, Stream } from "effect"
import { spawn } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { startConversation } from "../support/services.ts"
import type { CodexConversation } from "../../src/appserver/CodexConversation.ts"
import { plantSeed } from "../../src/credentials/SeedEngine.ts"
import { tokenFingerprint } from "../../src/modelserver/ModelRequest.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"
import { chatgptCodexConfig, chatgptCodexConfigToml } from "../../src/modelserver/OfflineCodexConfig.ts"
import { ScriptedModelServer } from "../../src/modelserver/ScriptedModelServer.ts"
import { startStandInIssuer } from "../../src/modelserver/StandInIssuer.ts"
import { SeedStore } from "../../src/seeds/SeedStore.ts"
import { runCodexSession } from "../../src/session/CodexSession.ts"
import { LoginFailed, parseDeviceCodePrompt, runCodexLogin } from "../../src/session/LoginBody.ts"
import { TaskRecorder } from "../../src/task/TaskContext.ts"
import type { TerminalEndpoint } from "../../src/terminal/TtydSession.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { sharedCodexCacheDir } from "../support/codexCache.ts"
import { sessionServices } from "../support/sessionServices.ts"
import { codexBinary, offlineCodexDirs, repoRoot } from "../support/offlineCodex.ts"
import { processesMentioning } from "../support/processLeaks.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { openViewer } from "../terminal/viewer.ts"

const root = join(repoRoot, ".cache", "test", `e2e-login-${process.pid}`)
rmSync(root, { recursive: true, force: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))
let counter = 0
const freshWorkdir = () => {
  const dir = join(root, `login-${++counter}`)
  mkdirSync(dir, { recursive: true })
  return dir
}

const services = (processId: string) => sessionServices(processId)

const PROMPT_LINE = /^Open (\S+) and enter code (\S+)$/

interface AuthFile {
  readonly auth_mode: string
  readonly tokens: { readonly access_token: string; readonly refresh_token: string; readonly account_id: string }
}

describe("optio-codex login (device code) end to end", () => {
  it.live("shows the URL and code, captures a live seed on approval, and the seed logs codex in", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer({ autoApproveDeviceCodes: false, accountId: "acct-login-e2e" })
      const workdir = freshWorkdir()
      const saved: Array<string> = []
      const login = yield* runCodexLogin({ consumerInstructions: "" }, {
        issuer: issuer.url,
        workdir,
        poolKey: "e2e-pool",
        stopGracePeriod: "2 seconds",
        hooks: { onSeedSaved: (seedId) => Effect.sync(() => void saved.push(seedId)) }
      }).pipe(Effect.forkChild)

      // 1. The prompt reaches progress, with the issuer's URL and the code it handed out.
      const recorder = yield* TaskRecorder
      const [, url, code] = yield* waitUntil(
        "the device-code prompt in progress",
        recorder.current.pipe(Effect.map((record) =>
          record.progress.map((entry) => PROMPT_LINE.exec(entry.message ?? "")).find((match) => match !== null) ?? undefined
        )),
        "60 seconds"
      )
      assert.strictEqual(url, issuer.verificationUrl)
      assert.deepStrictEqual(yield* issuer.deviceCodes, [{ userCode: String(code), approved: false }])
      const record = yield* recorder.current
      assert.deepStrictEqual(record.browserOpenRequests, [issuer.verificationUrl])

      // 2. The same prompt is on the web terminal's screen, as an operator would see it.
      const upstream = record.widgetUpstream
      assert.isDefined(upstream)
      const password = upstream?.innerAuth?.kind === "basic" ? Redacted.value(upstream.innerAuth.password) : ""
      const endpoint = { url: upstream?.url ?? "" } as TerminalEndpoint
      const viewer = yield* openViewer(endpoint, {
        headers: { authorization: `Basic ${Buffer.from(`optio:${password}`).toString("base64")}` }
      })
      const screen = yield* waitUntil(
        "the code on the web terminal",
        Effect.sync(() => viewer.screen().includes(String(code)) ? viewer.screen() : undefined),
        "30 seconds"
      )
      assert.include(screen, issuer.verificationUrl)
      assert.deepStrictEqual(parseDeviceCodePrompt(screen), Option.some({ verificationUrl: issuer.verificationUrl, userCode: String(code) }))

      // 3. The operator approves on the verification page; the login ends with a captured seed.
      const approved = yield* Effect.promise(() =>
        fetch(issuer.verificationUrl, { method: "POST", body: new URLSearchParams({ user_code: String(code) }) }).then((r) => r.status)
      )
      assert.strictEqual(approved, 200)
      const result = yield* Fiber.join(login)
      assert.deepStrictEqual(saved, [result.seedId])
      assert.deepStrictEqual(result.prompt, Option.some({ verificationUrl: issuer.verificationUrl, userCode: String(code) }))
      const seeds = yield* SeedStore
      const stored = yield* seeds.get(result.seedId)
      assert.strictEqual(Option.getOrUndefined(stored)?.poolKey, "e2e-pool")
      const finalRecord = yield* recorder.current
      assert.isTrue(finalRecord.progress.some((entry) => entry.message === `Logged in: seed ${result.seedId}`))
      assert.isUndefined(finalRecord.widgetUpstream, "the terminal is withdrawn at the end")
      assert.deepStrictEqual(processesMentioning(workdir), [])

      // 4. The seed's refresh token is the live head of the lineage the login started.
      const [grant] = yield* issuer.tokenRequests
      assert.deepInclude(grant, { grantType: "authorization_code", status: 200 })
      const dirs = yield* offlineCodexDirs("login-seed-use", { baseUrl: "http://127.0.0.1:9/v1" })
      yield* plantSeed(result.seedId, dirs.codexHome)
      const planted = JSON.parse(readFileSync(join(dirs.codexHome, "auth.json"), "utf8")) as AuthFile
      assert.strictEqual(planted.auth_mode, "chatgpt")
      assert.strictEqual(planted.tokens.refresh_token, grant?.issuedRefreshToken)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [planted.tokens.refresh_token])
      assert.strictEqual(planted.tokens.account_id, "acct-login-e2e")

      // 5. A second task with the planted seed: codex app-server is logged in (no env_key
      // provider, only the seed's ChatGPT tokens) and a turn succeeds with the seed's bearer.
      const server = yield* ScriptedModelServer.start([ModelScript.text("Logged in via the seed.")])
      writeFileSync(join(dirs.codexHome, "config.toml"), chatgptCodexConfigToml({ baseUrl: server.baseUrl }))
      const { OPTIO_OFFLINE_API_KEY: _unused, ...envWithoutKey } = dirs.env
      const conversation = yield* startConversation({
        launchPath: codexBinary,
        cwd: dirs.workdir,
        env: { ...envWithoutKey, CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl },
        sandbox: "workspace-write",
        permissionGate: false
      })
      const turns = yield* conversation.subscribe
      const answered = yield* turns.pipe(
        Stream.filter((event) => event["method"] === "turn/completed"),
        Stream.runHead,
        Effect.forkScoped
      )
      yield* conversation.sendTurn("hi")
      yield* Fiber.join(answered).pipe(Effect.timeout("60 seconds"))
      const calls = (yield* server.requests).filter((request) => request.path === "/v1/responses")
      assert.lengthOf(calls, 1)
      assert.strictEqual(calls[0]?.answer._tag, "Step")
      assert.strictEqual(calls[0]?.bearerFingerprint, tokenFingerprint(planted.tokens.access_token))
      assert.strictEqual(calls[0]?.headers["chatgpt-account-id"], "acct-login-e2e")
      yield* conversation.close

      // 6. The same through a seeded session (seedId): the session leases and plants the seed,
      // the task's overrides pick the ChatGPT-mode provider, and a turn goes out with its bearer.
      const sessionServer = yield* ScriptedModelServer.start([ModelScript.text("Seeded session answers.")])
      const { model: _model, ...providerOverrides } = chatgptCodexConfig({ baseUrl: sessionServer.baseUrl })
      const live = yield* Deferred.make<CodexConversation>()
      const sessionWorkdir = freshWorkdir()
      const session = yield* runCodexSession({
        consumerInstructions: "seeded by a login",
        mode: "conversation",
        model: "scripted-model",
        seedId: result.seedId,
        configOverrides: providerOverrides,
        env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl }
      }, { workdir: sessionWorkdir, stopGracePeriod: "2 seconds", onConversation: (c) => Deferred.succeed(live, c) }).pipe(Effect.forkChild)
      const seeded = yield* Deferred.await(live).pipe(Effect.timeout("60 seconds"))
      const seededEvents = yield* seeded.subscribe
      const seededTurn = yield* seededEvents.pipe(
        Stream.filter((event) => event["method"] === "turn/completed"),
        Stream.runHead,
        Effect.forkScoped
      )
      yield* seeded.sendTurn("hello again")
      yield* Fiber.join(seededTurn).pipe(Effect.timeout("60 seconds"))
      const sessionCalls = (yield* sessionServer.requests).filter((request) => request.path === "/v1/responses")
      assert.deepStrictEqual(sessionCalls.map((request) => request.answer._tag), ["Step"])
      assert.strictEqual(sessionCalls[0]?.bearerFingerprint, tokenFingerprint(planted.tokens.access_token))
      yield* Fiber.interrupt(session)
      assert.deepStrictEqual(yield* issuer.liveRefreshTokens, [planted.tokens.refresh_token], "nothing rotated: the lineage is intact")
      assert.deepStrictEqual(processesMentioning(sessionWorkdir), [])
    }).pipe(Effect.scoped, Effect.provide(services("login-e2e"))), 120_000)

  it.live("a login that fails (unreachable issuer) is a LoginFailed and stores no seed", () =>
    Effect.gen(function*() {
      const workdir = freshWorkdir()
      const exit = yield* runCodexLogin({ consumerInstructions: "" }, {
        // Nothing listens on the discard port.
        issuer: "http://127.0.0.1:9",
        workdir,
        stopGracePeriod: "2 seconds"
      }).pipe(Effect.timeout("90 seconds"), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause : undefined
      const failure = error === undefined ? undefined : (yield* Effect.flip(Effect.failCause(error)))
      assert.instanceOf(failure, LoginFailed)
      assert.strictEqual((failure as LoginFailed).reason, "exited")
      assert.notStrictEqual((failure as LoginFailed).exitCode, 0)
      const seeds = yield* SeedStore
      assert.deepStrictEqual(yield* seeds.list(), [])
      assert.deepStrictEqual(processesMentioning(workdir), [])
    }).pipe(Effect.scoped, Effect.provide(services("login-fail"))), 120_000)
})

describe("the optio-codex login command", () => {
  it.live("logs in at --issuer, prints only the seed id on stdout, and stores the seed in the embedded store", () =>
    Effect.gen(function*() {
      const issuer = yield* startStandInIssuer()
      const dir = freshWorkdir()
      const dataDir = join(dir, "data")
      const run = (args: ReadonlyArray<string>) =>
        Effect.callback<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resume) => {
          const child = spawn(process.execPath, [join(repoRoot, "bin", "optio-codex.js"), ...args], {
            env: {
              ...process.env,
              OPTIO_CODEX_ISSUER: issuer.url,
              OPTIO_CODEX_TASK_ROOT: join(dir, "tasks"),
              OPTIO_CODEX_CACHE_DIR: sharedCodexCacheDir
            },
            stdio: ["ignore", "pipe", "pipe"]
          })
          let stdout = ""
          let stderr = ""
          child.stdout.on("data", (chunk: Buffer) => void (stdout += chunk.toString()))
          child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
          child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
          return Effect.sync(() => void child.kill("SIGKILL"))
        })
      const login = yield* run(["login", "--pool", "cli-pool", "--data-dir", dataDir]).pipe(Effect.timeout("90 seconds"))
      assert.strictEqual(login.code, 0, login.stderr)
      const seedId = login.stdout.trim()
      assert.match(seedId, /^[0-9a-f]{24}$/)
      assert.match(login.stderr, new RegExp(`Open ${issuer.verificationUrl} and enter code [A-Z0-9]{4}-[A-Z0-9]{4}`))
      assert.include(login.stderr, "open in a browser: http://127.0.0.1:")
      const listed = yield* run(["seeds", "list", "--json", "--data-dir", dataDir]).pipe(Effect.timeout("30 seconds"))
      assert.strictEqual(listed.code, 0, listed.stderr)
      const seeds = JSON.parse(listed.stdout) as ReadonlyArray<{ readonly seedId: string; readonly poolKey: string | null }>
      assert.deepStrictEqual(seeds.map((seed) => [seed.seedId, seed.poolKey]), [[seedId, "cli-pool"]])
      assert.lengthOf(yield* issuer.liveRefreshTokens, 1)
    }), 120_000)
})

describe("parseDeviceCodePrompt", () => {
  it.effect("reads codex 0.169.0's prompt, colours and all, and nothing from a partial screen", () =>
    Effect.sync(() => {
      const screen = [
        "Welcome to Codex [v\u001b[90m0.169.0\u001b[0m]",
        "Follow these steps to sign in with ChatGPT using device code authorization:",
        "1. Open this link in your browser and sign in to your account",
        "   \u001b[94mhttps://auth.openai.com/codex/device\u001b[0m",
        "2. Enter this one-time code \u001b[90m(expires in 15 minutes)\u001b[0m",
        "   \u001b[94mVH95-EQWU\u001b[0m"
      ].join("\n")
      assert.deepStrictEqual(parseDeviceCodePrompt(screen), Option.some({ verificationUrl: "https://auth.openai.com/codex/device", userCode: "VH95-EQWU" }))
      assert.isTrue(Option.isNone(parseDeviceCodePrompt(screen.split("\n").slice(0, 4).join("\n"))))
    }))
})
