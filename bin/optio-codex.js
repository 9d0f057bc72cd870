#!/usr/bin/env node
// Entry point for `npx optio-codex`: Node ≥ 22.18 runs the TypeScript sources directly.
import "../src/cli/main.ts"
