/**
 * The script model and request decoding, without HTTP.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { decodeModelRequest, sideRequestKind, tokenFingerprint } from "../../src/modelserver/ModelRequest.ts"
import { ModelScript } from "../../src/modelserver/ModelScript.ts"

const request = (body: unknown, headers: Record<string, string> = {}) =>
  decodeModelRequest({ method: "POST", url: "/v1/responses?x=1", headers, body })

const userMessage = (text: string) => ({ type: "message", role: "user", content: [{ type: "input_text", text }] })

describe("ModelScript builders", () => {
  it.effect("splits text into word deltas that concatenate back", () =>
    Effect.sync(() => {
      for (const text of ["", "one", "  lead and trail  ", "multi\nline text\n\nend", "   "]) {
        const deltas = ModelScript.splitDeltas(text)
        assert.strictEqual(deltas.join(""), text)
      }
      assert.deepStrictEqual(ModelScript.splitDeltas("All done here."), ["All ", "done ", "here."])
    }))

  it.effect("execCommand encodes exec_command arguments as a JSON string", () =>
    Effect.sync(() => {
      const step = ModelScript.execCommand("printf 'DONE\\n' >> optio.log", {
        sandboxPermissions: "require_escalated",
        justification: "needs it",
        callId: "call_x"
      })
      const item = step.items[0]
      assert.strictEqual(item?._tag, "FunctionCall")
      if (item?._tag !== "FunctionCall") return
      assert.strictEqual(item.name, "exec_command")
      assert.strictEqual(item.callId, "call_x")
      assert.deepStrictEqual(JSON.parse(item.arguments), {
        cmd: "printf 'DONE\\n' >> optio.log",
        sandbox_permissions: "require_escalated",
        justification: "needs it"
      })
    }))

  it.effect("httpError defaults to an OpenAI-style error body", () =>
    Effect.sync(() => {
      const step = ModelScript.httpError(429, { headers: { "retry-after": "1" } })
      assert.strictEqual(step.status, 429)
      assert.deepStrictEqual(step.headers, { "retry-after": "1" })
      assert.deepStrictEqual(step.body, { error: { message: "scripted HTTP 429", type: "scripted_error", code: null } })
    }))
})

describe("ModelScript.decide", () => {
  const script = [
    ModelScript.text("first"),
    ModelScript.when(ModelScript.text("after tool"), ModelScript.hasToolOutput("call_1").test, "tool output")
  ]

  it.effect("consumes steps in order and reports exhaustion", () =>
    Effect.sync(() => {
      const plain = request({ input: [userMessage("hi")] })
      const withOutput = request({ input: [{ type: "function_call_output", call_id: "call_1", output: "ok" }] })
      assert.deepStrictEqual(ModelScript.decide(script, 0, plain)._tag, "Step")
      const unmatched = ModelScript.decide(script, 1, plain)
      assert.strictEqual(unmatched._tag, "Unmatched")
      if (unmatched._tag === "Unmatched") assert.strictEqual(unmatched.matcher, "tool output")
      const matched = ModelScript.decide(script, 1, withOutput)
      assert.strictEqual(matched._tag === "Step" ? matched.index : -1, 1)
      assert.strictEqual(ModelScript.decide(script, 2, withOutput)._tag, "Exhausted")
    }))
})

describe("ModelRequest", () => {
  it.effect("decodes model, effort, user texts, tool outputs and strips authorization", () =>
    Effect.sync(() => {
      const decoded = request(
        {
          model: "m1",
          reasoning: { effort: "high", summary: "auto" },
          tools: [{ type: "function", name: "exec_command" }, { type: "web_search" }],
          input: [
            userMessage("<environment_context/>"),
            userMessage("do it"),
            { type: "function_call", call_id: "c1", name: "exec_command", arguments: "{}" },
            { type: "function_call_output", call_id: "c1", output: "Process exited with code 0" },
            { type: "function_call_output", call_id: "c2", output: [{ type: "input_text", text: "a" }, { type: "input_text", text: "b" }] },
            42
          ]
        },
        { authorization: "Bearer secret", originator: "codex_exec" }
      )
      assert.strictEqual(decoded.path, "/v1/responses")
      assert.strictEqual(decoded.model, "m1")
      assert.strictEqual(decoded.reasoningEffort, "high")
      assert.deepStrictEqual(decoded.userTexts, ["<environment_context/>", "do it"])
      assert.deepStrictEqual(decoded.toolNames, ["exec_command"])
      assert.deepStrictEqual(decoded.toolOutputs, [
        { callId: "c1", output: "Process exited with code 0" },
        { callId: "c2", output: "ab" }
      ])
      assert.strictEqual(decoded.input.length, 6)
      assert.strictEqual(decoded.input[5]?.type, "unknown")
      assert.isTrue(decoded.hasAuthorization)
      assert.isUndefined(decoded.headers["authorization"])
      assert.notInclude(JSON.stringify(decoded.headers), "secret")
      assert.strictEqual(decoded.originator, "codex_exec")
      // A fingerprint tells tokens apart; the token itself is not kept anywhere.
      assert.strictEqual(decoded.bearerFingerprint, tokenFingerprint("secret"))
      assert.match(decoded.bearerFingerprint ?? "", /^[0-9a-f]{16}$/)
      assert.notInclude(JSON.stringify({ ...decoded, body: undefined, input: undefined }), "secret")
      assert.isUndefined(request({}).bearerFingerprint)
    }))

  it.effect("tolerates bodies that are not Responses requests", () =>
    Effect.sync(() => {
      const decoded = request("not an object")
      assert.isUndefined(decoded.model)
      assert.deepStrictEqual(decoded.input, [])
      assert.isFalse(decoded.hasAuthorization)
    }))

  it.effect("recognises codex's title request by marker, prompt or output schema", () =>
    Effect.sync(() => {
      const marker = JSON.stringify({ thread_source: "thread_title", request_kind: "turn" })
      assert.strictEqual(sideRequestKind(request({ input: [userMessage("x")] }, { "x-codex-turn-metadata": marker })), "title")
      assert.strictEqual(
        sideRequestKind(request({ client_metadata: { "x-codex-turn-metadata": marker }, input: [] })),
        "title"
      )
      const prompt = "Generate a concise, single-line task title of at most 36 characters...\n\nUser prompt:\nsay hello"
      assert.strictEqual(sideRequestKind(request({ input: [userMessage(prompt)] })), "title")
      const schemaOnly = {
        tools: [],
        text: { format: { type: "json_schema", schema: { type: "object", required: ["title"] } } },
        input: [userMessage("anything")]
      }
      assert.strictEqual(sideRequestKind(request(schemaOnly)), "title")
      const userTurn = JSON.stringify({ thread_source: "user" })
      assert.isUndefined(
        sideRequestKind(request({ tools: [{ name: "exec_command" }], input: [userMessage("write a title")] }, {
          "x-codex-turn-metadata": userTurn
        }))
      )
    }))
})
