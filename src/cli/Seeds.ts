/**
 * Seeds: the CLI's `optio-codex seeds …` commands — list, delete, purge, verify and pool
 * management of the stored codex identities, on the store the `storeFlags` select. Owns the
 * presentation (a table or JSON, never blob contents or credentials) and turning typed errors into
 * one line on stderr (`error: …`) and exit 1; the operations are `SeedStore`'s and
 * `verifyAndRefreshSeed`'s.
 *
 * Gotchas: `seeds verify` exits 2 when the seed is not usable (an outcome, not a failure). When
 * it refreshed a token but could not store it (`RefreshedNotSaved`), the new `auth.json` is the
 * only live copy of the account's tokens: it is written to `./auth-<id>-rescued-<ms>.json` (mode
 * 0600) instead of being lost. Log lines go to stderr, so stdout stays parseable with `--json`.
 *
 * @since 0.1.0
 */
import { Clock, Config, Console, Effect, Layer, Logger, Option, Redacted, Runtime, Schema } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { FetchHttpClient } from "effect/http"
import { writeFileSync } from "node:fs"
import { homedir } from "node:os"
import { join, resolve } from "node:path"
import { BinaryCache } from "../binary/BinaryCache.ts"
import { OPENAI_ISSUER, verifyAndRefreshSeed, verifySeedWithProbe } from "../credentials/VerifySeed.ts"
import type { VerifyOutcome } from "../credentials/VerifySeed.ts"
import { Lease } from "../lease/Lease.ts"
import { SeedQuota } from "../quota/SeedQuota.ts"
import type { PoolEntry, SeedDoc } from "../seeds/SeedStore.ts"
import { SeedStore, UnknownSeed } from "../seeds/SeedStore.ts"
import type { StoreServices } from "../store/Store.ts"
import * as LocalHost from "../host/LocalHost.ts"
import { Store } from "../store/Store.ts"
import { describeStore, storeChoice, storeFlags, storeLayer } from "./StoreFlags.ts"
import type { StoreFlagValues } from "./StoreFlags.ts"

/** A seed as the commands present it: the document plus whether its lease is live now. */
interface SeedRow {
  readonly seed: SeedDoc
  readonly leased: boolean
}

/**
 * One seed as `seeds list --json` prints it (dates as ISO strings; no blob contents).
 * @category models
 * @since 0.1.0
 */
export interface SeedListing {
  readonly seedId: string
  readonly createdAt: string
  readonly poolKey: string | null
  readonly status: string
  readonly leased: boolean
  readonly lease: { readonly holder: string; readonly epoch: number; readonly expiresAt: string } | null
  readonly generation: number
  readonly lastLeasedAt: string | null
  readonly lastRefreshedAt: string | null
  readonly manifestVersion: number
  readonly metadata: Readonly<Record<string, unknown>>
  /** The quota last observed (also raw under `metadata.quota`); null when never observed. */
  readonly quota: QuotaListing | null
}

/**
 * A seed's quota as the listings print it (times as ISO strings).
 * @category models
 * @since 0.1.0
 */
export interface QuotaListing {
  readonly plan: string | null
  readonly primary: WindowListing | null
  readonly secondary: WindowListing | null
  /** Exhausted until then (a window at 100 % or a usage-limit failure); null when not exhausted now. */
  readonly exhaustedUntil: string | null
  readonly observedAt: string
  readonly source: string
}

/**
 * One usage window in a listing.
 * @category models
 * @since 0.1.0
 */
export interface WindowListing {
  readonly usedPercent: number
  readonly windowMinutes: number | null
  readonly resetsAt: string | null
}

const windowListing = (window: SeedQuota.QuotaWindow | null): WindowListing | null =>
  window === null ? null : {
    usedPercent: window.usedPercent,
    windowMinutes: window.windowMinutes,
    resetsAt: window.resetsAtMs === null ? null : new Date(window.resetsAtMs).toISOString()
  }

