/**
 * Uploads: stores the files an operator attaches in the conversation UI under
 * `<workdir>/uploads/` on the task's host. Owns the name policy (human-readable names are kept;
 * directories, control characters, leading dots and dashes are stripped; empty, `.` and `..` are
 * refused), the per-file size limit and the never-overwrite rule (a second `a.txt` becomes
 * `a (1).txt`). It does not own the HTTP side: the listener's `POST /upload` and optio-api's
 * widget-upload route both reach the same writer (the latter through TaskContext's
 * `registerUploadWriter`).
 *
 * All file access goes through the {@link Host}, so the same writer works over SSH.
 *
 * @since 0.1.0
 */
import { Effect, Schema, Stream } from "effect"
import { posix } from "node:path"
import { Host, HostError } from "../host/Host.ts"

/**
 * Why an upload was refused.
 * @category models
 */
export const UploadRefusalReason = Schema.Literals(["bad-name", "too-large", "forbidden", "name-taken"])
export type UploadRefusalReason = typeof UploadRefusalReason.Type

/**
 * An uploaded file was not stored; `reason` says why (the listener maps it to an HTTP status).
 * @category errors
 */
export class UploadRefused extends Schema.TaggedError<UploadRefused>()("UploadRefused", {
  fileName: Schema.String,
  reason: UploadRefusalReason,
  detail: Schema.String
}) {
  override get message(): string {
    return `upload ${JSON.stringify(this.fileName)} refused (${this.reason}): ${this.detail}`
  }
}

/**
 * Options of {@link makeUploadWriter}.
 * @category models
 */
export interface UploadWriterOptions {
  /** The task's working directory: an absolute path on the host. */
  readonly workdir: string
  /** Largest file accepted, in bytes. */
  readonly maxBytes: number
  /** Called with the stored path (`uploads/<name>`) after each file was written. */
  readonly onUpload?: (relpath: string) => Effect.Effect<void>
}

/**
 * A writer of uploaded files; assignable to TaskContext's `UploadWriter`.
 * @category models
 */
export type HostUploadWriter = ((upload: {
  readonly fileName: string
  readonly bytes: Uint8Array
}) => Effect.Effect<string, UploadRefused | HostError>) & {
  /** The same writer for content that arrives as a stream (the listener's `POST /upload`). */
  readonly stream: UploadStreamWriter
}

/**
 * A file stored from a stream: where it is, and how to take it back (a later part of the same
 * request failed).
 * @category models
 */
export interface StoredUpload {
  readonly relpath: string
  readonly size: number
  /** Removes the stored file again (only while it is still the regular file that was written). */
  readonly discard: Effect.Effect<void>
}

/**
 * Stores one file from a stream, at most `maxBytes` (never more than the writer's own limit);
 * the stream is consumed once, straight to the host.
 * @category models
 */
export type UploadStreamWriter = <E>(
  fileName: string,
  content: Stream.Stream<Uint8Array, E>,
  maxBytes?: number
) => Effect.Effect<StoredUpload, UploadRefused | HostError | E>

/** Longest stored name in UTF-8 bytes; leaves room for ` (999)` under the usual 255-byte limit. */
const MAX_NAME_BYTES = 200
/** How many ` (n)` variants are tried before a name counts as taken. */
const MAX_DUPLICATES = 999
/** C0/C1 controls, DEL, bidi overrides and line/paragraph separators: invisible or spoofing. */
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]/g
/** How long opening and checking one new file may take on the host. */
const CREATE_TIMEOUT = "10 seconds"

/**
 * Turns a client-supplied file name into a safe, human-readable stored name, or `undefined` when
 * nothing usable is left. Keeps unicode letters and spaces; drops any directory part (both `/`
 * and `\`, since some browsers send Windows paths), control and bidi characters, and leading
 * dots, dashes and spaces (no dot-files, nothing that reads as a command-line option).
 * @category constructors
 */
export const sanitizeUploadName = (raw: string): string | undefined => {
  const withoutControls = raw.normalize("NFC").replace(UNSAFE_CHARS, "")
  const base = withoutControls.split(/[/\\]/).at(-1) ?? ""
  const tidy = base.replace(/\s+/g, " ").trim().replace(/^[.\- ]+/, "")
  const name = truncateName(tidy, MAX_NAME_BYTES)
  if (name === "" || name === "." || name === "..") return undefined
  return name
}

/**
 * Builds a writer that stores uploads under `<workdir>/uploads/` on the current host and returns
 * the stored path relative to the workdir (`uploads/<name>`).
 *
 * Every file is created exclusively (never over anything, a planted symlink included), the
 * created handle must lie inside the uploads directory's real path (a directory swapped for a
 * symlink meanwhile is refused as `forbidden`), and the content is streamed into that handle;
 * a refusal or failure removes the partial file. A name taken meanwhile (by another upload or by
 * the agent) moves on to the next ` (n)` variant.
 * @category constructors
 */
