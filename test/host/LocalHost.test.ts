import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as LocalHost from "../../src/host/LocalHost.ts"
import { hostContract } from "./HostContract.ts"

const root = join(process.cwd(), ".cache", "test", `local-host-${process.pid}`)
rmSync(root, { recursive: true, force: true })
mkdirSync(root, { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

hostContract("LocalHost", LocalHost.layer(), () => root)
