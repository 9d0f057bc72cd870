import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { contentDisposition, contentTypeFor, makeDownloadReader } from "../../src/conversation/Downloads.ts"
import type { DownloadReader } from "../../src/conversation/Downloads.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { call, makeFakeConversation } from "./harness.ts"

const root = join(process.cwd(), ".cache", "test", `conversation-downloads-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

const QUOTED_NAME = "rép\"ort\\ \"final\" ✓.md"

/**
 * A workdir with a report, a file with a hostile name, a big file, a directory, symlinks that
 * stay inside and one that leaves, and a secret next to the workdir.
 */
const workdir = join(root, "task", "workdir")
mkdirSync(join(workdir, "out", "deep"), { recursive: true })
writeFileSync(join(workdir, "out", "r.md"), "report-body")
writeFileSync(join(workdir, "out", QUOTED_NAME), "quoted-body")
writeFileSync(join(workdir, "my report.txt"), "spaced-body")
writeFileSync(join(workdir, "literal%20name.txt"), "literal-body")
writeFileSync(join(workdir, "big.bin"), new Uint8Array(64))
writeFileSync(join(root, "task", "secret.txt"), "secret")
symlinkSync(join(workdir, "out", "r.md"), join(workdir, "inside-link.md"))
symlinkSync(join(root, "task", "secret.txt"), join(workdir, "escape.txt"))
symlinkSync(join(root, "task"), join(workdir, "up"))
// The workdir itself reached through a symlink must still work (the reference failed closed).
symlinkSync(workdir, join(root, "workdir-link"))

const readerFor = (dir: string, maxBytes = 32) =>
  makeDownloadReader({ workdir: dir, maxBytes }).pipe(Effect.provide(LocalHost.layer()))

const reasonOf = (reader: DownloadReader, path: string) =>
  Effect.flip(reader(path)).pipe(Effect.map((error) => error._tag === "DownloadRefused" ? error.reason : error._tag))

describe("makeDownloadReader", () => {
  it.live("reads a workdir file with its name and content type", () =>
    Effect.gen(function*() {
      const reader = yield* readerFor(workdir)
      const file = yield* reader("out/r.md")
      assert.deepStrictEqual(
        [file.fileName, file.contentType, new TextDecoder().decode(file.bytes)],
        ["r.md", "text/markdown", "report-body"]
      )
      const normalized = yield* reader("out/deep/../r.md")
      assert.strictEqual(new TextDecoder().decode(normalized.bytes), "report-body")
      // item 7: an absolute path inside the workdir is served like its relative form (the reference did).
      const absolute = yield* reader(`${workdir}/out/r.md`)
      assert.deepStrictEqual([absolute.fileName, new TextDecoder().decode(absolute.bytes)], ["r.md", "report-body"])
      const linked = yield* reader("inside-link.md")
      assert.strictEqual(linked.fileName, "inside-link.md")
      const viaLink = yield* readerFor(join(root, "workdir-link"))
      assert.strictEqual(new TextDecoder().decode((yield* viaLink("out/r.md")).bytes), "report-body")
    }))

  it.live.each([
    // item 7: climbing out or an absolute path elsewhere is 403 forbidden, as in the reference.
    ["../secret.txt", "forbidden"],
    ["out/../../secret.txt", "forbidden"],
    ["..", "forbidden"],
    [".", "bad-path"],
    ["", "bad-path"],
    ["/etc/passwd", "forbidden"],
    [`${workdir}/../secret.txt`, "forbidden"],
    [`${workdir}/escape.txt`, "forbidden"],
    ["a\u0000b", "bad-path"],
    ["escape.txt", "forbidden"],
    ["up/secret.txt", "forbidden"],
    ["missing.txt", "not-found"],
    ["out/r.md/x", "not-found"],
    ["out", "not-found"],
    ["big.bin", "too-large"]
  ] as const)("%j is refused as %s", ([path, reason]) =>
    Effect.gen(function*() {
      const reader = yield* readerFor(workdir)
      assert.strictEqual(yield* reasonOf(reader, path), reason)
    }))

  it.live("a path the markdown layer already percent-encoded is found; a literal % name stays literal", () =>
    Effect.gen(function*() {
      const reader = yield* readerFor(workdir)
      assert.strictEqual(new TextDecoder().decode((yield* reader("my%20report.txt")).bytes), "spaced-body")
      assert.strictEqual(new TextDecoder().decode((yield* reader("my report.txt")).bytes), "spaced-body")
      assert.strictEqual(new TextDecoder().decode((yield* reader("literal%20name.txt")).bytes), "literal-body")
      assert.strictEqual(yield* reasonOf(reader, "%2E%2E/secret.txt"), "forbidden")
      assert.strictEqual(yield* reasonOf(reader, "nothing%20here.txt"), "not-found")
      assert.strictEqual(yield* reasonOf(reader, "bad%FFescape.txt"), "not-found")
    }))
})

describe("contentDisposition and contentTypeFor", () => {
  it.effect("no file name can break the header; filename* carries the exact name", () =>
    Effect.sync(() => {
      for (const name of [QUOTED_NAME, "a\r\nSet-Cookie: x=1.txt", "\u00e9t\u00e9.pdf", "x'();*.txt", "\ud800lone.txt", "\"\""]) {
        const header = contentDisposition(name)
        assert.match(header, /^attachment; filename="[\x20-\x7e]*"; filename\*=UTF-8''[A-Za-z0-9%!#$&+.^_`|~-]*$/, name)
        assert.notInclude(header, "\r")
        assert.notInclude(header, "\n")
        const fallback = /filename="([^"]*)"/.exec(header)?.[1] ?? ""
        assert.notInclude(fallback, "\\")
        const encoded = /filename\*=UTF-8''(.*)$/.exec(header)?.[1] ?? ""
        // Exact but for control characters, which are replaced.
        assert.strictEqual(decodeURIComponent(encoded), name.toWellFormed().replace(/[\u0000-\u001f]/g, "_"))
      }
      assert.strictEqual(contentDisposition("r.md"), "attachment; filename=\"r.md\"; filename*=UTF-8''r.md")
    }))

  it.effect("finding 7: download names lose their bidi overrides and invisible controls in Content-Disposition", () =>
    Effect.sync(() => {
      const header = contentDisposition("invoice\u202Etxt.exe")
      const exact = decodeURIComponent(/filename\*=UTF-8''(.*)$/.exec(header)?.[1] ?? "")
      assert.strictEqual(exact, "invoice_txt.exe")
      for (const char of ["\u202A", "\u202B", "\u202D", "\u2066", "\u2067", "\u2068", "\u2069", "\u200E", "\u200F", "\u061C", "\uFEFF"]) {
        assert.notInclude(decodeURIComponent(/filename\*=UTF-8''(.*)$/.exec(contentDisposition(`a${char}b.txt`))?.[1] ?? ""), char)
      }
    }))

  it.effect("content types come from the extension, octet-stream when unknown", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(
        ["r.md", "a.TXT", "x.json", "p.png", "m.ts", "s.py", "README", ".env", "a.weird"].map(contentTypeFor),
        ["text/markdown", "text/plain", "application/json", "image/png", "text/plain", "text/x-python",
          "application/octet-stream", "application/octet-stream", "application/octet-stream"]
      )
    }))
})

