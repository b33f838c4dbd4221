import t from 'tap'
import { encode } from '@msgpack/msgpack'
import {
  FrameDecoder,
  scanJsonDepth,
  scanMsgpack,
  negotiateCodec,
  pickSubprotocol,
  encodeData,
  encodeFrame,
  encodeFrameWithData,
  framePayload
} from '../src/core/codec.ts'
import { validateFrame, FrameError, eventFrame, eventHead } from '../src/core/protocol.ts'
import { parseEntry } from '../src/core/redis-bus.ts'

t.test('subprotocol, then ?codec=, then the default', async (t) => {
  t.equal(negotiateCodec('live.v1.json', 'msgpack', true), 'json')
  t.equal(negotiateCodec('live.v1.msgpack', 'json', false), 'msgpack')
  t.equal(negotiateCodec(undefined, 'json', true), 'json')
  t.equal(negotiateCodec('', 'msgpack', false), 'msgpack')
  t.equal(negotiateCodec('chat', undefined, true), 'msgpack')
  t.equal(negotiateCodec(undefined, undefined, false), 'json')
})

t.test('the first offered subprotocol we speak wins', async (t) => {
  t.equal(pickSubprotocol(['chat', 'live.v1.json', 'live.v1.msgpack']), 'live.v1.json')
  t.equal(pickSubprotocol(new Set(['live.v1.msgpack'])), 'live.v1.msgpack')
  t.equal(pickSubprotocol(['chat']), false)
})

t.test('decoding by frame type', async (t) => {
  const d = new FrameDecoder({ maxPayload: 1024, decodeMaxDepth: 32, decodeMaxItems: 10_000 })
  t.same(d.decode(Buffer.from(encode({ type: 'ping', id: 1 })), true), { type: 'ping', id: 1 })
  t.same(d.decode(Buffer.from('{"type":"ping"}'), false), { type: 'ping' })
  t.throws(() => d.decode(Buffer.from('{"type":'), false), { code: 'bad_request', message: /^undecodable JSON frame/ })
  t.throws(() => d.decode(Buffer.from([0xc1]), true), { code: 'bad_request', message: /^undecodable MessagePack frame/ })
  t.throws(() => d.decode(Buffer.from([0x92, 0x01]), true), { code: 'bad_request' }, 'truncated array')
  t.throws(() => d.decode(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), true), { code: 'too_large' }, 'declared length beyond the limit')
})

t.test('frames are complete WebSocket frames in the connection codec', async (t) => {
  const msgpack = encodeFrame('msgpack', { type: 'pong' })
  t.same([...msgpack], [0x82, 11, ...encode({ type: 'pong' })], 'FIN + binary, 7-bit length, payload')
  t.same([...framePayload(msgpack)], [...encode({ type: 'pong' })])
  const json = encodeFrame('json', { type: 'pong', id: undefined })
  t.same([...json.subarray(0, 2)], [0x81, 15], 'FIN + text')
  t.equal(framePayload(json).toString(), '{"type":"pong"}')
  const medium = encodeFrame('json', 'x'.repeat(300))
  t.same([...medium.subarray(0, 4)], [0x81, 126, 0x01, 0x2e], '16-bit length 302')
  t.equal(framePayload(medium).length, 302)
  const large = encodeFrame('msgpack', new Uint8Array(70000))
  t.same([...large.subarray(0, 10)], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x75], '64-bit length 70005')
  t.equal(framePayload(large).length, 70005)
  const again = encodeFrame('msgpack', { type: 'ping' })
  t.same([...framePayload(msgpack)], [...encode({ type: 'pong' })], 'a frame is its own copy, not the encoder buffer')
  t.not(again, msgpack)
})

t.test('an event frame with data spliced from encoded bytes is the encoded frame, byte for byte', async (t) => {
  const data = { exchange: 'binance', symbol: 'BTC-USDT', bid: 67012.5, size: 1.25, note: 'é€😀', list: [1, -2, null], big: 'x'.repeat(300) }
  const event = { topic: 'ticker.binance.BTC-USDT', seq: 41, epoch: 'e1', ts: 1764403200123, data }
  const spliced = encodeFrameWithData(eventHead('event', event), encodeData(data))
  t.same([...spliced], [...encodeFrame('msgpack', eventFrame('event', event))])
  t.same([...framePayload(spliced)], [...encode({ type: 'event', topic: event.topic, seq: 41, epoch: 'e1', ts: 1764403200123, data })])
  const small = encodeFrameWithData({ type: 'snapshot' }, encodeData(7))
  t.same(
    [...small],
    [0x82, 21, 0x82, 0xa4, ...Buffer.from('type'), 0xa8, ...Buffer.from('snapshot'), 0xa4, ...Buffer.from('data'), 0x07],
    'fixmap of 2, data last'
  )
})

t.test('an event read from Redis keeps its data encoded until it is read, then decodes it once', async (t) => {
  const entry = Buffer.concat([Buffer.from('ab12|7|1764403200123|'), encodeData({ price: 1.5, venue: 'x|y' })])
  const event = parseEntry('prices.x', entry)!
  t.same({ topic: event.topic, epoch: event.epoch, seq: event.seq, ts: event.ts }, { topic: 'prices.x', epoch: 'ab12', seq: 7, ts: 1764403200123 })
  t.same([...event.encoded!], [...encodeData({ price: 1.5, venue: 'x|y' })], 'the bytes after the third bar')
  t.same(event.data, { price: 1.5, venue: 'x|y' })
  t.equal(event.data, event.data, 'decoded once: the same object on every read')
})

