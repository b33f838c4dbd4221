// The live socket against a listening server with real ws clients: codecs, paths, probe, ping and bad input.
import t from 'tap'
import { WebSocket } from 'ws'
import { encode } from '@msgpack/msgpack'
import { startServer, TestClient } from './helper.ts'

t.test('probe round trip in MessagePack at /ws/live and at /', async (t) => {
  const { url } = await startServer(t)
  for (const path of ['/ws/live', '/']) {
    const c = await TestClient.open(url, { path })
    const before = Date.now()
    const reply = await c.request({ type: 'request', id: 7, timestamp: 1700000000.123 })
    t.same(Object.keys(reply), ['type', 'id', 'timestamp', 'serverTime'], 'field order as PROTOCOL.md lists it')
    t.match(reply, { type: 'response', id: 7, timestamp: 1700000000.123 })
    t.ok(reply.serverTime >= before && reply.serverTime <= Date.now(), 'serverTime is now, in ms')
    t.equal(c.binaryFrames, 1, 'MessagePack is a binary frame')
    c.close()
  }
})

t.test('a probe without id or timestamp answers without them', async (t) => {
  const { url } = await startServer(t)
  const c = await TestClient.open(url)
  const reply = await c.request({ type: 'request' })
  t.same(Object.keys(reply), ['type', 'serverTime'])
  c.close()
})

t.test('codec: subprotocol first, then ?codec=, then USE_MSGPACK', async (t) => {
  const { url } = await startServer(t)
  const json = await TestClient.open(url, { protocols: ['live.v1.json'], codec: 'json' })
  t.equal(json.ws.protocol, 'live.v1.json')
  t.match(await json.request({ type: 'ping', id: 'a' }), { type: 'pong', id: 'a' })
  t.equal(json.textFrames, 1, 'JSON replies are text frames')

  const both = await TestClient.open(url, { path: '/ws/live?codec=json', protocols: ['live.v1.msgpack'] })
  await both.request({ type: 'ping' })
  t.equal(both.binaryFrames, 1, 'the subprotocol beats the query')

  const query = await TestClient.open(url, { path: '/ws/live?codec=json' })
  await query.request({ type: 'ping' })
  t.equal(query.textFrames, 1, '?codec=json without a subprotocol')

  const unknown = await TestClient.open(url, { protocols: ['chat', 'live.v1.json'] })
  t.equal(unknown.ws.protocol, 'live.v1.json', 'the first offered protocol we speak')

  for (const c of [json, both, query, unknown]) c.close()

  const jsonDefault = await startServer(t, { useMsgpack: false })
  const d = await TestClient.open(jsonDefault.url)
  await d.request({ type: 'ping' })
  t.equal(d.textFrames, 1, 'USE_MSGPACK=false makes JSON the default')
  d.close()
})

t.test('inbound frames decode by frame type, whatever the connection codec', async (t) => {
  const { url } = await startServer(t)
  const c = await TestClient.open(url, { protocols: ['live.v1.json'], codec: 'msgpack' })
  const reply = await c.request({ type: 'ping', id: 1 })
  t.match(reply, { type: 'pong', id: 1 })
  t.equal(c.textFrames, 1, 'a MessagePack request on a JSON connection gets a JSON reply')
  c.close()
})

t.test('an unknown ?codec= is refused before any socket exists', async (t) => {
  const { url } = await startServer(t)
  const ws = new WebSocket(`${url}/ws/live?codec=xml`)
  const status = await new Promise<number>((resolve) => ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!)))
  t.equal(status, 400)
})

