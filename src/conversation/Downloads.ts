/**
 * Downloads: hands out files of a task's workdir to the operator (the `optio-file:` links the
 * agent writes). Owns the confinement rule — a relative path, normalized without escaping, then
 * opened ONCE on the host (`Host.readRegularFile`: no final symlink, regular file only) and the
 * opened handle required to lie strictly inside the workdir's real path, so a symlink swapped in
 * after any check cannot redirect the read — the size limit (checked on the handle before
 * anything is read; the buffer is the file's size, not the limit), the content type and a
 * header-safe `Content-Disposition` (bidi controls replaced). It does not own the HTTP route (the listener's
 * `GET /download`).
 *
 * @since 0.1.0
 */
import { Effect, Option, Schema } from "effect"
import { Mime } from "effect/http"
import { posix } from "node:path"
import { Host, HostError } from "../host/Host.ts"

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

/** How long one guarded read may take on the host. */
const READ_TIMEOUT = "30 seconds"

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
    const realWorkdir = yield* host.realPath(options.workdir)
    // An absolute path inside the workdir is served like its relative form (the reference did);
    // anywhere else it is forbidden, as is a path that climbs out (403, the reference's status).
    const relative = relpath.startsWith("/") ? relativeToWorkdir(posix.normalize(relpath), [options.workdir, realWorkdir]) : relpath
    if (relative === undefined) return yield* refuse("forbidden", "the path is outside the workdir")
    const normalized = posix.normalize(relative)
    if (normalized === ".." || normalized.startsWith("../")) return yield* refuse("forbidden", "the path leaves the workdir")
    if (normalized === "." || normalized === "./") return yield* refuse("bad-path", "the path names the workdir itself")

    const onHostError = (error: HostError) =>
      error.reason === "NotFound" || error.reason === "NotADirectory" || error.reason === "NotRegularFile"
        ? refuse("not-found", "no such file")
        : error.reason === "PermissionDenied"
        ? refuse("forbidden", "the host denied access")
        : error.reason === "OutsideRoot" || error.reason === "SymlinkRefused"
        ? refuse("forbidden", "the path resolves outside the workdir")
        : error.reason === "TooLarge"
        ? refuse("too-large", `the file is more than the limit of ${options.maxBytes} bytes`)
        : error.reason === "BadArgument"
        ? refuse("bad-path", "the host cannot use this path")
        : error
    // Opened once, without following a final symlink; the handle must be a regular file inside
    // the workdir and the bytes come from it, sized by it (never a path checked earlier).
    const read = (path: string) =>
      host.readRegularFile(path, { maxBytes: options.maxBytes, within: realWorkdir, timeout: READ_TIMEOUT })
    const bytes = yield* read(posix.join(realWorkdir, normalized)).pipe(
      // A symlink the agent made inside the workdir is served when it resolves inside; the
      // resolved path gets the same guarded open, so a swap after resolving is refused again.
      Effect.catchIf((error) => error.reason === "SymlinkRefused", () =>
        host.realPath(posix.join(realWorkdir, normalized)).pipe(
          Effect.flatMap((real) =>
            isStrictlyInside(real, realWorkdir)
              ? read(real)
              : Effect.fail(new HostError({ host: host.label, operation: "read", reason: "OutsideRoot", detail: "resolves outside the workdir" }))
          )
        )),
      Effect.mapError(onHostError)
    )
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

/** `path` relative to the first root it lies strictly below, if any (lexically; the open checks the rest). */
const relativeToWorkdir = (path: string, roots: ReadonlyArray<string>): string | undefined => {
  for (const root of roots) {
    if (isStrictlyInside(path, root)) return path.slice((root.endsWith("/") ? root : `${root}/`).length)
  }
  return undefined
}

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

/** C0/C1 controls, DEL, bidi marks/overrides/isolates, line/paragraph separators and BOM. */
const SPOOFING_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]/g

/**
 * A `Content-Disposition: attachment` value no file name can break ([P11]): an ASCII fallback in
 * `filename="…"` (quotes, backslashes, controls and non-ASCII replaced by `_`) and the exact
 * name in `filename*=UTF-8''…` (RFC 8187 percent-encoding), bidi and control characters replaced
 * by `_` in both.
 * @category constructors
 */
export const contentDisposition = (name: string): string => {
  // Lone surrogates would make encodeURIComponent throw; bidi overrides and other invisible
  // controls would let a name the agent chose display as something else ("exe.txt").
  const fileName = name.toWellFormed().replace(SPOOFING_CHARS, "_")
  const fallback = fileName.replace(/[^\x20-\x7e]|["\\]/g, "_").trim() || "download"
  const encoded = encodeURIComponent(fileName).replace(
    /['()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`
  )
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`
}
