/**
 * BrowserShim: the script that stands in for a browser launcher inside the task.
 *
 * Owns the text of the shim installed as `xdg-open`, `gio`, `open`, `sensible-browser` and
 * `www-browser`: instead of opening a browser it appends `BROWSER: "<url>"` to `optio.log`,
 * which the session turns into a browser-open request for the operator (codex's login flow
 * relies on this). It does not own writing the files, their mode or the PATH/BROWSER env.
 *
 * @since 0.1.0
 */
import { shellQuote } from "../config/ShellQuote.ts"

/**
 * File names the shim script is installed under, in the task's browser-shim bin directory.
 *
 * @category constants
 * @since 0.1.0
 */
export const BROWSER_SHIM_NAMES: ReadonlyArray<string> = ["xdg-open", "gio", "open", "sensible-browser", "www-browser"]

/**
 * POSIX `sh` script that appends `BROWSER: "<url>"` plus a newline to `optioLogPath`.
 *
 * **Details**
 *
 * The log path is shell-quoted, so spaces and metacharacters in a workdir are harmless. The
 * URL is the first argument (after `open` when invoked as `gio open <url>`); CR and LF are
 * removed from it so one call can never produce more than one log line, and a call without a
 * URL writes nothing. The script always exits 0, as a launcher that "opened" the URL would.
 * `parseOptioLogLine` reads the line back as `Browser` with the URL exactly as passed.
 *
 * @category constructors
 * @since 0.1.0
 */
export const browserShimScript = (optioLogPath: string): string => `#!/bin/sh
# optio browser shim: hands the URL to the host through optio.log instead of opening a browser.
case "$0" in
  gio|*/gio) if [ "$1" = open ]; then shift; fi ;;
esac
url=$(printf '%s' "$1" | tr -d '\\r\\n')
if [ -z "$url" ]; then exit 0; fi
printf 'BROWSER: "%s"\\n' "$url" >> ${shellQuote(optioLogPath)}
exit 0
`
