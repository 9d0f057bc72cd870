import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import {
  ACCEPTED_REPLY,
  deliverableAck,
  DeliverableReply,
  DeliverableResolution,
  describeRejection,
  replyFromCallback,
  resolveDeliverablePath
} from "../../src/protocol/Deliverables.ts"
import { AUTO_START_PROMPT, RESUME_NOTICE, SYSTEM_PREFIX, systemMessage } from "../../src/protocol/SystemMessages.ts"

const WD = "/w/task/workdir"
const { Accepted, Rejected } = DeliverableResolution

describe("resolveDeliverablePath", () => {
  const cases: ReadonlyArray<readonly [string, DeliverableResolution]> = [
    ["./deliverables/summary.md", Accepted({ absolutePath: `${WD}/deliverables/summary.md`, displayPath: "summary.md" })],
    ["deliverables/sub/dir/x.txt", Accepted({ absolutePath: `${WD}/deliverables/sub/dir/x.txt`, displayPath: "sub/dir/x.txt" })],
    [`${WD}/deliverables/abs.md`, Accepted({ absolutePath: `${WD}/deliverables/abs.md`, displayPath: "abs.md" })],
    ["deliverables/../deliverables/./n.md", Accepted({ absolutePath: `${WD}/deliverables/n.md`, displayPath: "n.md" })],
    ["  ./deliverables/padded.md  ", Accepted({ absolutePath: `${WD}/deliverables/padded.md`, displayPath: "padded.md" })],
    ["deliverables/..hidden", Accepted({ absolutePath: `${WD}/deliverables/..hidden`, displayPath: "..hidden" })],
    ["deliverables", Rejected({ reason: "not-under-deliverables" })],
    ["./deliverables/", Rejected({ reason: "not-under-deliverables" })],
    ["deliverables/sub/../..", Rejected({ reason: "not-under-deliverables" })],
    ["notes.md", Rejected({ reason: "not-under-deliverables" })],
    [".", Rejected({ reason: "not-under-deliverables" })],
    ["deliverables-old/x.md", Rejected({ reason: "not-under-deliverables" })],
    ["../secret.txt", Rejected({ reason: "outside-workdir" })],
    ["deliverables/../../escape.md", Rejected({ reason: "outside-workdir" })],
    ["/etc/passwd", Rejected({ reason: "outside-workdir" })],
    ["/w/task/workdir-evil/deliverables/x", Rejected({ reason: "outside-workdir" })],
    ["", Rejected({ reason: "empty" })],
    ["   ", Rejected({ reason: "empty" })]
  ]
  it.each(cases)("%j", (raw, expected) => {
    assert.deepStrictEqual(resolveDeliverablePath(WD, raw), expected)
  })

  it("normalizes a workdir given with a trailing slash or dots", () => {
    assert.deepStrictEqual(
      resolveDeliverablePath("/w/task/./workdir/", "deliverables/a.md"),
      Accepted({ absolutePath: `${WD}/deliverables/a.md`, displayPath: "a.md" })
    )
  })

  it("works with the filesystem root as workdir", () => {
    assert.deepStrictEqual(
      resolveDeliverablePath("/", "deliverables/a.md"),
      Accepted({ absolutePath: "/deliverables/a.md", displayPath: "a.md" })
    )
    assert.deepStrictEqual(resolveDeliverablePath("/", "tmp/a.md"), Rejected({ reason: "not-under-deliverables" }))
  })

  it("never accepts a path outside <workdir>/deliverables (property)", () => {
    const segment = fc.constantFrom("..", ".", "deliverables", "a", "b c", "", "deliverables..")
    const rawPath = fc.tuple(fc.boolean(), fc.array(segment, { maxLength: 6 }))
      .map(([abs, parts]) => (abs ? "/" : "") + parts.join("/"))
    fc.assert(fc.property(rawPath, (raw) => {
      const result = resolveDeliverablePath(WD, raw)
      if (result._tag === "Accepted") {
        assert.isTrue(result.absolutePath.startsWith(`${WD}/deliverables/`))
        assert.strictEqual(`${WD}/deliverables/${result.displayPath}`, result.absolutePath)
        assert.notInclude(result.displayPath.split("/"), "..")
      }
    }))
  })

  it("describes each rejection for a progress line", () => {
    assert.include(describeRejection("../x", "outside-workdir"), "\"../x\"")
    assert.include(describeRejection("notes.md", "not-under-deliverables"), "deliverables/")
    assert.isString(describeRejection("", "empty"))
  })
})

