/**
 * Connection loss is classified on HostError itself, so session code needs no RemoteHost import.
 */
import { assert, describe, it } from "@effect/vitest"
import { classifyConnectionLoss, HostConnectionLost, HostError } from "../../src/host/Host.ts"

const lost = new HostConnectionLost({ host: "ssh://root@h:22", operation: "run", detail: "keepalive timeout", pids: [41, 42] })

describe("HostError.connectionLost", () => {
  it("a ConnectionLost error carrying HostConnectionLost is classified as that loss", () => {
    const error = new HostError({ host: "ssh://root@h:22", operation: "run", reason: "ConnectionLost", detail: "keepalive timeout", cause: lost })
    assert.strictEqual(error.connectionLost, lost)
    assert.strictEqual(classifyConnectionLoss(error), lost)
    assert.deepStrictEqual(classifyConnectionLoss(error)._tag, "HostConnectionLost")
  })

  it("any other host error stays itself (another reason, or no HostConnectionLost behind it)", () => {
    const notFound = new HostError({ host: "local", operation: "read", reason: "NotFound", detail: "gone", cause: lost })
    const bare = new HostError({ host: "ssh://root@h:22", operation: "connect", reason: "ConnectionLost", detail: "refused" })
    for (const error of [notFound, bare]) {
      assert.isUndefined(error.connectionLost)
      assert.strictEqual(classifyConnectionLoss(error), error)
    }
  })
})
