// Codecs: MessagePack (binary frames) and JSON (text frames), and choosing one per connection.
import { Decoder, Encoder, ExtensionCodec } from '@msgpack/msgpack'
import { ErrorCode, LiveError } from './protocol.ts'

export type CodecName = 'msgpack' | 'json'

export const SUBPROTOCOLS: Record<string, CodecName> = {
  'live.v1.msgpack': 'msgpack',
  'live.v1.json': 'json'
}

/** The first offered subprotocol we speak, in the client's order; false when none (ws then sends no header). */
export function pickSubprotocol(offered: Iterable<string>): string | false {
  for (const protocol of offered) if (Object.hasOwn(SUBPROTOCOLS, protocol)) return protocol
  return false
}

/** PROTOCOL.md "Connecting": subprotocol, then ?codec=, then the server default. */
export function negotiateCodec(subprotocol: string | undefined, queryCodec: string | undefined, useMsgpack: boolean): CodecName {
  if (subprotocol && Object.hasOwn(SUBPROTOCOLS, subprotocol)) return SUBPROTOCOLS[subprotocol]
  if (queryCodec === 'msgpack' || queryCodec === 'json') return queryCodec
  return useMsgpack ? 'msgpack' : 'json'
}

// One encoder for the process. encodeSharedRef() returns a view of its reused buffer, so it is
// copied into the frame at once and never handed to a socket.
const encoder = new Encoder({ ignoreUndefined: true })

/**
 * A complete WebSocket frame (header + payload, FIN set, unmasked as server frames are), built once
 * and written as is to every subscriber's socket: one buffer and one write per delivery, no
 * per-subscriber header or copy.
 */
export function encodeFrame(codec: CodecName, value: unknown): Buffer {
  if (codec === 'msgpack') {
    const payload = encoder.encodeSharedRef(value)
    const frame = frameWithHeader(0x82, payload.length)
    frame.set(payload, frame.length - payload.length)
    return frame
  }
  const text = JSON.stringify(value)
  const length = Buffer.byteLength(text)
  const frame = frameWithHeader(0x81, length)
  frame.write(text, frame.length - length)
  return frame
}

function frameWithHeader(firstByte: number, length: number): Buffer {
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = firstByte
  if (header === 2) frame[1] = length
  else if (header === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  return frame
}

/** The payload of a frame built by encodeFrame (a view, no copy), for sockets we cannot write frames to. */
export function framePayload(frame: Buffer): Buffer {
  const len7 = frame[1] & 0x7f
  return frame.subarray(len7 < 126 ? 2 : len7 === 126 ? 4 : 10)
}

export interface DecodeLimits {
  maxPayload: number
  decodeMaxDepth: number
  decodeMaxItems: number
}

/** Inbound MessagePack carries no extension types (timestamps included): none means anything in this protocol. */
class RefusedExtensions extends ExtensionCodec {
  override decode(_data: Uint8Array, type: number): unknown {
    throw new Error(`extension type ${type} is not accepted`)
  }
}

/**
 * Decodes inbound frames by frame type, within limits on container sizes and nesting depth, so a
 * frame that decodes can also be re-encoded and fanned out (encoders recurse).
 */
export class FrameDecoder {
  private readonly msgpack: Decoder
  private readonly maxDepth: number
  private readonly maxItems: number

  constructor(limits: DecodeLimits) {
    this.maxDepth = limits.decodeMaxDepth
    this.maxItems = limits.decodeMaxItems
    this.msgpack = new Decoder({
      extensionCodec: new RefusedExtensions(),
      maxStrLength: limits.maxPayload,
      maxBinLength: limits.maxPayload,
      maxArrayLength: limits.decodeMaxItems,
      maxMapLength: limits.decodeMaxItems,
      maxExtLength: limits.maxPayload
    })
  }

  decode(data: Buffer, isBinary: boolean): unknown {
    let value: unknown
    try {
      value = isBinary ? this.msgpack.decode(data) : JSON.parse(data.toString())
    } catch (err) {
      const what = isBinary ? 'MessagePack' : 'JSON'
      throw new LiveError(ErrorCode.badRequest, `undecodable ${what} frame: ${(err as Error).message.slice(0, 200)}`)
    }
    this.checkShape(value, 1)
    return value
  }

  private checkShape(value: unknown, depth: number): void {
    if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return
    if (depth > this.maxDepth) throw new LiveError(ErrorCode.tooLarge, `frame nests deeper than ${this.maxDepth} levels`)
    if (Array.isArray(value)) {
      if (value.length > this.maxItems) throw new LiveError(ErrorCode.tooLarge, `an array holds more than ${this.maxItems} elements`)
      for (let i = 0; i < value.length; i++) this.checkShape(value[i], depth + 1)
      return
    }
    let entries = 0
    for (const key in value) {
      if (++entries > this.maxItems) throw new LiveError(ErrorCode.tooLarge, `a map holds more than ${this.maxItems} entries`)
      this.checkShape((value as Record<string, unknown>)[key], depth + 1)
    }
  }
}
