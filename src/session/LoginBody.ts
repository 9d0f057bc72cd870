/**
 * LoginBody: the login setup task — codex's device-code login (`codex login --device-auth`) in
 * the task's tmux session, served as a web terminal, ending in a captured seed.
 *
 * The task is prepared like a TUI task (PrepareTask: task dirs, codex link, isolated HOME, launch
 * env). The pane is watched for the verification URL and the one-time code, which are reported
 * through TaskContext progress (and offered to the operator's browser), so an operator can log in
 * without looking at the terminal. When codex exits 0 with a usable `auth.json`, the task counts
 * as launched and the session's seed capture (PrepareTask's teardown, `onSeedSaved`) stores it as
 * a new seed after tmux is gone; any other ending is a {@link LoginFailed} and stores nothing.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Option, Ref, Schedule, Schema } from "effect"
import { decodeWithDeploymentDefaults } from "../config/DeploymentDefaults.ts"
import { reportDeploymentNotes, withDeploymentTaskRoot } from "./CodexSession.ts"
import type { CodexTaskHooks } from "./Hooks.ts"
import { readCredentials } from "../credentials/SeedEngine.ts"
import { classifyConnectionLoss, Host } from "../host/Host.ts"
import { SeedStore } from "../seeds/SeedStore.ts"
import { TaskContext } from "../task/TaskContext.ts"
import { Tmux } from "../terminal/Tmux.ts"
import type { TmuxSession } from "../terminal/TmuxSession.ts"
import { TtydSession } from "../terminal/TtydSession.ts"
import { recordLaunch } from "./Leftovers.ts"
import { prepareTask } from "./PrepareTask.ts"
import type { PreparedTask, SessionOptions } from "./PrepareTask.ts"
import { checkSeedHooks } from "./SessionSeed.ts"
import { concludeSession, makeTeardownLog } from "./Teardown.ts"

/**
 * The login did not produce a seed: codex's login exited non-zero (a refused or expired code, an
 * unreachable issuer), left no usable `auth.json`, or the capture stored nothing.
 * @category errors
 * @since 0.1.0
 */
export class LoginFailed extends Schema.TaggedError<LoginFailed>()("LoginFailed", {
  reason: Schema.Literals(["exited", "no-credentials", "no-seed"]),
  /** codex login's exit status, when it exited. */
  exitCode: Schema.optionalKey(Schema.Number),
  /** The last lines of the terminal, for the operator. */
  screenTail: Schema.String
}) {
  override get message(): string {
    const what = this.reason === "exited"
      ? `codex login exited with status ${this.exitCode ?? "unknown"}`
      : this.reason === "no-credentials"
      ? "codex login exited 0 but left no usable auth.json"
      : "the login's credentials could not be captured as a seed"
    return `login failed: ${what}${this.screenTail === "" ? "" : `; terminal:\n${this.screenTail}`}`
  }
}

/**
 * What the device-code prompt asks of the operator.
 * @category models
 * @since 0.1.0
 */
export interface DeviceCodePrompt {
  readonly verificationUrl: string
  readonly userCode: string
}

/**
 * Options of {@link runCodexLogin}, beside the usual session options.
 * @category models
 * @since 0.1.0
 */
export interface LoginOptions extends SessionOptions {
  /**
   * An OAuth issuer other than OpenAI's (`codex login --experimental_issuer`), e.g. a stand-in
   * issuer in tests; the CLI takes it from `--issuer` or `OPTIO_CODEX_ISSUER`.
   */
  readonly issuer?: string | undefined
  /** Pool the captured seed joins. */
  readonly poolKey?: string | undefined
  /** Told about the prompt once the URL and code are on screen. */
  readonly onPrompt?: ((prompt: DeviceCodePrompt) => Effect.Effect<void>) | undefined
}

/**
 * The outcome of a successful login.
 * @category models
 * @since 0.1.0
 */
export interface LoginResult {
  readonly seedId: string
  /** The prompt codex showed; none when it was never read off the screen (a login faster than a poll). */
  readonly prompt: Option.Option<DeviceCodePrompt>
}

