import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted, Scope } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { startTmuxSession } from "../support/services.ts"
import { TtydSession } from "../../src/terminal/TtydSession.ts"
import { waitUntil } from "../support/waitUntil.ts"
import { makeFixtures, removeFixtures, socketPath, tmuxQuery } from "./fixtures.ts"
import { holdConnection, rawRequest, upgradeThenRequest } from "../support/rawHttp.ts"
import { basicAuth, cookieFrom, openViewer, request, viewerCookie, viewerShows, viewPathOf } from "./viewer.ts"

const fx = makeFixtures("ttyd")
afterAll(removeFixtures)

const Live = TtydSession.layer.pipe(Layer.provideMerge(LocalHost.layer()))
const ROUTES = ["/", "/ws", "/control", "/health", "/assets/xterm.js", "/assets/xterm.css", "/assets/addon-fit.js", "/assets/terminal.js", "/nope"]

// A fake TUI in tmux (input lines logged to `log`), served as a web terminal.
const served = (log = join(fx.dir, `input-${Math.random().toString(36).slice(2)}.log`)) =>
  Effect.gen(function*() {
    const socket = socketPath()
    const tmux = yield* startTmuxSession({
      socketPath: socket,
      configPath: join(fx.dir, `${socket.split("/").pop() ?? "x"}.conf`),
      command: { argv: [fx.fakeTui, "0", log] },
      columns: 100,
      rows: 30
    })
    const terminal = yield* TtydSession
    const endpoint = yield* terminal.serve(tmux)
    return { tmux, endpoint, log, socket }
  })

const loggedLines = (log: string) => existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(0, -1) : []


