/**
 * The layout a session gives a task (see src/workdir/TaskPaths.ts), for tests that reach into a
 * task's private files (codex's home, pids.json) from outside the session.
 */
import { Effect } from "effect"
import { taskPaths } from "../../src/workdir/TaskPaths.ts"
import type { TaskPaths } from "../../src/workdir/TaskPaths.ts"

/** The paths of `processId` under `taskRoot`, with `workdir` when the caller names one. */
export const layoutOf = (options: { readonly processId: string; readonly taskRoot: string; readonly workdir?: string }): TaskPaths =>
  Effect.runSync(taskPaths(options))
