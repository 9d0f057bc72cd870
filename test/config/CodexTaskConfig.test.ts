import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import type { CodexTaskConfig, CodexTaskConfigInput } from "../../src/config/CodexTaskConfig.ts"
import { ConfigError, decodeCodexTaskConfig, effectiveSandboxMode } from "../../src/config/CodexTaskConfig.ts"

const BASE = { consumerInstructions: "do the task" }
const CONVERSATION_UI = { mode: "conversation", conversationUi: true }

const decode = (extra: Record<string, unknown>) => decodeCodexTaskConfig({ ...BASE, ...extra })

// Decoding must fail on `field`, and the message must contain every substring given.
const rejects = (extra: Record<string, unknown>, field: string, ...substrings: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const error = yield* Effect.flip(decode(extra))
    assert.instanceOf(error, ConfigError)
    assert.strictEqual(error.field, field, error.message)
    for (const text of substrings) assert.include(error.message, text)
    return error
  })

const accepts = (extra: Record<string, unknown>) => decode(extra)

describe("defaults", () => {
  it.effect("fills every default of the reference, leaves optional fields absent", () =>
    Effect.gen(function*() {
      const config = yield* accepts({})
      assert.deepStrictEqual({ ...config }, {
        consumerInstructions: "do the task",
        mode: "iframe",
        hostProtocol: true,
        permissionGate: false,
        conversationUi: false,
        toolVerbosity: "description-only",
        thinkingVerbosity: "hidden",
        showModelSelector: false,
        showFileUpload: false,
        fileDownload: false,
        askForApproval: "never",
        fsIsolation: true,
        networkAccess: false,
        maxUploadBytes: 10_000_000,
        maxDownloadBytes: 10_000_000,
        widgetBindHost: "127.0.0.1",
        widgetAdvertisedHost: "127.0.0.1",
        installIfMissing: true,
        autoStart: false,
        supportsResume: true,
        snapshotCompression: "zstd",
      })
      assert.strictEqual(effectiveSandboxMode(config), "workspace-write")
    }))

  it.effect("derives the sandbox mode from fsIsolation unless sandbox is explicit", () =>
    Effect.gen(function*() {
      assert.strictEqual(effectiveSandboxMode(yield* accepts({ fsIsolation: false })), "danger-full-access")
      assert.strictEqual(effectiveSandboxMode(yield* accepts({ sandbox: "read-only" })), "read-only")
      assert.strictEqual(effectiveSandboxMode(yield* accepts({ sandbox: "workspace-write" })), "workspace-write")
      assert.strictEqual(
        effectiveSandboxMode(yield* accepts({ sandbox: "danger-full-access", fsIsolation: false })),
        "danger-full-access",
      )
    }))

  it.effect("fills ssh defaults and keeps a full config intact", () =>
    Effect.gen(function*() {
      const input: CodexTaskConfigInput = {
        ...BASE,
        ssh: { host: "build.example.com", user: "ci" },
        model: "gpt-5.5",
        reasoningEffort: "xhigh",
        env: { FOO: "bar" },
        scrubEnv: ["AWS_*", "*_TOKEN"],
        seedId: "6650aa00bb11cc22dd33ee44",
        workdirExclude: ["node_modules"],
        codexCacheDir: "~/.cache/codex",
      }
      const config = yield* decodeCodexTaskConfig(input)
      assert.deepStrictEqual(config.ssh, { host: "build.example.com", user: "ci", port: 22, hostKey: "strict" })
      assert.strictEqual(config.reasoningEffort, "xhigh")
      assert.deepStrictEqual(config.scrubEnv, ["AWS_*", "*_TOKEN"])
      assert.strictEqual(config.codexCacheDir, "~/.cache/codex")
    }))
})