describe("TtydSession", () => {
  it.live("rejects every route without valid credentials", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* served()
      const wrong = "A".repeat(43)
      const attempts: ReadonlyArray<RequestInit & { readonly query?: string }> = [
        {},
        { headers: basicAuth(endpoint, wrong) },
        { headers: { authorization: `Basic ${Buffer.from(`admin:${Redacted.value(endpoint.credential)}`).toString("base64")}` } },
        { headers: { authorization: `Bearer ${Redacted.value(endpoint.credential)}` } },
        { headers: { cookie: `optio_terminal_${endpoint.port}=${wrong}` } },
        { headers: { cookie: `optio_terminal_1=${Redacted.value(endpoint.credential)}` } },
        // The raw credential is no longer a valid cookie (finding 6).
        { headers: { cookie: `optio_terminal_${endpoint.port}=${Redacted.value(endpoint.credential)}` } },
        // Trailing junk after a valid Basic credential (finding 7).
        { headers: { authorization: `${basicAuth(endpoint).authorization} junk` } },
        { headers: { authorization: `${basicAuth(endpoint).authorization}!!` } },
        { query: `?token=${wrong}` },
        { query: "?token=" }
      ]
      for (const path of ROUTES) {
        for (const { query, ...init } of attempts) {
          const method = path === "/control" ? "POST" : "GET"
          const response = yield* request(endpoint, `${path}${query ?? ""}`, { method, ...init })
          assert.strictEqual(response.status, 401, `${method} ${path}${query ?? ""} ${JSON.stringify(init.headers ?? {})}`)
          // No challenge: a browser that cached the Basic credential would send it from any origin.
          assert.isNull(response.headers.get("www-authenticate"))
          assert.notInclude(response.body, Redacted.value(endpoint.credential))
        }
      }
      const ws = yield* Effect.flip(openViewer(endpoint, { headers: {} }))
      assert.include(ws.message, "401")
      const wsWrong = yield* Effect.flip(openViewer(endpoint, { headers: basicAuth(endpoint, wrong) }))
      assert.include(wsWrong.message, "401")
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("accepts Basic auth, and a token that becomes an HttpOnly SameSite cookie", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* served()
      assert.match(endpoint.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
      assert.strictEqual(endpoint.iframeSrc, "{widgetProxyUrl}")
      assert.strictEqual(endpoint.innerAuth.username, "optio")
      assert.strictEqual(Redacted.value(endpoint.innerAuth.password), Redacted.value(endpoint.credential))
      assert.lengthOf(Buffer.from(Redacted.value(endpoint.credential), "base64url"), 32)
      assert.notInclude(String(endpoint.viewerUrl), Redacted.value(endpoint.credential))

      const page = yield* request(endpoint, "/", { headers: basicAuth(endpoint) })
      assert.strictEqual(page.status, 200)
      assert.include(page.body, "assets/xterm.js")
      assert.isNull(page.headers.get("set-cookie"))
      // Every URL in the page is relative: the dashboard serves it under a path prefix.
      assert.notMatch(page.body, /(src|href)="\//)
      for (const path of ["/health", "/assets/xterm.js", "/assets/xterm.css", "/assets/addon-fit.js", "/assets/terminal.js"]) {
        assert.strictEqual((yield* request(endpoint, path, { headers: basicAuth(endpoint) })).status, 200, path)
      }
      assert.strictEqual((yield* request(endpoint, "/nope", { headers: basicAuth(endpoint) })).status, 404)
      assert.strictEqual((yield* request(endpoint, "/ws", { headers: basicAuth(endpoint) })).status, 400)

      const viewerUrl = new URL(Redacted.value(endpoint.viewerUrl))
      const viewed = yield* request(endpoint, viewerUrl.pathname + viewerUrl.search)
      assert.strictEqual(viewed.status, 200)
      const cookie = viewed.headers.get("set-cookie") ?? ""
      assert.include(cookie, "HttpOnly")
      assert.include(cookie, "SameSite=Strict")
      assert.strictEqual(viewed.headers.get("referrer-policy"), "no-referrer")
      for (const path of ["health", "assets/xterm.js"]) {
        const withCookie = yield* request(endpoint, `${viewPathOf(endpoint)}${path}`, { headers: { cookie: cookieFrom(cookie) } })
        assert.strictEqual(withCookie.status, 200, path)
      }
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("bridges a WebSocket viewer to the pane: output, typing, and garbage ignored", () =>
    Effect.gen(function*() {
      const { endpoint, log } = yield* served()
      const viewer = yield* openViewer(endpoint, { columns: 100, rows: 30 })
      yield* viewerShows(viewer, "FAKE-TUI ready")
      viewer.sendRaw("not json")
      viewer.send({ type: "resize", columns: -1, rows: 10 })
      viewer.send({ type: "launch-missiles" })
      viewer.sendRaw(new Uint8Array([0xff, 0x00, 0x7b]))
      viewer.send({ type: "input", data: "typed 'here' $(x)\r" })
      yield* viewerShows(viewer, "echo: typed 'here' $(x)")
      assert.deepStrictEqual(loggedLines(log), ["typed 'here' $(x)"])
      assert.isFalse(viewer.closed())
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("serves several viewers at once, authenticated by header, token or cookie", () =>
    Effect.gen(function*() {
      const { endpoint, tmux } = yield* served()
      const first = yield* openViewer(endpoint)
      const second = yield* openViewer(endpoint, { headers: {}, query: `?token=${Redacted.value(endpoint.credential)}` })
      const third = yield* openViewer(endpoint, { headers: { cookie: yield* viewerCookie(endpoint) }, path: `${viewPathOf(endpoint).slice(1)}ws` })
      for (const viewer of [first, second, third]) yield* viewerShows(viewer, "FAKE-TUI ready")
      first.send({ type: "input", data: "from the first\r" })
      for (const viewer of [first, second, third]) yield* viewerShows(viewer, "echo: from the first")
      yield* tmux.sendText("from the session")
      for (const viewer of [first, second, third]) yield* viewerShows(viewer, "echo: from the session")
      const clients = yield* tmuxQuery(tmux.socketPath, ["list-clients", "-F", "#{client_pid}"])
      assert.lengthOf(clients.split("\n"), 3)
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("a resize message resizes the pane", () =>
    Effect.gen(function*() {
      const { endpoint, socket } = yield* served()
      const viewer = yield* openViewer(endpoint)
      yield* viewerShows(viewer, "FAKE-TUI ready")
      const size = tmuxQuery(socket, ["display-message", "-p", "-t", "=optio:", "#{window_width}x#{window_height}"])
      assert.strictEqual(yield* size, "100x30")
      viewer.send({ type: "resize", columns: 123, rows: 41 })
      yield* waitUntil("the window is 123x41", size.pipe(Effect.map((text) => text === "123x41" ? text : undefined)))
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("/control sends text and keys, and rejects bad input", () =>
    Effect.gen(function*() {
      const { endpoint, log } = yield* served()
      const post = (body: string) =>
        request(endpoint, "/control", { method: "POST", body, headers: { ...basicAuth(endpoint), "content-type": "application/json" } })
      const text = yield* post(JSON.stringify({ text: "via control; \"quoted\" `x`" }))
      assert.strictEqual(text.status, 200)
      assert.deepStrictEqual(JSON.parse(text.body), { ok: true })
      const keys = yield* post(JSON.stringify({ keys: ["o", "k", "Enter"] }))
      assert.strictEqual(keys.status, 200)
      yield* waitUntil("both lines are logged", Effect.sync(() => loggedLines(log).length >= 2 ? true : undefined))
      assert.deepStrictEqual(loggedLines(log), ["via control; \"quoted\" `x`", "ok"])
      for (const bad of ["", "nope", "{}", "[]", JSON.stringify({ text: 5 }), JSON.stringify({ keys: "Enter" }), JSON.stringify({ keys: ["kill-server"] })]) {
        const response = yield* post(bad)
        assert.strictEqual(response.status, 400, bad)
      }
      assert.strictEqual((yield* request(endpoint, "/control", { headers: basicAuth(endpoint) })).status, 405)
      assert.lengthOf(loggedLines(log), 2)
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("stops accepting connections and detaches its viewers when its scope closes", () =>
    Effect.gen(function*() {
      const socket = socketPath()
      const tmux = yield* startTmuxSession({
        socketPath: socket,
        configPath: join(fx.dir, "closing.conf"),
        command: { argv: [fx.fakeTui] }
      })
      const scope = yield* Scope.fork(yield* Effect.scope)
      const terminal = yield* TtydSession
      const endpoint = yield* terminal.serve(tmux).pipe(Scope.provide(scope))
      const viewer = yield* openViewer(endpoint)
      yield* viewerShows(viewer, "FAKE-TUI ready")
      assert.strictEqual((yield* tmuxQuery(socket, ["list-clients", "-F", "#{client_pid}"])).split("\n").length, 1)
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      assert.isBelow(Date.now() - started, 5000)
      const refused = yield* Effect.flip(request(endpoint, "/health", { headers: basicAuth(endpoint) }))
      assert.isDefined(refused)
      yield* waitUntil("the viewer is closed", Effect.sync(() => viewer.closed() ? true : undefined))
      yield* waitUntil("no tmux client is attached", tmuxQuery(socket, ["list-clients", "-F", "#{client_pid}"]).pipe(
        Effect.map((clients) => clients === "" ? true : undefined)
      ))
      assert.deepStrictEqual(yield* tmux.status, { _tag: "Running" })
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("finding 6: 100 viewers closing at once leave no tmux attach behind and the worker's descriptors bounded", () =>
    Effect.gen(function*() {
      const { endpoint, socket } = yield* served()
      const viewers = yield* Scope.make()
      yield* Effect.forEach(Array.from({ length: 100 }), () => openViewer(endpoint).pipe(Scope.provide(viewers)), { concurrency: 10 })
      const attached = () => tmuxQuery(socket, ["list-clients", "-F", "#{client_pid}"]).pipe(
        Effect.map((clients) => clients.split("\n").filter((line) => line !== ""))
      )
      yield* waitUntil("100 clients attached", Effect.map(attached(), (clients) => clients.length === 100 ? true : undefined), "60 seconds")
      const pids = yield* attached()
      const descriptors = () => readdirSync("/proc/self/fd").length
      let peak = descriptors()
      const sampler = setInterval(() => void (peak = Math.max(peak, descriptors())), 2)
      yield* Scope.close(viewers, Exit.void)
      yield* waitUntil("no tmux client is attached", Effect.map(attached(), (clients) => clients.length === 0 ? true : undefined), "60 seconds").pipe(
        Effect.ensuring(Effect.sync(() => clearInterval(sampler)))
      )
      yield* waitUntil("every tmux attach exited", Effect.sync(() => pids.every((pid) => !existsSync(`/proc/${pid}`)) ? true : undefined), "30 seconds")
      yield* Effect.logInfo(`peak descriptors while 100 viewers closed: ${peak}`)
      assert.isBelow(peak, 2000)
    }).pipe(Effect.scoped, Effect.provide(Live)), 120_000)

  it.live("the test layer returns an endpoint without serving", () =>
    Effect.gen(function*() {
      const terminal = yield* TtydSession
      const tmux = yield* startTmuxSession({
        socketPath: socketPath(),
        configPath: join(fx.dir, "fake.conf"),
        command: { argv: [fx.fakeTui] }
      })
      const endpoint = yield* terminal.serve(tmux, { advertisedHost: "::1" })
      assert.strictEqual(endpoint.url, "http://[::1]:7681/")
      assert.match(Redacted.value(endpoint.viewerUrl), /^http:\/\/\[::1\]:7681\/v\/[\w-]{22}\/\?token=secret$/)
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(TtydSession.layerTest({ credential: "secret" }), LocalHost.layer()))))

  it.live("finding 6: a foreign-origin POST /control is refused", () =>
    Effect.gen(function*() {
      const { endpoint, log } = yield* served()
      const cookie = yield* viewerCookie(endpoint)
      const control = `${viewPathOf(endpoint)}control`
      // A page on another port of the host: same site (so SameSite lets the cookie through), other origin.
      const foreign = yield* request(endpoint, control, {
        method: "POST",
        headers: { cookie, origin: "http://127.0.0.1:1", "content-type": "text/plain" },
        body: JSON.stringify({ text: "rm -rf ~" })
      })
      assert.strictEqual(foreign.status, 403)
      const own = yield* request(endpoint, control, {
        method: "POST",
        headers: { cookie, origin: new URL(endpoint.url).origin, "content-type": "application/json" },
        body: JSON.stringify({ text: "from my own page" })
      })
      assert.strictEqual(own.status, 200)
      yield* waitUntil("the own page's line is logged", Effect.sync(() => loggedLines(log).length >= 1 ? true : undefined))
      assert.deepStrictEqual(loggedLines(log), ["from my own page"])
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("finding 6: a foreign-origin WebSocket upgrade is refused", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* served()
      const cookie = yield* viewerCookie(endpoint)
      const path = `${viewPathOf(endpoint).slice(1)}ws`
      const refused = yield* Effect.flip(openViewer(endpoint, { headers: { cookie, origin: "http://localhost:8080" }, path }))
      assert.include(refused.message, "403")
      const own = yield* openViewer(endpoint, { headers: { cookie, origin: new URL(endpoint.url).origin }, path })
      yield* viewerShows(own, "FAKE-TUI ready")
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("finding 6: the cookie is a derived value, host-only and scoped to the viewer's path", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* served()
      const viewerUrl = new URL(Redacted.value(endpoint.viewerUrl))
      const viewed = yield* request(endpoint, viewerUrl.pathname + viewerUrl.search)
      const setCookie = viewed.headers.get("set-cookie") ?? ""
      assert.notInclude(setCookie, Redacted.value(endpoint.credential))
      assert.notInclude(setCookie.toLowerCase(), "domain=")
      assert.include(setCookie, `Path=${viewPathOf(endpoint)}`)
      assert.notInclude(viewPathOf(endpoint), Redacted.value(endpoint.credential))
      const cookie = cookieFrom(setCookie)
      // Outside the viewer's path the cookie authenticates nothing.
      assert.strictEqual((yield* request(endpoint, "/health", { headers: { cookie } })).status, 401)
      assert.strictEqual((yield* request(endpoint, `${viewPathOf(endpoint)}health`, { headers: { cookie } })).status, 200)
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("finding 6: a token URL outside the viewer's path moves there, with the cookie", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* served()
      const moved = yield* request(endpoint, `/?token=${encodeURIComponent(Redacted.value(endpoint.credential))}`)
      assert.strictEqual(moved.status, 303)
      assert.strictEqual(moved.headers.get("location"), viewPathOf(endpoint))
      const cookie = cookieFrom(moved.headers.get("set-cookie"))
      assert.strictEqual((yield* request(endpoint, `${viewPathOf(endpoint)}assets/terminal.js`, { headers: { cookie } })).status, 200)
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("issue 14: any number of leading slashes reaches the same route, authenticated as before", () =>
    Effect.gen(function*() {
      const { endpoint, log } = yield* served()
      const auth = basicAuth(endpoint)
      const page = yield* rawRequest(endpoint.port, "//", { headers: auth })
      assert.strictEqual(page.status, 200)
      assert.include(page.body, "assets/xterm.js")
      assert.strictEqual((yield* rawRequest(endpoint.port, "//assets/xterm.css", { headers: auth })).status, 200)
      assert.strictEqual((yield* rawRequest(endpoint.port, "///health", { headers: auth })).status, 200)
      assert.strictEqual((yield* rawRequest(endpoint.port, "//health")).status, 401)
      const control = yield* rawRequest(endpoint.port, "//control", {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ text: "through a double slash" })
      })
      assert.strictEqual(control.status, 200)
      yield* waitUntil("the line is logged", Effect.sync(() => loggedLines(log).length >= 1 ? true : undefined))
    }).pipe(Effect.scoped, Effect.provide(Live)))

  it.live("issue 14: a refused upgrade's connection is destroyed, and closing does not wait for a held one", () =>
    Effect.gen(function*() {
      const socket = socketPath()
      const tmux = yield* startTmuxSession({ socketPath: socket, configPath: join(fx.dir, "held.conf"), command: { argv: [fx.fakeTui] } })
      const scope = yield* Scope.fork(yield* Effect.scope)
      const endpoint = yield* (yield* TtydSession).serve(tmux).pipe(Scope.provide(scope))
      const refused = yield* holdConnection(endpoint.port, upgradeThenRequest())
      yield* waitUntil("the refused upgrade's connection is closed", Effect.sync(() => refused.closedByServer() ? true : undefined), "5 seconds")
      assert.match(refused.received(), /^HTTP\/1\.1 401/)
      // A connection that never finishes its request is cut when the server closes.
      const idle = yield* holdConnection(endpoint.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
      yield* Scope.close(scope, Exit.void)
      yield* waitUntil("the held connection is closed", Effect.sync(() => idle.closedByServer() ? true : undefined), "2 seconds")
    }).pipe(Effect.scoped, Effect.provide(Live)))
})
