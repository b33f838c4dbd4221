// Codecs: MessagePack (binary frames) and JSON (text frames), and choosing one per connection.
import { Decoder, Encoder } from '@msgpack/msgpack'
import { ErrorCode, LiveError, eventFrame, eventHead, type BusEvent } from './protocol.js'
import { SUBPROTOCOL_OF, type Codec } from '../shared/subprotocols.js'
import { scanJsonDepth, scanMsgpack } from '../shared/scan.js'

export { scanJsonDepth, scanMsgpack }

export type CodecName = Codec

/** Subprotocol name -> codec, from the one shared map. */
const CODEC_OF: Readonly<Record<string, CodecName>> = Object.freeze(
  Object.fromEntries(Object.entries(SUBPROTOCOL_OF).map(([codec, name]) => [name, codec as CodecName]))
)

/** The first offered subprotocol we speak, in the client's order; false when none (ws then sends no header). */
export function pickSubprotocol(offered: Iterable<string>): string | false {
  for (const protocol of offered) if (Object.hasOwn(CODEC_OF, protocol)) return protocol
  return false
}

/** PROTOCOL.md "Connecting": subprotocol, then ?codec=, then the server default. */
export function negotiateCodec(subprotocol: string | undefined, queryCodec: string | undefined, useMsgpack: boolean): CodecName {
  if (subprotocol && Object.hasOwn(CODEC_OF, subprotocol)) return CODEC_OF[subprotocol]
  if (queryCodec === 'msgpack' || queryCodec === 'json') return queryCodec
  return useMsgpack ? 'msgpack' : 'json'
}

// One encoder for the process. encodeSharedRef() returns a view of its reused buffer, so it is
// copied into the frame at once and never handed to a socket.
const encoder = new Encoder({ ignoreUndefined: true })

// For values that are not frames (the Redis backplane's stored data): the shared encoder, copied
// out, and one decoder. @msgpack/msgpack's encode() and decode() build a new instance per call.
const dataDecoder = new Decoder()

export const encodeData = (value: unknown): Uint8Array => encoder.encode(value)
/** A view of the shared encoder's buffer, valid until the next encode: copy it at once. */
export const encodeDataShared = (value: unknown): Uint8Array => encoder.encodeSharedRef(value)
export const decodeData = (bytes: Uint8Array): unknown => dataDecoder.decode(bytes)

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

const NOT_DECODED = Symbol('not decoded')

/**
 * An event read from storage (history, Redis). Its data stays MessagePack until something reads
 * it: binary frames splice the bytes, so replaying to binary subscribers never decodes it.
 */
export class StoredEvent implements BusEvent {
  private decoded: unknown = NOT_DECODED
  constructor(
    readonly topic: string,
    readonly epoch: string,
    readonly seq: number,
    readonly ts: number,
    readonly encoded: Uint8Array
  ) {}

  get data(): unknown {
    if (this.decoded === NOT_DECODED) this.decoded = decodeData(this.encoded)
    return this.decoded
  }
}

/** An event or snapshot frame in a codec; stored MessagePack data is spliced, not decoded and encoded again. */
export function encodeEvent(codec: CodecName, type: 'event' | 'snapshot', event: BusEvent): Buffer {
  if (codec === 'msgpack' && event.encoded !== undefined) return encodeFrameWithData(eventHead(type, event), event.encoded)
  return encodeFrame(codec, eventFrame(type, event))
}

/** `data` as a MessagePack fixstr key. */
const DATA_KEY = Uint8Array.of(0xa4, 0x64, 0x61, 0x74, 0x61)

/**
 * The binary frame of `head` (a map of fewer than 15 entries) with a last `data` entry whose
 * MessagePack bytes are given: an event read from Redis is sent without decoding and encoding its
 * data again. Byte for byte what encodeFrame gives when those bytes came from the same encoder.
 */