describe("schema failures", () => {
  it.effect("consumerInstructions is required", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decodeCodexTaskConfig({ mode: "iframe" }))
      assert.strictEqual(error.field, "consumerInstructions")
      assert.include(error.message, "required")
      yield* rejects({ consumerInstructions: undefined }, "consumerInstructions", "expected string", "undefined")
    }))

  it.effect("the configuration must be an object", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decodeCodexTaskConfig([1, 2]))
      assert.strictEqual(error.field, "")
      assert.include(error.message, "must be an object")
    }))

  it.effect("rule 1: mode names the field and the bad value", () => rejects({ mode: "tui" }, "mode", "mode", "\"tui\""))
  it.effect("rule 5: toolVerbosity", () =>
    Effect.gen(function*() {
      yield* rejects({ toolVerbosity: "loud" }, "toolVerbosity", "toolVerbosity", "\"loud\"")
      yield* accepts({ toolVerbosity: "verbose" })
    }))
  it.effect("rule 6: thinkingVerbosity", () => rejects({ thinkingVerbosity: "shown" }, "thinkingVerbosity", "thinkingVerbosity"))
  it.effect("rule 11: askForApproval", () => rejects({ askForApproval: "always" }, "askForApproval", "askForApproval", "\"always\""))
  it.effect("rule 12: sandbox", () => rejects({ sandbox: "full" }, "sandbox", "sandbox", "\"full\""))
  it.effect("reasoningEffort", () =>
    Effect.gen(function*() {
      yield* rejects({ reasoningEffort: "max" }, "reasoningEffort", "\"xhigh\"")
      yield* accepts({ reasoningEffort: "none" })
    }))
  it.effect("AllowedDir mode", () => rejects({ extraAllowedDirs: [{ path: "/a", mode: "wx" }] }, "extraAllowedDirs[0].mode", "\"wx\""))
  it.effect("a wrong type names the nested path", () => rejects({ ssh: { host: "h", user: "u", port: "22" } }, "ssh.port", "expected number"))

  it.effect("unknown keys are rejected, with a hint for snake_case and retired keys", () =>
    Effect.gen(function*() {
      yield* rejects({ hostProtocl: false }, "hostProtocl", "unknown field")
      yield* rejects({ host_protocol: false }, "host_protocol", "did you mean \"hostProtocol\"")
      yield* rejects({ installTtydIfMissing: false }, "installTtydIfMissing", "ttyd")
      yield* rejects({ ttyd_install_dir: "/x" }, "ttyd_install_dir", "ttyd")
      yield* rejects({ codexInstallDir: "/x" }, "codexInstallDir", "codexCacheDir")
      yield* rejects({ extraAllowedDirs: [{ path: "/a", mode: "ro", recursive: true }] }, "extraAllowedDirs[0].recursive", "unknown field")
      yield* rejects({ ssh: { host: "h", user: "u", key_path: "/k" } }, "ssh.key_path", "identityFile")
    }))

  it.effect("env type errors never echo the value", () =>
    Effect.gen(function*() {
      const error = yield* rejects({ env: { TOKEN: 12345 } }, "env.TOKEN", "expected string")
      assert.notInclude(error.message, "12345")
      assert.isFalse("value" in error)
    }))

  it.effect("configOverrides values must be TOML-representable", () =>
    Effect.gen(function*() {
      yield* rejects({ configOverrides: { "a.b": null } }, "configOverrides[\"a.b\"]", "TOML", "null")
      yield* rejects({ configOverrides: { x: [1, { y: null }] } }, "configOverrides.x[1].y", "TOML")
      yield* rejects({ configOverrides: { x: Number.NaN } }, "configOverrides.x", "finite")
    }))
})

