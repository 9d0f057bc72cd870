/**
 * ResumeFiles: the two files of a workdir that resume depends on besides the archive itself —
 * codex's rollouts (which conversation to resume, spec §8.5) and `optio.log` (rotated on restore
 * so a stale `DONE` is not replayed, §8.9). It does not own the archive or the relaunch.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import { Host } from "../host/Host.ts"
import type { HostError } from "../host/Host.ts"

// `rollout-<timestamp>-<uuid>.jsonl`; the uuid is the thread id `codex resume` takes.
const ROLLOUT_NAME = /^rollout-.+-([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.jsonl$/

/**
 * The thread id in a rollout file name, if it has the expected shape.
 * @category constructors
 * @since 0.1.0
 */
export const rolloutIdOf = (fileName: string): Option.Option<string> => {
  const match = ROLLOUT_NAME.exec(fileName)
  return match?.[1] === undefined ? Option.none() : Option.some(match[1])
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"))
const baseName = (path: string) => path.slice(path.lastIndexOf("/") + 1)

/**
 * The id of the newest rollout under `<codexHome>/sessions`: newest by file name in byte order
 * (names start with the timestamp; mtimes do not survive a restore and `sort` is
 * locale-dependent), skipping names that do not parse and falling back to the next one (P35).
 * None when there is no parseable rollout.
 * @category constructors
 * @since 0.1.0
 */
export const newestRolloutId = (codexHome: string): Effect.Effect<Option.Option<string>, HostError, Host> =>
  Effect.gen(function*() {
    const host = yield* Host
    const sessions = `${codexHome.replace(/\/+$/, "")}/sessions`
    if (!(yield* host.exists(sessions))) return Option.none()
    const paths = yield* host.glob("**/rollout-*.jsonl", sessions)
    const newestFirst = [...paths].sort((a, b) => byteOrder(baseName(b), baseName(a)) || byteOrder(b, a))
    for (const path of newestFirst) {
      const id = rolloutIdOf(baseName(path))
      if (Option.isSome(id)) return id
      yield* Effect.logWarning("skipping a rollout whose name has no thread id").pipe(Effect.annotateLogs({ path }))
    }
    return Option.none()
  }).pipe(Effect.withSpan("ResumeFiles.newestRolloutId"))

/** Largest restored `optio.log` (or `.old`) carried over on rotation; the agent wrote it. */
const MAX_ROTATED_LOG_BYTES = 64 * 1024 * 1024

/**
 * A restored log's bytes, or empty when it is missing — or is not a regular file of at most
 * {@link MAX_ROTATED_LOG_BYTES} (a symlink in the snapshot must not copy another file into the
 * workdir, a FIFO must not hang the restore).
 */
const readOrEmpty = (path: string) =>
  Effect.gen(function*() {
    const host = yield* Host
    return yield* host.readRegularFile(path, { maxBytes: MAX_ROTATED_LOG_BYTES, timeout: "30 seconds" }).pipe(
      Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed(new Uint8Array(0))),
      Effect.catchIf(
        (error) => error.reason === "SymlinkRefused" || error.reason === "NotRegularFile" || error.reason === "TooLarge",
        (error) =>
          Effect.as(Effect.logWarning(`not carrying over a restored log: ${error.reason} (${error.detail})`), new Uint8Array(0))
      )
    )
  })

/**
 * Rotates a restored `optio.log` (spec §8.9): an empty or missing log becomes an empty file;
 * otherwise its contents are appended to `optio.log.old` (created when missing) and the log is
 * truncated, so history survives consecutive resumes but the tail never replays a stale keyword.
 * @category constructors
 * @since 0.1.0
 */
export const rotateOptioLog = (optioLog: string): Effect.Effect<void, HostError, Host> =>
  Effect.gen(function*() {
    const host = yield* Host
    const current = yield* readOrEmpty(optioLog)
    if (current.length > 0) {
      const older = yield* readOrEmpty(`${optioLog}.old`)
      yield* host.writeFile(`${optioLog}.old`, Buffer.concat([older, current]))
    }
    yield* host.writeFile(optioLog, "")
  }).pipe(Effect.withSpan("ResumeFiles.rotateOptioLog"))
