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
import { Effect, Schema, Semaphore } from "effect"
import { posix } from "node:path"
import { Host } from "../host/Host.ts"
import type { HostError } from "../host/Host.ts"

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
export type HostUploadWriter = (upload: {
  readonly fileName: string
  readonly bytes: Uint8Array
}) => Effect.Effect<string, UploadRefused | HostError>

/** Longest stored name in UTF-8 bytes; leaves room for ` (999)` under the usual 255-byte limit. */
const MAX_NAME_BYTES = 200
/** How many ` (n)` variants are tried before a name counts as taken. */
const MAX_DUPLICATES = 999
/** C0/C1 controls, DEL, bidi overrides and line/paragraph separators: invisible or spoofing. */
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]/g

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
 * **Gotchas**: the never-overwrite rule holds among this writer's own calls (they are serialized);
 * a file created by another process between the existence check and the write can still be
 * replaced. An `uploads` directory that resolves outside the workdir (a symlink planted by the
 * agent) is refused as `forbidden`.
 * @category constructors
 */
export const makeUploadWriter = Effect.fn("Uploads.makeUploadWriter")(function*(options: UploadWriterOptions) {
  const host = yield* Host
  const lock = yield* Semaphore.make(1)
  const uploadsDir = posix.join(options.workdir, "uploads")

  const write = Effect.fn("Uploads.write")(function*(upload: { readonly fileName: string; readonly bytes: Uint8Array }) {
    const refuse = (reason: UploadRefusalReason, detail: string) =>
      new UploadRefused({ fileName: upload.fileName, reason, detail })
    const name = sanitizeUploadName(upload.fileName)
    if (name === undefined) return yield* refuse("bad-name", "no usable file name is left after sanitizing")
    if (upload.bytes.byteLength > options.maxBytes) {
      return yield* refuse("too-large", `${upload.bytes.byteLength} bytes is more than the limit of ${options.maxBytes}`)
    }
    yield* host.makeDirectory(uploadsDir)
    const realWorkdir = yield* host.realPath(options.workdir)
    const realUploads = yield* host.realPath(uploadsDir)
    if (!isStrictlyInside(realUploads, realWorkdir)) {
      return yield* refuse("forbidden", "the uploads directory resolves outside the workdir")
    }
    const stored = yield* firstFreeName(name, (candidate) => host.exists(posix.join(realUploads, candidate)))
    if (stored === undefined) return yield* refuse("name-taken", `${MAX_DUPLICATES} files named like it exist already`)
    yield* host.writeFile(posix.join(realUploads, stored), upload.bytes)
    const relpath = `uploads/${stored}`
    if (options.onUpload !== undefined) yield* options.onUpload(relpath)
    return relpath
  })

  const writer: HostUploadWriter = (upload) => lock.withPermit(write(upload))
  return writer
})

/** Whether `path` lies strictly below `root` (both already resolved). */
const isStrictlyInside = (path: string, root: string): boolean => {
  const prefix = root.endsWith("/") ? root : `${root}/`
  return path.startsWith(prefix) && path.length > prefix.length
}

/** `name`, then `stem (1).ext`, `stem (2).ext`, …: the first one `taken` says is free. */
const firstFreeName = Effect.fnUntraced(function*(
  name: string,
  taken: (candidate: string) => Effect.Effect<boolean, HostError>
) {
  const dot = name.lastIndexOf(".")
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ""]
  for (let n = 0; n <= MAX_DUPLICATES; n++) {
    const candidate = n === 0 ? name : `${stem} (${n})${ext}`
    if (!(yield* taken(candidate))) return candidate
  }
  return undefined
})

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