// Exhaustion is judged at `nowMs`, else at the observation itself.
const quotaListing = (seed: SeedDoc, nowMs: number | undefined): QuotaListing | null =>
  Option.match(SeedQuota.quotaOf(seed), {
    onNone: () => null,
    onSome: (record) => ({
      plan: record.plan,
      primary: windowListing(record.primary),
      secondary: windowListing(record.secondary),
      exhaustedUntil: Option.match(SeedQuota.exhaustedUntil(record, nowMs ?? record.observedAtMs), { onNone: () => null, onSome: (ms) => new Date(ms).toISOString() }),
      observedAt: new Date(record.observedAtMs).toISOString(),
      source: record.source
    })
  })

const iso = (date: Date | undefined) => date === undefined ? null : date.toISOString()

/**
 * The JSON form of a listed seed.
 * @category constructors
 * @since 0.1.0
 */
export const seedListing = (seed: SeedDoc, leased: boolean, nowMs?: number): SeedListing => ({
  seedId: seed.seedId,
  createdAt: seed.createdAt.toISOString(),
  poolKey: seed.poolKey ?? null,
  status: seed.status,
  leased,
  lease: seed.lease === undefined
    ? null
    : { holder: seed.lease.holder, epoch: seed.lease.epoch, expiresAt: seed.lease.expiresAt.toISOString() },
  generation: seed.generation,
  lastLeasedAt: iso(seed.lastLeasedAt),
  lastRefreshedAt: iso(seed.lastRefreshedAt),
  manifestVersion: seed.manifestVersion,
  metadata: seed.metadata,
  quota: quotaListing(seed, nowMs)
})

// Seconds are enough for a table; JSON keeps the milliseconds.
const short = (date: Date | undefined) => date === undefined ? "-" : `${date.toISOString().slice(0, 19).replace("T", " ")}Z`

const leaseCell = (row: SeedRow) =>
  row.leased && row.seed.lease !== undefined ? `${row.seed.lease.holder} until ${short(row.seed.lease.expiresAt)}` : "free"

/**
 * Renders seeds as an aligned text table with a header line.
 * @category constructors
 * @since 0.1.0
 */
export const seedTable = (rows: ReadonlyArray<{ readonly seed: SeedDoc; readonly leased: boolean }>): string =>
  alignedTable(
    ["ID", "CREATED", "POOL", "STATUS", "LEASE", "GEN", "LAST REFRESHED", "PLAN", "PRIMARY", "SECONDARY", "QUOTA SEEN"],
    rows.map((row) => [
      row.seed.seedId,
      short(row.seed.createdAt),
      row.seed.poolKey ?? "-",
      row.seed.status,
      leaseCell(row),
      String(row.seed.generation),
      short(row.seed.lastRefreshedAt),
      ...quotaCells(row.seed)
    ])
  )

// `42%/300m resets 12-07 18:05Z`: the used share, the window's length, its reset.
const windowCell = (window: SeedQuota.QuotaWindow | null) =>
  window === null
    ? "-"
    : `${window.usedPercent}%${window.windowMinutes === null ? "" : `/${window.windowMinutes}m`}` +
      (window.resetsAtMs === null ? "" : ` resets ${new Date(window.resetsAtMs).toISOString().slice(5, 16).replace("T", " ")}Z`)

const quotaCells = (seed: SeedDoc): ReadonlyArray<string> =>
  Option.match(SeedQuota.quotaOf(seed), {
    onNone: () => ["-", "-", "-", "-"],
    onSome: (record) => [record.plan ?? "-", windowCell(record.primary), windowCell(record.secondary), short(new Date(record.observedAtMs))]
  })

const alignedTable = (header: ReadonlyArray<string>, cells: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((line) => line[i]?.length ?? 0)))
  const line = (values: ReadonlyArray<string>) => values.map((value, i) => value.padEnd(widths[i] ?? 0)).join("  ").trimEnd()
  return [line(header), ...cells.map(line)].join("\n")
}