describe("validation rules 2-17, in the reference's order", () => {
  it.effect("rule 2: hostProtocol false is rejected in iframe mode only", () =>
    Effect.gen(function*() {
      yield* rejects({ hostProtocol: false }, "hostProtocol", "hostProtocol", "optio.log")
      yield* accepts({ hostProtocol: false, mode: "conversation" })
    }))

  it.effect("rule 3: permissionGate needs conversation mode", () =>
    Effect.gen(function*() {
      yield* rejects({ permissionGate: true }, "permissionGate", "permissionGate", "conversation")
      yield* accepts({ permissionGate: true, mode: "conversation" })
    }))

  it.effect("rule 4: conversationUi needs conversation mode", () =>
    Effect.gen(function*() {
      yield* rejects({ conversationUi: true }, "conversationUi", "conversationUi")
      yield* accepts(CONVERSATION_UI)
    }))

  it.effect.each([
    { field: "defaultModel", value: "gpt-5.5" },
    { field: "showModelSelector", value: true },
    { field: "showFileUpload", value: true },
    { field: "fileDownload", value: true },
  ])("rules 7-10: $field needs conversation mode with conversationUi", ({ field, value }) =>
    Effect.gen(function*() {
      yield* rejects({ [field]: value }, field, field, "conversationUi")
      yield* rejects({ [field]: value, mode: "conversation" }, field, field)
      yield* accepts({ [field]: value, ...CONVERSATION_UI })
    }))

  it.effect("rule 13: fsIsolation forbids danger-full-access", () =>
    rejects({ sandbox: "danger-full-access" }, "sandbox", "danger-full-access", "fsIsolation"))

  it.effect("rule 14: fsIsolation=false forbids the restrictive sandboxes", () =>
    Effect.gen(function*() {
      yield* rejects({ fsIsolation: false, sandbox: "read-only" }, "sandbox", "fsIsolation=false")
      yield* rejects({ fsIsolation: false, sandbox: "workspace-write" }, "sandbox", "fsIsolation=false")
    }))

  it.effect("rule 15: rw grants under read-only are rejected and listed; ro grants are fine", () =>
    Effect.gen(function*() {
      const dirs = [{ path: "/a", mode: "rw" }, { path: "/b", mode: "ro" }, { path: "~/c", mode: "rw" }]
      const error = yield* rejects({ sandbox: "read-only", extraAllowedDirs: dirs }, "extraAllowedDirs", "read-only", "\"/a\"", "\"~/c\"")
      assert.notInclude(error.message, "\"/b\"")
      assert.deepStrictEqual(error.value, ["/a", "~/c"])
      yield* accepts({ sandbox: "read-only", extraAllowedDirs: [{ path: "/b", mode: "ro" }] })
    }))

  it.effect("rule 16: networkAccess needs workspace-write", () =>
    Effect.gen(function*() {
      yield* rejects({ sandbox: "read-only", networkAccess: true }, "networkAccess", "networkAccess", "read-only")
      const config = yield* accepts({ networkAccess: true })
      assert.isTrue(config.networkAccess)
    }))

  it.effect("rule 17 + P3: codexCacheDir must be absolute or ~/…, never relative or ~user", () =>
    Effect.gen(function*() {
      yield* rejects({ codexCacheDir: "cache/codex" }, "codexCacheDir", "codexCacheDir", "absolute path")
      yield* rejects({ codexCacheDir: "~bob/codex" }, "codexCacheDir", "~user", "absolute path")
      yield* rejects({ codexCacheDir: "" }, "codexCacheDir", "absolute path")
      for (const ok of ["/opt/codex", "~", "~/.cache/codex"]) yield* accepts({ codexCacheDir: ok })
    }))

  it.effect("the first failing rule wins", () =>
    Effect.gen(function*() {
      const all = {
        hostProtocol: false,
        permissionGate: true,
        fileDownload: true,
        sandbox: "danger-full-access",
        codexCacheDir: "rel",
      }
      yield* rejects(all, "hostProtocol")
      yield* rejects({ ...all, hostProtocol: true }, "permissionGate")
      yield* rejects({ ...all, hostProtocol: true, permissionGate: false }, "fileDownload")
      yield* rejects({ ...all, hostProtocol: true, permissionGate: false, fileDownload: false }, "sandbox")
      yield* rejects({ ...all, hostProtocol: true, permissionGate: false, fileDownload: false, fsIsolation: false }, "codexCacheDir")
    }))
})

