/**
 * CodexHomeTemplate: a CODEX_HOME that the pinned codex has initialized once, kept beside the
 * binary cache and copied into every fresh task home. On its first start codex creates its state
 * databases and unpacks its bundled skills (measured here: 196–257 ms to `thread/start` with a
 * fresh home, ~130 ms with a primed one); a copy of the result costs a few milliseconds.
 *
 * What the template holds: the empty state databases and `skills/` — never an `installation_id`
 * (each task gets its own), a `config.toml` or credentials, temp dirs, or a thread. It is only
 * used for FRESH homes: a resumed home has no databases on purpose (codex rebuilds them from the
 * restored rollouts, and empty ones would hide those rollouts).
 *
 * @since 0.1.0
 */
import { Duration, Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import type { HostError, HostShape } from "../host/Host.ts"

// Written last into a finished template: a directory without it is someone's half-built staging.
const MARKER = ".optio-template"
const PRIME_BOUND = Duration.seconds(20)

// Whatever codex leaves that must not be shared between tasks.
const NOT_SHARED = ["installation_id", "config.toml", "auth.json", "tmp", ".tmp", "sessions", "log"]

/**
 * Ensures the template for `binaryPath` exists under `cacheDir` (priming it once: `codex
 * app-server`, `initialize`, stop) and returns its path; concurrent first uses are safe (staging
 * then one rename).
 * @category constructors
 */
export const ensureHomeTemplate = (host: HostShape, binaryPath: string, cacheDir: string, version: string) =>
  Effect.gen(function*() {
    const template = `${cacheDir}/codex-home-${version}`
    if (yield* host.exists(`${template}/${MARKER}`)) return template
    const staging = `${cacheDir}/.staging-home-${randomBytes(8).toString("hex")}`
    yield* Effect.acquireUseRelease(
      host.makeDirectory(`${staging}/home/.codex`, { mode: 0o700 }),
      () =>
        Effect.gen(function*() {
          yield* primeOnce(host, binaryPath, staging)
          const codexHome = `${staging}/home/.codex`
          for (const name of NOT_SHARED) yield* host.remove(`${codexHome}/${name}`)
          // SQLite rebuilds its shared-memory index; a copied one could describe another process.
          for (const index of yield* host.glob("*.sqlite-shm", codexHome)) yield* host.remove(index)
          yield* host.writeFile(`${codexHome}/${MARKER}`, `${version}\n`)
          const published = yield* host.rename(codexHome, template).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
          // Lost a race to another worker: theirs is as good when it is finished.
          if (!published && !(yield* host.exists(`${template}/${MARKER}`))) yield* host.rename(codexHome, template)
        }),
      () => host.remove(staging).pipe(Effect.ignore)
    )
    return template
  }).pipe(Effect.withSpan("CodexHomeTemplate.ensure"))

/**
 * Copies the template into a fresh `codexHome` without overwriting what is there (the task's
 * config.toml, a planted seed).
 * @category constructors
 */
export const copyHomeTemplate = (host: HostShape, template: string, codexHome: string): Effect.Effect<boolean, HostError> =>
  host.run({ argv: ["cp", "-R", "-p", "-n", "--", `${template}/.`, codexHome] }).pipe(
    Effect.tap(() => host.remove(`${codexHome}/${MARKER}`)),
    Effect.map((result) => result.exitCode === 0)
  )

// One `initialize` round trip is what makes codex create its databases and skills.
const primeOnce = (host: HostShape, binaryPath: string, staging: string) =>
  Effect.scoped(Effect.gen(function*() {
    const home = `${staging}/home`
    yield* host.makeDirectory(`${staging}/tmp`, { mode: 0o700 })
    const codex = yield* host.spawn({
      argv: [binaryPath, "app-server"],
      cwd: staging,
      env: {
        HOME: home,
        CODEX_HOME: `${home}/.codex`,
        XDG_CONFIG_HOME: `${home}/.config`,
        XDG_DATA_HOME: `${home}/.local/share`,
        XDG_CACHE_HOME: `${home}/.cache`,
        TMPDIR: `${staging}/tmp`,
        PATH: "/usr/local/bin:/usr/bin:/bin"
      },
      // Nothing of the worker's environment: only locale and terminal type are inherited.
      envAllow: ["LANG", "LANGUAGE", "LC_*", "TERM"]
    }, { stdin: true, gracePeriod: "2 seconds" })
    yield* codex.write(`${JSON.stringify({ id: 1, method: "initialize", params: { clientInfo: { name: "optio-codex-prime", version: CLIENT_VERSION } } })}\n`)
    yield* codex.stdout.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.filter((line) => line.includes("\"id\":1")),
      Stream.take(1),
      Stream.runDrain
    )
    yield* codex.endInput
    yield* codex.exitCode
  })).pipe(Effect.timeout(PRIME_BOUND))

const CLIENT_VERSION = "0.1.0"
