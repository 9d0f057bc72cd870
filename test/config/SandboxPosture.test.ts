import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { parse } from "smol-toml"
import type { AllowedDir, CodexTaskConfig } from "../../src/config/CodexTaskConfig.ts"
import { decodeCodexTaskConfig } from "../../src/config/CodexTaskConfig.ts"
import {
  appServerSandboxArgs,
  configOverrideArgs,
  execSandboxArgs,
  resolveSandboxPosture,
  sandboxConfigOverrides,
  threadStartSandbox,
  tuiSandboxArgs,
} from "../../src/config/SandboxPosture.ts"

type PostureInput = Pick<CodexTaskConfig, "sandbox" | "fsIsolation" | "extraAllowedDirs" | "networkAccess">

const HOME = "/home/alice/"
const ROOTS_KEY = "sandbox_workspace_write.writable_roots="
const NETWORK = "sandbox_workspace_write.network_access=true"
// Every surface pins mode, roots, network and the tool-command environment policy.
const pins = (mode: string, roots: ReadonlyArray<string>, network: boolean) => [
  "-c",
  `sandbox_mode="${mode}"`,
  "-c",
  `${ROOTS_KEY}[${roots.map((root) => `"${root}"`).join(", ")}]`,
  "-c",
  `sandbox_workspace_write.network_access=${network}`,
  "-c",
  "shell_environment_policy.inherit=\"all\"",
  "-c",
  "shell_environment_policy.ignore_default_excludes=false",
]

const MODES = [
  { mode: "workspace-write", base: { fsIsolation: true } },
  { mode: "read-only", base: { fsIsolation: true, sandbox: "read-only" } },
  { mode: "danger-full-access", base: { fsIsolation: false } },
] as const

const GRANTS: ReadonlyArray<{ name: string; dirs: ReadonlyArray<AllowedDir>; roots: ReadonlyArray<string> }> = [
  { name: "none", dirs: [], roots: [] },
  { name: "ro", dirs: [{ path: "/data", mode: "ro" }], roots: [] },
  { name: "rw", dirs: [{ path: "/scratch/", mode: "rw" }], roots: ["/scratch"] },
  { name: "rw ~", dirs: [{ path: "~/cache", mode: "rw" }, { path: "/data", mode: "ro" }], roots: ["/home/alice/cache"] },
]

const MATRIX = MODES.flatMap(({ mode, base }) =>
  GRANTS.flatMap((grant) =>
    [false, true].map((network) => ({
      label: `${mode} / grant ${grant.name} / network ${network}`,
      mode,
      grant,
      network,
      input: { ...base, extraAllowedDirs: grant.dirs, networkAccess: network } satisfies PostureInput,
    }))
  )
)

// The value half of a `-c key=value` pair, parsed back the way codex parses it.
const parseOverrideValue = (pair: string, key: string): unknown => {
  assert.isTrue(pair.startsWith(key), pair)
  return parse(`x = ${pair.slice(key.length)}`)["x"]
}

describe("resolveSandboxPosture", () => {
  it.effect("defaults to workspace-write with no roots and no network", () =>
    Effect.sync(() => {
      const posture = resolveSandboxPosture({ fsIsolation: true, networkAccess: false }, HOME)
      assert.deepStrictEqual(posture, { mode: "workspace-write", writableRoots: [], networkAccess: false })
    }))

  it.effect("expands ~ against the real host home and strips trailing slashes, in order", () =>
    Effect.sync(() => {
      const posture = resolveSandboxPosture({
        fsIsolation: true,
        networkAccess: true,
        extraAllowedDirs: [
          { path: "~/cache", mode: "rw" },
          { path: "/scratch/", mode: "rw" },
          { path: "/ro", mode: "ro" },
          { path: "~", mode: "rw" },
          { path: "~/", mode: "rw" },
          { path: "/x//", mode: "rw" },
        ],
      }, HOME)
      assert.deepStrictEqual(posture, {
        mode: "workspace-write",
        writableRoots: ["/home/alice/cache", "/scratch", "/home/alice", "/home/alice", "/x"],
        networkAccess: true,
      })
    }))

  it.effect("keeps / as / instead of turning it into an empty root (P17)", () =>
    Effect.sync(() => {
      const dirs: ReadonlyArray<AllowedDir> = [{ path: "/", mode: "rw" }, { path: "~", mode: "rw" }, { path: "~/x/", mode: "rw" }]
      assert.deepStrictEqual(resolveSandboxPosture({ fsIsolation: true, networkAccess: false, extraAllowedDirs: dirs }, "/").writableRoots, [
        "/",
        "/",
        "/x",
      ])
      assert.deepStrictEqual(
        sandboxConfigOverrides(resolveSandboxPosture({ fsIsolation: true, networkAccess: false, extraAllowedDirs: [{ path: "/", mode: "rw" }] }, HOME)),
        pins("workspace-write", ["/"], false),
      )
    }))

  it.effect("returns a frozen value", () =>
    Effect.sync(() => {
      const posture = resolveSandboxPosture({ fsIsolation: true, networkAccess: false, extraAllowedDirs: [{ path: "/a", mode: "rw" }] }, HOME)
      assert.isTrue(Object.isFrozen(posture))
      assert.isTrue(Object.isFrozen(posture.writableRoots))
      assert.isFalse(Reflect.set(posture, "networkAccess", true))
    }))
})

