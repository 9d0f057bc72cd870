/**
 * QuotaRecorder: writes what a task observed of its seed's quota into the seed's metadata, and
 * reads the observations codex leaves in CODEX_HOME. It owns the write rule — only while the
 * task's lease on the seed is held: every write first renews the grant (so a lost lease fails
 * with `LeaseLost` and nothing is written), then merges the sparse observation into the stored
 * record. A write can still land in the instant between a renewal and the metadata update; the
 * record is informational and a later holder's own observation replaces it.
 *
 * Failures are logged, never fatal: quota is a ranking hint, not a reason to stop a task.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option } from "effect"
import type { Context } from "effect"
import { Host } from "../host/Host.ts"
import type { Lease, LeaseGrant } from "../lease/Lease.ts"
import type { SeedStore } from "../seeds/SeedStore.ts"
import { mergeObservation, observationOfSnapshot, QUOTA_METADATA_KEY, quotaOf } from "./SeedQuota.ts"
import type { QuotaObservation, SeedQuotaRecord } from "./SeedQuota.ts"

/**
 * The stores the recorder writes through.
 * @category models
 * @since 0.1.0
 */
export interface QuotaStores {
  readonly seeds: Context.Service.Shape<typeof SeedStore>
  readonly leases: Context.Service.Shape<typeof Lease>
}

/**
 * Records an observation on the grant's seed while the grant is held; returns the new record, or
 * none when nothing was written (lease lost, seed gone, store down — each logged).
 * @category constructors
 * @since 0.1.0
 */
export const recordQuota = (stores: QuotaStores, grant: LeaseGrant, observation: QuotaObservation) =>
  Effect.gen(function*() {
    yield* stores.leases.renew(grant)
    const seed = yield* stores.seeds.get(grant.seedId)
    if (Option.isNone(seed)) return Option.none<SeedQuotaRecord>()
    const record = mergeObservation(Option.getOrUndefined(quotaOf(seed.value)), observation, yield* Clock.currentTimeMillis)
    yield* stores.seeds.declareMetadata(grant.seedId, { [QUOTA_METADATA_KEY]: record })
    return Option.some(record)
  }).pipe(
    Effect.catch((error) =>
      Effect.as(Effect.logWarning(`quota of seed ${grant.seedId} not recorded: ${error.message}`), Option.none<SeedQuotaRecord>())
    ),
    Effect.withSpan("QuotaRecorder.record", { attributes: { seedId: grant.seedId } })
  )

/** Rollouts can be long; codex rewrites none of them, so a cap keeps a runaway file out. */
const MAX_ROLLOUT_BYTES = 64 * 1024 * 1024

/**
 * The newest rate-limit snapshot codex wrote into the rollouts of `codexHome` (its `token_count`
 * events) at or after `sinceMs` — older lines may come from a restored snapshot of a run on
 * another seed. CODEX_HOME lies outside the agent's writable roots; the reads are still guarded
 * (regular files only, no symlinks, size-capped, inside the home).
 * @category constructors
 * @since 0.1.0
 */
export const latestRolloutObservation = (codexHome: string, sinceMs: number) =>
  Effect.gen(function*() {
    const host = yield* Host
    const files = yield* host.glob("sessions/**/rollout-*.jsonl", codexHome)
    let best: { readonly atMs: number; readonly observation: QuotaObservation } | undefined
    for (const file of files) {
      const path = file.startsWith("/") ? file : `${codexHome}/${file}`
      const bytes = yield* host.readRegularFile(path, { maxBytes: MAX_ROLLOUT_BYTES, within: codexHome }).pipe(
        Effect.catch((error) => Effect.as(Effect.logWarning(`rollout ${path} not read for quota: ${error.message}`), undefined))
      )
      if (bytes === undefined) continue
      for (const line of new TextDecoder().decode(bytes).split("\n")) {
        if (!line.includes("\"token_count\"") || !line.includes("\"rate_limits\"")) continue
        const found = tokenCountObservation(line)
        if (found === undefined || found.atMs < sinceMs || (best !== undefined && found.atMs < best.atMs)) continue
        best = found
      }
    }
    return Option.fromNullishOr(best?.observation)
  }).pipe(Effect.withSpan("QuotaRecorder.latestRolloutObservation"))

const tokenCountObservation = (line: string): { readonly atMs: number; readonly observation: QuotaObservation } | undefined => {
  let parsed: unknown
  try {
    parsed = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof parsed !== "object" || parsed === null) return undefined
  const entry = parsed as Record<string, unknown>
  const payload = entry["payload"]
  if (typeof payload !== "object" || payload === null) return undefined
  const body = payload as Record<string, unknown>
  if (body["type"] !== "token_count") return undefined
  const atMs = typeof entry["timestamp"] === "string" ? Date.parse(entry["timestamp"]) : Number.NaN
  if (Number.isNaN(atMs)) return undefined
  const observation = observationOfSnapshot(body["rate_limits"], "rollout")
  return Option.isSome(observation) ? { atMs, observation: observation.value } : undefined
}

/**
 * The plan named in an auth.json's id token (claim `https://api.openai.com/auth` →
 * `chatgpt_plan_type`); none when absent or unreadable. The signature is not checked: the file
 * is the task's own credentials, written by the worker or codex.
 * @category decoding
 * @since 0.1.0
 */
export const planOfAuthJson = (bytes: Uint8Array): Option.Option<string> => {
  try {
    const auth = JSON.parse(new TextDecoder().decode(bytes)) as { readonly tokens?: { readonly id_token?: unknown } }
    const token = auth.tokens?.id_token
    if (typeof token !== "string") return Option.none()
    const payload = token.split(".")[1]
    if (payload === undefined) return Option.none()
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>
    const auth0 = claims["https://api.openai.com/auth"]
    const plan = typeof auth0 === "object" && auth0 !== null ? (auth0 as Record<string, unknown>)["chatgpt_plan_type"] : undefined
    return typeof plan === "string" && plan !== "" ? Option.some(plan) : Option.none()
  } catch {
    return Option.none()
  }
}

export * as QuotaRecorder from "./QuotaRecorder.ts"
