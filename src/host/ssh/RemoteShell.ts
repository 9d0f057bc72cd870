/**
 * RemoteShell: the POSIX `sh` text RemoteHost sends over SSH, and the marker protocol that tells
 * the worker which pid a remote command got.
 *
 * Every remote command line is `sh -c '<script>' sh <args…>` with each word quoted by
 * `shellQuote`, so the user's login shell only has to understand POSIX single quotes and the
 * script itself always runs under `sh`. A launched command goes through {@link launchScript}:
 * remove inherited variables whose NAME matches an `envRemove` glob (the glob is evaluated by
 * `case` on the host, never spliced into code), `cd`, `export` the overrides, check that the
 * program exists, print one marker line with a per-launch nonce and the pid on stderr, then
 * `exec` the program, which therefore keeps that pid. A command with `envAllow` gets an exact
 * environment: the kept variables and the overrides become `NAME=value` arguments of
 * `exec env -i`, so nothing else of the login environment (not even names a shell cannot unset)
 * reaches the program. Process trees are found and signalled on
 * the host by the functions of {@link KIT} (`ps -e -o pid=,ppid=,pgid=,sid=,stat=` + `awk`).
 *
 * @since 0.1.0
 */
import { shellJoin, shellQuote } from "../../config/ShellQuote.ts"
import type { Command } from "../Host.ts"

/**
 * The full remote command line for a script and its positional arguments.
 * @category encoding
 */
export const remoteCommandLine = (script: string, args: ReadonlyArray<string> = []): string =>
  shellJoin(["sh", "-c", script, "sh", ...args])

/**
 * Why a command cannot be sent as shell text, or `undefined` when it can.
 * @category validation
 */
export const invalidCommand = (command: Command): string | undefined => {
  const values = [
    ...command.argv,
    command.cwd ?? "",
    ...Object.entries(command.env ?? {}).flat(),
    ...(command.envRemove ?? []),
    ...(command.envAllow ?? [])
  ]
  if (values.some((value) => value.includes("\u0000"))) return "an argument, path or environment entry contains a NUL byte"
  if (command.argv[0] === "" || command.argv[0].startsWith("-")) return `invalid program name ${JSON.stringify(command.argv[0])}`
  // `env -i` would read a program name with `=` as one more variable.
  if (command.envAllow !== undefined && command.argv[0].includes("=")) {
    return `program name ${JSON.stringify(command.argv[0])} contains '=' (not allowed with an exact environment)`
  }
  const badName = Object.keys(command.env ?? {}).find((name) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
  if (badName !== undefined) return `environment variable name ${JSON.stringify(badName)} cannot be set by a POSIX shell`
  return undefined
}

/**
 * The script that launches `command` and reports `<nonce> ready <pid>` (or `notfound` /
 * `denied` for the cwd or the program) as its own stderr line just before `exec`.
 * @category encoding
 */
export const launchScript = (command: Command, launch: { readonly nonce: string; readonly discardStdout: boolean }): string => {
  const say = (word: string) => `printf '\\n%s ${word}\\n' ${launch.nonce} >&2`
  const lines: Array<string> = []
  const globs = command.envRemove ?? []
  const allow = command.envAllow
  const exact = allow !== undefined
  globs.forEach((glob, index) => lines.push(`__optio_g${index}=${shellQuote(glob)}`))
  allow?.forEach((glob, index) => lines.push(`__optio_a${index}=${shellQuote(glob)}`))
  const removed = globs.map((_, index) => `$__optio_g${index}`).join("|")
  const kept = (allow ?? []).map((_, index) => `$__optio_a${index}`).join("|")
  const listNames =
    `for __optio_v in $(awk 'BEGIN { for (k in ENVIRON) print k }' </dev/null 2>/dev/null || env | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'); do`
  if (exact) {
    // The program's argv, then the overrides, then (prepended) every kept variable: `env -i`
    // applies them left to right, so an override wins over a kept value of the same name.
    lines.push(
      "set -f",
      `set -- ${shellJoin(command.argv)}`,
      ...Object.entries(command.env ?? {}).reverse().map(([name, value]) => `set -- ${shellQuote(`${name}=${value}`)} "$@"`),
      listNames,
      `  case $__optio_v in [!A-Za-z_]*|*[!A-Za-z0-9_]*) ;;${removed === "" ? "" : ` ${removed}) ;;`}${kept === "" ? "" : ` ${kept}) eval "set -- \\"\\$__optio_v=\\\${$__optio_v}\\" \\"\\$@\\"" ;;`} esac`,
      "done",
      "set +f"
    )
  } else if (globs.length > 0) {
    lines.push(
      "set -f",
      listNames,
      `  case $__optio_v in [!A-Za-z_]*|*[!A-Za-z0-9_]*) ;; ${removed}) command unset "$__optio_v" ;; esac`,
      "done",
      "set +f"
    )
  }
  if (command.cwd !== undefined) {
    const dir = shellQuote(guardDash(command.cwd))
    lines.push(`CDPATH= cd ${dir} 2>/dev/null || { if [ -e ${dir} ]; then ${say("denied cwd")}; else ${say("notfound cwd")}; fi; exit 127; }`)
  }
  for (const [name, value] of Object.entries(command.env ?? {})) lines.push(`export ${name}=${shellQuote(value)}`)
  const program = shellQuote(command.argv[0])
  lines.push(
    command.argv[0].includes("/")
      ? `if [ ! -e ${program} ]; then ${say("notfound program")}; exit 127; elif [ -d ${program} ] || [ ! -x ${program} ]; then ${say("denied program")}; exit 126; fi`
      : `command -v ${program} >/dev/null 2>&1 || { ${say("notfound program")}; exit 127; }`,
    `unset __optio_v ${[...globs.map((_, index) => `__optio_g${index}`), ...(allow ?? []).map((_, index) => `__optio_a${index}`)].join(" ")}`,
    `printf '\\n%s ready %s\\n' ${launch.nonce} "$$" >&2`,
    `exec ${exact ? "env -i \"$@\"" : shellJoin(command.argv)}${launch.discardStdout ? " >/dev/null" : ""}`
  )
  return lines.join("\n")
}

