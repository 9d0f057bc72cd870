/**
 * The conversation listener as the dashboard reaches it: CodexView's calls from a dashboard page
 * in chromium, through a stand-in of optio-api's widget proxy (prefix stripped, Basic inner auth
 * injected, the page's Origin passed on with the Host rewritten).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { launchBrowser } from "../support/browser.ts"
import { holdConnection, rawRequest, upgradeThenRequest } from "../support/rawHttp.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { startWidgetProxy } from "../support/widgetProxy.ts"
import { makeFakeConversation } from "./harness.ts"

declare global {
  // Set by the stand-in dashboard page (test/support/widgetProxy.ts).
  var received: Array<string> | undefined
  var opened: boolean | undefined
  var send: ((text: string) => Promise<number>) | undefined
}

describe("the conversation listener through the dashboard's widget proxy", () => {
  it.live("issue 14: CodexView's event stream and send work through the proxy, with any number of leading slashes", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation({
        onSend: (text, emit) => emit({ method: "item/agentMessage/delta", params: { delta: `echo ${text}` } })
      })
      const endpoint = yield* (yield* ConversationListener).serve(fake.handle)
      const proxy = yield* startWidgetProxy({ upstreamUrl: endpoint.url, innerAuth: endpoint.innerAuth })
      const browser = yield* launchBrowser
      const page = yield* Effect.tryPromise(() => browser.newPage())
      yield* Effect.tryPromise(() => page.goto(`${proxy.origin}/dashboard/conversation`))
      yield* waitUntil("the event stream is open", Effect.tryPromise(() => page.evaluate(() => globalThis.opened === true ? true : undefined)))

      const status = yield* Effect.tryPromise(() => page.evaluate(() => globalThis.send?.("hello through the proxy") ?? Promise.resolve(0)))
      assert.strictEqual(status, 200)
      yield* waitUntil("the event reached the page", Effect.tryPromise(() =>
        page.evaluate(() => (globalThis.received ?? []).some((data) => data.includes("echo hello through the proxy")) ? true : undefined)))

      // A prefix with a trailing slash plus a forwarded `/send`: the listener reads `//send` as `/send`.
      const doubled = yield* Effect.tryPromise(() =>
        page.evaluate((url) =>
          fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "doubled" }) })
            .then((answer) => answer.status), `${proxy.widgetProxyUrl}/send`))
      assert.strictEqual(doubled, 200)
      assert.deepStrictEqual((yield* fake.calls).sent, ["hello through the proxy", "doubled"])
      assert.includeMembers([...proxy.forwarded()], ["/events", "/send", "//send"])
      // Without the proxy's credential the listener refuses.
      assert.strictEqual((yield* rawRequest(endpoint.port, "//events")).status, 401)
    }).pipe(Effect.scoped, Effect.provide(ConversationListener.layer)), 60_000)

  it.live("issue 14: a refused upgrade to the listener has its connection destroyed", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation()
      const endpoint = yield* (yield* ConversationListener).serve(fake.handle)
      const held = yield* holdConnection(endpoint.port, upgradeThenRequest("/events"))
      yield* waitUntil("the refused upgrade's connection is closed", Effect.sync(() => held.closedByServer() ? true : undefined), "5 seconds")
      assert.match(held.received(), /^HTTP\/1\.1 401/)
    }).pipe(Effect.scoped, Effect.provide(ConversationListener.layer)))
})
