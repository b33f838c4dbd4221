// The attacks of issue #15, each reproduced at a bounded scale on loopback, and what the server does
// now. Numbers in test names are the issue's. Timing is never asserted: outcomes and counts are.
import t from 'tap'
import { request as httpRequest } from 'node:http'
import { createServer } from 'node:http'
import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { encode } from '@msgpack/msgpack'
import { createSigner } from 'fast-jwt'
import { startServer, TestClient, upgradeStatus, until } from './helper.ts'
import { redisUnavailable, startRedis } from './redis-helper.ts'
import { MemoryBus } from '../src/core/bus.ts'
import { Admission } from '../src/core/limits.ts'
import { checkData } from '../src/core/codec.ts'
import { checkTopic, FRAME_WORK, SubscriptionIndex, TopicTree, Work } from '../src/core/topics.ts'
import { ArbitrageEngine, MAX_EXCHANGES_PER_SYMBOL } from '../src/market/arbitrage.ts'

const SECRET = 'a-test-secret-that-is-long-enough-0123456789'
const redisSkip = redisUnavailable()
const memory = (app: { liveBus: unknown }) => app.liveBus as MemoryBus

/** A server on the Redis bus, once ready (as a load balancer would wait for /ready). */
async function redisNode(t: Parameters<typeof startServer>[0], redisUrl: string, overrides: Parameters<typeof startServer>[1] = {}) {
  const node = await startServer(t, { bus: 'redis', redisUrl, ...overrides })
  await until(() => node.app.live.ready, 'the node is ready')
  return node
}
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const chromiumSkip = existsSync(chromiumPath) ? null : `no Chromium at ${chromiumPath}`
if (chromiumSkip !== null && process.env.REQUIRE_CHROMIUM === '1') t.fail(`REQUIRE_CHROMIUM=1 but ${chromiumSkip}`)
const PROTO = '{"__proto__":{"polluted":1},"bid":1}'

t.test('1. data with a __proto__ key is refused on every publish path before it gets a seq', async (t) => {
  const { app, url, http } = await startServer(t, { auth: 'none' })
  const post = await fetch(`${http}/publish/any.topic`, { method: 'POST', body: PROTO, headers: { 'content-type': 'application/json' } })
  t.match([post.status, await post.json()], [400, { code: 'bad_request', message: /__proto__/ }])
  const json = await TestClient.open(url, { codec: 'json' })
  t.teardown(() => json.close())
  json.ws.send(`{"type":"publish","id":1,"topic":"any.topic","data":${PROTO}}`)
  t.match(await json.next(), { type: 'error', id: 1, code: 'bad_request' })
  await t.rejects(app.live.publish('any.topic', JSON.parse(PROTO)), { code: 'bad_request' })
  t.equal(memory(app).last('any.topic'), undefined, 'nothing was stored, so no replay of it can fail later')
  // What no codec carries the same way is refused too, at any depth.
  for (const bad of [NaN, Infinity, 1n, () => 1, Symbol('x'), { a: [{ b: -Infinity }] }]) t.throws(() => checkData(bad, 32), { code: 'bad_request' })
  const deep: unknown[] = []
  let inner = deep
  for (let i = 0; i < 40; i++) inner = (inner[0] = []) as unknown[]
  t.throws(() => checkData(deep, 32), { code: 'too_large' })
  checkData({ bid: 1, ask: 2, venue: { name: 'x', levels: [[1, 2]] }, raw: new Uint8Array(2), none: null }, 32)
  const { seq } = await app.live.publish('any.topic', { bid: 1 })
  t.equal(seq, 1, 'the good publish that follows gets seq 1')
})