/**
 * Finds codex's device-code prompt in a captured screen: the URL after "Open this link" and the
 * code after "one-time code".
 * @category constructors
 * @since 0.1.0
 */
export const parseDeviceCodePrompt = (screen: string): Option.Option<DeviceCodePrompt> => {
  const text = stripAnsi(screen)
  const linkAt = text.search(/Open this link/i)
  const codeAt = text.search(/one-time code/i)
  if (linkAt < 0 || codeAt < 0) return Option.none()
  const url = /https?:\/\/[^\s'"<>]+/.exec(text.slice(linkAt))?.[0]
  // The first line after the label is "(expires in N minutes)": the code is the next token of
  // capitals and digits with a dash.
  const code = /\b([A-Z0-9]{4,}(?:-[A-Z0-9]{4,})+)\b/.exec(text.slice(codeAt))?.[1]
  return url === undefined || code === undefined ? Option.none() : Option.some({ verificationUrl: url, userCode: code })
}

/**
 * Runs a login setup task: prepares it like a TUI task, runs `codex login --device-auth` in tmux
 * behind the web terminal, reports the URL and code, and returns the id of the captured seed.
 * Needs a SeedStore (the seed is stored through it). `input` is a CodexTaskConfig (its
 * `consumerInstructions` may be empty).
 * @category constructors
 * @since 0.1.0
 */
export const runCodexLogin = (input: unknown, options: LoginOptions = {}) =>
  Effect.gen(function*() {
    // A login task is never resumed: a snapshot would hold a second copy of the new lineage.
    const decoded = yield* decodeWithDeploymentDefaults(input)
    const withRoot = withDeploymentTaskRoot(options, decoded)
    yield* reportDeploymentNotes(withRoot.notes)
    options = withRoot.options
    const config = { ...decoded.config, supportsResume: false }
    const captured = yield* Ref.make(Option.none<string>())
    const seeds = yield* SeedStore
    const userHook = options.hooks?.onSeedSaved
    // Capture is on only with onSeedSaved; the pool is assigned here because PrepareTask's
    // capture does not take one.
    const hooks: CodexTaskHooks = {
      ...options.hooks,
      onSeedSaved: (seedId, info) =>
        Effect.gen(function*() {
          yield* Ref.set(captured, Option.some(seedId))
          if (options.poolKey !== undefined) yield* seeds.assignToPool(seedId, options.poolKey)
          if (userHook !== undefined) yield* userHook(seedId, info)
        })
    }
    yield* checkSeedHooks(config, hooks)
    const teardown = yield* makeTeardownLog
    const session = Effect.gen(function*() {
      const prepared = yield* prepareTask(config, { ...options, hooks }, teardown)
      const host = yield* Host
      return yield* loginBody(prepared, options).pipe(
        Effect.raceFirst(host.connectionLost),
        Effect.catchTag("HostError", (error) => Effect.fail(classifyConnectionLoss(error)))
      )
    }).pipe(Effect.scoped)
    const prompt = yield* concludeSession(yield* Effect.exit(session), teardown)
    const seedId = yield* Ref.get(captured)
    if (Option.isNone(seedId)) return yield* new LoginFailed({ reason: "no-seed", screenTail: "" })
    const task = yield* TaskContext
    yield* task.reportProgress(100, `Logged in: seed ${seedId.value}`)
    const result: LoginResult = { seedId: seedId.value, prompt }
    return result
  }).pipe(Effect.withSpan("CodexLogin.run"))

const POLL = Duration.millis(250)
const SCROLLBACK_LINES = 200
const SCREEN_TAIL_LINES = 30

const loginBody = Effect.fnUntraced(function*(prepared: PreparedTask, options: LoginOptions) {
  const { config, paths } = prepared
  const task = yield* TaskContext
  yield* task.reportProgress(null, "Starting codex login…")
  const tmux = yield* (yield* Tmux).start({
    socketPath: paths.tmuxSocket,
    configPath: paths.tmuxConf,
    command: {
      argv: [
        paths.launchLink,
        "login",
        "--device-auth",
        ...(options.issuer === undefined || options.issuer === "" ? [] : ["--experimental_issuer", options.issuer])
      ],
      env: prepared.env,
      envAllow: prepared.envAllow,
      cwd: paths.workdir,
      ...(config.scrubEnv === undefined ? {} : { envRemove: config.scrubEnv })
    },
    gracePeriod: options.stopGracePeriod ?? "5 seconds"
  })
  yield* recordLaunch(paths, {
    processes: [{ role: "codex login", pid: yield* tmux.panePid }, { role: "tmux server", pid: yield* tmux.serverPid }],
    tmuxSocket: paths.tmuxSocket
  })
  const terminal = yield* TtydSession
  const endpoint = yield* terminal.serve(tmux, { bindHost: config.widgetBindHost, advertisedHost: config.widgetAdvertisedHost })
  yield* task.setWidgetUpstream(endpoint.url, endpoint.innerAuth)
  yield* task.setWidgetData({ iframeSrc: endpoint.iframeSrc })

  const prompt = yield* Ref.make(Option.none<DeviceCodePrompt>())
  // Reads the screen until the prompt is on it, and reports it once.
  const readPrompt = Effect.gen(function*() {
    if (Option.isSome(yield* Ref.get(prompt))) return
    const found = parseDeviceCodePrompt(yield* tmux.capture(SCROLLBACK_LINES))
    if (Option.isNone(found)) return
    yield* Ref.set(prompt, found)
    yield* task.reportProgress(null, `Open ${found.value.verificationUrl} and enter code ${found.value.userCode}`)
    yield* task.requestBrowserOpen(found.value.verificationUrl)
    if (options.onPrompt !== undefined) yield* options.onPrompt(found.value)
  })
  const exitCode = yield* readPrompt.pipe(
    Effect.andThen(tmux.status),
    // A vanished tmux session (killed from outside) ends the login too, with no exit status (-1).
    Effect.map((status) => status._tag === "Running" ? Option.none<number>() : Option.some(status._tag === "Exited" ? status.exitCode : -1)),
    Effect.repeat({ schedule: Schedule.spaced(POLL), until: Option.isSome }),
    Effect.map(Option.getOrElse(() => -1))
  )
  // The pane keeps its screen after the exit: a prompt printed just before it is still reported.
  yield* readPrompt.pipe(Effect.ignore)
  const screenTail = screenTailOf(tmux)
  if (exitCode !== 0) {
    return yield* new LoginFailed({ reason: "exited", ...(exitCode < 0 ? {} : { exitCode }), screenTail: yield* screenTail })
  }
  // codex writes auth.json before it exits; a short wait covers a slow (remote) filesystem.
  const authPath = `${paths.codexHome}/auth.json`
  const credentials = yield* readCredentials(authPath).pipe(
    Effect.flatMap((read) => Option.isSome(read) ? Effect.succeed(read) : Effect.fail("missing" as const)),
    Effect.retry({ schedule: Schedule.spaced(POLL), times: 20 }),
    Effect.catchIf((error) => error === "missing", () => Effect.succeed(Option.none()))
  )
  if (Option.isNone(credentials)) return yield* new LoginFailed({ reason: "no-credentials", exitCode, screenTail: yield* screenTail })
  yield* task.reportProgress(null, "Login succeeded; capturing the seed…")
  // Only now does the task count as launched: the seed capture at teardown follows a launch.
  yield* prepared.markLaunched
  return yield* Ref.get(prompt)
})

const screenTailOf = (tmux: TmuxSession) =>
  tmux.capture(SCROLLBACK_LINES).pipe(
    Effect.map((screen) =>
      stripAnsi(screen).split("\n").filter((line) => line.trim() !== "").slice(-SCREEN_TAIL_LINES).join("\n").trim()
    ),
    Effect.orElseSucceed(() => "(the terminal is gone)")
  )

// eslint-disable-next-line no-control-regex
const stripAnsi = (text: string): string => text.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, "")