export function encodeFrameWithData(head: object, data: Uint8Array): Buffer {
  const encodedHead = encoder.encodeSharedRef(head)
  const length = encodedHead.length + DATA_KEY.length + data.length
  const frame = frameWithHeader(0x82, length)
  let at = frame.length - length
  frame.set(encodedHead, at)
  frame[at]++ // the fixmap holds one more entry
  at += encodedHead.length
  frame.set(DATA_KEY, at)
  frame.set(data, at + DATA_KEY.length)
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

/**
 * Refuses published data that some codec or some node could not carry as it is: a key named
 * `__proto__` (MessagePack decoders refuse it, so binary subscribers and other nodes could not
 * read the event), numbers that are not finite (JSON turns them into null), bigints, functions
 * and symbols (no codec has them), and nesting past `maxDepth` (the encoders recurse). One walk
 * of the data, bounded by its size; run before a publish gets its seq.
 */
export function checkData(value: unknown, maxDepth: number, depth = 0): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return
    case 'number':
      if (!Number.isFinite(value)) throw new LiveError(ErrorCode.badRequest, 'data: numbers must be finite (JSON has no NaN or Infinity)')
      return
    case 'object':
      break
    default:
      throw new LiveError(ErrorCode.badRequest, `data: a ${typeof value} cannot be encoded`)
  }
  if (value === null || ArrayBuffer.isView(value)) return
  if (depth === maxDepth) throw new LiveError(ErrorCode.tooLarge, `data nests deeper than ${maxDepth} levels`)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkData(value[i], maxDepth, depth + 1)
    return
  }
  for (const key in value) {
    if (key === '__proto__') throw new LiveError(ErrorCode.badRequest, 'data: a key named "__proto__" is not accepted (MessagePack decoders refuse it)')
    checkData((value as Record<string, unknown>)[key], maxDepth, depth + 1)
  }
}

export interface DecodeLimits {
  maxPayload: number
  decodeMaxDepth: number
  decodeMaxItems: number
}

/**
 * Decodes inbound frames by frame type, within limits on container sizes and nesting depth, so a
 * frame that decodes can also be re-encoded and fanned out (encoders recurse).
 */
export class FrameDecoder {
  private readonly msgpack: Decoder
  private readonly maxDepth: number
  private readonly maxItems: number
  private readonly scanStack: Float64Array

  constructor(limits: DecodeLimits) {
    this.maxDepth = limits.decodeMaxDepth
    this.maxItems = limits.decodeMaxItems
    this.scanStack = new Float64Array(limits.decodeMaxDepth + 1)
    this.msgpack = new Decoder({
      maxStrLength: limits.maxPayload,
      maxBinLength: limits.maxPayload,
      maxArrayLength: limits.decodeMaxItems,
      maxMapLength: limits.decodeMaxItems,
      maxExtLength: limits.maxPayload
    })
  }

  decode(data: Buffer, isBinary: boolean): unknown {
    // Limits are checked on the bytes first: decoding 30,000 nested arrays costs milliseconds.
    const refused = isBinary ? scanMsgpack(data, this.maxDepth, this.maxItems, this.scanStack) : scanJsonDepth(data, this.maxDepth)
    if (refused !== null) throw new LiveError(refused.code, refused.message)
    let value: unknown
    try {
      value = isBinary ? this.msgpack.decode(data) : JSON.parse(data.toString())
    } catch (err) {
      const what = isBinary ? 'MessagePack' : 'JSON'
      throw new LiveError(ErrorCode.badRequest, `undecodable ${what} frame: ${(err as Error).message.slice(0, 200)}`)
    }
    if (!isBinary) this.checkShape(value)
    return value
  }

  /** Container sizes of a parsed JSON frame; its depth was checked on the bytes (which also bounds this recursion). */
  private checkShape(value: unknown): void {
    if (typeof value !== 'object' || value === null) return
    if (Array.isArray(value)) {
      if (value.length > this.maxItems) throw new LiveError(ErrorCode.tooLarge, `an array holds more than ${this.maxItems} elements`)
      for (let i = 0; i < value.length; i++) this.checkShape(value[i])
      return
    }
    let entries = 0
    for (const key in value) {
      if (++entries > this.maxItems) throw new LiveError(ErrorCode.tooLarge, `a map holds more than ${this.maxItems} entries`)
      this.checkShape((value as Record<string, unknown>)[key])
    }
  }
}
