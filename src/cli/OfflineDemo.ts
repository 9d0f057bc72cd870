/**
 * OfflineDemo: the built-in script that lets a new user watch a real codex session with no
 * OpenAI account — a scripted local model asks codex to write `hello.txt`, then to report `DONE`
 * on the optio.log channel. Owns the script, the prompt and the codex config that points codex at
 * the local model; starting the server is the CLI's business.
 *
 * @since 0.1.0
 */
import * as ModelScript from "../modelserver/ModelScript.ts"
import { OFFLINE_API_KEY_ENV, OFFLINE_API_KEY_VALUE, offlineCodexConfig } from "../modelserver/OfflineCodexConfig.ts"

/** The model name the scripted server answers to. */
export const DEMO_MODEL = "scripted-model"

/** What the demo asks for; the scripted model "does" it regardless of the wording. */
export const DEMO_PROMPT = "Create hello.txt containing the line `hello from codex`, then report DONE on the optio.log channel."

/** Three model turns: write the file, write DONE, say so. */
export const demoScript: ModelScript.Script = [
  ModelScript.execCommand("printf 'hello from codex\\n' > hello.txt"),
  ModelScript.execCommand("printf 'DONE: wrote hello.txt\\n' >> optio.log"),
  ModelScript.text("I created hello.txt and reported DONE.")
]

/**
 * The task settings that point codex at the scripted server at `baseUrl`: `configOverrides` for
 * config.toml and the dummy API key the provider reads from the environment.
 */
export const demoTaskSettings = (baseUrl: string) => {
  const overrides = offlineCodexConfig({ baseUrl, model: DEMO_MODEL })
  const { model: _model, ...rest } = overrides
  return {
    model: DEMO_MODEL,
    configOverrides: rest,
    env: { [OFFLINE_API_KEY_ENV]: OFFLINE_API_KEY_VALUE }
  }
}