/**
 * Shell functions run on the host for process trees, globbing, file identity and the home dir.
 * Run through `KitHelper`.
 * @category encoding
 */
export const KIT = String.raw`
# pid ppid pgid sid state, one process a line: from ps, else from /proc (busybox ps lacks sid).
optio_table() {
  ps -e -o pid= -o ppid= -o pgid= -o sid= -o stat= 2>/dev/null && return 0
  for f in /proc/[0-9]*/stat; do read -r l < "$f" 2>/dev/null && printf '%s\n' "$l"; done |
    awk '{ s = $0; sub(/^.*\) /, "", s); split(s, a, " "); print $1, a[2], a[3], a[4], a[1] }'
}
# Live pids of the trees of the seeds in $1: each seed, its process group, its session, and every
# descendant of those (through parent pids, so setsid'd helpers are kept). Our own session is left out.
optio_tree() {
  optio_table | awk -v seeds="$1" -v self="$$" '
    { pid[NR] = $1; pp[NR] = $2; pg[NR] = $3; sd[NR] = $4; st[NR] = $5; if ($1 == self) mysid = $4 }
    END {
      n = split(seeds, s, " "); for (j = 1; j <= n; j++) seed[s[j]] = 1
      for (i = 1; i <= NR; i++) if ((pid[i] in seed) || (pg[i] in seed) || (sd[i] in seed)) keep[pid[i]] = 1
      do { more = 0; for (i = 1; i <= NR; i++) if (!(pid[i] in keep) && (pp[i] in keep)) { keep[pid[i]] = 1; more = 1 } } while (more)
      for (i = 1; i <= NR; i++) if ((pid[i] in keep) && sd[i] != mysid && pid[i] != 1 && st[i] !~ /^Z/) print pid[i]
    }'
}
optio_alive() {
  optio_table | awk -v want="$1" 'BEGIN { n = split(want, w, " "); for (j = 1; j <= n; j++) keep[w[j]] = 1 } ($1 in keep) && $5 !~ /^Z/ { print $1 }'
}
optio_nap() { sleep 0.05 2>/dev/null || sleep 1; }
# TERM the tree of $1, wait up to $2 naps of 50 ms, KILL whatever is left (and its tree), wait 1 s.
optio_terminate() {
  pids=$(optio_tree "$1")
  [ -n "$pids" ] || return 0
  kill -s TERM $pids 2>/dev/null
  i=0
  while [ "$i" -lt "$2" ]; do
    pids=$(optio_alive "$pids")
    [ -n "$pids" ] || return 0
    optio_nap
    i=$((i + 1))
  done
  pids=$(optio_alive "$pids")
  [ -n "$pids" ] || return 0
  pids=$(optio_tree "$pids")
  [ -n "$pids" ] || return 0
  kill -s KILL $pids 2>/dev/null
  i=0
  while [ "$i" -lt 20 ]; do
    pids=$(optio_alive "$pids")
    [ -n "$pids" ] || return 0
    optio_nap
    i=$((i + 1))
  done
  echo $pids
}
optio_signal() {
  pids=$(optio_tree "$1")
  [ -z "$pids" ] || kill -s "$2" $pids 2>/dev/null
  return 0
}
optio_isalive() { optio_table | awk -v p="$1" '$1 == p && $5 !~ /^Z/ { found = 1 } END { exit found ? 0 : 1 }'; }
optio_identity() { stat -c %d:%i "$1" 2>/dev/null || ls -di "$1" 2>/dev/null | awk '{ print $1 }'; }
optio_home() {
  h=$HOME
  [ -n "$h" ] || h=$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f6)
  printf %s "$h"
}
# NUL-separated paths under $1 (relative, "./…"), at most $2 levels deep (0 = unlimited).
optio_find() {
  CDPATH= cd "$1" 2>/dev/null || return 0
  if [ "$2" -gt 0 ]; then find . -mindepth 1 -maxdepth "$2" -print0 2>/dev/null; else find . -mindepth 1 -print0 2>/dev/null; fi
  return 0
}
optio_remove() { rm -rf -- "$1"; }
`

