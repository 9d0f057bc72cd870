/**
 * ModelRequest: what the scripted model server learns from one HTTP request codex sends it.
 *
 * Owns decoding a Responses API request body (forward-compatibly: unknown fields are ignored, a
 * malformed item is kept as an opaque item rather than failing the request) and recognising
 * codex's side requests (the TUI's thread-title request). Does not own the script or the answer.
 *
 * @since 0.1.0
 */
import { Option, Schema } from "effect"
import { createHash } from "node:crypto"

/**
 * One item of the request's `input` array, with the fields tests look at pulled out.
 * @category models
 */
export interface InputItem {
  /** Item type: `message`, `function_call`, `function_call_output`, `reasoning`, ... */
  readonly type: string
  /** Message role (`user`, `developer`, `assistant`); undefined for non-messages. */
  readonly role: string | undefined
  /** Concatenated text parts of a message; "" for other items. */
  readonly text: string
  /** `call_id` of a function call or function call output. */
  readonly callId: string | undefined
  /** Tool name of a function call. */
  readonly name: string | undefined
  /** JSON-encoded arguments of a function call. */
  readonly arguments: string | undefined
  /** Output of a function call output, as text. */
  readonly output: string | undefined
  /** The item as received. */
  readonly raw: unknown
}

/**
 * A tool result codex sends back: one `function_call_output` input item.
 * @category models
 */
export interface ToolOutput {
  readonly callId: string
  readonly output: string
}

/**
 * A decoded request to the model server.
 * @category models
 */
export interface ModelRequest {
  readonly method: string
  /** Path without the query string, e.g. `/v1/responses`. */
  readonly path: string
  /** Request headers (lower-case names) without `authorization`. */
  readonly headers: Readonly<Record<string, string>>
  /** Whether an `authorization` header was present (its value is never recorded). */
  readonly hasAuthorization: boolean
  /** sha256 fingerprint (16 hex chars) of the bearer token, when there was one; never the token. */
  readonly bearerFingerprint?: string | undefined
  /** The JSON body, or undefined when there was none or it was not JSON. */
  readonly body: unknown
  /** `model` from the body. */
  readonly model: string | undefined
  /** `input` items from the body. */
  readonly input: ReadonlyArray<InputItem>
  /** `reasoning.effort` from the body. */
  readonly reasoningEffort: string | undefined
  /** Every `function_call_output` in `input`, in order. */
  readonly toolOutputs: ReadonlyArray<ToolOutput>
  /** Texts of the user messages in `input`, in order. */
  readonly userTexts: ReadonlyArray<string>
  /** Names of the tools codex offered. */
  readonly toolNames: ReadonlyArray<string>
  /** The `originator` header (`codex_exec`, `codex-tui`, ...). */
  readonly originator: string | undefined
  /** `thread_source` from codex's turn metadata (`user`, `thread_title`, ...). */
  readonly threadSource: string | undefined
}

/**
 * Kinds of side requests codex makes on its own, which must not consume script steps.
 * @category models
 */
export type SideRequestKind = "title"

/** The raw pieces of an HTTP request that `decodeModelRequest` needs. */
export interface RawRequest {
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
}

/**
 * Decodes an HTTP request into a `ModelRequest`; never fails (unknown shapes decode to empty fields).
 * @category constructors
 */
export const decodeModelRequest = (raw: RawRequest): ModelRequest => {
  const { authorization, ...headers } = raw.headers
  const body = decodeOption(RequestBody, raw.body)
  const input = (body?.input ?? []).map(decodeInputItem)
  const metadata = raw.headers["x-codex-turn-metadata"] ?? body?.client_metadata?.["x-codex-turn-metadata"]
  return {
    method: raw.method,
    path: raw.url.split("?")[0] ?? raw.url,
    headers,
    hasAuthorization: authorization !== undefined,
    bearerFingerprint: bearerFingerprint(authorization),
    body: raw.body,
    model: body?.model,
    input,
    reasoningEffort: body?.reasoning?.effort ?? undefined,
    toolOutputs: input.flatMap((item) =>
      item.type === "function_call_output" && item.callId !== undefined
        ? [{ callId: item.callId, output: item.output ?? "" }]
        : []
    ),
    userTexts: input.flatMap((item) => item.type === "message" && item.role === "user" ? [item.text] : []),
    toolNames: (body?.tools ?? []).flatMap((tool) => tool.name !== undefined ? [tool.name] : []),
    originator: raw.headers["originator"],
    threadSource: metadata === undefined ? undefined : decodeOption(TurnMetadataJson, metadata)?.thread_source
  }
}