describe("checks the reference lacked", () => {
  it.effect("P17: AllowedDir paths must be absolute or ~/…; / is allowed", () =>
    Effect.gen(function*() {
      const dir = (path: string) => ({ extraAllowedDirs: [{ path: "/ok", mode: "ro" }, { path, mode: "rw" }] })
      yield* rejects(dir("relative/dir"), "extraAllowedDirs[1].path", "absolute path")
      yield* rejects(dir("~bob/x"), "extraAllowedDirs[1].path", "~user")
      yield* rejects(dir(""), "extraAllowedDirs[1].path", "absolute path")
      yield* rejects(dir("/a\0b"), "extraAllowedDirs[1].path", "NUL")
      for (const ok of ["/", "~", "~/x", "/srv/data/"]) yield* accepts(dir(ok))
    }))

  it.effect("P17: networkAccess under danger-full-access is rejected, not ignored", () =>
    rejects({ fsIsolation: false, networkAccess: true }, "networkAccess", "danger-full-access", "no effect"))

  it.effect("P17: rw grants under danger-full-access are rejected, ro grants accepted", () =>
    Effect.gen(function*() {
      yield* rejects({ fsIsolation: false, extraAllowedDirs: [{ path: "/a", mode: "rw" }] }, "extraAllowedDirs", "danger-full-access")
      yield* accepts({ fsIsolation: false, extraAllowedDirs: [{ path: "/a", mode: "ro" }] })
    }))

  it.effect.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60])("byte limits must be positive integers: %s", (bad) =>
    Effect.gen(function*() {
      yield* rejects({ maxUploadBytes: bad }, "maxUploadBytes", "positive whole number")
      yield* rejects({ maxDownloadBytes: bad }, "maxDownloadBytes", "positive whole number")
    }))

  it.effect("configOverrides keys must be usable -c keys", () =>
    Effect.gen(function*() {
      yield* rejects({ configOverrides: { "a..b": 1 } }, "configOverrides[\"a..b\"]", "empty part")
      yield* rejects({ configOverrides: { "a b": 1 } }, "configOverrides[\"a b\"]", "whitespace")
      yield* rejects({ configOverrides: { "x=y": 1 } }, "configOverrides[\"x=y\"]", "\"=\"")
      const config = yield* accepts({ configOverrides: { "model_providers.p.base_url": "http://x", "tui.animations": false } })
      assert.deepStrictEqual(config.configOverrides, { "model_providers.p.base_url": "http://x", "tui.animations": false })
    }))

  it.effect("configOverrides cannot reach the keys the typed fields own", () =>
    Effect.gen(function*() {
      yield* rejects({ configOverrides: { sandbox_mode: "danger-full-access" } }, "configOverrides.sandbox_mode", "sandbox")
      yield* rejects({ configOverrides: { sandbox_workspace_write: { network_access: true } } }, "configOverrides.sandbox_workspace_write", "extraAllowedDirs")
      yield* rejects({ configOverrides: { "sandbox_workspace_write.network_access": true } }, "configOverrides[\"sandbox_workspace_write.network_access\"]", "networkAccess")
      yield* rejects({ configOverrides: { approval_policy: "never" } }, "configOverrides.approval_policy", "askForApproval")
      yield* rejects({ configOverrides: { model: "o3" } }, "configOverrides.model", "model")
      yield* rejects({ configOverrides: { model_reasoning_effort: "low" } }, "configOverrides.model_reasoning_effort", "reasoningEffort")
      yield* accepts({ configOverrides: { "sandbox_workspace_write.exclude_slash_tmp": true, model_provider: "local" } })
    }))

  it.effect("env names and values must survive a process environment; values are not echoed", () =>
    Effect.gen(function*() {
      yield* rejects({ env: { "": "x" } }, "env[\"\"]", "name")
      yield* rejects({ env: { "A=B": "x" } }, "env[\"A=B\"]", "\"=\"")
      const error = yield* rejects({ env: { SECRET: "s3cr3t\0" } }, "env.SECRET", "NUL")
      assert.notInclude(error.message, "s3cr3t")
      assert.isFalse("value" in error)
      yield* rejects({ scrubEnv: ["OK_*", ""] }, "scrubEnv[1]", "non-empty")
      yield* rejects({ workdirExclude: ["a\0"] }, "workdirExclude[0]", "NUL")
    }))

  it.effect("ssh settings are checked", () =>
    Effect.gen(function*() {
      const ssh = (extra: Record<string, unknown>) => ({ ssh: { host: "h.example", user: "ci", ...extra } })
      yield* rejects(ssh({ host: "-oProxyCommand=x" }), "ssh.host", "hostname")
      yield* rejects(ssh({ host: "a b" }), "ssh.host", "hostname")
      yield* rejects(ssh({ user: "" }), "ssh.user", "login name")
      yield* rejects(ssh({ user: "-l" }), "ssh.user", "login name")
      for (const port of [0, 65536, 22.5]) yield* rejects(ssh({ port }), "ssh.port", "1 to 65535")
      yield* rejects(ssh({ identityFile: "id_ed25519" }), "ssh.identityFile", "absolute path")
      yield* rejects(ssh({ knownHostsFile: "~root/known_hosts" }), "ssh.knownHostsFile", "~user")
      yield* rejects(ssh({ hostKeyFingerprint: "md5:aa:bb" }), "ssh.hostKeyFingerprint", "SHA256:")
      yield* rejects(ssh({ hostKey: "none" }), "ssh.hostKey", "\"strict\"")
      const config = yield* accepts(ssh({
        host: "10.0.0.5",
        port: 2222,
        identityFile: "~/.ssh/id_ed25519",
        knownHostsFile: "/etc/ssh/known",
        hostKeyFingerprint: `SHA256:${"A".repeat(43)}`,
        hostKey: "accept-new",
      }))
      assert.strictEqual(config.ssh?.port, 2222)
    }))

  it.effect("widget hosts must be hostnames or IP addresses", () =>
    Effect.gen(function*() {
      for (const host of ["0.0.0.0", "::1", "worker-3.internal", "localhost"]) {
        yield* accepts({ widgetBindHost: host, widgetAdvertisedHost: host })
      }
      yield* rejects({ widgetBindHost: "" }, "widgetBindHost", "hostname")
      yield* rejects({ widgetAdvertisedHost: "http://x" }, "widgetAdvertisedHost", "hostname")
      yield* rejects({ widgetAdvertisedHost: "a b" }, "widgetAdvertisedHost", "hostname")
    }))
})

