/**
 * RemoteGuardedFiles: the SSH host's file operations for paths the agent could have touched
 * (`Host.readRegularFile`, `appendRegularFile`, `createRegularFile`, the tail's range reads).
 *
 * Why not SFTP: SFTP has no `O_NOFOLLOW`, no `O_NONBLOCK` and no inode. OpenSSH's sftp-server
 * opens with a plain `open(2)`, so a FIFO swapped in after a check blocks the whole SFTP session
 * forever, and comparing an `lstat` with the handle's `fstat` cannot prove the handle is the file
 * that was checked (size, mode and mtime are forgeable by the agent). So these operations run a
 * small POSIX `sh` script through the connection's shell helpers, with argv only (paths and data
 * are arguments, never script text):
 *
 * - the path itself must be a regular file, not a symlink (`test -h`, `test -f`), and its
 *   identity (`dev:inode`) is taken;
 * - it is opened ONCE, read-only (an open for reading never creates anything), in a background
 *   subshell that a watchdog kills when it outlives the timeout (a FIFO swapped in just before the
 *   open would block it);
 * - the opened descriptor's identity (`stat -L /dev/fd/3`) must equal the identity checked: a
 *   symlink or anything else swapped in between is refused; when a root is given, the descriptor's
 *   real location (`readlink /dev/fd/3`, Linux) must lie inside it;
 * - reads come from that descriptor (as `od` hex, so any byte survives the text channel); writes
 *   reopen the same open file through `/dev/fd/3` (on Linux that names the file object, not the
 *   path) and check its identity again. New files are created with `set -C` (noclobber: `O_EXCL`
 *   when nothing is there, so never through a dangling symlink).
 *
 * Written data travels as `printf %b` escapes in arguments, at most {@link WRITE_CHUNK} bytes per
 * request, so an upload streams to the host with bounded memory on both sides.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Stream } from "effect"
import { HostError } from "../Host.ts"
import type { GuardedFileOptions, HostErrorReason } from "../Host.ts"

type Kit = (operation: string, fn: string, args: ReadonlyArray<string>) => Effect.Effect<{ readonly exitCode: number | undefined; readonly stdout: string; readonly stderr: string }, HostError>

const DEFAULT_TIMEOUT = Duration.seconds(10)
const CHANNEL_MARGIN = Duration.seconds(30)
/** Raw bytes per write request: escaped (5 bytes each at worst) it stays under Linux's 128 KiB per argument. */
const WRITE_CHUNK = 20 * 1024

