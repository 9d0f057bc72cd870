/**
 * SeedArchive: the seed blob format (spec §1.3, §3.7, §4.1) — a gzip'd tar whose member names are
 * relative to the task's HOME: `.codex/auth.json` and `.codex/config.toml`, nothing else. Owns an
 * in-process tar writer and reader (seed blobs are a few KiB, so everything is in memory) and the
 * member merge. Reading and writing blobs in the store belongs to `SeedEngine`.
 *
 * **Compatibility.** Reads archives written by GNU tar (`tar -czf`, as reference workers do) and by
 * Python's `tarfile`: ustar and GNU headers, GNU long names (`L`), pax extended headers (`x`, their
 * `path` honoured; global `g` skipped), base-256 sizes; directory entries are skipped. Writes plain
 * ustar with mtime 0 and uid/gid 0, so the same members always give the same bytes, and keeps each
 * member's mode (auth.json stays 0600, fixing P23).
 *
 * **Safety.** An absolute member name or one with a `..` segment makes the whole archive invalid.
 * Only the two manifest members are returned; other members are ignored.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { gunzipSync, gzipSync } from "node:zlib"

/**
 * The seed member holding codex's credentials.
 * @category constants
 * @since 0.1.0
 */
export const AUTH_MEMBER = ".codex/auth.json"

/**
 * The seed member holding codex's configuration.
 * @category constants
 * @since 0.1.0
 */
export const CONFIG_MEMBER = ".codex/config.toml"

/**
 * The members a seed may carry, in manifest order (spec §4.1 `CODEX_SEED_MANIFEST`).
 * @category constants
 */
export const SEED_MEMBERS: ReadonlyArray<string> = [AUTH_MEMBER, CONFIG_MEMBER]

/**
 * One file of a seed archive; `name` is relative to HOME, `mode` its permission bits.
 * @category models
 * @since 0.1.0
 */
export interface SeedMember {
  readonly name: string
  readonly bytes: Uint8Array
  readonly mode: number
}

/**
 * The bytes are not a readable seed archive (not gzip, a broken tar header, an unsafe name…).
 * @category errors
 * @since 0.1.0
 */
export class SeedArchiveInvalid extends Schema.TaggedError<SeedArchiveInvalid>()("SeedArchiveInvalid", {
  detail: Schema.String
}) {
  override get message(): string {
    return `invalid seed archive: ${this.detail}`
  }
}

const BLOCK = 512
const encoder = new TextEncoder()
const utf8 = new TextDecoder("utf-8")

const writeString = (header: Uint8Array, offset: number, length: number, text: string) => {
  const bytes = encoder.encode(text)
  if (bytes.length > length) throw new Error(`tar field too long: ${text}`)
  header.set(bytes, offset)
}

const writeOctal = (header: Uint8Array, offset: number, length: number, value: number) =>
  writeString(header, offset, length, value.toString(8).padStart(length - 1, "0") + "\0")

const checksumOf = (header: Uint8Array) => {
  let sum = 0
  for (let index = 0; index < BLOCK; index++) sum += index >= 148 && index < 156 ? 32 : header[index] ?? 0
  return sum
}

const headerFor = (member: SeedMember): Uint8Array => {
  const header = new Uint8Array(BLOCK)
  const nameBytes = encoder.encode(member.name)
  if (nameBytes.length > 100) throw new Error(`member name too long for ustar: ${member.name}`)
  header.set(nameBytes, 0)
  writeOctal(header, 100, 8, member.mode & 0o7777)
  writeOctal(header, 108, 8, 0)
  writeOctal(header, 116, 8, 0)
  writeOctal(header, 124, 12, member.bytes.length)
  writeOctal(header, 136, 12, 0)
  header[156] = "0".charCodeAt(0)
  writeString(header, 257, 6, "ustar\0")
  writeString(header, 263, 2, "00")
  writeString(header, 148, 8, checksumOf(header).toString(8).padStart(6, "0") + "\0 ")
  return header
}

/**
 * Packs members into a gzip'd ustar archive, deterministically (same members, same bytes).
 * @category constructors
 * @since 0.1.0
 */
export const packSeedArchive = (members: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array; readonly mode: number }>): Uint8Array => {
  const parts: Array<Uint8Array> = []
  for (const member of members) {
    parts.push(headerFor(member), member.bytes)
    const pad = (BLOCK - (member.bytes.length % BLOCK)) % BLOCK
    if (pad > 0) parts.push(new Uint8Array(pad))
  }
  parts.push(new Uint8Array(BLOCK * 2))
  return new Uint8Array(gzipSync(Buffer.concat(parts)))
}

const readString = (block: Uint8Array, offset: number, length: number) => {
  const field = block.subarray(offset, offset + length)
  const end = field.indexOf(0)
  return utf8.decode(end === -1 ? field : field.subarray(0, end))
}