t.test('1. with Redis: a node that receives an undecodable event stays up and delivers what follows', { skip: redisSkip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const a = await redisNode(t, redis.url)
  const b = await redisNode(t, redis.url)
  const subs = await Promise.all([TestClient.open(b.url, { codec: 'json' }), TestClient.open(b.url)])
  t.teardown(() => {
    for (const s of subs) s.close()
  })
  for (const s of subs) t.match(await s.request({ type: 'subscribe', topic: '>' }), { type: 'ack' })
  const refused = await fetch(`${a.http}/publish/any.topic`, { method: 'POST', body: PROTO, headers: { 'content-type': 'application/json' } })
  t.equal(refused.status, 400, 'node A refuses it instead of acking it')
  // Another writer on the backplane (an older node, a script) can still put such data there.
  const data = Buffer.from(encode(JSON.parse(PROTO)))
  await redis.admin.publish('live:ev:any', Buffer.concat([Buffer.from('any.topic\nforeign|1|1|'), data]))
  await a.app.live.publish('any.topic', { bid: 2 })
  // It is dropped where it enters (the well-formedness scan refuses the key), so binary
  // subscribers never get a frame their decoder refuses either.
  for (const s of subs)
    t.match(await s.next(), { type: 'event', topic: 'any.topic', seq: 1, data: { bid: 2 } }, `${s.codec}: the next good event, nothing before it`)
  t.equal((await fetch(`${b.http}/health`)).status, 200, 'node B is up')
})

t.test('2. a web page on this host cannot publish without a credential (AUTH=loopback)', async (t) => {
  const { app, url, http } = await startServer(t, {})
  const publish = async (serverUrl: string, headers: Record<string, string>) => {
    const c = await TestClient.open(serverUrl, { headers })
    const reply = await c.request({ type: 'publish', id: 1, topic: 'ticker.binance.BTC-USDT', data: { bid: 1, ask: 2 } })
    c.close()
    return reply
  }
  t.match(await publish(url, { origin: 'https://evil.example' }), { type: 'error', code: 'forbidden' })
  t.match(await publish(url, { origin: 'null' }), { type: 'error', code: 'forbidden' }, 'a sandboxed page or file:// sends Origin: null')
  t.match(await publish(url, { 'x-forwarded-for': '203.0.113.9' }), { type: 'error', code: 'forbidden' }, 'behind a proxy, loopback is the proxy')
  t.match(await publish(url, {}), { type: 'ack', seq: 1 }, 'a local process (no Origin) still publishes')
  const listed = await startServer(t, { allowedOrigins: 'http://127.0.0.1:1' })
  t.match(await publish(listed.url, { origin: 'http://127.0.0.1:1' }), { type: 'ack', seq: 1 }, 'an Origin listed in ALLOWED_ORIGINS is trusted like its host')
  const post = (headers: Record<string, string>, body = '{"bid":1}') => fetch(`${http}/publish/ticker.binance.BTC-USDT`, { method: 'POST', body, headers })
  const plain = await post({ 'content-type': 'text/plain' })
  t.same(
    [plain.status, (await plain.json()).message],
    [415, 'a publish body is application/json or MessagePack (application/msgpack, application/x-msgpack, application/vnd.msgpack)'],
    'text/plain (a no-cors fetch needs no preflight) is not a publish body'
  )
  t.equal((await post({ 'content-type': 'application/x-www-form-urlencoded' }, 'bid=1')).status, 415)
  t.equal((await post({ 'content-type': 'application/json', origin: 'https://evil.example' })).status, 403)
  t.equal((await post({ 'content-type': 'application/json', forwarded: 'for=203.0.113.9' })).status, 403)
  t.equal((await post({ 'content-type': 'application/json' })).status, 200)
  t.equal(memory(app).last('ticker.binance.BTC-USDT')!.seq, 2, 'only the allowed publishes landed')
})