describe("GET /download", () => {
  const serveWithReader = (withReader: boolean) =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation()
      const download = yield* readerFor(workdir)
      const listener = yield* ConversationListener
      return yield* listener.serve(fake.handle, withReader ? { download } : {})
    }).pipe(Effect.provide(ConversationListener.layer))

  it.live("answers the bytes with a content type and an escaped Content-Disposition", () =>
    Effect.gen(function*() {
      const endpoint = yield* serveWithReader(true)
      const plain = yield* call(endpoint, "GET", `/download?path=${encodeURIComponent("out/r.md")}`)
      assert.strictEqual(plain.status, 200)
      assert.strictEqual(new TextDecoder().decode(plain.bytes), "report-body")
      assert.strictEqual(plain.headers["content-type"], "text/markdown")
      assert.strictEqual(plain.headers["content-disposition"], "attachment; filename=\"r.md\"; filename*=UTF-8''r.md")
      assert.strictEqual(plain.headers["x-content-type-options"], "nosniff")

      const quoted = yield* call(endpoint, "GET", `/download?path=${encodeURIComponent(`out/${QUOTED_NAME}`)}`)
      assert.strictEqual(quoted.status, 200)
      assert.strictEqual(new TextDecoder().decode(quoted.bytes), "quoted-body")
      const disposition = quoted.headers["content-disposition"] ?? ""
      assert.strictEqual(disposition, contentDisposition(QUOTED_NAME))
      assert.strictEqual(decodeURIComponent(/filename\*=UTF-8''(.*)$/.exec(disposition)?.[1] ?? ""), QUOTED_NAME)

      // The view encodes the href it found, which markdown may already have percent-encoded.
      const doubled = yield* call(endpoint, "GET", `/download?path=${encodeURIComponent("my%20report.txt")}`)
      assert.strictEqual(new TextDecoder().decode(doubled.bytes), "spaced-body")
    }))

  it.live("escapes, absolute paths and outside symlinks are 4xx; over the limit is 413; a missing query is 400", () =>
    Effect.gen(function*() {
      const endpoint = yield* serveWithReader(true)
      const cases: ReadonlyArray<readonly [string, number, string]> = [
        [`path=${encodeURIComponent("../secret.txt")}`, 403, "forbidden"],
        [`path=${encodeURIComponent("/etc/passwd")}`, 403, "forbidden"],
        [`path=${encodeURIComponent("escape.txt")}`, 403, "forbidden"],
        [`path=${encodeURIComponent("up/secret.txt")}`, 403, "forbidden"],
        [`path=${encodeURIComponent("missing.txt")}`, 404, "not-found"],
        [`path=${encodeURIComponent("big.bin")}`, 413, "too-large"],
        ["", 400, "bad-path"],
        ["path=", 400, "bad-path"],
        ["path=a&path=b", 400, "bad-path"]
      ]
      for (const [query, status, reason] of cases) {
        const reply = yield* call(endpoint, "GET", `/download?${query}`)
        assert.deepStrictEqual([reply.status, reply.body], [status, { ok: false, reason }], query)
      }
    }))

  it.live("finding 7: a path over NAME_MAX is a 4xx, and the name is never logged", () => {
    const logged: Array<string> = []
    const capture = Logger.layer([Logger.make((entry) => void logged.push(JSON.stringify(entry.message)))], { mergeWithExisting: false })
    return Effect.gen(function*() {
      const endpoint = yield* serveWithReader(true)
      const long = `${"n".repeat(300)}-LONGNAME.txt`
      for (const path of [long, `out/${long}`, `${long}/x`]) {
        const reply = yield* call(endpoint, "GET", `/download?path=${encodeURIComponent(path)}`)
        assert.strictEqual(reply.status, 400, path.slice(0, 20))
        assert.deepStrictEqual(reply.body, { ok: false, reason: "bad-path" })
      }
      assert.isFalse(logged.some((line) => line.includes("LONGNAME")), "the requested name reached a log line")
    }).pipe(Effect.provide(capture))
  })

  it.live("without a reader the route is 409 no-reader", () =>
    Effect.gen(function*() {
      const endpoint = yield* serveWithReader(false)
      const reply = yield* call(endpoint, "GET", "/download?path=out%2Fr.md")
      assert.deepStrictEqual([reply.status, reply.body], [409, { ok: false, reason: "no-reader" }])
    }))
})