export const makeUploadWriter = Effect.fn("Uploads.makeUploadWriter")(function*(options: UploadWriterOptions) {
  const host = yield* Host
  const uploadsDir = posix.join(options.workdir, "uploads")

  const stream: UploadStreamWriter = <E>(fileName: string, content: Stream.Stream<Uint8Array, E>, maxBytes?: number) =>
    Effect.gen(function*() {
      const limit = Math.min(maxBytes ?? options.maxBytes, options.maxBytes)
      const refuse = (reason: UploadRefusalReason, detail: string) => new UploadRefused({ fileName, reason, detail })
      const name = sanitizeUploadName(fileName)
      if (name === undefined) return yield* refuse("bad-name", "no usable file name is left after sanitizing")
      yield* host.makeDirectory(uploadsDir)
      const realWorkdir = yield* host.realPath(options.workdir)
      const realUploads = yield* host.realPath(uploadsDir)
      if (!isStrictlyInside(realUploads, realWorkdir)) {
        return yield* refuse("forbidden", "the uploads directory resolves outside the workdir")
      }
      for (const candidate of candidateNames(name)) {
        const path = posix.join(realUploads, candidate)
        const written = yield* host.createRegularFile(path, content, { within: realUploads, maxBytes: limit, timeout: CREATE_TIMEOUT }).pipe(
          Effect.map((size) => ({ size })),
          // Refused at the exclusive open, before any content was read: try the next name.
          Effect.catchIf((error) => error instanceof HostError && error.reason === "AlreadyExists", () => Effect.succeed(undefined)),
          Effect.mapError((error) =>
            !(error instanceof HostError)
              ? error
              : error.reason === "TooLarge"
              ? refuse("too-large", `more than the limit of ${limit} bytes`)
              : error.reason === "OutsideRoot" || error.reason === "SymlinkRefused" || error.reason === "NotADirectory"
              ? refuse("forbidden", "the uploads directory changed while the file was created")
              : error
          )
        )
        if (written === undefined) continue
        const relpath = `uploads/${candidate}`
        if (options.onUpload !== undefined) yield* options.onUpload(relpath)
        const discard = host.stat(path).pipe(
          Effect.flatMap((info) => info.type === "File" ? host.remove(path) : Effect.void),
          Effect.ignore
        )
        const stored: StoredUpload = { relpath, size: written.size, discard }
        return stored
      }
      return yield* refuse("name-taken", `${MAX_DUPLICATES} files named like it exist already`)
    }).pipe(Effect.withSpan("Uploads.write"))

  const bytesWriter = (upload: { readonly fileName: string; readonly bytes: Uint8Array }) =>
    upload.bytes.byteLength > options.maxBytes
      ? Effect.fail(new UploadRefused({ fileName: upload.fileName, reason: "too-large", detail: `${upload.bytes.byteLength} bytes is more than the limit of ${options.maxBytes}` }))
      : stream(upload.fileName, Stream.succeed(upload.bytes)).pipe(Effect.map((stored) => stored.relpath))

  const writer: HostUploadWriter = Object.assign(bytesWriter, { stream })
  return writer
})

/** Whether `path` lies strictly below `root` (both already resolved). */
const isStrictlyInside = (path: string, root: string): boolean => {
  const prefix = root.endsWith("/") ? root : `${root}/`
  return path.startsWith(prefix) && path.length > prefix.length
}

/** `name`, then `stem (1).ext`, `stem (2).ext`, … up to {@link MAX_DUPLICATES}. */
const candidateNames = function*(name: string): Generator<string> {
  const dot = name.lastIndexOf(".")
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ""]
  for (let n = 0; n <= MAX_DUPLICATES; n++) yield n === 0 ? name : `${stem} (${n})${ext}`
}

/** Cuts `name` to at most `maxBytes` UTF-8 bytes on code-point boundaries, keeping a short extension. */
const truncateName = (name: string, maxBytes: number): string => {
  const encoder = new TextEncoder()
  if (encoder.encode(name).byteLength <= maxBytes) return name
  const dot = name.lastIndexOf(".")
  const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : ""
  const budget = maxBytes - encoder.encode(ext).byteLength
  let stem = ""
  let used = 0
  for (const char of name.slice(0, name.length - ext.length)) {
    const size = encoder.encode(char).byteLength
    if (used + size > budget) break
    stem += char
    used += size
  }
  return `${stem.trimEnd()}${ext}`
}