t.test('bad input gets an error frame and the connection stays open', async (t) => {
  const { url } = await startServer(t)
  const c = await TestClient.open(url)
  c.ws.send(Buffer.from([0xc1]))
  t.match(await c.next(), { type: 'error', code: 'bad_request', message: /^undecodable MessagePack frame/ })
  c.ws.send(Buffer.from([0x82, 0xa4, 0x74]))
  t.match(await c.next(), { type: 'error', code: 'bad_request' }, 'truncated MessagePack')
  c.ws.send('{"type": "ping",')
  t.match(await c.next(), { type: 'error', code: 'bad_request', message: /^undecodable JSON frame/ })
  c.ws.send(encode([1, 2, 3]))
  t.same(await c.next(), { type: 'error', code: 'bad_request', message: 'a frame must be a map with a string "type"' })
  c.ws.send(encode({ type: 'dance', id: 9 }))
  t.same(await c.next(), { type: 'error', id: 9, code: 'unknown_type', message: 'unknown frame type "dance"' })
  c.ws.send(encode({ type: 'subscribe', id: 10, topic: 42 }))
  t.same(await c.next(), { type: 'error', id: 10, code: 'bad_request', message: 'subscribe: topic: Expected string' })
  c.ws.send(encode({ type: 'request', id: 11, method: 'nope' }))
  t.same(await c.next(), { type: 'error', id: 11, code: 'not_found', message: 'unknown method "nope"' })
  t.match(await c.request({ type: 'request', id: 12 }), { type: 'response', id: 12 }, 'still serving')
  c.close()
})

t.test('a frame over MAX_PAYLOAD closes with 1009', async (t) => {
  const { url } = await startServer(t, { maxPayload: 1024 })
  const c = await TestClient.open(url)
  c.ws.send(encode({ type: 'publish', topic: 'a', data: 'x'.repeat(2000) }))
  t.equal((await c.closed).code, 1009)
})

t.test('nothing is sent before the first frame', async (t) => {
  const { url, app } = await startServer(t)
  const c = await TestClient.open(url)
  await app.live.publish('news.x', 1)
  await c.quiet(150)
  t.match(await c.request({ type: 'ping', id: 1 }), { type: 'pong', id: 1 })
  c.close()
})

t.test('frames sent right after the upgrade are all answered in order', async (t) => {
  const { url } = await startServer(t)
  const ws = new WebSocket(`${url}/ws/live`)
  ws.on('open', () => {
    for (let i = 0; i < 50; i++) ws.send(encode({ type: 'ping', id: i }))
  })
  const c = new TestClient(ws, 'msgpack')
  const replies = await c.take(50)
  t.same(
    replies.map((r) => r.id),
    [...Array(50).keys()]
  )
  c.close()
})

t.test('built-in methods: time, topics, snapshot', async (t) => {
  const { url, app } = await startServer(t)
  const c = await TestClient.open(url)
  const time = await c.request({ type: 'request', id: 1, method: 'time' })
  t.equal(typeof time.result.serverTime, 'number')
  const { epoch } = await app.live.publish('ticker.binance.BTC-USDT', { bid: 1 })
  await app.live.publish('ticker.binance.BTC-USDT', { bid: 2 })
  t.match(await c.request({ type: 'subscribe', id: 2, topic: 'ticker.*.BTC-USDT', snapshot: false }), { type: 'ack', id: 2 })
  const topics = await c.request({ type: 'request', id: 3, method: 'topics' })
  t.same(topics, { type: 'response', id: 3, result: [{ topic: 'ticker.binance.BTC-USDT', seq: 2, epoch, subscribers: 1 }] })
  const snap = await c.request({ type: 'request', id: 4, method: 'snapshot', params: { topic: 'ticker.binance.BTC-USDT' } })
  t.match(snap, { type: 'response', id: 4, result: { topic: 'ticker.binance.BTC-USDT', seq: 2, epoch, data: { bid: 2 } } })
  t.same(await c.request({ type: 'request', id: 5, method: 'snapshot', params: { topic: 'none.here' } }), {
    type: 'error',
    id: 5,
    code: 'not_found',
    message: 'topic "none.here" has no value'
  })
  t.match(await c.request({ type: 'request', id: 6, method: 'snapshot', params: {} }), { type: 'error', id: 6, code: 'bad_request' })
  c.close()
})
