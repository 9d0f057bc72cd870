import { assert, describe, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { ConversationListener } from "../../src/conversation/ConversationListener.ts"
import { makeUploadWriter, sanitizeUploadName } from "../../src/conversation/Uploads.ts"
import type { UploadWriterOptions } from "../../src/conversation/Uploads.ts"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { call, makeFakeConversation } from "./harness.ts"

const root = join(process.cwd(), ".cache", "test", `conversation-uploads-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

let counter = 0
/** A fresh, empty workdir for one test. */
const freshWorkdir = () => {
  counter += 1
  const workdir = join(root, `w${counter}`)
  mkdirSync(workdir, { recursive: true })
  return workdir
}

const writerFor = (options: UploadWriterOptions) => makeUploadWriter(options).pipe(Effect.provide(LocalHost.layer()))

const uploadsIn = (workdir: string) => readdirSync(join(workdir, "uploads")).sort()

describe("sanitizeUploadName", () => {
  it.effect.each<readonly [string, string]>([
    ["report.pdf", "report.pdf"],
    ["Résumé 2024 (final).docx", "Résumé 2024 (final).docx"],
    ["日本語のメモ.txt", "日本語のメモ.txt"],
    ["../../etc/passwd", "passwd"],
    ["C:\\Users\\ann\\notes.txt", "notes.txt"],
    ["a\nb\r.txt", "ab.txt"],
    ["tab\there.txt", "tabhere.txt"],
    ["evil\u202Etxt.exe", "eviltxt.exe"],
    [".bashrc", "bashrc"],
    ["-rf", "rf"],
    ["--help me.md", "help me.md"],
    ["  spaced   out  .txt ", "spaced out .txt"]
  ])("%j becomes %j", ([raw, want]) => Effect.sync(() => assert.strictEqual(sanitizeUploadName(raw), want)))

  it.effect.each(["", ".", "..", "...", "/", "../", "a/..", "\n", "\u0000", "-", " . "])("%j is refused", (raw) =>
    Effect.sync(() => assert.isUndefined(sanitizeUploadName(raw))))

  it.effect("a long name is cut to at most 200 UTF-8 bytes, keeping its extension", () =>
    Effect.sync(() => {
      const name = sanitizeUploadName(`${"é".repeat(300)}.tar.gz`)
      assert.isDefined(name)
      assert.isAtMost(new TextEncoder().encode(name ?? "").byteLength, 200)
      assert.isTrue(name?.endsWith("é.gz"))
    }))
})

describe("makeUploadWriter", () => {
  it.live("stores under uploads/ and never overwrites: a second a.txt becomes a (1).txt", () =>
    Effect.gen(function*() {
      const workdir = freshWorkdir()
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const write = yield* writerFor({
        workdir,
        maxBytes: 100,
        onUpload: (relpath) => Ref.update(seen, (all) => [...all, relpath])
      })
      const bytes = (text: string) => new TextEncoder().encode(text)
      assert.strictEqual(yield* write({ fileName: "a.txt", bytes: bytes("first") }), "uploads/a.txt")
      assert.strictEqual(yield* write({ fileName: "a.txt", bytes: bytes("second") }), "uploads/a (1).txt")
      assert.strictEqual(yield* write({ fileName: "../a.txt", bytes: bytes("third") }), "uploads/a (2).txt")
      assert.strictEqual(yield* write({ fileName: "README", bytes: bytes("r") }), "uploads/README")
      assert.strictEqual(yield* write({ fileName: "README", bytes: bytes("r2") }), "uploads/README (1)")
      assert.deepStrictEqual(uploadsIn(workdir), ["README", "README (1)", "a (1).txt", "a (2).txt", "a.txt"])
      assert.strictEqual(readFileSync(join(workdir, "uploads", "a.txt"), "utf8"), "first")
      assert.strictEqual(readFileSync(join(workdir, "uploads", "a (1).txt"), "utf8"), "second")
      assert.deepStrictEqual(yield* Ref.get(seen), [
        "uploads/a.txt",
        "uploads/a (1).txt",
        "uploads/a (2).txt",
        "uploads/README",
        "uploads/README (1)"
      ])
    }))

  it.live("concurrent uploads of one name keep every file", () =>
    Effect.gen(function*() {
      const workdir = freshWorkdir()
      const write = yield* writerFor({ workdir, maxBytes: 100 })
      const paths = yield* Effect.forEach(
        [1, 2, 3, 4, 5],
        (n) => write({ fileName: "same.txt", bytes: new TextEncoder().encode(`n${n}`) }),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(new Set(paths).size, 5)
      assert.strictEqual(uploadsIn(workdir).length, 5)
    }))

  it.live("refuses a file over the limit and an unusable name, writing nothing", () =>
    Effect.gen(function*() {
      const workdir = freshWorkdir()
      const write = yield* writerFor({ workdir, maxBytes: 4 })
      const tooLarge = yield* Effect.flip(write({ fileName: "big.bin", bytes: new Uint8Array(5) }))
      assert.strictEqual(tooLarge._tag, "UploadRefused")
      assert.strictEqual(tooLarge._tag === "UploadRefused" ? tooLarge.reason : "", "too-large")
      for (const fileName of [".", "..", "", "\n\n"]) {
        const refused = yield* Effect.flip(write({ fileName, bytes: new Uint8Array(1) }))
        assert.strictEqual(refused._tag === "UploadRefused" ? refused.reason : refused._tag, "bad-name", JSON.stringify(fileName))
        assert.include(refused.message, "bad-name")
      }
      assert.deepStrictEqual(readdirSync(workdir).filter((name) => name !== "uploads"), [])
      assert.deepStrictEqual(readdirSync(workdir).includes("uploads") ? uploadsIn(workdir) : [], [])
    }))

  it.live("refuses an uploads directory that resolves outside the workdir", () =>
    Effect.gen(function*() {
      const workdir = freshWorkdir()
      const elsewhere = freshWorkdir()
      symlinkSync(elsewhere, join(workdir, "uploads"))
      const write = yield* writerFor({ workdir, maxBytes: 100 })
      const refused = yield* Effect.flip(write({ fileName: "x.txt", bytes: new Uint8Array(1) }))
      assert.strictEqual(refused._tag === "UploadRefused" ? refused.reason : refused._tag, "forbidden")
      assert.deepStrictEqual(readdirSync(elsewhere), [])
    }))
})

describe("POST /upload", () => {
  const serveWithUploads = (workdir: string, maxBytes: number) =>
    Effect.gen(function*() {
      const fake = yield* makeFakeConversation()
      const writer = yield* writerFor({ workdir, maxBytes })
      const listener = yield* ConversationListener
      // As the session wires it: whole files for TaskContext, streamed parts for the listener.
      return yield* listener.serve(fake.handle, { uploads: { writer, stream: writer.stream, maxBytes } })
    }).pipe(Effect.provide(ConversationListener.layer))

  const form = (files: ReadonlyArray<readonly [string, string | Uint8Array<ArrayBuffer>]>, extra?: Readonly<Record<string, string>>) => {
    const data = new FormData()
    for (const [key, value] of Object.entries(extra ?? {})) data.append(key, value)
    for (const [name, content] of files) data.append("file", new Blob([content]), name)
    return data
  }

  it.live("stores every file part and answers the original names with the stored paths", () =>
    Effect.gen(function*() {
      const workdir = freshWorkdir()
      const endpoint = yield* serveWithUploads(workdir, 64)
      const first = yield* call(endpoint, "POST", "/upload", { form: form([["note.txt", "hello"]], { comment: "ignored" }) })
      assert.deepStrictEqual([first.status, first.body], [200, { ok: true, files: [{ filename: "note.txt", path: "uploads/note.txt" }] }])
      const second = yield* call(endpoint, "POST", "/upload", {
        form: form([["note.txt", "again"], ["../../etc/passwd", "root:x:0:0"]])
      })
      assert.deepStrictEqual(second.body, {
        ok: true,
        files: [
          { filename: "note.txt", path: "uploads/note (1).txt" },
          { filename: "../../etc/passwd", path: "uploads/passwd" }
        ]
      })
      assert.deepStrictEqual(uploadsIn(workdir), ["note (1).txt", "note.txt", "passwd"])
      assert.strictEqual(readFileSync(join(workdir, "uploads", "note.txt"), "utf8"), "hello")
      assert.strictEqual(readFileSync(join(workdir, "uploads", "note (1).txt"), "utf8"), "again")
    }))

  it.live("an oversized part is 413 too-large and leaves no file, not even from earlier parts", () =>
    Effect.gen(function*() {
      const workdir = freshWorkdir()
      const endpoint = yield* serveWithUploads(workdir, 16)
      const reply = yield* call(endpoint, "POST", "/upload", {
        form: form([["small.txt", "ok"], ["big.bin", new Uint8Array(100).fill(7)]])
      })
      assert.deepStrictEqual([reply.status, reply.body], [413, { ok: false, reason: "too-large" }])
      // Parts stream to disk, so the uploads directory may exist; no file is left in it.
      assert.deepStrictEqual(readdirSync(workdir).filter((name) => name !== "uploads"), [])
      assert.deepStrictEqual(readdirSync(workdir).includes("uploads") ? uploadsIn(workdir) : [], [])
      const exact = yield* call(endpoint, "POST", "/upload", { form: form([["exact.bin", new Uint8Array(16)]]) })
      assert.strictEqual(exact.status, 200)
    }))

  it.live("a refused name is 400 bad-name; no writer is 409; a non-multipart body is 400 bad-multipart; no file part is 200 with no files", () =>
    Effect.gen(function*() {
      const workdir = freshWorkdir()
      const endpoint = yield* serveWithUploads(workdir, 64)
      const dotdot = yield* call(endpoint, "POST", "/upload", { form: form([["..", "x"]]) })
      assert.deepStrictEqual([dotdot.status, dotdot.body], [400, { ok: false, reason: "bad-name" }])
      const notMultipart = yield* call(endpoint, "POST", "/upload", { json: { file: "x" } })
      assert.deepStrictEqual([notMultipart.status, notMultipart.body], [400, { ok: false, reason: "bad-multipart" }])
      const noFiles = yield* call(endpoint, "POST", "/upload", { form: form([], { other: "x" }) })
      // item 7: no file part stores nothing and says so, as the reference answered.
      assert.deepStrictEqual([noFiles.status, noFiles.body], [200, { ok: true, files: [] }])
      const garbled = yield* call(endpoint, "POST", "/upload", {
        text: "--zzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nunterminated",
        contentType: "multipart/form-data; boundary=zzz"
      })
      assert.deepStrictEqual([garbled.status, garbled.body], [400, { ok: false, reason: "bad-multipart" }])
      const many = yield* call(endpoint, "POST", "/upload", {
        form: form(Array.from({ length: 33 }, (_, i) => [`f${i}.txt`, "x"] as const))
      })
      assert.deepStrictEqual([many.status, many.body], [413, { ok: false, reason: "too-many-files" }])
      const parts = yield* call(endpoint, "POST", "/upload", {
        form: form([["a.txt", "a"]], Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`k${i}`, "v"])))
      })
      assert.deepStrictEqual([parts.status, parts.body], [413, { ok: false, reason: "too-many-files" }])
      assert.isFalse(readdirSync(workdir).includes("uploads") && uploadsIn(workdir).length > 0)

      const fake = yield* makeFakeConversation()
      const bare = yield* Effect.gen(function*() {
        const listener = yield* ConversationListener
        return yield* listener.serve(fake.handle)
      }).pipe(Effect.provide(ConversationListener.layer))
      const noWriter = yield* call(bare, "POST", "/upload", { form: form([["a.txt", "a"]]) })
      assert.deepStrictEqual([noWriter.status, noWriter.body], [409, { ok: false, reason: "no-writer" }])
    }))
})
