// Delivery against a listening server: wildcards, seq order, snapshots, recovery, slow consumers, heartbeat, limits.
import { hubOf } from '../src/core/hub.ts'
import t from 'tap'
import { connect } from 'node:net'
import { randomBytes } from 'node:crypto'
import { WebSocket } from 'ws'
import { encode } from '@msgpack/msgpack'
import { startServer, TestClient, flood, sleep, until, type Frame } from './helper.ts'
import { ANONYMOUS_SUBSCRIBER } from '../src/core/auth.ts'

t.test('wildcards, overlaps delivered once, unsubscribe', async (t) => {
  const { url, app } = await startServer(t)
  const c = await TestClient.open(url)
  t.same(await c.request({ type: 'subscribe', id: 1, topics: ['a.*', 'a.>', 'a.b', 'a.b'] }), { type: 'ack', id: 1, topics: ['a.*', 'a.>', 'a.b'] })
  t.same(await c.request({ type: 'subscribe', id: 2, topic: 'a.*' }), { type: 'ack', id: 2, topics: ['a.*'] }, 'idempotent')
  await app.live.publish('a.b', 1)
  await app.live.publish('a.b.c', 2)
  await app.live.publish('a', 3)
  await app.live.publish('x.b', 4)
  const got = await c.take(2)
  t.same(
    got.map((f) => [f.type, f.topic, f.data]),
    [
      ['event', 'a.b', 1],
      ['event', 'a.b.c', 2]
    ]
  )
  await c.quiet(50)
  t.same(await c.request({ type: 'unsubscribe', id: 3, topics: ['a.*', 'a.>'] }), { type: 'ack', id: 3, topics: ['a.*', 'a.>'] })
  await app.live.publish('a.b.c', 5)
  await app.live.publish('a.b', 6)
  t.match(await c.next(), { topic: 'a.b', data: 6 }, 'a.b is still subscribed, a.b.c no longer')
  t.same(await c.request({ type: 'subscribe', id: 4, topic: 'a', topics: ['b'] }), {
    type: 'error',
    id: 4,
    code: 'bad_request',
    message: 'subscribe: give exactly one of "topic" or "topics"'
  })
  c.close()
})

t.test('event frames carry topic, seq, epoch, ts, data in that order', async (t) => {
  const { url, app } = await startServer(t)
  const c = await TestClient.open(url, { protocols: ['live.v1.json'], codec: 'json' })
  await c.request({ type: 'subscribe', topic: 'q' })
  const { seq, epoch } = await app.live.publish('q', { n: 1 })
  const e = await c.next()
  t.same(Object.keys(e), ['type', 'topic', 'seq', 'epoch', 'ts', 'data'])
  t.match(e, { type: 'event', topic: 'q', seq, epoch, data: { n: 1 } })
  c.close()
})

t.test('10,000 publishes reach several subscribers in seq order without a gap', async (t) => {
  const { url } = await startServer(t)
  const subs = await Promise.all([TestClient.open(url), TestClient.open(url, { protocols: ['live.v1.json'] }), TestClient.open(url)])
  await subs[0].request({ type: 'subscribe', topic: 'feed.x' })
  await subs[1].request({ type: 'subscribe', topic: 'feed.*' })
  await subs[2].request({ type: 'subscribe', topics: ['>', 'feed.x'] })
  const publisher = await TestClient.open(url)
  const N = 10_000
  for (let i = 1; i <= N; i++) publisher.send({ type: 'publish', topic: 'feed.x', data: { i } })
  const acks = await publisher.take(N, 30_000)
  t.same(
    acks.map((a) => a.seq),
    Array.from({ length: N }, (_, i) => i + 1),
    'acks carry every seq once, in order'
  )
  for (const s of subs) {
    const events = await s.take(N, 30_000)
    const wrong = events.findIndex((e, i) => e.seq !== i + 1 || e.data.i !== i + 1)
    t.equal(wrong, -1, 'seq 1..N in order, data matching')
    s.close()
  }
  publisher.close()
})

t.test('snapshot on subscribe, then live, and snapshot:false', async (t) => {
  const { url, app } = await startServer(t)
  await app.live.publish('t.a', 'old')
  const last = await app.live.publish('t.a', 'latest')
  await app.live.publish('t.b', 'b')
  const c = await TestClient.open(url)
  t.same(await c.request({ type: 'subscribe', id: 1, topic: 't.a' }), { type: 'ack', id: 1, topics: ['t.a'] })
  t.match(await c.next(), { type: 'snapshot', topic: 't.a', seq: last.seq, epoch: last.epoch, data: 'latest' })
  await app.live.publish('t.a', 'new')
  t.match(await c.next(), { type: 'event', topic: 't.a', seq: last.seq + 1, data: 'new' })

  const w = await TestClient.open(url)
  await w.request({ type: 'subscribe', topic: 't.*' })
  const snaps = await w.take(2)
  t.same(
    snaps.map((s) => [s.type, s.topic]).sort(),
    [
      ['snapshot', 't.a'],
      ['snapshot', 't.b']
    ],
    'a snapshot per matching topic'
  )

  const n = await TestClient.open(url)
  await n.request({ type: 'subscribe', topic: 't.*', snapshot: false })
  await n.quiet(50)
  for (const x of [c, w, n]) x.close()
})