/**
 * A path that no command reads as an option (`-x` becomes `./-x`).
 * @category encoding
 */
export const guardDash = (path: string): string => path.startsWith("-") ? `./${path}` : path

/**
 * What the launch wrapper reported.
 * @category models
 */
export type Marker =
  | { readonly kind: "ready"; readonly pid: number }
  | { readonly kind: "notfound" | "denied"; readonly what: "cwd" | "program" }

const PREAMBLE_LIMIT = 64 * 1024

/**
 * Finds the wrapper's marker line in a byte stream (stderr, or the terminal output of a pty).
 * Bytes before it (login-shell noise, the wrapper's own errors) are held back as the preamble;
 * bytes after it are the program's.
 * @category constructors
 */
export class MarkerScanner {
  marker: Marker | undefined = undefined
  private readonly needle: Buffer
  private buffer = Buffer.alloc(0)
  private preamble = Buffer.alloc(0)

  constructor(nonce: string) {
    this.needle = Buffer.from(`${nonce} `)
  }

  /** Feeds a chunk; returns the part that belongs to the program (empty before the marker). */
  push(chunk: Uint8Array): Buffer {
    if (this.marker !== undefined) return Buffer.from(chunk)
    this.buffer = Buffer.concat([this.buffer, chunk])
    const at = this.buffer.indexOf(this.needle)
    const end = at < 0 ? -1 : this.buffer.indexOf(0x0a, at)
    if (end < 0) {
      if (this.buffer.length > PREAMBLE_LIMIT) this.buffer = this.buffer.subarray(this.buffer.length - PREAMBLE_LIMIT)
      return Buffer.alloc(0)
    }
    const [kind, value] = this.buffer.subarray(at + this.needle.length, end).toString("latin1").trim().split(" ")
    this.preamble = this.buffer.subarray(0, at)
    const rest = this.buffer.subarray(end + 1)
    this.buffer = Buffer.alloc(0)
    this.marker = kind === "ready"
      ? { kind, pid: Number(value) }
      : { kind: kind === "denied" ? "denied" : "notfound", what: value === "cwd" ? "cwd" : "program" }
    return rest
  }

  /** What came before the marker (or everything so far, when it never came), as text. */
  preambleText(): string {
    return (this.marker === undefined ? this.buffer : this.preamble).toString("utf8").trim()
  }
}
