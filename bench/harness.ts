/**
 * The benchmarks' shared harness: the clock, summary statistics, result rows and the markdown
 * table. Knows nothing about codex; each benchmark module produces rows, `run.ts` prints them.
 */
import { performance } from "node:perf_hooks"

/** Milliseconds on the process's monotonic clock (the one timestamps in events use too). */
export const now = (): number => performance.now()

/** The row names `run.ts` always prints, in order (the CI test checks each one). */
export const ROW_NAMES = [
  "start",
  "start/bare-fresh",
  "start/bare-template",
  "start/bare-minimal",
  "turns",
  "turns/bare",
  "turns/bare-minimal",
  "turns/sdk",
  "cancel/conversation",
  "cancel/tui",
  "fanout",
  "fanout/100",
  "memory/worker",
  "memory/codex",
  "memory/codex-bare",
  "tui",
  "tui/bare-tmux",
  "snapshot",
  "snapshot/tar",
  "snapshot/memory"
] as const

/** One of {@link ROW_NAMES}. */
export type RowName = typeof ROW_NAMES[number]

/**
 * A sample set: a plain array, or a Float64Array for the big ones (millions of fan-out
 * deliveries), which stays out of the worker's heap: a later benchmark must not pay, in garbage
 * collection, for an earlier one's samples.
 */
export type Samples = ReadonlyArray<number> | Float64Array

/** One measured subject: its samples, what it is compared with and the goal it is held to. */
export interface Row {
  readonly name: RowName
  readonly what: string
  readonly unit: "ms" | "MB" | "MiB"
  readonly samples: Samples
  /** The row this one's median is divided by in the ratio column. */
  readonly baseline?: RowName
  readonly goal?: string
  /** Whether the goal is met; undefined when the row has no goal of its own. */
  readonly met?: boolean
  /** Shown as n instead of the sample count (e.g. sessions behind one averaged sample). */
  readonly n?: number
  readonly notes?: string
}

/** The q-quantile (0..1) with linear interpolation over the finite samples; NaN for none. */
export const quantile = (samples: Samples, q: number): number => {
  const sorted = Float64Array.from(samples).filter(Number.isFinite).sort()
  if (sorted.length === 0) return Number.NaN
  const position = (sorted.length - 1) * q
  const low = Math.floor(position)
  const lower = sorted[low] ?? Number.NaN
  const upper = sorted[Math.min(low + 1, sorted.length - 1)] ?? lower
  return lower + (upper - lower) * (position - low)
}

/** Median, p95, min and max of a sample set. */
export const summarize = (samples: Samples) => ({
  median: quantile(samples, 0.5),
  p95: quantile(samples, 0.95),
  p99: quantile(samples, 0.99),
  min: Float64Array.from(samples).reduce((low, value) => Math.min(low, value), Number.POSITIVE_INFINITY),
  max: Float64Array.from(samples).reduce((high, value) => Math.max(high, value), Number.NEGATIVE_INFINITY),
  n: samples.length
})

/** A number with as many decimals as its size deserves. */
export const fmt = (value: number): string => {
  if (!Number.isFinite(value)) return "—"
  const size = Math.abs(value)
  return size >= 100 ? value.toFixed(0) : size >= 10 ? value.toFixed(1) : value.toFixed(2)
}

/** The markdown table of `rows`; a row without samples shows as not measured. */
export const renderTable = (rows: ReadonlyArray<Row>): string => {
  const byName = new Map(rows.map((row) => [row.name, row]))
  const header = "| row | what | median [min–max] | p95 | n | ratio | goal | met | notes |"
  const rule = "|---|---|---|---|---|---|---|---|---|"
  const lines = rows.map((row) => {
    const s = summarize(row.samples)
    const base = row.baseline === undefined ? undefined : byName.get(row.baseline)
    const ratio = base === undefined ? "" : `${fmt(s.median / summarize(base.samples).median)}× ${row.baseline}`
    const measured = s.n === 0 ? "not measured" : `${fmt(s.median)} ${row.unit} [${fmt(s.min)}–${fmt(s.max)}]`
    const met = row.met === undefined ? "" : row.met ? "yes" : "**no**"
    return `| ${row.name} | ${row.what} | ${measured} | ${s.n === 0 ? "" : fmt(s.p95)} | ${row.n ?? s.n} | ${ratio} | ${row.goal ?? ""} | ${met} | ${row.notes ?? ""} |`
  })
  return [header, rule, ...lines].join("\n")
}

/** Named phases of a run as [start, end] offsets (ms) from the run's own start. */
export type Timeline = Readonly<Record<string, readonly [number, number]>>

/** A table of the median start offset and duration of each phase over several timelines. */
export const renderPhases = (title: string, timelines: ReadonlyArray<Timeline>): string => {
  const names = [...new Set(timelines.flatMap((timeline) => Object.keys(timeline)))]
  const lines = names.map((name) => {
    const present = timelines.flatMap((timeline) => timeline[name] === undefined ? [] : [timeline[name]])
    const starts = present.map(([start]) => start)
    const durations = present.map(([start, end]) => end - start)
    return `| ${name} | ${fmt(quantile(starts, 0.5))} | ${fmt(quantile(durations, 0.5))} | ${present.length} |`
  })
  return [`**${title}** (median ms over runs)`, "", "| phase | starts at | lasts | n |", "|---|---|---|---|", ...lines].join("\n")
}