const readNumber = (block: Uint8Array, offset: number, length: number): number => {
  const first = block[offset] ?? 0
  if ((first & 0x80) !== 0) {
    // GNU base-256: big-endian, high bit of the first byte is the marker.
    let value = first & 0x7f
    for (let index = 1; index < length; index++) value = value * 256 + (block[offset + index] ?? 0)
    return value
  }
  const text = readString(block, offset, length).trim()
  if (text === "") return 0
  if (!/^[0-7]+$/.test(text)) throw new Error(`bad numeric field ${JSON.stringify(text)}`)
  return parseInt(text, 8)
}

/** pax records: `<length> <key>=<value>\n`. */
const paxPath = (data: Uint8Array): string | undefined => {
  const text = utf8.decode(data)
  let path: string | undefined
  let position = 0
  while (position < text.length) {
    const space = text.indexOf(" ", position)
    if (space === -1) break
    const length = Number(text.slice(position, space))
    if (!Number.isInteger(length) || length <= 0) break
    const record = text.slice(space + 1, position + length - 1)
    const equals = record.indexOf("=")
    if (equals !== -1 && record.slice(0, equals) === "path") path = record.slice(equals + 1)
    position += length
  }
  return path
}

/** Normalizes a member name (`./` prefixes dropped); throws on absolute or `..` names. */
const normalizeName = (raw: string): string => {
  if (raw.startsWith("/")) throw new Error(`absolute member name ${JSON.stringify(raw)}`)
  const segments = raw.split("/").filter((segment) => segment !== "" && segment !== ".")
  if (segments.includes("..")) throw new Error(`member name ${JSON.stringify(raw)} leaves the archive root`)
  return segments.join("/")
}

const readTar = (tar: Uint8Array): ReadonlyArray<SeedMember> => {
  const found = new Map<string, SeedMember>()
  let offset = 0
  let longName: string | undefined
  let paxName: string | undefined
  while (offset + BLOCK <= tar.length) {
    const block = tar.subarray(offset, offset + BLOCK)
    if (block.every((byte) => byte === 0)) break
    const stored = readNumber(block, 148, 8)
    const unsigned = checksumOf(block)
    let signed = 0
    for (let index = 0; index < BLOCK; index++) signed += index >= 148 && index < 156 ? 32 : ((block[index] ?? 0) << 24) >> 24
    if (stored !== unsigned && stored !== signed) throw new Error(`header checksum mismatch at offset ${offset}`)
    const size = readNumber(block, 124, 12)
    const type = String.fromCharCode(block[156] ?? 0)
    const magic = readString(block, 257, 6)
    const dataStart = offset + BLOCK
    const dataEnd = dataStart + size
    if (dataEnd > tar.length) throw new Error(`member at offset ${offset} is truncated`)
    const data = tar.subarray(dataStart, dataEnd)
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK
    if (type === "L") {
      longName = readString(data, 0, data.length)
      continue
    }
    if (type === "x") {
      paxName = paxPath(data) ?? paxName
      continue
    }
    if (type === "g" || type === "K") continue
    const prefix = magic === "ustar" ? readString(block, 345, 155) : ""
    const headerName = readString(block, 0, 100)
    const raw = paxName ?? longName ?? (prefix === "" ? headerName : `${prefix}/${headerName}`)
    longName = undefined
    paxName = undefined
    const name = normalizeName(raw)
    if (type !== "0" && type !== "\0" && type !== "7") continue // directories, links, devices
    if (!SEED_MEMBERS.includes(name)) continue
    found.set(name, { name, bytes: Uint8Array.from(data), mode: readNumber(block, 100, 8) & 0o7777 })
  }
  return SEED_MEMBERS.flatMap((name) => {
    const member = found.get(name)
    return member === undefined ? [] : [member]
  })
}

/**
 * Reads the manifest members (`.codex/auth.json`, `.codex/config.toml`, in that order, each at most
 * once — the last copy wins as in extraction) of a gzip'd tar; other members are ignored.
 * @category constructors
 * @since 0.1.0
 */
export const unpackSeedArchive = (bytes: Uint8Array): Effect.Effect<ReadonlyArray<SeedMember>, SeedArchiveInvalid> =>
  Effect.try({
    try: () => readTar(new Uint8Array(gunzipSync(bytes))),
    catch: (cause) => new SeedArchiveInvalid({ detail: cause instanceof Error ? cause.message : String(cause) })
  })

/**
 * Merges two member lists (spec §3.7): base members not named in the overlay, in base order, then
 * every overlay member.
 * @category combinators
 * @since 0.1.0
 */
export const mergeSeedArchive = (
  base: ReadonlyArray<SeedMember>,
  overlay: ReadonlyArray<SeedMember>
): ReadonlyArray<SeedMember> => {
  const replaced = new Set(overlay.map((member) => member.name))
  return [...base.filter((member) => !replaced.has(member.name)), ...overlay]
}

/**
 * The member with this name, if present.
 * @category combinators
 */
export const findMember = (members: ReadonlyArray<SeedMember>, name: string): SeedMember | undefined =>
  members.find((member) => member.name === name)