t.test(
  '2. in headless Chromium: a page from another local origin is refused over WebSocket and fetch',
  { skip: chromiumSkip ?? false, timeout: 60_000 },
  async (t) => {
    const { chromium } = await import('playwright-core')
    const { app, http } = await startServer(t, {})
    const wsUrl = `${http.replace('http:', 'ws:')}/ws/live?codec=json`
    const page = `<script>
    window.result = new Promise((resolve) => {
      const ws = new WebSocket(${JSON.stringify(wsUrl)})
      ws.onopen = () => ws.send(JSON.stringify({ type: 'publish', id: 1, topic: 'ticker.binance.BTC-USDT', data: { bid: 1, ask: 2 } }))
      ws.onmessage = async (m) => {
        await fetch(${JSON.stringify(`${http}/publish/ticker.binance.BTC-USDT`)}, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"bid":1}' }).catch(() => {})
        resolve(JSON.parse(m.data))
      }
    })</script>`
    const site = createServer((_req, res) => res.end(page))
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
    t.teardown(() => site.close())
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run']
    })
    t.teardown(() => browser.close())
    const tab = await browser.newPage()
    await tab.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`)
    t.match(await tab.evaluate(() => (window as unknown as { result: Promise<unknown> }).result), { type: 'error', id: 1, code: 'forbidden' })
    t.equal(memory(app).last('ticker.binance.BTC-USDT'), undefined, 'neither the socket nor the no-cors fetch published')
  }
)

t.test('3. one subscribe frame costs at most the frame budget: crafted ones are refused with too_large', async (t) => {
  const { app, url } = await startServer(t, { auth: 'none', maxSubscriptions: 5000 })
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  // 512 patterns, every mix of `t` and `*` over nine tokens then `z`, and one that is all
  // wildcards: each since entry walks all 512 prefixes before it matches the last (before this
  // change: 512 x 1,000 pattern tests, ~0.3 s for one 50 KB frame).
  const patterns = Array.from({ length: 512 }, (_, i) => `${[...i.toString(2).padStart(9, '0')].map((b) => (b === '1' ? '*' : 't')).join('.')}.z`)
  patterns.push('*.*.*.*.*.*.*.*.*.>')
  const since = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`t.t.t.t.t.t.t.t.t.y${i}`, { epoch: 'e', seq: 1 }]))
  t.match(await c.request({ type: 'subscribe', id: 1, topics: patterns, since, snapshot: false }), { type: 'error', id: 1, code: 'too_large' })
  // 5,000 topics and 1,000 wildcard patterns that each walk all of them.
  for (let i = 0; i < 5000; i++) memory(app).publish(`t${i}.v`, i)
  t.match(await c.request({ type: 'subscribe', id: 2, topics: Array.from({ length: 1000 }, (_, i) => `*.w${i}`) }), { type: 'error', id: 2, code: 'too_large' })
  t.match(await c.request({ type: 'request', id: 3, method: 'topics' }), { type: 'response', id: 3 }, 'a refused frame subscribed nothing')
  // Honest frames: a `>` snapshot of every topic, and since for 2,200 concrete topics.
  c.send({ type: 'subscribe', id: 4, topic: '>' })
  const frames = await c.take(5001)
  t.match(frames[0], { type: 'ack', id: 4 })
  t.equal(frames.filter((f) => f.type === 'snapshot').length, 5000)
  const concrete = Array.from({ length: 1100 }, (_, i) => `t${i}.v`)
  const positions = Object.fromEntries(concrete.map((topic) => [topic, { epoch: memory(app).last(topic)!.epoch, seq: 1 }]))
  t.match(await c.request({ type: 'subscribe', id: 5, topics: concrete, since: positions }), { type: 'ack', id: 5, recovered: true })
})

t.test('3. the tries cost what the topic selects, counted node by node', async (t) => {
  const index = new SubscriptionIndex<true>()
  for (let i = 0; i < 1000; i++) index.add(`a.*.x${i}`, true)
  const work = new Work(10)
  t.equal(index.has('a.b.x7', work), true)
  t.equal(index.has('a.b.nope', work), false)
  const chain = new SubscriptionIndex<true>()
  chain.add('a.b.c.d.e', true)
  t.throws(() => chain.has('a.b.c.d.e', new Work(3)), { code: 'too_large' }, 'past its budget a walk stops')
  const tree = new TopicTree()
  for (let i = 0; i < 100; i++) tree.add(`ticker.ex${i % 10}.s${i}`)
  tree.add('other.x')
  const counted = new Work(FRAME_WORK)
  t.same(tree.matching('ticker.ex3.s13', counted), ['ticker.ex3.s13'])
  t.equal(tree.matching('ticker.*.s42', new Work(1 + 1 + 10 + 1)).length, 1, 'root, ticker, ten exchanges, one symbol')
  t.equal(tree.matching('>', new Work(FRAME_WORK)).length, 101)
  tree.remove('other.x')
  t.same(tree.matching('other.>', new Work(5)), [], 'removed topics leave no branch behind')
})

t.test('4. subscriptions are capped per address and in all, and refused while over the memory limit', async (t) => {
  const { url } = await startServer(t, { maxSubscriptionsPerIp: 30, maxSubscriptionsTotal: 50 })
  const clients = await Promise.all([TestClient.open(url), TestClient.open(url), TestClient.open(url, { localAddress: '127.0.0.2' })])
  t.teardown(() => {
    for (const c of clients) c.close()
  })
  const topics = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}.${i}`)
  t.match(await clients[0].request({ type: 'subscribe', id: 1, topics: topics(20, 'a') }), { type: 'ack' })
  t.match(await clients[1].request({ type: 'subscribe', id: 2, topics: topics(20, 'b') }), {
    type: 'error',
    id: 2,
    code: 'unavailable',
    message: /this address holds its maximum of 30/
  })
  t.match(await clients[1].request({ type: 'subscribe', id: 3, topics: topics(10, 'b') }), { type: 'ack' }, 'up to the cap')
  t.match(await clients[2].request({ type: 'subscribe', id: 4, topics: topics(25, 'c') }), {
    type: 'error',
    code: 'unavailable',
    message: /the server holds its maximum of 50/
  })
  t.match(await clients[2].request({ type: 'subscribe', id: 5, topics: topics(20, 'c') }), { type: 'ack' }, 'another address, within the total')
  clients[0].close()
  await clients[0].closed
  await until(
    async () => (await clients[1].request({ type: 'subscribe', id: 6, topics: topics(20, 'd') })).type === 'ack',
    'the address got its subscriptions back'
  )
  const full = await startServer(t, { memoryLimitMb: 1 })
  const c = await TestClient.open(full.url).catch(() => null)
  t.equal(c, null, 'over the memory limit no connection is admitted')
  const admission = new Admission(
    { maxConnections: 10, maxConnectionsPerIp: 10, maxSubscriptionsTotal: 100, maxSubscriptionsPerIp: 100, memoryLimitMb: 1 },
    { now: () => 0, held: () => 2 * 1024 * 1024, collect: () => undefined }
  )
  t.equal(admission.subscriptionRefusal('x', 1), 'the server is at its memory limit')
})

