// Limits checked on a frame's bytes before it is decoded: nesting depth, container sizes,
// well-formedness. Shared by the server's decoders and the client SDK (no Node APIs here).

export interface Refusal {
  code: 'too_large' | 'bad_request'
  message: string
}

const tooDeep = (maxDepth: number): Refusal => ({ code: 'too_large', message: `frame nests deeper than ${maxDepth} levels` })

/** Nesting depth of JSON, its bytes or its text, counted on the characters (brackets outside strings). */
export function scanJsonDepth(json: Uint8Array | string, maxDepth: number): Refusal | null {
  let depth = 0
  let inString = false
  const text = typeof json === 'string'
  for (let i = 0; i < json.length; i++) {
    const c = text ? json.charCodeAt(i) : (json as Uint8Array)[i]
    if (inString) {
      if (c === 0x5c)
        i++ // backslash: skip the escaped byte
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return tooDeep(maxDepth)
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return null
}

const MALFORMED: Refusal = { code: 'bad_request', message: 'undecodable MessagePack: truncated, trailing bytes or 0xc1' }

/**
 * Walks MessagePack bytes without building anything: refuses nesting past `maxDepth`, containers
 * past `maxItems` and extension types. Other malformations (truncation, 0xc1, trailing bytes) are
 * left to the decoder, which reports them, unless `whole` asks for bytes that are exactly one
 * complete value: data that is passed on without being decoded.
 */
export function scanMsgpack(
  bytes: Uint8Array,
  maxDepth: number,
  maxItems: number,
  left: Float64Array = new Float64Array(maxDepth + 1),
  whole = false
): Refusal | null {
  const incomplete = whole ? MALFORMED : null
  // left[d]: values still to read in the container open at depth d, negative in a map (keys and
  // values alternate, so an even count left means a key comes next); left[0] is the frame itself.
  let depth = 0
  left[0] = 1
  let pos = 0
  while (depth >= 0) {
    const remaining = left[depth]
    if (remaining === 0) {
      depth--
      continue
    }
    const isKey = remaining < 0 && remaining % 2 === 0
    left[depth] = remaining < 0 ? remaining + 1 : remaining - 1
    if (pos >= bytes.length) return incomplete
    const b = bytes[pos]
    if (isKey && isProtoKey(bytes, pos)) return PROTO_KEY
    let count = -1 // a container's element count (map: entries)
    let isMap = false
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3)
      pos += 1 // fixint, nil, bool
    else if (b <= 0x9f) {
      count = b & 0x0f
      isMap = b <= 0x8f
      pos += 1
    } else if (b <= 0xbf)
      pos += 1 + (b & 0x1f) // fixstr
    else if (b === 0xca || b === 0xcb)
      pos += b === 0xca ? 5 : 9 // float 32/64
    else if (b >= 0xcc && b <= 0xd3)
      pos += 1 + (1 << (b & 0x03)) // uint/int 8..64
    else if ((b >= 0xc4 && b <= 0xc6) || (b >= 0xd9 && b <= 0xdb)) {
      const width = b === 0xc4 || b === 0xd9 ? 1 : b === 0xc5 || b === 0xda ? 2 : 4 // bin/str 8, 16, 32
      if (pos + 1 + width > bytes.length) return incomplete
      pos += 1 + width + readLength(bytes, pos + 1, width)
    } else if (b >= 0xdc && b <= 0xdf) {
      const wide = b === 0xdd || b === 0xdf // array/map 16 or 32
      if (pos + (wide ? 5 : 3) > bytes.length) return incomplete
      count = readLength(bytes, pos + 1, wide ? 4 : 2)
      isMap = b >= 0xde
      pos += wide ? 5 : 3
    } else if (b === 0xc1) return incomplete
    else return { code: 'bad_request', message: 'undecodable MessagePack frame: extension types are not accepted' }
    if (count >= 0) {
      if (count > maxItems) {
        return { code: 'too_large', message: isMap ? `a map holds more than ${maxItems} entries` : `an array holds more than ${maxItems} elements` }
      }
      if (depth === maxDepth) return tooDeep(maxDepth)
      left[++depth] = isMap ? -count * 2 : count
    }
  }
  return pos === bytes.length ? null : incomplete
}

const PROTO_KEY: Refusal = { code: 'bad_request', message: 'undecodable MessagePack: a key named "__proto__" is not accepted' }
const PROTO = new TextEncoder().encode('__proto__')

/** Is the value at `pos` the string "__proto__", in any of MessagePack's string encodings? */
function isProtoKey(bytes: Uint8Array, pos: number): boolean {
  const b = bytes[pos]
  const start =
    b === 0xa9
      ? pos + 1
      : b === 0xd9 && bytes[pos + 1] === 9
        ? pos + 2
        : b === 0xda && bytes[pos + 1] === 0 && bytes[pos + 2] === 9
          ? pos + 3
          : b === 0xdb && bytes[pos + 1] === 0 && bytes[pos + 2] === 0 && bytes[pos + 3] === 0 && bytes[pos + 4] === 9
            ? pos + 5
            : -1
  if (start === -1 || start + 9 > bytes.length) return false
  for (let i = 0; i < 9; i++) if (bytes[start + i] !== PROTO[i]) return false
  return true
}

/** A big-endian unsigned length of 1, 2 or 4 bytes. */
function readLength(bytes: Uint8Array, at: number, width: number): number {
  if (width === 1) return bytes[at]
  if (width === 2) return (bytes[at] << 8) | bytes[at + 1]
  return bytes[at] * 0x1000000 + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3])
}
