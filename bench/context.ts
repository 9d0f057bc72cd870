/**
 * What every benchmark module receives from the runner, and what it gives back.
 */
import type { Row, RowName } from "./harness.ts"
import type { Workspace } from "./system.ts"

/** How many of each measurement a run takes. */
export interface Counts {
  /** Untimed rounds before the timed ones. */
  readonly warmup: number
  readonly start: number
  readonly turnRounds: number
  readonly turnsPerRound: number
  readonly cancelCycles: number
  readonly fanoutSeconds: number
  readonly fanoutRate: number
  readonly fanoutViewers: number
  /** The crowd row's viewers. */
  readonly fanoutManyViewers: number
  readonly memorySessions: number
  readonly tui: number
  /** Timed snapshot rounds, and the size of the snapshotted workdir. */
  readonly snapshotRounds: number
  readonly snapshotFiles: number
  readonly snapshotMB: number
}

/** The counts of a full run and of `--quick`. */
export const COUNTS: Readonly<Record<"full" | "quick", Counts>> = {
  full: {
    warmup: 1,
    start: 10,
    turnRounds: 5,
    turnsPerRound: 10,
    cancelCycles: 100,
    fanoutSeconds: 10,
    fanoutRate: 2000,
    fanoutViewers: 10,
    fanoutManyViewers: 100,
    memorySessions: 20,
    tui: 8,
    snapshotRounds: 5,
    snapshotFiles: 10_000,
    snapshotMB: 200
  },
  quick: {
    warmup: 0,
    start: 2,
    turnRounds: 1,
    turnsPerRound: 3,
    cancelCycles: 5,
    fanoutSeconds: 1,
    fanoutRate: 2000,
    fanoutViewers: 10,
    fanoutManyViewers: 100,
    memorySessions: 3,
    tui: 2,
    snapshotRounds: 1,
    snapshotFiles: 200,
    snapshotMB: 2
  }
}

/** The run's settings and resources, shared by every benchmark. */
export interface BenchContext {
  readonly counts: Counts
  readonly space: Workspace
  /** The cached codex binary every subject runs (library tasks link to this same file). */
  readonly binary: string
  /** A progress line on stderr. */
  readonly log: (line: string) => void
}

/** What one benchmark produced: table rows, extra markdown sections, and raw data for the JSON. */
export interface BenchResult {
  readonly rows: ReadonlyArray<Row>
  readonly sections?: ReadonlyArray<string>
  readonly data?: Readonly<Record<string, unknown>>
}

/** A row name with its samples, for benchmarks that build rows piecewise. */
export type Samples = Partial<Record<RowName, Array<number>>>