t.test('5. a slow body holds nothing: credentials before the body, and a time limit on it', async (t) => {
  const { http, port } = await startServer(t, { auth: 'required', apiKeys: 'feed-key-0123456789=publish:>', requestTimeout: 300 })
  // Without a credential the answer comes before any body byte is sent.
  const unauthorized = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({
      port,
      host: '127.0.0.1',
      method: 'POST',
      path: '/publish/a.b',
      headers: { 'content-type': 'application/json', 'content-length': 65_000 }
    })
    req.on('response', (res) => {
      res.resume()
      resolve(res.statusCode!)
      req.destroy()
    })
    req.on('error', reject)
    req.flushHeaders()
  })
  t.equal(unauthorized, 401)
  // With one, a body that stops coming is cut off at REQUEST_TIMEOUT.
  const cut = await new Promise<string>((resolve) => {
    const req = httpRequest({
      port,
      host: '127.0.0.1',
      method: 'POST',
      path: '/publish/a.b',
      headers: { 'content-type': 'application/json', 'content-length': 65_000, authorization: 'Bearer feed-key-0123456789' }
    })
    req.on('response', (res) => resolve(`answered ${res.statusCode}`))
    req.on('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message))
    req.write(`{"a":"${'x'.repeat(1000)}`)
  })
  t.match(cut, /ECONNRESET|socket hang up/, 'the connection was closed')
  t.equal((await fetch(`${http}/health`)).status, 200)
  // Admission reads a measure that falls when memory is freed, and asks for a collection when over.
  let held = 300 * 1024 * 1024
  let now = 0
  let collections = 0
  const admission = new Admission(
    { maxConnections: 10, maxConnectionsPerIp: 10, maxSubscriptionsTotal: 10, maxSubscriptionsPerIp: 10, memoryLimitMb: 200 },
    {
      now: () => now,
      held: () => held,
      collect: () => () => {
        collections++
      }
    }
  )
  t.equal(admission.refusal('x'), 'the server is at its memory limit')
  t.equal(collections, 1, 'over the limit, one full collection was asked for')
  held = 100 * 1024 * 1024
  t.equal(admission.refusal('x'), 'the server is at its memory limit', 'read again only after the sample interval')
  now += 1000
  t.equal(admission.refusal('x'), null, 'the attacker left: admitted again')
})

