/**
 * RemoteFiles: file access on an SSH host, through the connection's SFTP session.
 *
 * Writes are atomic (a temp file in the same directory, its mode set explicitly so the remote
 * umask does not matter, then `posix-rename@openssh.com`, which replaces the target like
 * rename(2); servers without that extension get unlink + rename). SFTP exposes no inode, so a
 * file's identity comes from a remote `stat`/`ls -i`; recursive removal and globbing run
 * remote commands (`rm -rf`, `find`) with every path quoted. Nothing here follows a path through
 * a local shell.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { posix } from "node:path"
import type { SFTPWrapper, Stats } from "ssh2"
import { HostError } from "../Host.ts"
import type { FileInfo, HostErrorReason } from "../Host.ts"
import { makeRemoteGuardedFiles } from "./RemoteGuardedFiles.ts"
import { guardDash } from "./RemoteShell.ts"
import type { SshConnection } from "./SshConnection.ts"

type Kit = (operation: string, fn: string, args: ReadonlyArray<string>) => Effect.Effect<{ readonly exitCode: number | undefined; readonly stdout: string; readonly stderr: string }, HostError>

/** The file operations of a remote host. */
export const makeFiles = (connection: SshConnection, kit: Kit) => {
  const label = connection.label

  const sftpError = (operation: string, path: string, error: unknown): HostError => {
    const code = typeof error === "object" && error !== null && "code" in error ? error.code : undefined
    const detail = error instanceof Error ? error.message : String(error)
    if (code === 6 || code === 7) return connection.lostError(operation, detail)
    const reason: HostErrorReason = code === 2 ? "NotFound" : code === 3 ? "PermissionDenied" : code === 8 ? "BadArgument" : "Unknown"
    return new HostError({ host: label, operation, path, reason, detail, cause: error })
  }

  /** Runs a multi-step SFTP operation on one session of the live connection. */
  const withSftp = <A>(operation: string, f: (sftp: SFTPWrapper) => Effect.Effect<A, HostError>) =>
    connection.use(operation, (generation) => connection.sftp(generation).pipe(Effect.flatMap(f)))

  /** One SFTP request as an Effect. */
  const step = <A>(operation: string, path: string, f: (done: (error: unknown, value: A) => void) => void) =>
    Effect.callback<A, HostError>((resume) => {
      try {
        f((error, value) => resume(error === undefined || error === null ? Effect.succeed(value) : Effect.fail(sftpError(operation, path, error))))
      } catch (error) {
        resume(Effect.fail(sftpError(operation, path, error)))
      }
    })

  const unit = (operation: string, path: string, f: (done: (error: unknown) => void) => void) =>
    step<void>(operation, path, (done) => f((error) => done(error, undefined)))

  const open = (sftp: SFTPWrapper, operation: string, path: string, flags: "r" | "wx" | "a", mode?: number) =>
    step<Buffer>(operation, path, (done) => sftp.open(path, flags, mode === undefined ? {} : { mode }, done))

  const closeHandle = (sftp: SFTPWrapper, handle: Buffer) => unit("close", "", (done) => sftp.close(handle, done)).pipe(Effect.ignore)

  const writeAll = (sftp: SFTPWrapper, path: string, handle: Buffer, data: Buffer, position: number) =>
    data.length === 0 ? Effect.void : unit("write", path, (done) => sftp.write(handle, data, 0, data.length, position, done))

  const renameOver = (sftp: SFTPWrapper, operation: string, from: string, to: string) =>
    Effect.suspend(() => {
      try {
        return unit(operation, from, (done) => sftp.ext_openssh_rename(from, to, done))
      } catch {
        // No posix-rename: plain SFTP rename refuses an existing target, so clear it first.
        return unit(operation, to, (done) => sftp.unlink(to, done)).pipe(
          Effect.catchIf((error) => error.reason === "NotFound", () => Effect.void),
          Effect.andThen(unit(operation, from, (done) => sftp.rename(from, to, done)))
        )
      }
    })

  const discard = (sftp: SFTPWrapper, path: string) => unit("remove", path, (done) => sftp.unlink(path, done)).pipe(Effect.ignore)

  const lstat = (sftp: SFTPWrapper, path: string) => step<Stats>("stat", path, (done) => sftp.lstat(path, done))

  const readRange = (path: string, offset: number, length: number) =>
    withSftp("read", (sftp) =>
      Effect.acquireUseRelease(
        open(sftp, "read", path, "r"),
        (handle) =>
          Effect.gen(function*() {
            const buffer = Buffer.alloc(length)
            let filled = 0
            while (filled < length) {
              const read = yield* step<number>("read", path, (done) => sftp.read(handle, buffer, filled, length - filled, offset + filled, (error, bytes) => done(error, bytes)))
              if (read <= 0) break
              filled += read
            }
            return new Uint8Array(buffer.subarray(0, filled))
          }),
        (handle) => closeHandle(sftp, handle)
      ))

  const writeFile = (path: string, data: string | Uint8Array, options: { readonly mode?: number } = {}) =>
    withSftp("write", (sftp) => {
      const temp = siblingTemp(path)
      const mode = options.mode ?? 0o644
      return Effect.acquireUseRelease(
        open(sftp, "write", temp, "wx", mode),
        (handle) =>
          writeAll(sftp, temp, handle, Buffer.from(data), 0).pipe(
            // The remote umask must not widen or narrow the mode.
            Effect.andThen(unit("write", temp, (done) => sftp.fchmod(handle, mode, done)))
          ),
        (handle) => closeHandle(sftp, handle)
      ).pipe(
        Effect.andThen(renameOver(sftp, "write", temp, path)),
        Effect.onError(() => discard(sftp, temp)),
        Effect.mapError((error) => error.path === temp ? withPath(error, path) : error)
      )
    })

  const appendFile = (path: string, data: string | Uint8Array) =>
    withSftp("append", (sftp) =>
      Effect.acquireUseRelease(
        open(sftp, "append", path, "a"),
        (handle) =>
          step<Stats>("append", path, (done) => sftp.fstat(handle, done)).pipe(
            // The server opens with O_APPEND; the offset only matters for servers that ignore it.
            Effect.flatMap((info) => writeAll(sftp, path, handle, Buffer.from(data), info.size))
          ),
        (handle) => closeHandle(sftp, handle)
      ))

  const stat = (path: string) =>
    Effect.all([
      withSftp("stat", (sftp) => lstat(sftp, path)),
      kit("stat", "optio_identity", [guardDash(path)]).pipe(Effect.map((result) => result.stdout.trim()), Effect.orElseSucceed(() => ""))
    ], { concurrency: 2 }).pipe(Effect.map(([info, identity]): FileInfo => ({
      type: fileType(info.mode),
      size: info.size,
      mode: info.mode & 0o7777,
      identity: identity === "" ? "unknown" : identity
    })))

  const ensureDirectory = (sftp: SFTPWrapper, path: string, mode: number): Effect.Effect<void, HostError> =>
    step<Stats>("mkdir", path, (done) => sftp.stat(path, done)).pipe(
      Effect.flatMap((info) =>
        fileType(info.mode) === "Directory"
          ? Effect.void
          : Effect.fail(new HostError({ host: label, operation: "mkdir", path, reason: "AlreadyExists", detail: "exists and is not a directory" }))
      ),
      Effect.catchIf((error) => error.reason === "NotFound", () => {
        const parent = posix.dirname(path)
        return (parent === path ? Effect.void : ensureDirectory(sftp, parent, mode)).pipe(
          Effect.andThen(unit("mkdir", path, (done) => sftp.mkdir(path, { mode }, done))),
          // Another writer may have created it meanwhile.
          Effect.catchIf((error) => error.reason !== "ConnectionLost", (error) =>
            step<Stats>("mkdir", path, (done) => sftp.stat(path, done)).pipe(
              Effect.flatMap((info) => fileType(info.mode) === "Directory" ? Effect.void : Effect.fail(error)),
              Effect.mapError(() => error)
            ))
        )
      })
    )

  const symlink = (target: string, linkPath: string) =>
    withSftp("symlink", (sftp) => {
      const temp = siblingTemp(linkPath)
      return unit("symlink", linkPath, (done) => sftp.symlink(target, temp, done)).pipe(
        Effect.andThen(renameOver(sftp, "symlink", temp, linkPath).pipe(Effect.onError(() => discard(sftp, temp))))
      )
    })

  const glob = (pattern: string, cwd: string) =>
    Effect.gen(function*() {
      const root = pattern.startsWith("/") ? "/" : cwd
      const segments = pattern.split("/").filter((segment) => segment !== "" && segment !== ".")
      const literal = segments.findIndex((segment) => /[*?[]/.test(segment))
      if (literal < 0) {
        const path = posix.join(root, ...segments)
        return (yield* exists(path)) ? [path] : []
      }
      const base = posix.join(root, ...segments.slice(0, literal))
      const rest = segments.slice(literal)
      const result = yield* kit("glob", "optio_find", [guardDash(base), rest.includes("**") ? "0" : String(rest.length)])
      const matcher = globRegExp(rest)
      return result.stdout.split("\0")
        .map((entry) => entry.replace(/^\.\//, ""))
        .filter((relative) => relative !== "" && matcher.test(relative))
        .map((relative) => posix.join(base, relative))
        .sort()
    }).pipe(Effect.withSpan("RemoteHost.glob"))

  const importFile = (workerPath: string, hostPath: string, options: { readonly mode?: number } = {}) =>
    Effect.gen(function*() {
      const source = yield* Effect.tryPromise({
        try: () => fs.stat(workerPath),
        catch: (error) =>
          new HostError({
            host: "worker",
            operation: "import",
            path: workerPath,
            reason: typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT" ? "NotFound" : "Unknown",
            detail: error instanceof Error ? error.message : String(error),
            cause: error
          })
      })
      const mode = options.mode ?? Number(source.mode & 0o7777)
      const temp = siblingTemp(hostPath)
      yield* withSftp("import", (sftp) =>
        unit("import", hostPath, (done) => sftp.fastPut(workerPath, temp, { mode }, done)).pipe(
          Effect.andThen(unit("import", hostPath, (done) => sftp.chmod(temp, mode, done))),
          Effect.andThen(renameOver(sftp, "import", temp, hostPath)),
          Effect.onError(() => discard(sftp, temp))
        ))
    }).pipe(Effect.withSpan("RemoteHost.importFile"))

  const exists = (path: string) =>
    withSftp("exists", (sftp) => lstat(sftp, path)).pipe(
      Effect.as(true),
      Effect.catchIf((error) => error.reason !== "ConnectionLost", () => Effect.succeed(false))
    )

  const guarded = makeRemoteGuardedFiles(label, kit)

  return {
    readRegularFile: guarded.readRegularFile,
    readRegularRange: guarded.readRegularRange,
    appendRegularFile: guarded.appendRegularFile,
    createRegularFile: guarded.createRegularFile,
    readFile: (path: string) =>
      withSftp("read", (sftp) => step<Buffer>("read", path, (done) => sftp.readFile(path, done))).pipe(Effect.map((buffer) => new Uint8Array(buffer))),
    readRange,
    writeFile,
    appendFile,
    exists,
    stat,
    realPath: (path: string) => withSftp("realpath", (sftp) => step<string>("realpath", path, (done) => sftp.realpath(path, done))),
    makeDirectory: (path: string, options: { readonly mode?: number } = {}) =>
      withSftp("mkdir", (sftp) =>
        ensureDirectory(sftp, path, options.mode ?? 0o755).pipe(
          Effect.andThen(options.mode === undefined ? Effect.void : unit("mkdir", path, (done) => sftp.chmod(path, options.mode ?? 0o755, done)))
        )),
    readDirectory: (path: string) =>
      withSftp("readdir", (sftp) => step<ReadonlyArray<{ readonly filename: string }>>("readdir", path, (done) => sftp.readdir(path, done))).pipe(
        Effect.map((entries) => entries.map((entry) => entry.filename).filter((name) => name !== "." && name !== "..").sort())
      ),
    remove: (path: string) =>
      kit("remove", "optio_remove", [path]).pipe(Effect.flatMap((result) =>
        result.exitCode === 0
          ? Effect.void
          : Effect.fail(new HostError({ host: label, operation: "remove", path, reason: "Unknown", detail: result.stderr.trim() || `rm exited ${result.exitCode}` }))
      )),
    rename: (from: string, to: string) => withSftp("rename", (sftp) => renameOver(sftp, "rename", from, to)),
    chmod: (path: string, mode: number) => withSftp("chmod", (sftp) => unit("chmod", path, (done) => sftp.chmod(path, mode, done))),
    symlink,
    glob,
    importFile
  }
}

// --- helpers -------------------------------------------------------------------------------

const fileType = (mode: number): FileInfo["type"] => {
  switch (mode & 0o170000) {
    case 0o100000:
      return "File"
    case 0o040000:
      return "Directory"
    case 0o120000:
      return "SymbolicLink"
    default:
      return "Other"
  }
}

const withPath = (error: HostError, path: string) =>
  new HostError({ host: error.host, operation: error.operation, reason: error.reason, detail: error.detail, path, ...(error.cause === undefined ? {} : { cause: error.cause }) })

const siblingTemp = (path: string) => posix.join(posix.dirname(path), `.${posix.basename(path)}.tmp-${randomBytes(6).toString("hex")}`)

/**
 * A glob (`*`, `?`, `[…]`, `**` as a whole segment) over relative paths as a regular expression.
 * Wildcards do not match a leading dot, as in the local host's glob.
 */
export const globRegExp = (segments: ReadonlyArray<string>): RegExp => {
  let source = ""
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1
    if (segment === "**") {
      source += last ? "(?:[^/.][^/]*(?:/[^/.][^/]*)*)?" : "(?:[^/.][^/]*/)*"
      return
    }
    source += (segment.startsWith(".") ? "" : "(?!\\.)") + segmentSource(segment) + (last ? "" : "/")
  })
  return new RegExp(`^${source}$`)
}

const segmentSource = (segment: string): string => {
  let source = ""
  for (let i = 0; i < segment.length; i++) {
    const char = segment[i] ?? ""
    if (char === "*") source += "[^/]*"
    else if (char === "?") source += "[^/]"
    else if (char === "[") {
      const close = segment.indexOf("]", i + 2)
      if (close < 0) {
        source += "\\["
        continue
      }
      let body = segment.slice(i + 1, close)
      const negate = body.startsWith("!") || body.startsWith("^")
      if (negate) body = body.slice(1)
      source += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, (c) => `\\${c}`)}]`
      i = close
    } else source += char.replace(/[.*+?^${}()|[\]\\/]/g, (c) => `\\${c}`)
  }
  return source
}