describe("seeds and snapshots", () => {
  it.effect("a seed is named by its 24-hex id, or leased from a pool, never both", () =>
    Effect.gen(function*() {
      yield* rejects({ seedId: "seed-1" }, "seedId", "24 lower-case hex")
      yield* rejects({ seedId: "6650aa00bb11cc22dd33ee44", seedPool: "team" }, "seedPool", "exclusive")
      yield* rejects({ seedPool: "" }, "seedPool", "non-empty")
      const pooled = yield* accepts({ seedPool: "team" })
      assert.strictEqual(pooled.seedPool, "team")
    }))

  it.effect("snapshots are zstd unless gzip is asked for", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* accepts({})).snapshotCompression, "zstd")
      assert.strictEqual((yield* accepts({ snapshotCompression: "gzip" })).snapshotCompression, "gzip")
      yield* rejects({ snapshotCompression: "xz" }, "snapshotCompression")
    }))
})

describe("immutability", () => {
  it.effect("the decoded config is deeply frozen", () =>
    Effect.gen(function*() {
      const config: CodexTaskConfig = yield* accepts({
        extraAllowedDirs: [{ path: "/a", mode: "rw" }],
        env: { A: "1" },
        ssh: { host: "h", user: "u" },
        configOverrides: { "x.y": { z: [1] } },
      })
      for (const part of [config, config.extraAllowedDirs, config.extraAllowedDirs?.[0], config.env, config.ssh, config.configOverrides]) {
        assert.isTrue(Object.isFrozen(part))
      }
      assert.isFalse(Reflect.set(config, "mode", "conversation"))
      assert.throws(() => Object.assign(config, { networkAccess: true }), TypeError)
      assert.throws(() => config.extraAllowedDirs?.[0] && Object.assign(config.extraAllowedDirs[0], { mode: "ro" }), TypeError)
      assert.strictEqual(config.mode, "iframe")
    }))

  it.effect("the caller's input is left unfrozen and unchanged", () =>
    Effect.gen(function*() {
      const input = { ...BASE, extraAllowedDirs: [{ path: "/a", mode: "rw" }], env: { A: "1" } }
      yield* decodeCodexTaskConfig(input)
      assert.isFalse(Object.isFrozen(input))
      assert.isFalse(Object.isFrozen(input.extraAllowedDirs))
      assert.isFalse(Object.isFrozen(input.env))
      assert.deepStrictEqual(Object.keys(input), ["consumerInstructions", "extraAllowedDirs", "env"])
    }))
})