t.test('6. a feed speaks only for the exchange and symbol of its topic', async (t) => {
  const { app, url } = await startServer(t, { auth: 'required', apiKeys: 'binance-feed-key-012=publish:ticker.binance.> subscribe:>', arbitrage: true })
  const feed = await TestClient.open(url, { headers: { authorization: 'Bearer binance-feed-key-012' } })
  t.teardown(() => feed.close())
  const tick = (exchange: string, symbol: string) => ({ exchange, symbol, bid: 100, ask: 100.1, bidSize: 1, askSize: 1, ts: Date.now() })
  t.match(await feed.request({ type: 'publish', id: 1, topic: 'ticker.binance.BTC-USDT', data: tick('coinbase', 'BTC-USDT') }), {
    type: 'error',
    id: 1,
    code: 'bad_request',
    message: /data.exchange must be "binance"/
  })
  t.match(await feed.request({ type: 'publish', id: 2, topic: 'ticker.binance.BTC-USDT', data: tick('binance', 'EVIL.any.topic.I.like') }), {
    type: 'error',
    id: 2,
    code: 'bad_request',
    message: /data.symbol/
  })
  t.match(await feed.request({ type: 'publish', id: 3, topic: 'ticker.binance.BTC-USDT.extra', data: tick('binance', 'BTC-USDT') }), {
    type: 'error',
    id: 3,
    code: 'bad_request',
    message: /ticker.<exchange>.<symbol>/
  })
  const { exchange: _e, symbol: _s, ...bare } = tick('x', 'y')
  t.match(
    await feed.request({ type: 'publish', id: 4, topic: 'ticker.binance.BTC-USDT', data: bare }),
    { type: 'ack', id: 4 },
    'fields left out are taken from the topic'
  )
  t.equal(app.liveArbitrage.engine.symbols, 1)
  // 1,500 venues for one symbol: the engine keeps MAX_EXCHANGES_PER_SYMBOL, pairs stay bounded.
  const engine = new ArbitrageEngine({ minNetBps: 5, maxTickAgeMs: 1000, updateBps: 1, fees: {}, defaultFee: 0 })
  for (let i = 0; i < 1500; i++) engine.onTick(tick(`ex${i}`, 'S'), 1000, `ex${i}`, 'S')
  t.equal(engine.counters.refused, 1500 - MAX_EXCHANGES_PER_SYMBOL)
  engine.sweep(1000 + 61 * 1000)
  t.equal(engine.symbols, 0, 'a symbol with no tick for a minute is forgotten')
})