// Whether each seed's lease is live: pooled seeds ask their pool (the store's clock decides); a
// lease left on an unpooled seed (taken out of its pool while leased) is judged on our clock.
const withLiveness = (seeds: ReadonlyArray<SeedDoc>) =>
  Effect.gen(function*() {
    const store = yield* SeedStore
    const pools = [...new Set(seeds.flatMap((seed) => seed.poolKey === undefined ? [] : [seed.poolKey]))]
    const live = new Map<string, boolean>()
    for (const pool of pools) {
      for (const entry of yield* store.listPool(pool)) live.set(entry.seedId, entry.leased)
    }
    const now = Date.now()
    return seeds.map((seed): SeedRow => ({
      seed,
      leased: live.get(seed.seedId) ?? (seed.lease !== undefined && seed.lease.expiresAt.getTime() > now)
    }))
  })

const poolRows = (entries: ReadonlyArray<PoolEntry>): ReadonlyArray<SeedRow> =>
  entries.map((entry) => ({ seed: entry, leased: entry.leased }))

const printRows = (rows: ReadonlyArray<SeedRow>, json: boolean, empty: string) =>
  json
    ? Effect.flatMap(Clock.currentTimeMillis, (now) => Console.log(JSON.stringify(rows.map((row) => seedListing(row.seed, row.leased, now)), null, 2)))
    : rows.length === 0
    ? Console.log(empty)
    : Console.log(seedTable(rows))

/**
 * A seeds command failed; the reason was already printed as one line on stderr, so the runtime
 * only turns it into a non-zero exit (no second report, no stack trace).
 * @category errors
 * @since 0.1.0
 */
export class SeedsCommandFailed extends Schema.TaggedError<SeedsCommandFailed>()("SeedsCommandFailed", {
  reason: Schema.String,
  detail: Schema.String
}) {
  override readonly [Runtime.errorReported] = false
  override get message(): string {
    return this.detail
  }
}

/**
 * Runs a seeds command on the selected store; any failure is printed as one line on stderr
 * (`error: <what> (<which store>)`) and exits non-zero (1).
 */
const onStore = <A, E extends { readonly _tag: string; readonly message: string }>(
  flags: StoreFlagValues,
  body: Effect.Effect<A, E, StoreServices>
) =>
  body.pipe(
    Effect.provide(storeLayer(flags)),
    // stdout carries the command's output (tables, JSON); log lines go to stderr.
    Effect.provideService(Logger.LogToStderr, true),
    Effect.catch((error) => {
      const detail = `${error.message} (${describeStore(storeChoice(flags))})`
      return Console.error(`error: ${detail}`).pipe(
        Effect.andThen(Effect.fail(new SeedsCommandFailed({ reason: error._tag, detail })))
      )
    })
  )

const seedId = Argument.String("id").pipe(Argument.withDescription("the seed's id (24 hex digits)"))
const force = Flag.Boolean("force").pipe(
  Flag.withDescription("even while the seed is leased (the holder then loses it)"),
  Flag.withDefault(false)
)

const seedsBase = Command.make("seeds").pipe(
  Command.withDescription("List and manage stored codex identities (seeds) and their pools"),
  Command.withSharedFlags(storeFlags)
)

const list = Command.make("list", {
  pool: Flag.String("pool").pipe(Flag.withDescription("only the seeds of this pool"), Flag.optional),
  json: Flag.Boolean("json").pipe(Flag.withDescription("print JSON instead of a table"), Flag.withDefault(false))
}, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    yield* onStore(store, Effect.gen(function*() {
      const seeds = yield* SeedStore
      const rows = Option.isSome(flags.pool)
        ? poolRows(yield* seeds.listPool(flags.pool.value))
        : yield* withLiveness(yield* seeds.list())
      yield* printRows(rows, flags.json, Option.isSome(flags.pool) ? `no seeds in pool ${flags.pool.value}` : "no seeds")
    }))
  })).pipe(Command.withDescription("List seeds: id, created, pool, status, lease, generation, last refresh, plan, usage windows, when the quota was seen"))

/**
 * The pool's headroom as `seeds status --pool` prints it: one summary line, then every seed in
 * the order a lease would try it (`#1`, `#2`, …), then the exhausted (until when), leased and dead.
 * @category constructors
 * @since 0.1.0
 */
