/**
 * TuiBody: the TUI mode of a session — codex's TUI in a tmux session on the task's own socket,
 * served as an authenticated web terminal, until optio.log reports the outcome or codex exits.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Option } from "effect"
import type { CodexTaskConfig } from "../config/CodexTaskConfig.ts"
import { tuiSandboxArgs } from "../config/SandboxPosture.ts"
import { AUTO_START_PROMPT, RESUME_NOTICE, systemMessage } from "../protocol/SystemMessages.ts"
import { TaskContext } from "../task/TaskContext.ts"
import { Tmux } from "../terminal/Tmux.ts"
import type { TmuxSession } from "../terminal/TmuxSession.ts"
import { TtydSession } from "../terminal/TtydSession.ts"
import { recordLaunch } from "./Leftovers.ts"
import { afterExecute } from "./PrepareTask.ts"
import type { PreparedTask } from "./PrepareTask.ts"
import { watchUntilOutcome } from "./LogWatch.ts"
import { CodexExitedEarly } from "./SessionErrors.ts"

/**
 * Runs codex's TUI for a prepared task and returns when the outcome is known.
 * @category constructors
 */
export const runTuiBody = Effect.fnUntraced(function*(prepared: PreparedTask) {
  const { config, paths } = prepared
  const task = yield* TaskContext
  yield* task.reportProgress(null, "Launching Codex…")
  const tmux = yield* (yield* Tmux).start({
    socketPath: paths.tmuxSocket,
    configPath: paths.tmuxConf,
    command: {
      argv: [paths.launchLink, ...tuiArguments(config, prepared)],
      env: prepared.env,
      envAllow: prepared.envAllow,
      cwd: paths.workdir,
      ...(config.scrubEnv === undefined ? {} : { envRemove: config.scrubEnv })
    },
    gracePeriod: prepared.options.stopGracePeriod ?? "5 seconds"
  })
  yield* prepared.markLaunched
  // Recorded for the next start, should this worker die without its teardown.
  yield* recordLaunch(paths, {
    processes: [{ role: "codex TUI", pid: yield* tmux.panePid }, { role: "tmux server", pid: yield* tmux.serverPid }],
    tmuxSocket: paths.tmuxSocket
  })
  const terminal = yield* TtydSession
  const endpoint = yield* terminal.serve(tmux, { bindHost: config.widgetBindHost, advertisedHost: config.widgetAdvertisedHost })
  yield* task.setWidgetUpstream(endpoint.url, endpoint.innerAuth)
  yield* task.setWidgetData({ iframeSrc: endpoint.iframeSrc })
  const screenTail = tmux.capture(SCROLLBACK_LINES).pipe(
    Effect.map(lastNonBlankLines(SCREEN_TAIL_LINES)),
    Effect.orElseSucceed(() => "(the terminal is gone)")
  )
  // "Live" only once codex has drawn its first screen and is still running: a codex that dies
  // at launch fails the session with its status and last output, also reported as progress.
  const firstScreen = yield* awaitFirstScreen(tmux, screenTail).pipe(
    Effect.tapError((error) => task.reportProgress(null, error.message))
  )
  yield* task.reportProgress(null, firstScreen ? "Codex is live" : "Codex started; its screen is still blank")

  yield* prepared.attachAgentChannel(tmux.sendText)
  return yield* watchUntilOutcome({
    paths,
    hooks: prepared.hooks,
    hookContext: prepared.hookContext,
    ...(prepared.config.compat === undefined ? {} : { replyWording: prepared.config.compat }),
    send: tmux.sendText,
    codexExit: tmux.awaitExit("250 millis"),
    codexProcess: TUI_PROCESS,
    operatorCanQuit: true,
    screenTail
  }).pipe(Effect.ensuring(afterExecute(prepared)))
})

const TUI_PROCESS = "codex TUI"
const SCROLLBACK_LINES = 500
/** How long codex may take to draw before the session goes on without calling it live. */
const FIRST_SCREEN_WAIT = Duration.seconds(60)

/**
 * Waits until the pane shows something while codex still runs (true), or the bound passes
 * (false); fails with {@link CodexExitedEarly} when codex exits first.
 */
const awaitFirstScreen = (tmux: TmuxSession, screenTail: Effect.Effect<string>) =>
  Effect.gen(function*() {
    while (true) {
      const drawn = (yield* tmux.capture(SCREEN_TAIL_LINES)).trim() !== ""
      // Checked after the capture: a codex that printed its error and exited is not "up".
      const status = yield* tmux.status
      if (status._tag !== "Running") {
        return yield* new CodexExitedEarly({
          exitCode: status._tag === "Exited" ? status.exitCode : null,
          paneTail: yield* screenTail,
          process: TUI_PROCESS,
          atLaunch: true
        })
      }
      if (drawn) return true
      yield* Effect.sleep(FIRST_SCREEN_POLL)
    }
  }).pipe(Effect.timeoutOrElse({ duration: FIRST_SCREEN_WAIT, orElse: () => Effect.succeed(false) }))

const FIRST_SCREEN_POLL = Duration.millis(50)
const SCREEN_TAIL_LINES = 40

// A pane is mostly blank around a short output: collapse blank runs before taking the last lines.
const lastNonBlankLines = (count: number) => (screen: string): string =>
  screen.split("\n")
    .filter((line, index, lines) => line.trim() !== "" || (index > 0 && (lines[index - 1] ?? "").trim() !== ""))
    .slice(-count)
    .join("\n")
    .trim()

// After the launch path, in the reference's order: `resume <thread>` (a subcommand, so first),
// approval policy, sandbox, model, then the first message. A resumed thread gets the resume
// notice; a fresh one the kickoff (also after a restore whose thread could not be resumed, P36).
// `tui.resume_cwd` keeps codex from asking which directory to resume in: the workdir moved.
const tuiArguments = (config: CodexTaskConfig, prepared: PreparedTask): Array<string> => [
  ...Option.match(prepared.resumeThread, {
    onNone: () => [],
    onSome: (thread) => ["resume", thread, "-c", "tui.resume_cwd=\"current\""]
  }),
  "--ask-for-approval",
  config.askForApproval,
  ...tuiSandboxArgs(prepared.posture),
  ...(config.model === undefined || config.model === "" ? [] : ["--model", config.model]),
  ...Option.isSome(prepared.resumeThread)
    ? [systemMessage(RESUME_NOTICE)]
    : config.autoStart
    ? [AUTO_START_PROMPT]
    : []
]