t.test('recovery after a disconnect while publishing continues: no gap, no duplicate', async (t) => {
  const { url, app } = await startServer(t)
  const topic = 'ticker.x.BTC-USDT'
  let published = 0
  let stop = false
  const publishing = (async () => {
    while (!stop) {
      await app.live.publish(topic, { n: ++published })
      await sleep(1)
    }
  })()
  const first = await TestClient.open(url)
  await first.request({ type: 'subscribe', topic, snapshot: false })
  const seen = await first.take(20)
  const lastSeen = seen[seen.length - 1]
  first.close()
  await first.closed
  await until(() => published >= lastSeen.seq + 10, 'events published while this client is away, for it to recover')

  const again = await TestClient.open(url)
  t.same(await again.request({ type: 'subscribe', id: 2, topic, since: { epoch: lastSeen.epoch, seq: lastSeen.seq } }), {
    type: 'ack',
    id: 2,
    topics: [topic],
    recovered: true
  })
  const after = await again.take(60)
  stop = true
  await publishing
  const seqs = [...seen, ...after].map((e) => e.seq)
  t.same(
    seqs,
    Array.from({ length: seqs.length }, (_, i) => seqs[0] + i),
    'replayed then live, contiguous'
  )
  t.ok(
    after.some((e) => e.seq > lastSeen.seq + 1),
    'events were missed and replayed'
  )
  again.close()
})

t.test('since with a map for lists and wildcards; {epoch, seq} needs one concrete topic', async (t) => {
  const { url, app } = await startServer(t)
  const a = await app.live.publish('m.a', 1)
  await app.live.publish('m.a', 2)
  await app.live.publish('m.b', 3)
  const c = await TestClient.open(url)
  t.same(await c.request({ type: 'subscribe', id: 1, topic: 'm.*', since: { 'm.a': { epoch: a.epoch, seq: 1 } } }), {
    type: 'ack',
    id: 1,
    topics: ['m.*'],
    recovered: true
  })
  const frames = await c.take(2)
  t.same(
    frames.map((f) => [f.type, f.topic, f.seq]),
    [
      ['event', 'm.a', 2],
      ['snapshot', 'm.b', 1]
    ],
    'replay for m.a, snapshot for the topic not named'
  )
  t.match(await c.request({ type: 'subscribe', id: 2, topic: 'm.*', since: { epoch: a.epoch, seq: 1 } }), {
    type: 'error',
    id: 2,
    code: 'bad_request',
    message: /needs one concrete "topic"/
  })
  t.match(await c.request({ type: 'subscribe', id: 3, topics: ['m.a'], since: { 'z.z': { epoch: a.epoch, seq: 1 } } }), {
    type: 'error',
    id: 3,
    code: 'bad_request',
    message: /no subscribed topic matches/
  })
  c.close()
})

t.test('recovered:false with a snapshot when history no longer covers the gap or the epoch changed', async (t) => {
  const { url, app } = await startServer(t, { historySize: 10 })
  let last = await app.live.publish('h', 0)
  for (let i = 1; i < 50; i++) last = await app.live.publish('h', i)
  const c = await TestClient.open(url)
  t.same(await c.request({ type: 'subscribe', id: 1, topic: 'h', since: { epoch: last.epoch, seq: 5 } }), {
    type: 'ack',
    id: 1,
    topics: ['h'],
    recovered: false
  })
  t.match(await c.next(), { type: 'snapshot', topic: 'h', seq: 50, data: 49 })
  t.same(await c.request({ type: 'subscribe', id: 2, topic: 'h', since: { epoch: 'gone', seq: 49 } }), { type: 'ack', id: 2, topics: ['h'], recovered: false })
  t.match(await c.next(), { type: 'snapshot', seq: 50 })
  t.same(await c.request({ type: 'subscribe', id: 3, topic: 'h', since: { epoch: 'gone', seq: 49 }, snapshot: false }), {
    type: 'ack',
    id: 3,
    topics: ['h'],
    recovered: false
  })
  t.same(
    await c.request({ type: 'subscribe', id: 4, topic: 'h', since: { epoch: last.epoch, seq: 50 } }),
    { type: 'ack', id: 4, topics: ['h'], recovered: true },
    'already current: nothing to replay'
  )
  await c.quiet(50)
  c.close()
})