export const headroomTable = (headroom: SeedQuota.PoolHeadroom, entries: ReadonlyArray<PoolEntry>): string => {
  const exhausted = new Map(headroom.exhausted.map((e) => [e.seed.seedId, e.untilMs]))
  const rank = new Map(headroom.candidates.map((c, i) => [c.seed.seedId, i + 1]))
  const stateOf = (entry: PoolEntry) => {
    const position = rank.get(entry.seedId)
    if (position !== undefined) return `next #${position}`
    const until = exhausted.get(entry.seedId)
    if (until !== undefined) return `exhausted until ${short(new Date(until))}`
    if (entry.status === "dead") return "dead"
    return entry.leased && entry.lease !== undefined ? `leased by ${entry.lease.holder}` : "leased"
  }
  const order = (entry: PoolEntry) => rank.get(entry.seedId) ?? (exhausted.has(entry.seedId) ? 1000 : 2000)
  const sorted = [...entries].sort((a, b) => order(a) - order(b))
  return [
    SeedQuota.describeHeadroom(headroom),
    alignedTable(["ID", "STATE", "PLAN", "PRIMARY", "SECONDARY", "QUOTA SEEN"], sorted.map((entry) => [entry.seedId, stateOf(entry), ...quotaCells(entry)]))
  ].join("\n")
}

const status = Command.make("status", {
  pool: Flag.String("pool").pipe(Flag.withDescription("the pool key")),
  json: Flag.Boolean("json").pipe(Flag.withDescription("print JSON instead of a table"), Flag.withDefault(false))
}, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    yield* onStore(store, Effect.gen(function*() {
      const headroom = yield* (yield* Lease).headroom(flags.pool)
      const entries = yield* (yield* SeedStore).listPool(flags.pool)
      if (flags.json) {
        yield* Console.log(JSON.stringify({
          poolKey: headroom.poolKey,
          at: headroom.at.toISOString(),
          summary: SeedQuota.describeHeadroom(headroom),
          leaseOrder: headroom.candidates.map((c) => c.seed.seedId),
          exhausted: headroom.exhausted.map((e) => ({ seedId: e.seed.seedId, until: new Date(e.untilMs).toISOString() })),
          leased: headroom.leased,
          dead: headroom.dead,
          seeds: entries.map((entry) => seedListing(entry, entry.leased, headroom.at.getTime()))
        }, null, 2))
        return
      }
      yield* Console.log(entries.length === 0 ? `no seeds in pool ${flags.pool}` : headroomTable(headroom, entries))
    }))
  })).pipe(Command.withDescription("A pool's headroom: which seed a lease takes next, which are exhausted and until when"))

const remove = Command.make("delete", { id: seedId, force }, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    yield* onStore(store, Effect.gen(function*() {
      const seeds = yield* SeedStore
      const deleted = yield* seeds.delete(flags.id, { force: flags.force })
      if (Option.isNone(deleted)) return yield* new UnknownSeed({ seedId: flags.id })
      yield* Console.log(`deleted seed ${flags.id} (its blob is kept; \`seeds purge\` removes both)`)
    }))
  })).pipe(Command.withDescription("Delete a seed's document, keeping its blob (as reference workers do)"))

const purge = Command.make("purge", { id: seedId, force }, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    yield* onStore(store, Effect.gen(function*() {
      yield* (yield* SeedStore).purge(flags.id, { force: flags.force })
      yield* Console.log(`purged seed ${flags.id} and its blob`)
    }))
  })).pipe(Command.withDescription("Delete a seed and its blob"))

const poolAssign = Command.make("assign", {
  id: seedId,
  key: Argument.String("key").pipe(Argument.withDescription("the pool key"))
}, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    yield* onStore(store, Effect.gen(function*() {
      yield* (yield* SeedStore).assignToPool(flags.id, flags.key)
      yield* Console.log(`seed ${flags.id} is in pool ${flags.key}`)
    }))
  })).pipe(Command.withDescription("Put a seed into a pool"))

