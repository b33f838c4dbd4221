// Codecs: MessagePack (binary frames) and JSON (text frames), and choosing one per connection.
import { Decoder, Encoder } from '@msgpack/msgpack'
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

// One encoder for the process: encode() returns a fresh copy, safe to hand to ws, which may hold it until flushed.
const encoder = new Encoder({ ignoreUndefined: true })

export const encodeMsgpack = (value: unknown): Uint8Array => encoder.encode(value)
export const encodeJson = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))

/** Encodes a frame in a connection's codec. */
export const encodeFrame = (codec: CodecName, frame: unknown): Uint8Array =>
  codec === 'msgpack' ? encodeMsgpack(frame) : encodeJson(frame)

/** Decodes inbound frames by frame type, with MessagePack container limits derived from the largest frame. */
export class FrameDecoder {
  private readonly msgpack: Decoder

  constructor(maxPayload: number) {
    this.msgpack = new Decoder({
      maxStrLength: maxPayload,
      maxBinLength: maxPayload,
      maxArrayLength: maxPayload,
      maxMapLength: maxPayload,
      maxExtLength: maxPayload
    })
  }

  decode(data: Buffer, isBinary: boolean): unknown {
    try {
      return isBinary ? this.msgpack.decode(data) : JSON.parse(data.toString())
    } catch (err) {
      const what = isBinary ? 'MessagePack' : 'JSON'
      throw new LiveError(ErrorCode.badRequest, `undecodable ${what} frame: ${(err as Error).message.slice(0, 200)}`)
    }
  }
}
