/**
 * The tmux and app-server services as a test on a given Host uses them: the live layers, built
 * on the Host in the test's context.
 */
import { Effect } from "effect"
import { AppServerClient } from "../../src/appserver/AppServerClient.ts"
import type { ConversationOptions } from "../../src/appserver/CodexConversation.ts"
import { Tmux } from "../../src/terminal/Tmux.ts"
import type { TmuxSessionOptions } from "../../src/terminal/TmuxSession.ts"

/** Starts a tmux session through the live `Tmux` service on the Host in context. */
export const startTmuxSession = (options: TmuxSessionOptions) =>
  Tmux.use((tmux) => tmux.start(options)).pipe(Effect.provide(Tmux.layer))

/** Starts a conversation through the live `AppServerClient` service on the Host in context. */
export const startConversation = (options: ConversationOptions) =>
  AppServerClient.use((client) => client.start(options)).pipe(Effect.provide(AppServerClient.layer))