t.test('7. topics expire when idle and unsubscribed, and their number is capped', async (t) => {
  const bus = new MemoryBus({ historySize: 10, historyTtl: 60_000, topicTtl: 10_000, maxTopics: 2 })
  t.teardown(() => bus.close())
  const epoch = bus.publish('kept', 1).epoch
  const idleEpoch = bus.publish('idle', 1).epoch
  t.throws(() => bus.publish('third', 1), { code: 'unavailable', message: /maximum of 2 topics/ })
  bus.watch('kept')
  bus.watch('*') // a wildcard subscription pins nothing
  bus.sweep(Date.now() + 5_000)
  t.equal(bus.size, 2, 'nothing is idle for TOPIC_TTL yet')
  bus.sweep(Date.now() + 10_001)
  t.same([bus.last('idle'), bus.since('idle', { epoch: idleEpoch, seq: 0 })], [undefined, null], 'idle: history, last value and index entry freed')
  t.same(
    bus.lastMatching('>').map((e) => e.topic),
    ['kept']
  )
  t.equal(bus.publish('third', 1).seq, 1, 'room for a new topic again')
  t.equal(bus.since('kept', { epoch, seq: 0 })!.length, 1, 'a topic subscribed by name is kept, with its history')
  bus.unwatch('kept')
  bus.sweep(Date.now() + 20_000)
  t.equal(bus.last('kept'), undefined, 'once unsubscribed it goes too')
  // BUS_MEMORY_MB: 10 KB values, a 100 KB budget. Three topics fit (16 KiB of history buffer, the
  // 10 KB value, 1 KiB of overhead each); the fourth is refused. A topic that goes on publishing
  // gives up its history rather than the budget.
  const small = new MemoryBus({ historySize: 100, historyTtl: 60_000, busMemoryBytes: 100_000 })
  t.teardown(() => small.close())
  const blob = 'x'.repeat(10_000)
  for (let i = 0; i < 3; i++) small.publish(`big.${i}`, blob)
  t.throws(() => small.publish('big.3', blob), { code: 'unavailable', message: /memory limit/ })
  const first = small.publish('big.0', blob)
  for (let i = 0; i < 50; i++) {
    small.publish('big.0', blob)
    if (small.retainedBytes > 100_000) t.fail(`over the budget after publish ${i}: ${small.retainedBytes}`)
  }
  t.equal(small.since('big.0', { epoch: first.epoch, seq: first.seq }), null, 'its older history is gone: recovered:false, never a silent gap')
  t.equal(small.last('big.0')!.seq, 52)
  const full = new MemoryBus({ historySize: 10, historyTtl: 60_000, overMemory: () => true })
  t.teardown(() => full.close())
  t.throws(() => full.publish('new', 1), { code: 'unavailable', message: /memory limit/ }, 'no new topic while over the memory limit')
})

t.test('7. with Redis: topic keys expire, the index is trimmed and capped', { skip: redisSkip ?? false }, async (t) => {
  const redis = await startRedis(t)
  // Three seconds: a.x is published again before its first publish's lifetime ends, even on a loaded machine.
  const { app } = await redisNode(t, redis.url, { topicTtl: 3000, maxTopics: 2 })
  await app.live.publish('a.x', 1)
  await app.live.publish('b.x', 1)
  const ttl = await redis.admin.pttl('live:m:a.x')
  t.ok(ttl > 0 && ttl <= 3000, `the meta key expires (PTTL ${ttl})`)
  await t.rejects(app.live.publish('c.x', 1), { code: 'unavailable', message: /maximum of 2 topics/ })
  t.equal((await app.live.publish('a.x', 2)).seq, 2, 'known topics go on')
  await until(async () => (await redis.admin.exists('live:m:b.x')) === 0, 'b.x expired in Redis', 10_000)
  t.equal((await app.live.publish('c.x', 1)).seq, 1, 'the expired topics made room')
  t.same(await redis.admin.zrange('live:topics', 0, -1), ['c.x'])
})