/**
 * Recognises codex's own side requests.
 *
 * The TUI asks for a thread title after a process's first user turn. In 0.169.0 that request is
 * marked `thread_source: "thread_title"` in its `x-codex-turn-metadata`; as a fallback for
 * versions that drop the marker, a request that offers no tools, asks for a JSON output whose
 * only required property is `title`, or whose last user message starts with codex's title
 * prompt, is also a title request.
 * @category guards
 */
export const sideRequestKind = (request: ModelRequest): SideRequestKind | undefined => {
  if (request.threadSource === "thread_title") return "title"
  const lastUserText = request.userTexts.at(-1) ?? ""
  if (TITLE_PROMPT.test(lastUserText)) return "title"
  const required = decodeOption(TitleFormat, request.body)?.text.format.schema.required
  if (request.toolNames.length === 0 && required?.length === 1 && required[0] === "title") return "title"
  return undefined
}

/**
 * The fingerprint `bearerFingerprint` records for a token: sha256, first 16 hex chars.
 * @category constructors
 */
export const tokenFingerprint = (token: string): string => createHash("sha256").update(token).digest("hex").slice(0, 16)

const bearerFingerprint = (authorization: string | undefined): string | undefined => {
  const match = authorization === undefined ? null : /^Bearer\s+(.+)$/i.exec(authorization.trim())
  return match?.[1] === undefined ? undefined : tokenFingerprint(match[1])
}

const TITLE_PROMPT = /^Generate a concise, single-line (task|thread) title/i

const RequestBody = Schema.Struct({
  model: Schema.optionalKey(Schema.String),
  input: Schema.optionalKey(Schema.Array(Schema.Unknown)),
  reasoning: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    effort: Schema.optionalKey(Schema.NullOr(Schema.String))
  }))),
  tools: Schema.optionalKey(Schema.Array(Schema.Struct({ name: Schema.optionalKey(Schema.String) }))),
  client_metadata: Schema.optionalKey(Schema.Record(Schema.String, Schema.String))
})

const TurnMetadataJson = Schema.fromJsonString(Schema.Struct({
  thread_source: Schema.optionalKey(Schema.String)
}))

const TitleFormat = Schema.Struct({
  text: Schema.Struct({
    format: Schema.Struct({ schema: Schema.Struct({ required: Schema.Array(Schema.String) }) })
  })
})

const WireInputItem = Schema.Struct({
  type: Schema.optionalKey(Schema.String),
  role: Schema.optionalKey(Schema.String),
  content: Schema.optionalKey(Schema.Unknown),
  call_id: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String),
  arguments: Schema.optionalKey(Schema.String),
  output: Schema.optionalKey(Schema.Unknown)
})

const TextPart = Schema.Struct({ text: Schema.String })

const decodeInputItem = (raw: unknown): InputItem => {
  const item = decodeOption(WireInputItem, raw)
  const type = item?.type ?? (item?.role !== undefined ? "message" : "unknown")
  return {
    type,
    role: item?.role,
    text: type === "message" ? contentText(item?.content) : "",
    callId: item?.call_id,
    name: item?.name,
    arguments: item?.arguments,
    output: item?.output === undefined ? undefined : contentText(item.output),
    raw
  }
}

/** Message content and tool output are either a string or a list of `{type, text}` parts. */
const contentText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  return content.map((part) => decodeOption(TextPart, part)?.text ?? "").join("")
}

const decodeOption = <S extends Schema.ConstraintDecoder<unknown>>(schema: S, input: unknown): S["Type"] | undefined =>
  Option.getOrUndefined(Schema.decodeUnknownOption(schema)(input))