describe("deliverable acknowledgements", () => {
  it("accepted uses the accepted text and the file's basename", () => {
    assert.strictEqual(deliverableAck("sub/report.md", DeliverableReply.Accepted()), `deliverable report.md: ${ACCEPTED_REPLY}`)
    assert.isTrue(ACCEPTED_REPLY.startsWith("accepted"))
  })

  it("feedback passes the consumer's text through, trimmed", () => {
    assert.strictEqual(
      deliverableAck("a.md", DeliverableReply.Feedback({ text: "  add a title\n" })),
      "deliverable a.md: add a title"
    )
  })

  it("trouble asks for a re-delivery after the next resume", () => {
    const ack = deliverableAck("a.md", DeliverableReply.Trouble())
    assert.isTrue(ack.startsWith("deliverable a.md: "))
    assert.include(ack, "resume")
  })

  it("a fetch failure still acknowledges, with the reason on one line", () => {
    const ack = deliverableAck("x/b.bin", DeliverableReply.FetchFailed({ reason: "not valid UTF-8\n  at byte 3" }))
    assert.isTrue(ack.startsWith("deliverable b.bin: "))
    assert.include(ack, "not valid UTF-8 at byte 3")
    assert.include(ack, "DELIVERABLE:")
    assert.notInclude(ack, "\n")
  })

  it("a refused path is acknowledged too, saying where the file must go", () => {
    for (const reason of ["outside-workdir", "not-under-deliverables", "empty"] as const) {
      const ack = deliverableAck("../x.md", DeliverableReply.PathRejected({ reason }))
      assert.isTrue(ack.startsWith("deliverable x.md: refused"))
      assert.include(ack, "DELIVERABLE:")
    }
  })

  it("maps callback results: nothing, blank or ok accept; other text is feedback", () => {
    for (const result of [null, undefined, "", "   ", "ok", " OK ", "Ok"]) {
      assert.deepStrictEqual(replyFromCallback(result), DeliverableReply.Accepted())
    }
    assert.deepStrictEqual(replyFromCallback(" okay, but shorten it "), DeliverableReply.Feedback({ text: "okay, but shorten it" }))
  })

  it("is sent to the agent as `System: deliverable <name>: <reply>`", () => {
    assert.strictEqual(
      systemMessage(deliverableAck("r.md", DeliverableReply.Accepted())),
      `System: deliverable r.md: ${ACCEPTED_REPLY}`
    )
  })

  it("exports the fixed harness strings", () => {
    assert.strictEqual(SYSTEM_PREFIX, "System: ")
    assert.strictEqual(RESUME_NOTICE, "you have been resumed")
    assert.strictEqual(AUTO_START_PROMPT, "Read AGENTS.md and execute the task it describes")
    assert.strictEqual(systemMessage(RESUME_NOTICE), "System: you have been resumed")
  })
})

describe("reply wording under compat (item 12)", () => {
  it("uses the reference's texts for accepted and trouble, ours otherwise", () => {
    assert.strictEqual(deliverableAck("a/report.md", DeliverableReply.Accepted(), "python-0.1"), "deliverable report.md: accepted. thanks for the good work.")
    assert.match(deliverableAck("x.md", DeliverableReply.Trouble(), "python-0.1"), /^deliverable x\.md: I have trouble with this one\. Not your fault, but mine\./)
    assert.strictEqual(deliverableAck("x.md", DeliverableReply.Accepted()), `deliverable x.md: ${ACCEPTED_REPLY}`)
    assert.strictEqual(deliverableAck("x.md", DeliverableReply.Feedback({ text: " fix it " }), "python-0.1"), "deliverable x.md: fix it")
  })
})