t.test('recovery past HISTORY_TTL is recovered:false', async (t) => {
  const { url, app } = await startServer(t, { historyTtl: 20 })
  const first = await app.live.publish('ttl', 1)
  await app.live.publish('ttl', 2)
  await sleep(40)
  const c = await TestClient.open(url)
  t.match(await c.request({ type: 'subscribe', topic: 'ttl', since: { epoch: first.epoch, seq: 1 } }), { recovered: false })
  t.match(await c.next(), { type: 'snapshot', seq: 2 })
  c.close()
})

t.test('all three publish entry points share one sequence', async (t) => {
  const { url, http, app } = await startServer(t)
  const sub = await TestClient.open(url)
  await sub.request({ type: 'subscribe', topic: 'one.path' })
  const pub = await TestClient.open(url)
  const ack = await pub.request({ type: 'publish', id: 'p1', topic: 'one.path', data: 'frame' })
  t.same(Object.keys(ack), ['type', 'id', 'seq', 'epoch'])
  t.match(ack, { type: 'ack', id: 'p1', seq: 1 })
  const res = await fetch(`${http}/publish/one.path`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '"http"' })
  t.match(await res.json(), { seq: 2, epoch: ack.epoch })
  t.same(await app.live.publish('one.path', 'api'), { seq: 3, epoch: ack.epoch })
  t.same(
    (await sub.take(3)).map((e) => [e.seq, e.data]),
    [
      [1, 'frame'],
      [2, 'http'],
      [3, 'api']
    ]
  )
  await t.rejects(app.live.publish('bad.*', 1), { code: 'bad_request' })
  t.match(await pub.request({ type: 'publish', id: 2, topic: 'x.>', data: 1 }), { type: 'error', id: 2, code: 'bad_request' })
  sub.close()
  pub.close()
})

t.test('limits: subscriptions, topic length and tokens, publish size', async (t) => {
  const { url } = await startServer(t, { maxSubscriptions: 3, maxTopicLength: 20, maxTopicTokens: 3, maxPublishBytes: 200 })
  const c = await TestClient.open(url)
  t.match(await c.request({ type: 'subscribe', id: 1, topics: ['a', 'b', 'c'] }), { type: 'ack' })
  t.same(await c.request({ type: 'subscribe', id: 2, topic: 'd' }), { type: 'error', id: 2, code: 'too_large', message: 'more than 3 subscriptions' })
  t.match(await c.request({ type: 'subscribe', id: 3, topic: 'a' }), { type: 'ack' }, 'an existing pattern does not count again')
  t.match(await c.request({ type: 'subscribe', id: 4, topic: 'x'.repeat(21) }), { code: 'bad_request', message: /longer than 20/ })
  t.match(await c.request({ type: 'subscribe', id: 5, topic: 'a.b.c.d' }), { code: 'bad_request', message: /more than 3 tokens/ })
  t.match(await c.request({ type: 'publish', id: 6, topic: 'z', data: 'x'.repeat(300) }), { type: 'error', id: 6, code: 'too_large' })
  t.match(await c.request({ type: 'publish', id: 7, topic: 'z', data: 'ok' }), { type: 'ack', id: 7 })
  c.close()
})

t.test('publishing from a non-loopback address is forbidden', async (t) => {
  const { app } = await startServer(t)
  // A socket whose peer is not loopback, driven through the hub like a real upgrade.
  const sent: Uint8Array[] = []
  const fake = {
    readyState: 1,
    bufferedAmount: 0,
    _socket: null,
    send: (d: Uint8Array) => {
      sent.push(d)
    },
    close() {},
    terminate() {},
    ping() {},
    handlers: {} as Record<string, (...a: any[]) => void>,
    on(event: string, fn: (...a: any[]) => void) {
      this.handlers[event] = fn
    }
  }
  hubOf(app.live).accept(fake, 'json', '203.0.113.9', ANONYMOUS_SUBSCRIBER)
  fake.handlers.message(Buffer.from('{"type":"publish","id":1,"topic":"a","data":1}'), false)
  t.same(JSON.parse(Buffer.from(sent[0]).toString()), { type: 'error', id: 1, code: 'forbidden', message: 'no grant to publish on "a"' })
})