t.test('8. with Redis: client patterns do not multiply Redis pattern subscriptions', { skip: redisSkip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const { app, url } = await redisNode(t, redis.url)
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  const patterns = [...Array.from({ length: 500 }, (_, i) => `ticker.ex${i}.*`), ...Array.from({ length: 500 }, (_, i) => `*.x${i}.>`)]
  t.match(await c.request({ type: 'subscribe', topics: patterns, snapshot: false }), { type: 'ack' })
  t.equal(await redis.admin.call('PUBSUB', 'NUMPAT'), 1, 'one pattern for every wildcard-first pattern of this node')
  // live:ev:venue is the server's own venue-health view (plugins/venues.ts).
  t.same(((await redis.admin.call('PUBSUB', 'CHANNELS')) as string[]).sort(), ['live:ev:ticker', 'live:ev:venue'], 'one channel for 500 ticker patterns')
  await app.live.publish('ticker.other.BTC', 1)
  await app.live.publish('ticker.ex7.BTC', 2)
  t.match(await c.next(), { type: 'event', topic: 'ticker.ex7.BTC', data: 2 }, 'delivery filters exactly')
  await c.quiet(100)
})

t.test('9. /config shows no secret in any form; operator routes need a credential under AUTH=required', async (t) => {
  const { http } = await startServer(t, {
    auth: 'required',
    apiKeys: 'operator-key-0123456=subscribe:>',
    redisUrl: 'redis://:ab@cd@ef-secret@127.0.0.1:6379/0?password=p4ss'
  })
  for (const path of ['/config', '/metrics', '/hooks']) t.equal((await fetch(http + path)).status, 401, `${path} without a credential`)
  t.equal((await fetch(`${http}/health`)).status, 200, '/health stays open for load balancers')
  const config = await (await fetch(`${http}/config`, { headers: { authorization: 'Bearer operator-key-0123456' } })).json()
  t.equal(config.redisUrl, 'redis://:[redacted]@127.0.0.1:6379/0?password=[redacted]')
  t.notMatch(JSON.stringify(config), /secret|p4ss|operator-key/)
  t.equal(config.jwtSecret, '', 'an empty secret shows as empty')
})

t.test('10. a long replay reaches a client that reads, written as its socket drains', { timeout: 60_000 }, async (t) => {
  const { app, url } = await startServer(t, { historySize: 1000 })
  const topics = Array.from({ length: 20 }, (_, i) => `replay.t${i}`)
  const payload = 'x'.repeat(180)
  const since: Record<string, { epoch: string; seq: number }> = {}
  for (const topic of topics) since[topic] = { epoch: memory(app).publish(topic, { payload }).epoch as string, seq: 1 }
  for (let i = 0; i < 999; i++) for (const topic of topics) memory(app).publish(topic, { i, payload })
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  c.send({ type: 'subscribe', id: 1, topics, since })
  const frames = await c.take(1 + 20 * 999, 45_000)
  t.match(frames[0], { type: 'ack', id: 1, recovered: true })
  for (const topic of topics) {
    const seqs = frames.filter((f) => f.topic === topic).map((f) => f.seq)
    t.same([seqs.length, seqs[0], seqs.at(-1)], [999, 2, 1000], `${topic}: every event, in order`)
  }
  t.equal(c.ws.readyState, 1, 'not closed as a slow consumer')
  memory(app).publish('replay.t0', { live: true })
  t.match(await c.next(), { type: 'event', topic: 'replay.t0', seq: 1001 }, 'then live, with no gap')
})

t.test('11. JWTs need an exp within JWT_MAX_LIFETIME, on connect and on renewal', async (t) => {
  const { url } = await startServer(t, { auth: 'required', jwtSecret: SECRET, jwtMaxLifetime: 3_600_000 })
  const token = (claims: object) => createSigner({ key: SECRET })(claims)
  const status = async (jwt: string) => await upgradeStatus(url, { headers: { authorization: `Bearer ${jwt}` } })
  const noExp = await status(token({ scope: 'subscribe:>' }))
  t.match([noExp.status, JSON.parse(noExp.body).message], [401, 'invalid token: it has no exp'])
  t.equal((await status(token({ scope: 'subscribe:>', exp: 1e20 }))).status, 401, 'exp: 1e20')
  t.equal((await status(token({ scope: 'subscribe:>', exp: Math.floor(Date.now() / 1000) + 7200 }))).status, 401, 'two hours, past the one-hour maximum')
  const c = await TestClient.open(url, { headers: { authorization: `Bearer ${token({ scope: 'subscribe:>', exp: Math.floor(Date.now() / 1000) + 60 })}` } })
  t.teardown(() => c.close())
  t.match(await c.request({ type: 'request', id: 1, method: 'auth', params: { token: token({ scope: 'subscribe:>' }) } }), {
    type: 'error',
    id: 1,
    code: 'unauthorized'
  })
  const lax = await startServer(t, { auth: 'required', jwtSecret: SECRET, jwtRequireExp: false })
  t.equal(
    (await upgradeStatus(lax.url, { headers: { authorization: `Bearer ${token({ scope: 'subscribe:>' })}` } })).status,
    101,
    'JWT_REQUIRE_EXP=false accepts them'
  )
})

