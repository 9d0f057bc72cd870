/**
 * ShellQuote: POSIX shell quoting for command strings that a `Host` runs through `sh -c`.
 *
 * Owns the quoting rule (Python `shlex.quote`, reproduced exactly because tests and the
 * reference assert bare forms such as `ln -sfn /a /b`) and the NUL check. It does not run
 * anything and does not know which shell is used beyond POSIX `sh`.
 *
 * **NUL policy.** A NUL byte cannot travel through `execve` (the kernel cuts the argument
 * there), so no quoting can preserve it. `shellQuote` / `shellJoin` are total and leave that
 * problem to the caller; `shellQuoteChecked` / `shellJoinChecked` return a `Result` that
 * fails with {@link ShellArgumentHasNul}. Use the checked forms for any value that came
 * from configuration, the network or the agent.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"

/**
 * A shell argument contained a NUL byte, which no command line can carry.
 * @category errors
 */
export class ShellArgumentHasNul extends Schema.TaggedError<ShellArgumentHasNul>()("ShellArgumentHasNul", {
  /** Position of the offending argument in the argv (0 for a single quoted value). */
  index: Schema.Number,
  /** Offset of the first NUL inside that argument. */
  offset: Schema.Number,
}) {
  override get message(): string {
    return `shell argument #${this.index} contains a NUL byte at offset ${this.offset}; ` +
      `a NUL cannot be passed on a command line, remove it from the value`
  }
}

// shlex.quote leaves a word bare only when every character is in this ASCII set.
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/

/**
 * Quotes one word for a POSIX shell exactly like Python's `shlex.quote`.
 *
 * **Gotchas** a NUL byte is quoted literally and later truncated by `execve`; use
 * {@link shellQuoteChecked} for untrusted values. A leading `-` stays bare (`-rf`), since
 * quoting never stops a program from reading a word as an option.
 * @category encoding
 */
export const shellQuote = (word: string): string => {
  if (word === "") return "''"
  if (SAFE_WORD.test(word)) return word
  return `'${word.replaceAll("'", `'"'"'`)}'`
}

/**
 * Quotes every word with {@link shellQuote} and joins them with single spaces.
 * @category encoding
 */
export const shellJoin = (argv: ReadonlyArray<string>): string => argv.map(shellQuote).join(" ")

/**
 * {@link shellQuote}, failing with {@link ShellArgumentHasNul} when the word holds a NUL.
 * @category encoding
 */
export const shellQuoteChecked = (word: string): Result.Result<string, ShellArgumentHasNul> => {
  const offset = word.indexOf("\0")
  if (offset >= 0) return Result.fail(new ShellArgumentHasNul({ index: 0, offset }))
  return Result.succeed(shellQuote(word))
}

/**
 * {@link shellJoin}, failing with {@link ShellArgumentHasNul} for the first word holding a NUL.
 * @category encoding
 */
export const shellJoinChecked = (argv: ReadonlyArray<string>): Result.Result<string, ShellArgumentHasNul> => {
  for (const [index, word] of argv.entries()) {
    const offset = word.indexOf("\0")
    if (offset >= 0) return Result.fail(new ShellArgumentHasNul({ index, offset }))
  }
  return Result.succeed(shellJoin(argv))
}