const poolRemove = Command.make("remove", { id: seedId }, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    yield* onStore(store, Effect.gen(function*() {
      yield* (yield* SeedStore).assignToPool(flags.id, null)
      yield* Console.log(`seed ${flags.id} is in no pool (it is never leased now)`)
    }))
  })).pipe(Command.withDescription("Take a seed out of its pool"))

const poolStatus = Command.make("status", {
  id: seedId,
  status: Argument.Literals("status", ["alive", "dead", "limited"]).pipe(
    Argument.withDescription("dead seeds are never leased; limited is informational")
  )
}, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    yield* onStore(store, Effect.gen(function*() {
      yield* (yield* SeedStore).setStatus(flags.id, flags.status)
      yield* Console.log(`seed ${flags.id} is ${flags.status}`)
    }))
  })).pipe(Command.withDescription("Stamp a seed's pool status"))

const poolList = Command.make("list", {
  key: Argument.String("key").pipe(Argument.withDescription("the pool key")),
  json: Flag.Boolean("json").pipe(Flag.withDescription("print JSON instead of a table"), Flag.withDefault(false))
}, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    yield* onStore(store, Effect.gen(function*() {
      const rows = poolRows(yield* (yield* SeedStore).listPool(flags.key))
      yield* printRows(rows, flags.json, `no seeds in pool ${flags.key}`)
    }))
  })).pipe(Command.withDescription("List the seeds of a pool with their leases"))

/**
 * `seeds verify` found the seed not usable (dead, busy, or unreachable issuer); the outcome was
 * printed, the exit code is 2 so scripts can tell it from a failure (1).
 * @category errors
 * @since 0.1.0
 */
export class SeedNotAlive extends Schema.TaggedError<SeedNotAlive>()("SeedNotAlive", {
  seedId: Schema.String,
  outcome: Schema.String
}) {
  override readonly [Runtime.errorReported] = false
  override readonly [Runtime.errorExitCode] = 2
  override get message(): string {
    return `seed ${this.seedId} is not usable: ${this.outcome}`
  }
}

/**
 * The one-line description of a verification outcome (never credentials).
 * @category constructors
 * @since 0.1.0
 */
export const describeOutcome = (outcome: VerifyOutcome): string => {
  switch (outcome._tag) {
    case "Fresh":
      return `Fresh: alive, refreshed ${outcome.lastRefresh.toISOString()}, no network needed`
    case "Refreshed":
      return `Refreshed: alive, token refreshed and saved (generation ${outcome.generation})`
    case "ApiKey":
      return "ApiKey: alive (an API-key seed, nothing to refresh)"
    case "Dead":
      return `Dead: ${outcome.reason} (marked dead; it is never leased now)`
    case "Transient":
      return `Transient: ${outcome.reason} (the seed is untouched; try again later)`
    case "Busy":
      return `Busy: leased by ${outcome.holder}, not checked`
    case "RefreshedNotSaved":
      return `RefreshedNotSaved: the token was refreshed but could not be saved: ${outcome.reason}`
    case "Probed":
      return `Probed: ${outcome.alive ? "alive" : "not alive"}: ${outcome.detail}`
  }
}

// A refreshed token that could not be stored is the only live copy of the lineage (the old one
// is spent): keep it in a private file rather than lose the account.
const rescue = (seedId: string, credentials: Redacted.Redacted<Uint8Array>) =>
  Effect.sync(() => {
    const path = resolve(`auth-${seedId}-rescued-${Date.now()}.json`)
    writeFileSync(path, Redacted.value(credentials), { mode: 0o600, flag: "wx" })
    return path
  })