/** The script; `$1` is the operation. Exit statuses are mapped by {@link REASON_OF_STATUS}. */
export const GUARDED_SCRIPT = String.raw`
exec 2>/dev/null
id_of() { stat -c %d:%i "$1" || ls -di "$1" | awk '{ print $1 }'; }
fd_id() { stat -L -c %d:%i "/dev/fd/$1" || ls -diL "/dev/fd/$1" | awk '{ print $1 }'; }
fd_size() { stat -L -c %s /dev/fd/3 || ls -lLn /dev/fd/3 | awk '{ print $5 }'; }
precheck() {
  if [ -h "$1" ]; then exit 40; fi
  if [ ! -e "$1" ]; then exit 45; fi
  if [ ! -f "$1" ]; then exit 41; fi
}
inside() {
  [ -n "$1" ] || return 0
  l=$(readlink /dev/fd/3) || exit 43
  case $l in "$1"/?*) return 0 ;; esac
  exit 43
}
watched() {
  t=$1; shift
  "$@" &
  w=$!
  ( n=0; while kill -0 "$w"; do if [ "$n" -ge "$t" ]; then kill -s KILL "$w"; exit 0; fi; sleep 1; n=$((n + 1)); done ) >/dev/null &
  k=$!
  wait "$w"; s=$?
  kill "$k" 2>/dev/null
  [ "$s" -ne 137 ] || exit 44
  exit "$s"
}
do_read() {
  exec 3<"$1" || exit 46
  [ "$(fd_id 3)" = "$4" ] || exit 47
  inside "$3"
  size=$(fd_size)
  [ -n "$size" ] || exit 46
  if [ -n "$5" ]; then
    printf '%s\n' "$size"
    [ "$5" -lt "$size" ] || exit 0
    tail -c +"$(($5 + 1))" <&3 | head -c "$6" | od -An -v -tx1
  else
    [ "$size" -le "$2" ] || exit 42
    printf '%s\n' "$size"
    head -c "$size" <&3 | od -An -v -tx1
  fi
}
do_append() {
  exec 3<"$1" || exit 46
  [ "$(fd_id 3)" = "$4" ] || exit 47
  inside "$3"
  exec 4>>/dev/fd/3 || exit 46
  [ "$(fd_id 4)" = "$4" ] || exit 47
  printf '%b' "$2" >&4 || exit 46
}
do_create() {
  set -C
  umask "$3"
  exec 3>"$1" || exit 48
  [ -f /dev/fd/3 ] || exit 41
  [ "$(fd_size)" = 0 ] || exit 48
  l=$(readlink /dev/fd/3) || l=$1
  if ! (inside "$2"); then
    [ "$(id_of "$l")" = "$(fd_id 3)" ] && rm -f -- "$l"
    exit 43
  fi
  printf '%s\n%s\n' "$(fd_id 3)" "$l"
}
op=$1; shift
case $op in
  read)
    precheck "$1"; want=$(id_of "$1"); [ -n "$want" ] || exit 46
    watched "$4" do_read "$1" "$2" "$3" "$want" "$5" "$6" ;;
  append)
    if [ ! -e "$1" ] && [ ! -h "$1" ]; then (set -C; umask "$5"; : >"$1") || exit 48; fi
    precheck "$1"; want=$(id_of "$1"); [ -n "$want" ] || exit 46
    [ -z "$6" ] || [ "$6" = "$want" ] || exit 47
    watched "$4" do_append "$1" "$2" "$3" "$want" ;;
  create)
    if [ -e "$1" ] || [ -h "$1" ]; then exit 48; fi
    watched "$3" do_create "$1" "$2" "$4" ;;
  discard)
    [ "$(id_of "$1")" = "$2" ] && rm -f -- "$1"
    exit 0 ;;
esac
exit 46
`

const REASON_OF_STATUS: Readonly<Record<number, readonly [HostErrorReason, string]>> = {
  40: ["SymlinkRefused", "the path is a symbolic link"],
  41: ["NotRegularFile", "not a regular file"],
  42: ["TooLarge", "the file is bigger than the limit"],
  43: ["OutsideRoot", "the opened file lies outside the allowed directory"],
  44: ["TimedOut", "opening the file did not finish in time"],
  45: ["NotFound", "no such file"],
  46: ["Unknown", "the file could not be opened, read or written"],
  47: ["NotRegularFile", "the path was replaced while it was being opened"],
  48: ["AlreadyExists", "something already exists at the path"]
}

/** Bytes as `printf %b` text: anything not plain printable ASCII (and `\`, `%`) becomes `\0ooo`. */
export const printfEscape = (bytes: Uint8Array): string => {
  let text = ""
  for (const byte of bytes) {
    text += byte >= 0x20 && byte < 0x7f && byte !== 0x5c && byte !== 0x25 ? String.fromCharCode(byte) : `\\0${byte.toString(8).padStart(3, "0")}`
  }
  return text
}

const seconds = (timeout: Duration.Input | undefined) =>
  Math.max(1, Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(timeout ?? DEFAULT_TIMEOUT)) / 1000))

const umaskOf = (mode: number) => (0o777 & ~mode).toString(8).padStart(3, "0")

const stripRoot = (root: string | undefined) => root === undefined ? "" : root.replace(/\/+$/, "")