t.test('12. topic names refuse controls, format, unassigned characters and lone surrogates', async (t) => {
  const limits = { maxTopicLength: 256, maxTopicTokens: 16 }
  for (const bad of ['a.b\x7f', 'ticker.binance.BTC\u200b-USDT', 'a.\u202eb', 'a.\ud800', 'a.\udc00b', 'a.\u{e0001}', 'a.\u0378', 'a\u00a0b', 'a\u2028b']) {
    const shown = [...bad].map((c) => (c >= '!' && c <= '~' ? c : `U+${c.codePointAt(0)!.toString(16)}`)).join('')
    t.throws(() => checkTopic(bad, limits, false), { code: 'bad_request' }, shown)
  }
  for (const good of ['ticker.binance.BTC-USDT', 'news.日本語', 'a.ü.€', 'emoji.\u{1f680}']) checkTopic(good, limits, false)
})

t.test('13. reference hooks never see bad data: null ticks are refused where they enter, the scorer stays on', async (t) => {
  const { app } = await startServer(t, { arbitrage: true })
  for (let i = 0; i < 10; i++)
    await t.rejects(app.live.publish('ticker.a.BTC-USDT', null), { code: 'bad_request', message: '"ticker.a.BTC-USDT": data must be an object' })
  for (const data of [1, 'x', [], { bid: 'x' }]) await t.rejects(app.live.publish('ticker.a.BTC-USDT', data), { code: 'bad_request' })
  t.match(app.liveHooks.figures().find((f) => f.name === 'ticker-data')!, { calls: 14, errors: 0, breaker: 'closed' }, 'the check saw all 14')
  t.match(app.liveHooks.figures().find((f) => f.name === 'scorer-volatility')!, { calls: 0, errors: 0, breaker: 'closed' }, 'the scorer none')
})

t.test('14. with Redis: subscribe then unsubscribe sent back to back are handled and acked in order', { skip: redisSkip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const { app, url } = await redisNode(t, redis.url)
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  c.send({ type: 'subscribe', id: 1, topic: 'order.x' })
  c.send({ type: 'unsubscribe', id: 2, topic: 'order.x' })
  t.match(await c.take(2), [
    { type: 'ack', id: 1 },
    { type: 'ack', id: 2 }
  ])
  await app.live.publish('order.x', 1)
  await c.quiet(150)
  t.equal(app.live.subscribers('order.x'), 0, 'subscribed to nothing')
})

t.test('15. refused credentials count as frame errors: an auth flood is closed with 1008', async (t) => {
  const { url } = await startServer(t, { auth: 'required', jwtSecret: SECRET, maxFrameErrors: 5 })
  const c = await TestClient.open(url, { headers: { authorization: `Bearer ${createSigner({ key: SECRET, expiresIn: 60_000 })({ scope: 'subscribe:>' })}` } })
  const forged = createSigner({ key: 'another-secret-that-is-long-enough-000000', expiresIn: 60_000 })({ scope: 'publish:>' })
  for (let i = 0; i < 10; i++) c.send({ type: 'request', id: i, method: 'auth', params: { token: forged } })
  t.match(
    await c.take(5),
    Array.from({ length: 5 }, () => ({ code: 'unauthorized' }))
  )
  t.same(await c.closed, { code: 1008, reason: 'too many bad frames' })
})
