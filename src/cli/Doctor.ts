/**
 * Doctor: checks whether a host can run codex tasks — reachable with a trusted key, tmux present,
 * a supported architecture, room in the binary cache, and a working codex sandbox (bubblewrap or
 * user namespaces). One result per check; nothing is changed on the host.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Host } from "../host/Host.ts"

/**
 * One check's outcome.
 * @category models
 */
export interface DoctorCheck {
  readonly check: string
  readonly ok: boolean
  readonly detail: string
}

// The binary cache needs room for one codex install (~410 MB) plus a staging copy.
const REQUIRED_CACHE_KIB = 1024 * 1024

/**
 * Runs every check on the current host.
 * @category constructors
 */
export const doctorChecks = Effect.gen(function*() {
  const host = yield* Host
  const sh = (script: string) =>
    host.run({ argv: ["sh", "-c", script] }).pipe(
      Effect.map((result) => ({ ok: result.exitCode === 0, output: `${result.stdout}${result.stderr}`.trim() })),
      Effect.catch((error) => Effect.succeed({ ok: false, output: error.message }))
    )
  const checks: Array<DoctorCheck> = [{ check: "reachable", ok: true, detail: `${host.label} answers, host key trusted` }]

  const tmux = yield* sh("command -v tmux >/dev/null && tmux -V")
  checks.push({ check: "tmux", ok: tmux.ok, detail: tmux.ok ? tmux.output : "tmux is not installed (needed for TUI mode)" })

  const uname = yield* sh("uname -sm")
  const supported = /^Linux (x86_64|aarch64|arm64)$/.test(uname.output)
  checks.push({ check: "architecture", ok: supported, detail: supported ? uname.output : `${uname.output || "unknown"}: only Linux x86_64/aarch64` })

  const disk = yield* sh(
    "d=\"${OPTIO_CODEX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/optio-codex/bin}\"; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; df -Pk \"$d\" | awk 'NR==2 {print $4, $6}'"
  )
  const [available = "0", mount = "?"] = disk.output.split(/\s+/)
  const roomy = disk.ok && Number(available) >= REQUIRED_CACHE_KIB
  checks.push({
    check: "cache disk space",
    ok: roomy,
    detail: `${Math.round(Number(available) / 1024)} MiB free on ${mount} (need ${REQUIRED_CACHE_KIB / 1024} MiB)`
  })

  const sandbox = yield* sh(
    "if command -v bwrap >/dev/null; then bwrap --ro-bind / / --dev /dev --proc /proc --unshare-user --unshare-net true && echo bubblewrap works; " +
      "elif command -v unshare >/dev/null; then unshare -U -n true && echo user namespaces work; else echo neither bwrap nor unshare found; exit 1; fi"
  )
  checks.push({
    check: "codex sandbox",
    ok: sandbox.ok,
    detail: sandbox.ok ? sandbox.output : `sandboxed commands would fail: ${sandbox.output || "no user namespaces"}`
  })
  return checks
})