const verify = Command.make("verify", {
  id: seedId,
  issuer: Flag.String("issuer").pipe(
    Flag.withDescription(`OIDC issuer base (env OPTIO_CODEX_ISSUER; default ${OPENAI_ISSUER})`),
    Flag.withFallbackConfig(Config.String("OPTIO_CODEX_ISSUER")),
    Flag.optional
  ),
  refreshUrl: Flag.String("refresh-url").pipe(
    Flag.withDescription("token endpoint (env CODEX_REFRESH_TOKEN_URL_OVERRIDE; default <issuer>/oauth/token)"),
    Flag.withFallbackConfig(Config.String("CODEX_REFRESH_TOKEN_URL_OVERRIDE")),
    Flag.optional
  ),
  probe: Flag.ChoiceWithValue("probe", [["unreachable", "unreachable"], ["always", "always"], ["never", "never"]] as const).pipe(
    Flag.withDescription(
      "when to ask the real codex instead (codex exec with the seed, in a scratch home): unreachable = only when the token endpoint cannot be reached (default), always = instead of refreshing, never"
    ),
    Flag.withDefault("unreachable")
  ),
  json: Flag.Boolean("json").pipe(Flag.withDescription("print the outcome as JSON"), Flag.withDefault(false))
}, (flags) =>
  Effect.gen(function*() {
    const store = yield* seedsBase
    const options = {
      ...Option.match(Option.filter(flags.issuer, (url) => url !== ""), { onNone: () => ({}), onSome: (issuer) => ({ issuer }) }),
      ...Option.match(flags.refreshUrl, { onNone: () => ({}), onSome: (refreshUrl) => ({ refreshUrl }) })
    }
    const outcome = yield* onStore(
      store,
      (flags.probe === "never"
        ? verifyAndRefreshSeed(flags.id, options)
        : withProbe(flags.id, flags.probe, store, options)).pipe(Effect.provide(FetchHttpClient.layer))
    )
    const rescued = outcome._tag === "RefreshedNotSaved" ? yield* rescue(flags.id, outcome.credentials) : undefined
    if (flags.json) {
      const shown = outcome._tag === "RefreshedNotSaved"
        ? { _tag: outcome._tag, alive: outcome.alive, reason: outcome.reason, rescuedTo: rescued }
        : outcome
      yield* Console.log(JSON.stringify({ seedId: flags.id, ...shown }))
    } else {
      yield* Console.log(`seed ${flags.id}: ${describeOutcome(outcome)}`)
      if (rescued !== undefined) yield* Console.log(`the refreshed credentials were saved to ${rescued} (mode 0600): the only live copy`)
    }
    if (!outcome.alive) return yield* new SeedNotAlive({ seedId: flags.id, outcome: outcome._tag })
  })).pipe(Command.withDescription("Check that a seed still authenticates; refresh its token when stale (exit 2: not usable)"))

// The library's probe fallback, on this machine: the pinned codex from the binary cache, scratch
// homes under the CLI's data dir (never /tmp, where codex refuses its helpers), and codex told to
// refresh against the same endpoint the host-free check used.
const withProbe = (
  seedId: string,
  when: "unreachable" | "always",
  flags: StoreFlagValues,
  options: { readonly issuer?: string; readonly refreshUrl?: string }
) =>
  Effect.gen(function*() {
    const codex = yield* BinaryCache.use((cache) => cache.resolve)
    const choice = storeChoice(flags)
    const dataDir = choice._tag === "Embedded" ? choice.dataDir : Store.defaultDataDir(process.env, homedir())
    const tokenUrl = options.refreshUrl ?? (options.issuer === undefined ? undefined : `${options.issuer.replace(/\/+$/, "")}/oauth/token`)
    return yield* verifySeedWithProbe(seedId, {
      codexPath: codex.binaryPath,
      workRoot: join(dataDir, "probe"),
      when,
      ...(tokenUrl === undefined ? {} : { env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: tokenUrl } })
    }, options)
  }).pipe(Effect.provide(Layer.provideMerge(BinaryCache.layer(), LocalHost.layer())))

const pool = Command.make("pool").pipe(
  Command.withDescription("Manage seed pools"),
  Command.withSubcommands([poolAssign, poolRemove, poolStatus, poolList])
)

/**
 * `optio-codex seeds …`: list, status (a pool's headroom), delete, purge and pool management
 * (`pool assign|remove|status|list`).
 * @category constructors
 * @since 0.1.0
 */
export const seedsCommand = seedsBase.pipe(Command.withSubcommands([list, status, remove, purge, pool, verify]))