describe("every mode x grant x network on every surface", () => {
  it.effect.each(MATRIX)("$label", ({ mode, grant, network, input }) =>
    Effect.sync(() => {
      const posture = resolveSandboxPosture(input, HOME)
      const workspaceWrite = mode === "workspace-write"
      const roots = workspaceWrite ? grant.roots : []
      assert.deepStrictEqual(posture, { mode, writableRoots: roots, networkAccess: network && workspaceWrite })

      const overrides = pins(mode, roots, network && workspaceWrite)
      assert.deepStrictEqual(sandboxConfigOverrides(posture), overrides)
      assert.deepStrictEqual(tuiSandboxArgs(posture), ["--sandbox", mode, ...overrides])
      assert.deepStrictEqual(execSandboxArgs(posture), ["--sandbox", mode, ...overrides])
      assert.deepStrictEqual(appServerSandboxArgs(posture), overrides)
      assert.notInclude(appServerSandboxArgs(posture), "--sandbox")
      assert.strictEqual(threadStartSandbox(posture), mode)
    }))
})

describe("renderers", () => {
  it.effect("render the reference's exact strings for roots plus network", () =>
    Effect.sync(() => {
      const posture = resolveSandboxPosture({
        fsIsolation: true,
        networkAccess: true,
        extraAllowedDirs: [{ path: "~/cache", mode: "rw" }, { path: "/scratch", mode: "rw" }],
      }, "/home/u")
      assert.deepStrictEqual(tuiSandboxArgs(posture), [
        "--sandbox",
        "workspace-write",
        "-c",
        "sandbox_mode=\"workspace-write\"",
        "-c",
        "sandbox_workspace_write.writable_roots=[\"/home/u/cache\", \"/scratch\"]",
        "-c",
        "sandbox_workspace_write.network_access=true",
        "-c",
        "shell_environment_policy.inherit=\"all\"",
        "-c",
        "shell_environment_policy.ignore_default_excludes=false",
      ])
    }))

  it.effect("escape hostile root paths so codex's TOML parser reads back the exact paths", () =>
    Effect.sync(() => {
      const hostile = [
        "/tmp/it's \"quoted\"",
        "/tmp/with space",
        "/tmp/$(touch pwned)",
        "/tmp/`id`",
        "/tmp/new\nline",
        "/tmp/tab\there",
        "/tmp/back\\slash",
        "/tmp/é/日本/🙂",
        "/tmp/a, \"b\"]",
      ]
      const posture = resolveSandboxPosture({
        fsIsolation: true,
        networkAccess: false,
        extraAllowedDirs: hostile.map((path) => ({ path, mode: "rw" as const })),
      }, HOME)
      const args = appServerSandboxArgs(posture)
      assert.strictEqual(args.length, 10)
      assert.strictEqual(args[2], "-c")
      const pair = args[3] ?? ""
      assert.match(pair, /^[\x20-\x7e]*$/)
      assert.deepStrictEqual(parseOverrideValue(pair, ROOTS_KEY), hostile)
    }))

  it.effect("render user config overrides as -c key=value pairs in key order", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(configOverrideArgs({}), [])
      const args = configOverrideArgs({
        "model_providers.local.base_url": "http://127.0.0.1:8080/v1",
        "features.web_search_request": true,
        "shell_environment_policy": { inherit: "core", exclude: ["AWS_*", "*TOKEN*"] },
        "tui.notifications": ["agent-turn-complete"],
        "model_context_window": 200000,
        "note": "it's \"é\"\n",
      })
      assert.deepStrictEqual(args, [
        "-c",
        "model_providers.local.base_url=\"http://127.0.0.1:8080/v1\"",
        "-c",
        "features.web_search_request=true",
        "-c",
        "shell_environment_policy={ inherit = \"core\", exclude = [\"AWS_*\", \"*TOKEN*\"] }",
        "-c",
        "tui.notifications=[\"agent-turn-complete\"]",
        "-c",
        "model_context_window=200000",
        "-c",
        String.raw`note="it's \"\u00E9\"\n"`,
      ])
      assert.strictEqual(parseOverrideValue(args[11] ?? "", "note="), "it's \"é\"\n")
    }))

  it.effect("compose with a decoded config end to end", () =>
    Effect.gen(function*() {
      const config = yield* decodeCodexTaskConfig({
        consumerInstructions: "do it",
        extraAllowedDirs: [{ path: "~/work/", mode: "rw" }],
        networkAccess: true,
        configOverrides: { "tui.animations": false },
      })
      const posture = resolveSandboxPosture(config, "/home/bob")
      assert.deepStrictEqual(tuiSandboxArgs(posture), ["--sandbox", "workspace-write", ...pins("workspace-write", ["/home/bob/work"], true)])
      assert.deepStrictEqual(configOverrideArgs(config.configOverrides ?? {}), ["-c", "tui.animations=false"])
    }))
})