/** Builds the guarded operations of an SSH host from its shell-helper runner. */
export const makeRemoteGuardedFiles = (label: string, kit: Kit) => {
  const call = (operation: string, path: string, timeout: Duration.Input | undefined, args: ReadonlyArray<string>) =>
    kit(operation, "sh", ["-c", GUARDED_SCRIPT, "sh", ...args]).pipe(
      // The script's own watchdog bounds the open; this only bounds a stuck channel, with room
      // for a shell helper's start (a login shell sourcing slow rc files).
      Effect.timeoutOrElse({
        duration: Duration.sum(Duration.seconds(seconds(timeout)), CHANNEL_MARGIN),
        orElse: () => Effect.fail(new HostError({ host: label, operation, path, reason: "TimedOut", detail: "the host did not answer in time" }))
      }),
      Effect.flatMap((result) => {
        if (result.exitCode === 0) return Effect.succeed(result.stdout)
        const [reason, detail] = REASON_OF_STATUS[result.exitCode ?? -1] ?? ["Unknown", `the guarded file script exited ${result.exitCode}`]
        return Effect.fail(new HostError({ host: label, operation, path, reason, detail }))
      })
    )

  const decodeRead = (output: string) => {
    const newline = output.indexOf("\n")
    const size = Number(output.slice(0, newline < 0 ? output.length : newline))
    const bytes = new Uint8Array(Buffer.from(newline < 0 ? "" : output.slice(newline + 1).replace(/\s+/g, ""), "hex"))
    return { size, bytes }
  }

  const readRegularFile = (path: string, options: GuardedFileOptions & { readonly maxBytes: number }) =>
    call("read", path, options.timeout, ["read", path, String(options.maxBytes), stripRoot(options.within), String(seconds(options.timeout)), "", ""]).pipe(
      Effect.map((output) => decodeRead(output).bytes)
    )

  const readRegularRange = (path: string, offset: number, length: number, options?: GuardedFileOptions) =>
    call("read", path, options?.timeout, ["read", path, "0", stripRoot(options?.within), String(seconds(options?.timeout)), String(offset), String(length)]).pipe(
      Effect.map((output) => decodeRead(output).bytes)
    )

  const append = (path: string, bytes: Uint8Array, options: GuardedFileOptions & { readonly mode?: number }, expected: string) =>
    call("append", path, options.timeout, [
      "append",
      path,
      printfEscape(bytes),
      stripRoot(options.within),
      String(seconds(options.timeout)),
      umaskOf(options.mode ?? 0o644),
      expected
    ]).pipe(Effect.asVoid)

  const appendRegularFile = (path: string, data: string | Uint8Array, options: GuardedFileOptions & { readonly mode?: number } = {}) =>
    Effect.gen(function*() {
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data
      // Several requests for a large append: each re-checks the same file.
      for (let at = 0; at < Math.max(bytes.byteLength, 1); at += WRITE_CHUNK) {
        yield* append(path, bytes.subarray(at, at + WRITE_CHUNK), options, "")
      }
    })

  const createRegularFile = <E, R>(
    path: string,
    content: Stream.Stream<Uint8Array, E, R>,
    options: GuardedFileOptions & { readonly mode?: number; readonly maxBytes?: number } = {}
  ): Effect.Effect<number, HostError | E, R> => {
    const limit = options.maxBytes ?? Number.POSITIVE_INFINITY
    const discard = (identity: string, location: string) =>
      call("create", location, options.timeout, ["discard", location, identity]).pipe(Effect.ignore)
    return Effect.acquireUseRelease(
      call("create", path, options.timeout, ["create", path, stripRoot(options.within), String(seconds(options.timeout)), umaskOf(options.mode ?? 0o644)]).pipe(
        Effect.map((output) => {
          const [identity = "", location = path] = output.split("\n")
          return { identity, location }
        }),
      ),
      (created) =>
        content.pipe(
          Stream.runFoldEffect(() => 0, (written, chunk) =>
            Effect.gen(function*() {
              const total = written + chunk.byteLength
              if (total > limit) {
                return yield* new HostError({ host: label, operation: "create", path, reason: "TooLarge", detail: `more than the limit of ${limit} bytes` })
              }
              for (let at = 0; at < chunk.byteLength; at += WRITE_CHUNK) {
                yield* append(created.location, chunk.subarray(at, at + WRITE_CHUNK), options, created.identity)
              }
              return total
            }))
        ),
      (created, exit) => exit._tag === "Success" ? Effect.void : discard(created.identity, created.location)
    )
  }

  return { readRegularFile, readRegularRange, appendRegularFile, createRegularFile }
}
