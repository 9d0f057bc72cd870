/**
 * A hostile agent's symlink swapper for race tests: a separate process (true parallelism, like an
 * agent's shell loop) that runs until its scope closes.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"

/**
 * The attacker: loops until killed. `file` mode flips `<w>/race.txt` between a regular file and
 * a symlink to the secret; `dir` mode flips `<w>/<name>` between a real directory and a symlink
 * to the outside directory. Every step is a rename, so each state is atomic.
 */
const ATTACKER = String.raw`
const fs = require("node:fs")
const [mode, w, target, name] = process.argv.slice(1)
const quiet = (f) => { try { f() } catch {} }
for (;;) {
  if (mode === "file") {
    quiet(() => { fs.symlinkSync(target, w + "/.l"); fs.renameSync(w + "/.l", w + "/race.txt") })
    quiet(() => { fs.writeFileSync(w + "/.p", "public"); fs.renameSync(w + "/.p", w + "/race.txt") })
  } else {
    quiet(() => fs.renameSync(w + "/" + name, w + "/.real"))
    quiet(() => { fs.symlinkSync(target, w + "/.d"); fs.renameSync(w + "/.d", w + "/" + name) })
    quiet(() => fs.unlinkSync(w + "/" + name))
    quiet(() => fs.renameSync(w + "/.real", w + "/" + name))
  }
}
`

/** Starts the swapper with `mode, workdir, target[, name]`; it is SIGKILLed when the scope closes. */
export const symlinkSwapper = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn(process.execPath, ["-e", ATTACKER, ...args], { stdio: "ignore" })),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )

