/**
 * Downloads: hands out files of a task's workdir to the operator (the `optio-file:` links the
 * agent writes). Owns the confinement rule — a relative path, normalized without escaping, then
 * resolved ON THE HOST (symlinks followed where the file lives, so it holds over SSH too) and
 * required to stay strictly inside the workdir's real path — the size limit (checked on the
 * host's metadata before anything is read, and the read itself is bounded), the content type and
 * a header-safe `Content-Disposition`. It does not own the HTTP route (the listener's
 * `GET /download`).
 *
 * @since 0.1.0
 */
import { Effect, Option, Schema } from "effect"
import { Mime } from "effect/http"
import { posix } from "node:path"
import { Host } from "../host/Host.ts"
import type { HostError } from "../host/Host.ts"

/**
 * Why a download was refused.
 * @category models
 */
export const DownloadRefusalReason = Schema.Literals(["bad-path", "forbidden", "not-found", "too-large"])
export type DownloadRefusalReason = typeof DownloadRefusalReason.Type

/**
 * A requested file is not handed out; `reason` says why (the listener maps it to an HTTP status).
 * @category errors
 */
export class DownloadRefused extends Schema.TaggedError<DownloadRefused>()("DownloadRefused", {
  path: Schema.String,
  reason: DownloadRefusalReason,
  detail: Schema.String
}) {
  override get message(): string {
    return `download ${JSON.stringify(this.path)} refused (${this.reason}): ${this.detail}`
  }
}

/**
 * A file ready to send.
 * @category models
 */
export interface DownloadedFile {
  /** The last segment of the requested path: what the browser saves it as. */
  readonly fileName: string
  readonly contentType: string
  readonly bytes: Uint8Array
}

/**
 * Reads one workdir-relative file for the operator.
 * @category models
 */
export type DownloadReader = (relpath: string) => Effect.Effect<DownloadedFile, DownloadRefused | HostError>

/**
 * Options of {@link makeDownloadReader}.
 * @category models
 */
export interface DownloadReaderOptions {
  /** The task's working directory: an absolute path on the host. */
  readonly workdir: string
  /** Largest file handed out, in bytes. */
  readonly maxBytes: number
}

/**
 * Builds a reader of workdir files on the current host.
 *
 * **Gotchas**: `relpath` is used exactly as given (the HTTP layer decodes the query once). Only
 * when that file does not exist and the path still contains percent escapes is the decoded form
 * tried as well, because the markdown layer may already have percent-encoded the link target
 * before the view encoded it again ([P12]); the decoded form passes the same checks.
 * @category constructors
 */
export const makeDownloadReader = Effect.fn("Downloads.makeDownloadReader")(function*(options: DownloadReaderOptions) {
  const host = yield* Host

  const readOnce = Effect.fn("Downloads.read")(function*(relpath: string) {
    const refuse = (reason: DownloadRefusalReason, detail: string) => new DownloadRefused({ path: relpath, reason, detail })
    if (relpath === "" || relpath.includes("\u0000")) return yield* refuse("bad-path", "the path is empty or contains NUL")
    if (relpath.startsWith("/")) return yield* refuse("bad-path", "the path must be relative to the workdir")
    const normalized = posix.normalize(relpath)
    if (normalized === ".." || normalized.startsWith("../")) return yield* refuse("bad-path", "the path leaves the workdir")
    if (normalized === "." || normalized === "./") return yield* refuse("bad-path", "the path names the workdir itself")

    const onHostError = (error: HostError) =>
      error.reason === "NotFound" || error.reason === "NotADirectory"
        ? refuse("not-found", "no such file")
        : error.reason === "PermissionDenied"
        ? refuse("forbidden", "the host denied access")
        : error
    const realWorkdir = yield* host.realPath(options.workdir)
    const real = yield* host.realPath(posix.join(options.workdir, normalized)).pipe(
      Effect.mapError(onHostError)
    )
    if (!isStrictlyInside(real, realWorkdir)) return yield* refuse("forbidden", "the path resolves outside the workdir")
    const info = yield* host.stat(real).pipe(Effect.mapError(onHostError))
    if (info.type !== "File") return yield* refuse("not-found", "not a regular file")
    if (info.size > options.maxBytes) {
      return yield* refuse("too-large", `${info.size} bytes is more than the limit of ${options.maxBytes}`)
    }
    // Bounded read: a file that grew since the stat cannot make us hold more than the limit.
    const bytes = yield* host.readRange(real, 0, options.maxBytes + 1).pipe(Effect.mapError(onHostError))
    if (bytes.byteLength > options.maxBytes) return yield* refuse("too-large", `the file grew past ${options.maxBytes} bytes`)
    const fileName = posix.basename(normalized)
    return { fileName, contentType: contentTypeFor(fileName), bytes } satisfies DownloadedFile
  })

  const reader: DownloadReader = (relpath) =>
    readOnce(relpath).pipe(
      Effect.catchIf(
        (error) => error._tag === "DownloadRefused" && error.reason === "not-found" && /%[0-9a-fA-F]{2}/.test(relpath),
        (notFound) =>
          Effect.try({ try: () => decodeURIComponent(relpath), catch: () => notFound }).pipe(
            Effect.flatMap((decoded) => decoded === relpath ? Effect.fail(notFound) : readOnce(decoded)),
            Effect.mapError((error) => error._tag === "DownloadRefused" && error.reason === "not-found" ? notFound : error)
          )
      )
    )
  return reader
})

/** Whether `path` lies strictly below `root` (both already resolved). */
const isStrictlyInside = (path: string, root: string): boolean => {
  const prefix = root.endsWith("/") ? root : `${root}/`
  return path.startsWith(prefix) && path.length > prefix.length
}

/** Where the generic table guesses wrong for a workdir (`.ts` is TypeScript, not MPEG-TS) or has nothing. */
const CONTENT_TYPE_OVERRIDES: Readonly<Record<string, string>> = {
  ts: "text/plain",
  tsx: "text/plain",
  py: "text/x-python",
  rs: "text/plain",
  go: "text/plain",
  log: "text/plain",
  jsonl: "application/jsonl",
  zst: "application/zstd"
}

/**
 * The content type for a file name, from its extension; `application/octet-stream` when unknown.
 * @category constructors
 */
export const contentTypeFor = (fileName: string): string => {
  const dot = fileName.lastIndexOf(".")
  if (dot <= 0) return "application/octet-stream"
  const override = CONTENT_TYPE_OVERRIDES[fileName.slice(dot + 1).toLowerCase()]
  if (override !== undefined) return override
  return Option.getOrElse(Mime.getType(fileName), () => "application/octet-stream")
}

/**
 * A `Content-Disposition: attachment` value no file name can break ([P11]): an ASCII fallback in
 * `filename="…"` (quotes, backslashes, controls and non-ASCII replaced by `_`) and the exact
 * name in `filename*=UTF-8''…` (RFC 8187 percent-encoding).
 * @category constructors
 */
export const contentDisposition = (name: string): string => {
  // Lone surrogates would make encodeURIComponent throw.
  const fileName = name.toWellFormed()
  const fallback = fileName.replace(/[^\x20-\x7e]|["\\]/g, "_").trim() || "download"
  const encoded = encodeURIComponent(fileName).replace(
    /['()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`
  )
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`
}