describe("robustness", () => {
  it.effect("decoding arbitrary JSON never throws: it succeeds or fails with a ConfigError (property)", () =>
    Effect.gen(function*() {
      const fields = [
        "mode", "hostProtocol", "permissionGate", "conversationUi", "toolVerbosity", "defaultModel", "fileDownload",
        "sandbox", "fsIsolation", "extraAllowedDirs", "networkAccess", "codexCacheDir", "maxUploadBytes", "env",
        "configOverrides", "ssh", "widgetBindHost", "reasoningEffort", "scrubEnv", "unknownKey", "host_protocol",
      ]
      const interesting = fc.constantFrom<unknown>(
        "iframe", "conversation", "read-only", "workspace-write", "danger-full-access", "~/x", "/x", "rel", "~u",
        true, false, 0, 22, [{ path: "/a", mode: "rw" }], [{ path: "x", mode: "ro" }], { host: "h", user: "u" },
        { "a.b": 1 }, { sandbox_mode: "x" },
      )
      const value = fc.oneof(interesting, fc.jsonValue({ maxDepth: 3 }))
      const keyed = fc.tuple(fc.option(fc.string(), { nil: undefined }), fc.dictionary(fc.constantFrom(...fields), value))
        .map(([instructions, rest]) => instructions === undefined ? rest : { consumerInstructions: instructions, ...rest })
      const samples = fc.sample(fc.oneof(fc.jsonValue(), keyed, keyed), 600)
      let ok = 0
      for (const input of samples) {
        const outcome = yield* decodeCodexTaskConfig(input).pipe(Effect.result)
        if (outcome._tag === "Success") {
          ok++
          assert.isTrue(Object.isFrozen(outcome.success))
          continue
        }
        assert.instanceOf(outcome.failure, ConfigError, JSON.stringify(input))
        assert.isAbove(outcome.failure.message.length, 0)
      }
      // Both outcomes must be exercised, or the generator tells us nothing.
      assert.isAbove(ok, 0)
      assert.isBelow(ok, samples.length)
    }))
})

describe("compat: python-0.1 (item 12)", () => {
  it.effect("defaults snapshots to gzip and refuses an explicit zstd", () =>
    Effect.gen(function*() {
      const compat = yield* decodeCodexTaskConfig({ consumerInstructions: "x", compat: "python-0.1" })
      assert.strictEqual(compat.compat, "python-0.1")
      assert.strictEqual(compat.snapshotCompression, "gzip")
      const plain = yield* decodeCodexTaskConfig({ consumerInstructions: "x" })
      assert.strictEqual(plain.snapshotCompression, "zstd")
      const refused = yield* Effect.flip(decodeCodexTaskConfig({ consumerInstructions: "x", compat: "python-0.1", snapshotCompression: "zstd" }))
      assert.strictEqual(refused.field, "snapshotCompression")
      assert.include(refused.message, "python-0.1")
      const unknown = yield* Effect.flip(decodeCodexTaskConfig({ consumerInstructions: "x", compat: "python-0.2" }))
      assert.strictEqual(unknown.field, "compat")
    }))

  it.effect("seedPoolWaitSeconds: absent means no wait; negative or not finite is refused", () =>
    Effect.gen(function*() {
      assert.isUndefined((yield* decodeCodexTaskConfig({ consumerInstructions: "x", seedPool: "p" })).seedPoolWaitSeconds)
      assert.strictEqual((yield* decodeCodexTaskConfig({ consumerInstructions: "x", seedPool: "p", seedPoolWaitSeconds: 90 })).seedPoolWaitSeconds, 90)
      for (const bad of [-1, Number.POSITIVE_INFINITY]) {
        const refused = yield* Effect.flip(decodeCodexTaskConfig({ consumerInstructions: "x", seedPool: "p", seedPoolWaitSeconds: bad }))
        assert.strictEqual(refused.field, "seedPoolWaitSeconds")
      }
    }))
})
