/**
 * HostFlags: the CLI's `--host ssh://user@host[:port]` and its key options, turned into the
 * Host layer a command runs on (the local machine when `--host` is absent).
 *
 * @since 0.1.0
 */
import { Layer, Option, Result, Schema } from "effect"
import { Flag } from "effect/cli"
import { homedir } from "node:os"
import { join } from "node:path"
import type { Host } from "../host/Host.ts"
import * as LocalHost from "../host/LocalHost.ts"
import * as RemoteHost from "../host/RemoteHost.ts"

/**
 * A `--host` value that is not `ssh://user@host[:port]`.
 * @category errors
 */
export class InvalidHostUrl extends Schema.TaggedError<InvalidHostUrl>()("InvalidHostUrl", { value: Schema.String }) {
  override get message(): string {
    return `--host ${JSON.stringify(this.value)} is not of the form ssh://user@host[:port]`
  }
}

/** The flags every host-aware command takes. */
export const hostFlags = {
  host: Flag.String("host").pipe(Flag.withDescription("run codex on ssh://user@host[:port] instead of this machine"), Flag.optional),
  identity: Flag.String("identity").pipe(Flag.withDescription("private key file for --host (else the ssh agent)"), Flag.optional),
  knownHosts: Flag.String("known-hosts").pipe(Flag.withDescription("known_hosts file that vouches for --host (default ~/.ssh/known_hosts)"), Flag.optional),
  hostKeyFingerprint: Flag.String("host-key-fingerprint").pipe(Flag.withDescription("pin --host's key: SHA256:…"), Flag.optional),
  acceptNewHostKey: Flag.Boolean("accept-new-host-key").pipe(
    Flag.withDescription("record an unknown host key in the known_hosts file on first contact (a changed key is still refused)"),
    Flag.withDefault(false)
  )
}

/** What {@link hostFlags} parse to. */
export interface HostFlagValues {
  readonly host: Option.Option<string>
  readonly identity: Option.Option<string>
  readonly knownHosts: Option.Option<string>
  readonly hostKeyFingerprint: Option.Option<string>
  readonly acceptNewHostKey: boolean
}

/** Parses `ssh://user@host[:port]`. */
export const parseHostUrl = (value: string): Result.Result<{ readonly user: string; readonly host: string; readonly port: number }, InvalidHostUrl> => {
  const match = /^ssh:\/\/([^@/:\s]+)@(\[[0-9a-fA-F:]+\]|[^@/:\s]+)(?::(\d{1,5}))?\/?$/.exec(value)
  const port = match?.[3] === undefined ? 22 : Number(match[3])
  if (match === null || match[1] === undefined || match[2] === undefined || port < 1 || port > 65535) {
    return Result.fail(new InvalidHostUrl({ value }))
  }
  return Result.succeed({ user: match[1], host: match[2].replace(/^\[|\]$/g, ""), port })
}

/** The Host layer the flags select. */
export const hostLayerFrom = (flags: HostFlagValues): Result.Result<Layer.Layer<Host, RemoteHost.RemoteHostError>, InvalidHostUrl> => {
  if (Option.isNone(flags.host)) return Result.succeed(LocalHost.layer())
  const target = parseHostUrl(flags.host.value)
  if (Result.isFailure(target)) return Result.fail(target.failure)
  const agent = process.env["SSH_AUTH_SOCK"]
  return Result.succeed(RemoteHost.layer({
    ...target.success,
    ...Option.match(flags.identity, { onNone: () => (agent === undefined ? {} : { agent }), onSome: (identityFile) => ({ identityFile }) }),
    knownHostsFile: Option.getOrElse(flags.knownHosts, () => join(homedir(), ".ssh", "known_hosts")),
    ...Option.match(flags.hostKeyFingerprint, { onNone: () => ({}), onSome: (hostKeyFingerprint) => ({ hostKeyFingerprint }) }),
    hostKeyPolicy: flags.acceptNewHostKey ? "accept-new" : "strict"
  }))
}
