#!/usr/bin/env node
// Entry point for `npx optio-codex`. An installed package runs the built JavaScript in dist/ (Node
// does not strip types under node_modules); a repository checkout, which alone has src/, runs the
// TypeScript sources directly (Node ≥ 22.18), so development needs no build step.
import { existsSync } from "node:fs"

const source = new URL("../src/cli/main.ts", import.meta.url)
await import(existsSync(source) ? source.href : new URL("../dist/cli/main.js", import.meta.url).href)
