import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import fc from "fast-check"
import { spawnSync } from "node:child_process"
import {
  shellJoin,
  shellJoinChecked,
  ShellArgumentHasNul,
  shellQuote,
  shellQuoteChecked,
} from "../../src/config/ShellQuote.ts"

// Runs `printf '%s\0' <quoted words>` in a real shell and returns the words it received.
const throughShell = (shell: string, argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const result = spawnSync(shell, ["-c", `printf '%s\\0' ${shellJoin(argv)}`], { encoding: "utf8" })
  assert.strictEqual(result.status, 0, `${shell} failed: ${result.stderr}`)
  return result.stdout.split("\0").slice(0, -1)
}

const HOSTILE: ReadonlyArray<string> = [
  "", " ", "  two  spaces ", "'", "''", "it's", "\"", "\"'\"", "\\", "\\'", "a\\nb",
  "$(id)", "$(rm -rf /)", "`id`", "${HOME}", "$HOME", "$", "$$", "$0", "!", "!!", "!$",
  "a\nb", "\n", "\n\n", "a\tb", "\t", "\r\n", "\u000b\u000c", "\u0001\u001f\u007f",
  "*", "?", "[a-z]", "{a,b}", "~", "~root", "~/x", "-rf", "--help", "-", "--",
  "a;b", "a|b", "a&b", "a>b", "<", "#comment", "a #b", "(", ")", "%", "@", "=", "a=b",
  "é", "日本語", "🙂", "e\u0301", "\u00a0", "\u2028", "\ufeff", "/a/b c/'d'/$(e)",
]

describe("shellQuote", () => {
  it.effect("leaves shlex-safe words bare", () =>
    Effect.sync(() => {
      for (const word of ["abc", "/usr/local/bin/codex", "-rf", "a=b", "user@host:/p,x+y%z", "A_Z-0.9", "--"]) {
        assert.strictEqual(shellQuote(word), word)
      }
    }))

  it.effect("renders the empty string as ''", () => Effect.sync(() => assert.strictEqual(shellQuote(""), "''")))

  it.effect("single-quotes everything else and renders ' as '\"'\"'", () =>
    Effect.sync(() => {
      assert.strictEqual(shellQuote("a b"), "'a b'")
      assert.strictEqual(shellQuote("it's"), `'it'"'"'s'`)
      assert.strictEqual(shellQuote("'"), `''"'"''`)
      assert.strictEqual(shellQuote("$(id)"), "'$(id)'")
      assert.strictEqual(shellQuote("`id`"), "'`id`'")
      assert.strictEqual(shellQuote("a\nb"), "'a\nb'")
      assert.strictEqual(shellQuote("*"), "'*'")
      assert.strictEqual(shellQuote("~"), "'~'")
      // shlex's safe set is ASCII only: any non-ASCII letter forces quotes.
      assert.strictEqual(shellQuote("é"), "'é'")
      assert.strictEqual(shellQuote("a\\b"), "'a\\b'")
    }))

  it.effect("joins quoted words with single spaces", () =>
    Effect.sync(() => {
      assert.strictEqual(
        shellJoin(["ln", "-sfn", "/usr/local/bin/codex", "/w/task/workdir/home/.local/bin/codex"]),
        "ln -sfn /usr/local/bin/codex /w/task/workdir/home/.local/bin/codex",
      )
      assert.strictEqual(shellJoin(["echo", "", "a b", "it's"]), `echo '' 'a b' 'it'"'"'s'`)
      assert.strictEqual(shellJoin([]), "")
    }))
})

describe("NUL handling", () => {
  it.effect("checked forms fail with the argument index and offset", () =>
    Effect.gen(function*() {
      const one = yield* Effect.flip(Effect.fromResult(shellQuoteChecked("ab\0c")))
      assert.instanceOf(one, ShellArgumentHasNul)
      assert.deepStrictEqual([one.index, one.offset], [0, 2])
      const many = yield* Effect.flip(Effect.fromResult(shellJoinChecked(["ok", "fine", "\0x"])))
      assert.deepStrictEqual([many._tag, many.index, many.offset], ["ShellArgumentHasNul", 2, 0])
      assert.include(many.message, "NUL")
      assert.include(many.message, "#2")
    }))

  it.effect("checked forms agree with the plain ones when there is no NUL", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(shellQuoteChecked("a b"), Result.succeed("'a b'"))
      assert.deepStrictEqual(shellJoinChecked(HOSTILE), Result.succeed(shellJoin(HOSTILE)))
    }))
})

describe("round trip through a real shell", () => {
  it.live.each(["/bin/sh", "/bin/bash"])("%s receives every hostile word unchanged", (shell) =>
    Effect.sync(() => {
      assert.deepStrictEqual(throughShell(shell, HOSTILE), HOSTILE)
      for (const word of HOSTILE) assert.deepStrictEqual(throughShell(shell, [word]), [word])
    }))

  it.live("any NUL-free unicode argv survives /bin/sh (property)", () =>
    Effect.sync(() => {
      const unit = fc.oneof(
        fc.constantFrom("'", "\"", "$", "`", "\\", "\n", "\t", " ", "*", "~", "-", "!", "(", ";", "é", "🙂"),
        fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
      )
      const word = fc.string({ unit, maxLength: 24 }).filter((s) => !s.includes("\0"))
      fc.assert(
        fc.property(fc.array(word, { minLength: 1, maxLength: 25 }), (argv) => {
          assert.deepStrictEqual(throughShell("/bin/sh", argv), argv)
        }),
        { numRuns: 200 },
      )
    }))
})