// The slow-consumer policies are unit-tested on the send path with fake sockets
// (test/connection.test.ts). Here, their wiring to real TCP backpressure: the close policy's is
// exercised by the abuse suite (non-reading clients closed with 4008), the conflate policy's below.
t.test('slow consumer, policy conflate: only the latest per topic, seen as a seq jump', async (t) => {
  const { url, app } = await startServer(t, { maxQueuedBytes: 64 * 1024, slowConsumer: 'conflate' })
  const slow = await TestClient.open(url)
  await slow.request({ type: 'subscribe', topic: 'c.*' })
  slow.ws.pause()
  await flood(app, ['c.a', 'c.b'], 400, 30_000)
  slow.ws.resume()
  const last: Record<string, number> = {}
  const received: Frame[] = []
  while (last['c.a'] !== 400 || last['c.b'] !== 400) {
    const e = await slow.next(10_000)
    t.ok(e.seq > (last[e.topic] ?? 0), 'seq only rises') || t.bailout('reordered')
    last[e.topic] = e.seq
    received.push(e)
  }
  t.ok(received.length < 800, `conflated: ${received.length} of 800 events delivered`)
  const jumps = received.filter((e, i) => {
    const previous = received
      .slice(0, i)
      .filter((p) => p.topic === e.topic)
      .pop()
    return previous !== undefined && previous.seq + 1 < e.seq
  })
  t.ok(jumps.length > 0, 'a seq jump is visible')
  t.same(last, { 'c.a': 400, 'c.b': 400 }, 'the latest value of each topic arrives')
  t.equal(slow.ws.readyState, WebSocket.OPEN, 'the connection stays open')
  slow.close()
})

t.test('heartbeat: a connection that misses a pong is terminated and its subscriptions freed', async (t) => {
  const { url, app } = await startServer(t, { heartbeatInterval: 50 })
  const ws = new WebSocket(`${url}/ws/live`, { autoPong: false })
  const c = new TestClient(ws, 'msgpack')
  await new Promise((r) => ws.once('open', r))
  await c.request({ type: 'subscribe', topic: 'hb' })
  const alive = await TestClient.open(url)
  await alive.request({ type: 'subscribe', topic: 'hb' })
  t.equal(app.live.subscribers('hb'), 2)
  t.equal((await c.closed).code, 1006, 'terminated without a close frame')
  // The client's 1006 can come before the server has handled its own side of the close.
  await until(() => app.live.subscribers('hb') === 1, 'only the answering client is still subscribed')
  t.equal(app.live.connections, 1)
  alive.close()
})

t.test('heartbeat: a connection the server is closing keeps its close handshake, even from a client slow to read', async (t) => {
  const { url, app } = await startServer(t, { heartbeatInterval: 50 })
  const socket = connect({ port: Number(new URL(url).port), host: '127.0.0.1' })
  const received: Buffer[] = []
  let error = ''
  socket.on('data', (chunk: Buffer) => received.push(chunk))
  socket.on('error', (err: NodeJS.ErrnoException) => {
    error = err.code ?? err.message
  })
  const closed = new Promise((r) => socket.once('close', r))
  await new Promise((r) => socket.once('connect', r))
  // The upgrade and, right behind it, a text frame that declares 2 MB (past MAX_PAYLOAD): the server
  // closes with 1009 at once and discards the rest of the frame as it comes.
  const header = Buffer.alloc(14)
  header[0] = 0x81
  header[1] = 0x80 | 127
  header.writeBigUInt64BE(2_000_000n, 2)
  socket.write(
    Buffer.concat([
      Buffer.from(
        `GET /ws/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
      ),
      header,
      Buffer.alloc(64 * 1024)
    ])
  )
  socket.pause() // busy elsewhere: reads nothing for ten heartbeat intervals, still sending its frame
  for (let i = 0; i < 50 && !socket.destroyed; i++) {
    socket.write(Buffer.alloc(16 * 1024))
    await sleep(10)
  }
  t.equal(app.live.connections, 1, 'still closing after ten heartbeat intervals')
  socket.resume()
  await closed
  t.equal(error, '', 'no reset')
  const bytes = Buffer.concat(received)
  const at = bytes.indexOf('\r\n\r\n') + 4
  t.match(bytes.toString('latin1', 0, 12), 'HTTP/1.1 101', 'upgraded')
  t.same([bytes[at], at + 4 <= bytes.length ? bytes.readUInt16BE(at + 2) : undefined], [0x88, 1009], 'the close frame arrives: 1009')
})

t.test('a flooding publisher does not starve a probe client', async (t) => {
  const { url } = await startServer(t)
  const publisher = await TestClient.open(url)
  const probe = await TestClient.open(url)
  const N = 20_000
  let acks = 0
  publisher.ws.on('message', () => {
    acks++
  })
  const frame = encode({ type: 'publish', topic: 'flood', data: { p: 'x'.repeat(100) } })
  for (let i = 0; i < N; i++) publisher.ws.send(frame)
  const acksAtProbe: number[] = []
  for (let i = 0; i < 5; i++) {
    await probe.request({ type: 'request', id: i })
    acksAtProbe.push(acks)
  }
  t.ok(acksAtProbe[0] < N, `the first probe was answered while the flood ran (${acksAtProbe[0]} of ${N} acks)`)
  while (acks < N) await sleep(20)
  publisher.close()
  probe.close()
})