t.test('an entry in Redis that this server did not write parses to null, never to an event', async (t) => {
  const data = encodeData({ price: 1.5 })
  const entry = (head: string, bytes: Uint8Array = data) => Buffer.concat([Buffer.from(head), bytes])
  t.ok(parseEntry('p', entry('ab12|7|1764403200123|')), 'well formed')
  t.equal(parseEntry('p', entry('no bars at all')), null)
  t.equal(parseEntry('p', entry('|7|1|')), null, 'no epoch')
  t.equal(parseEntry('p', entry('ab|x|1|')), null, 'seq not a number')
  t.equal(parseEntry('p', entry('ab|0|1|')), null, 'seq below 1')
  t.equal(parseEntry('p', entry('ab|7|later|')), null, 'ts not a number')
  t.equal(parseEntry('p', entry('ab|7|1|', Uint8Array.of(0xc1))), null, 'reserved byte')
  t.equal(parseEntry('p', entry('ab|7|1|', data.subarray(0, data.length - 1))), null, 'truncated data')
  t.equal(parseEntry('p', entry('ab|7|1|', Uint8Array.of(...data, 0x01))), null, 'trailing bytes')
  t.equal(parseEntry('p', entry('ab|7|1|', new Uint8Array(0))), null, 'no data')
})

t.test('validation answers exact codes and messages', async (t) => {
  const fails = (value: unknown, code: string, message: string, id?: unknown) => {
    try {
      validateFrame(value)
      t.fail(`expected an error for ${JSON.stringify(value)}`)
    } catch (err) {
      t.ok(err instanceof FrameError)
      t.same({ code: (err as FrameError).code, message: (err as FrameError).message, id: (err as FrameError).id }, { code, message, id })
    }
  }
  fails([1, 2], 'bad_request', 'a frame must be a map with a string "type"')
  fails('ping', 'bad_request', 'a frame must be a map with a string "type"')
  fails({ id: 3 }, 'bad_request', 'a frame must have a string "type"', 3)
  fails({ type: 'hello', id: 'a' }, 'unknown_type', 'unknown frame type "hello"', 'a')
  fails({ type: 'toString' }, 'unknown_type', 'unknown frame type "toString"')
  fails({ type: 'publish', id: 7, topic: 'a' }, 'bad_request', 'publish: data: Expected required property', 7)
  fails({ type: 'subscribe', topic: 5 }, 'bad_request', 'subscribe: topic: Expected string')
  fails({ type: 'request', id: 1.5 }, 'bad_request', 'request: id: Expected union value')
  fails({ type: 'subscribe', topic: 'a', since: { epoch: 'e', seq: -1 } }, 'bad_request', 'subscribe: since: Expected union value')
  t.same(validateFrame({ type: 'request', timestamp: 1.5, extra: true }), { type: 'request', timestamp: 1.5, extra: true }, 'unknown fields are ignored')
})

t.test('limits are checked on the bytes before decoding', async (t) => {
  const nested = (depth: number) => {
    let v: unknown = 1
    for (let i = 0; i < depth; i++) v = [v]
    return v
  }
  const value = { type: 'publish', topic: 'a', data: { s: 'x'.repeat(300), b: new Uint8Array(70_000), n: [1.5, -3, 2 ** 40, null, true], m: { k: 'v' } } }
  t.equal(scanMsgpack(encode(value), 4, 10), null, 'every type within the limits')
  t.equal(scanMsgpack(encode(nested(8)), 8, 10), null)
  t.same(scanMsgpack(encode(nested(9)), 8, 10), { code: 'too_large', message: 'frame nests deeper than 8 levels' })
  t.same(scanMsgpack(encode(Array(11).fill(0)), 8, 10), { code: 'too_large', message: 'an array holds more than 10 elements' })
  t.same(scanMsgpack(encode({ a: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [i, i])) }), 8, 10), {
    code: 'too_large',
    message: 'a map holds more than 10 entries'
  })
  t.same(
    scanMsgpack(Uint8Array.from([0xdf, 0xff, 0xff, 0xff, 0xff]), 8, 10),
    { code: 'too_large', message: 'a map holds more than 10 entries' },
    'a huge declared map'
  )
  t.equal(scanMsgpack(Uint8Array.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]), 8, 10), null, 'a huge declared string is left to the decoder (truncated)')
  t.same(scanMsgpack(encode(new Date(0)), 8, 10), { code: 'bad_request', message: 'undecodable MessagePack frame: extension types are not accepted' })
  t.equal(scanJsonDepth(Buffer.from(JSON.stringify(nested(8))), 8), null)
  t.same(scanJsonDepth(Buffer.from(JSON.stringify(nested(9))), 8), { code: 'too_large', message: 'frame nests deeper than 8 levels' })
  t.equal(scanJsonDepth(Buffer.from(JSON.stringify({ s: '[[[[[[[[[[\\"[[[[' })), 2), null, 'brackets inside strings, escapes included, do not count')
})
