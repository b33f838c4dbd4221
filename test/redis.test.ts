// The Redis backplane against real redis-server processes: several nodes, one sequence per topic.
import t from 'tap'
import { startProcess, startServer, TestClient, scrape, sleep, until, type Frame } from './helper.ts'
import { redisUnavailable, startRedis, type TestRedis } from './redis-helper.ts'
import { encode } from '@msgpack/msgpack'
import { RedisBus } from '../src/core/redis-bus.ts'
import { type Bus, HistoryOverrun, PageRead } from '../src/core/bus.ts'

const skip = redisUnavailable()
if (skip !== null) t.comment(`Redis backplane tests skipped: ${skip}`)

/** `count` server nodes on one Redis, each ready (as a load balancer would wait for /ready). */
async function nodes(t: { teardown(fn: () => unknown): void }, redis: TestRedis, count: number) {
  const servers = await Promise.all(Array.from({ length: count }, () => startServer(t, { bus: 'redis', redisUrl: redis.url })))
  await until(() => servers.every((s) => s.app.live.ready), 'every node ready')
  return servers
}

/** Two nodes on one Redis, each ready: one without the engine (its door checks venue.> only), one with it running. */
async function plainAndEngineNodes(t: { teardown(fn: () => unknown): void }, redis: TestRedis) {
  const [plain, engine] = await Promise.all([
    startServer(t, { bus: 'redis', redisUrl: redis.url }),
    startServer(t, { bus: 'redis', redisUrl: redis.url, arbitrage: true })
  ])
  await until(() => plain.app.live.ready && engine.app.live.ready && engine.app.liveArbitrage.running, 'both nodes ready, the engine running')
  return [plain, engine]
}

const seqs = (frames: Frame[]) => frames.map((f) => f.seq)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

t.test('three nodes: a publisher on one, subscribers on all see the same seq and data, gapless', { skip: skip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const [a, b, c] = await nodes(t, redis, 3)
  // Binary frames splice the data bytes read from Redis; JSON frames decode them: both codecs on one node.
  const subs = await Promise.all([...[a, b, c].map((n) => TestClient.open(n.url)), TestClient.open(b.url, { codec: 'json' })])
  for (const s of subs) await s.request({ type: 'subscribe', topic: 'ticker.>' })
  const publisher = await TestClient.open(a.url)
  for (let i = 1; i <= 2000; i++) publisher.send({ type: 'publish', id: i, topic: 'ticker.x.BTC', data: { i } })
  const acks = await publisher.take(2000)
  t.same(
    acks.map((f) => f.seq),
    range(1, 2000),
    'acks carry seq 1..2000'
  )
  const received = await Promise.all(subs.map((s) => s.take(2000)))
  for (const frames of received) {
    t.same(seqs(frames), range(1, 2000))
    t.same(
      frames.map((f) => f.data.i),
      range(1, 2000),
      'the same data for the same seq'
    )
    t.equal(new Set(frames.map((f) => f.epoch)).size, 1)
  }
  for (const s of [...subs, publisher]) s.close()
})

t.test('a node whose Redis subscriber connection is killed fetches what it missed: its clients see no gap', { skip: skip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await nodes(t, redis, 2)
  const sub = await TestClient.open(b.url)
  t.match(await sub.request({ type: 'subscribe', topic: 'ticker.x.BTC' }), { type: 'ack' })
  const name = (b.app.liveBus as RedisBus).name
  let killed = 0
  for (let i = 1; i <= 3000; i++) {
    await a.app.live.publish('ticker.x.BTC', { i })
    if (i % 500 === 0) {
      const list = (await redis.admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string
      const id = /id=(\d+) .*name=live-sub-(\S+)/m.exec(list.split('\n').find((l) => l.includes(`name=live-sub-${name}`)) ?? '')?.[1]
      if (id !== undefined) killed += Number(await redis.admin.call('CLIENT', 'KILL', 'ID', id))
    }
  }
  t.ok(killed >= 3, `the subscriber connection was killed ${killed} times`)
  const frames = await sub.take(3000, 30_000)
  t.same(seqs(frames), range(1, 3000), 'every event, in order, once')
  const m = await scrape(b.http)
  t.ok(m.get('realtime_backplane_reconnects_total')! >= 1, `reconnects counted: ${m.get('realtime_backplane_reconnects_total')}`)
  t.equal(m.get('realtime_backplane_unfilled_gaps_total'), 0, 'history filled every gap')
  sub.close()
})

t.test('recovery across nodes: a client leaves one node and recovers exactly what it missed on another', { skip: skip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await nodes(t, redis, 2)
  const first = await TestClient.open(a.url)
  await first.request({ type: 'subscribe', topic: 'ticker.x.ETH' })
  for (let i = 1; i <= 50; i++) await a.app.live.publish('ticker.x.ETH', { i })
  const seen = await first.take(50)
  first.close()
  for (let i = 51; i <= 80; i++) await a.app.live.publish('ticker.x.ETH', { i })
  const second = await TestClient.open(b.url)
  const last = seen[seen.length - 1]
  t.match(await second.request({ type: 'subscribe', id: 1, topic: 'ticker.x.ETH', since: { epoch: last.epoch, seq: last.seq } }), {
    type: 'ack',
    recovered: true
  })
  await a.app.live.publish('ticker.x.ETH', { i: 81 })
  t.same(seqs(await second.take(31)), range(51, 81), 'replayed 51..80, then live 81, no gap, no duplicate')
  t.match(await second.request({ type: 'subscribe', id: 2, topic: 'ticker.x.ETH', since: { epoch: 'nope', seq: 3 } }), { recovered: false })
  t.match(await second.next(), { type: 'snapshot', seq: 81 })
  second.close()
})

for (const persistent of [false, true]) {
  t.test(`Redis killed and restarted mid-stream, ${persistent ? 'with' : 'without'} persistence`, { skip: skip ?? false }, async (t) => {
    const redis = await startRedis(t, { persistent })
    const [a, b] = await nodes(t, redis, 2)
    const sub = await TestClient.open(b.url)
    await sub.request({ type: 'subscribe', topic: 'ticker.x.SOL' })
    const publisher = await TestClient.open(a.url)
    for (let i = 1; i <= 10; i++) t.match(await publisher.request({ type: 'publish', id: i, topic: 'ticker.x.SOL', data: { i } }), { type: 'ack', seq: i })
    const before = await sub.take(10)
    const epoch = before[0].epoch

    await redis.kill()
    await until(async () => (await fetch(`${a.http}/ready`)).status === 503 && (await fetch(`${b.http}/ready`)).status === 503, '/ready 503 on both nodes')
    t.match(await (await fetch(`${a.http}/ready`)).json(), { ready: false, reason: 'bus unavailable' })
    t.match(await publisher.request({ type: 'publish', id: 11, topic: 'ticker.x.SOL', data: {} }), { type: 'error', id: 11, code: 'unavailable' })
    const post = await fetch(`${a.http}/publish/ticker.x.SOL`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })
    t.equal(post.status, 503)
    t.equal(sub.ws.readyState, 1, 'clients stay connected through the outage')
    t.equal((await scrape(a.http)).get('realtime_backplane_up'), 0, '/metrics shows the backplane down')
    t.match(
      await sub.request({ type: 'subscribe', id: 'o', topic: 'ticker.y.>' }),
      { type: 'error', id: 'o', code: 'unavailable' },
      'a subscribe answers at once'
    )
    t.match(await publisher.request({ type: 'request', id: 'n', method: 'snapshot', params: { topic: 'ticker.x.SOL' } }), {
      type: 'error',
      id: 'n',
      code: 'unavailable'
    })

    await redis.start()
    await until(async () => (await fetch(`${a.http}/ready`)).status === 200 && (await fetch(`${b.http}/ready`)).status === 200, '/ready 200 again')
    const ack = await publisher.request({ type: 'publish', id: 12, topic: 'ticker.x.SOL', data: { i: 11 } })
    const live = await sub.next(10_000)
    const late = await TestClient.open(a.url)
    const recovery = await late.request({ type: 'subscribe', id: 1, topic: 'ticker.x.SOL', since: { epoch, seq: 5 } })
    if (persistent) {
      t.match(ack, { type: 'ack', seq: 11, epoch }, 'the sequence goes on')
      t.match(live, { type: 'event', seq: 11, epoch })
      t.match(recovery, { recovered: true })
      t.same(seqs(await late.take(6)), range(6, 11), 'every acked event survived the restart')
    } else {
      t.match(ack, { type: 'ack', seq: 1 })
      t.not(ack.epoch, epoch, 'the history is gone: a new epoch')
      t.match(live, { type: 'event', seq: 1, epoch: ack.epoch }, 'subscribers see the new epoch, never a silent gap')
      t.match(recovery, { recovered: false })
      t.match(await late.next(), { type: 'snapshot', seq: 1, epoch: ack.epoch })
    }
    for (const c of [sub, publisher, late]) c.close()
  })
}

t.test('a node killed mid-stream: its clients reconnect to another node and recover', { skip: skip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const env = { BUS: 'redis', REDIS_URL: redis.url, ARBITRAGE: 'false' }
  const [one, two] = [startProcess(env), startProcess(env)]
  t.teardown(() => {
    one.child.kill('SIGKILL')
    two.child.kill('SIGKILL')
  })
  const [portOne, portTwo] = await Promise.all([one.port, two.port])
  // As a load balancer would: a node takes clients once /ready says it reached Redis.
  await until(
    async () => (await Promise.all([portOne, portTwo].map((p) => fetch(`http://127.0.0.1:${p}/ready`)))).every((r) => r.status === 200),
    'both processes ready'
  )
  const publisher = await TestClient.open(`ws://127.0.0.1:${portTwo}`)
  const sub = await TestClient.open(`ws://127.0.0.1:${portOne}`)
  t.match(await sub.request({ type: 'subscribe', topic: 'ticker.x.ADA' }), { type: 'ack' })
  let publishing = true
  let published = 0
  const feed = (async () => {
    while (publishing) {
      const ack = await publisher.request({ type: 'publish', topic: 'ticker.x.ADA', data: { n: published + 1 } })
      if (ack.type === 'ack') published = ack.seq
      await sleep(2)
    }
  })()
  await until(() => sub.frames.length >= 100, 'events on node one')
  one.child.kill('SIGKILL')
  await sub.closed
  const seen = sub.frames.filter((f) => f.type === 'event')
  const last = seen[seen.length - 1]
  t.same(seqs(seen), range(1, last.seq), 'gapless until the node died')
  const again = await TestClient.open(`ws://127.0.0.1:${portTwo}`)
  t.match(await again.request({ type: 'subscribe', id: 1, topic: 'ticker.x.ADA', since: { epoch: last.epoch, seq: last.seq } }), { recovered: true })
  await until(() => again.frames.length >= 50, 'replay and live events on node two')
  publishing = false
  await feed
  await until(() => again.frames.at(-1)?.seq === published, 'the last acked event on node two')
  t.same(seqs(again.frames), range(last.seq + 1, published), 'from the last seen seq to the last published, nothing missing, nothing twice')
  for (const c of [publisher, again]) c.close()
})

t.test('publishes of one turn share a script call: each gets its own seq, in order, past the batch cap too', { skip: skip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await nodes(t, redis, 2)
  const sub = await TestClient.open(b.url)
  t.match(await sub.request({ type: 'subscribe', topic: 'batch.>' }), { type: 'ack' })
  // 600 publishes in one synchronous run over three topics: three batches (256, 256, 88).
  const results = await Promise.all(Array.from({ length: 600 }, (_, i) => a.app.live.publish(`batch.t${i % 3}`, { i })))
  for (let topic = 0; topic < 3; topic++) {
    const seqs = results.filter((_, i) => i % 3 === topic).map((r) => r.seq)
    t.same(seqs, range(1, 200), `batch.t${topic}: seq 1..200 in publish order`)
  }
  const frames = await sub.take(600, 30_000)
  for (let topic = 0; topic < 3; topic++) {
    const got = frames.filter((f) => f.topic === `batch.t${topic}`)
    t.same(
      got.map((f) => f.data.i),
      range(0, 199).map((k) => k * 3 + topic),
      `batch.t${topic}: every event, in order, on the other node`
    )
  }
  sub.close()
})

t.test('a malformed message on the backplane is dropped with a warning: the node stays up and delivers what follows', { skip: skip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const [a] = await nodes(t, redis, 1)
  const subs = await Promise.all([TestClient.open(a.url), TestClient.open(a.url, { codec: 'json' })])
  for (const s of subs) await s.request({ type: 'subscribe', topic: 'bad.x', snapshot: false })
  // Messages on the topic's channel (its first token) are `<topic>\n<entry>`.
  for (const garbage of [
    'bad.x\nab|1|123|\xc1',
    'bad.x\nab|1|123|\x92\x01',
    'bad.x\nno bars',
    'bad.x\nab|one|123|\x01',
    'no newline at all',
    '\nab|1|123|\x01'
  ]) {
    await redis.admin.publish('live:ev:bad', Buffer.from(garbage, 'latin1'))
  }
  await a.app.live.publish('bad.x', { ok: true })
  for (const s of subs) t.match(await s.next(), { type: 'event', topic: 'bad.x', seq: 1, data: { ok: true } }, `${s.codec}: the good event, nothing before it`)
  t.equal((await fetch(`${a.http}/health`)).status, 200)
  for (const s of subs) s.close()
})

/** The node's Redis subscriber connection, cut and brought back by the test (no automatic reconnect meanwhile). */
const subscriberOf = (node: { app: { liveBus: Bus } }) => RedisBus.subscriberOf(node.app.liveBus as RedisBus)

t.test(
  'a subscriber connection away while more is published than HISTORY_SIZE keeps: one seq jump, then live again, no loop',
  { skip: skip ?? false },
  async (t) => {
    const redis = await startRedis(t)
    const [a, b] = await Promise.all([
      startServer(t, { bus: 'redis', redisUrl: redis.url, historySize: 20 }),
      startServer(t, { bus: 'redis', redisUrl: redis.url, historySize: 20 })
    ])
    await until(() => a.app.live.ready && b.app.live.ready, 'both nodes ready')
    const sub = await TestClient.open(b.url)
    t.match(await sub.request({ type: 'subscribe', topic: 'jump.x', snapshot: false }), { type: 'ack' })
    for (let i = 1; i <= 5; i++) await a.app.live.publish('jump.x', { i })
    const before = await sub.take(5)
    t.same(seqs(before), range(1, 5))

    const connection = subscriberOf(b)
    connection.disconnect(false)
    await until(() => !b.app.live.ready, 'node b sees its subscriber gone')
    for (let i = 6; i <= 105; i++) await a.app.live.publish('jump.x', { i })
    await connection.connect()
    await until(() => b.app.live.ready, 'node b subscribed again')
    await a.app.live.publish('jump.x', { i: 106 })
    const after = await sub.take(21, 10_000)
    t.same(seqs(after), range(86, 106), 'what history keeps (86..105), then live 106: one jump from 5 to 86')
    const bus = b.app.liveBus as RedisBus
    // A loop would have asked history again and again: a settled node asks no more.
    const gaps = bus.backplane.gaps
    const unfilled = bus.backplane.unfilled
    t.ok(unfilled >= 1, 'the jump is counted as an unfilled gap')
    for (let i = 107; i <= 110; i++) await a.app.live.publish('jump.x', { i })
    t.same(seqs(await sub.take(4)), range(107, 110), 'live afterwards, gapless')
    t.equal(bus.backplane.gaps, gaps, 'no more gaps once past the jump')
    t.equal(bus.backplane.unfilled, unfilled, 'no more unfilled gaps')
    const last = before[before.length - 1]
    t.match(
      await sub.request({ type: 'subscribe', id: 'r', topic: 'jump.x', since: { epoch: last.epoch, seq: 5 } }),
      { recovered: false },
      'recovery from before the jump says so'
    )
    sub.close()
  }
)

t.test(
  'foreign backplane messages (impossible seqs, another epoch, the next seq but one) are refused and counted: real events stay',
  { skip: skip ?? false },
  async (t) => {
    const redis = await startRedis(t)
    const [a, b] = await nodes(t, redis, 2)
    const subs = await Promise.all([TestClient.open(a.url), TestClient.open(b.url)])
    for (const s of subs) t.match(await s.request({ type: 'subscribe', topic: 'evil.>', snapshot: false }), { type: 'ack' })
    const first = await a.app.live.publish('evil.x', { real: 1 })
    for (const s of subs) t.match(await s.next(), { seq: 1, data: { real: 1 } })
    const forge = (topic: string, epoch: string, seq: number, data: unknown) =>
      redis.admin.publish('live:ev:evil', Buffer.concat([Buffer.from(`${topic}\n${epoch}|${seq}|${Date.now()}|`), Buffer.from(encode(data))]))
    const refused = () => [a, b].map((node) => (node.app.liveBus as RedisBus).backplane.refused)
    // Forged first, with nothing real in flight: each is checked against Redis, which never held it.
    // (Once the real seq 3 is out, a forged seq 3 is only a duplicate, dropped uncounted: the count
    // is exact only in this order.)
    await forge('evil.x', first.epoch, 2 ** 53 - 1, { forged: 'max' })
    await forge('evil.x', first.epoch, 3, { forged: 'seq+2' })
    await forge('evil.x', 'another-epoch', 1, { forged: 'epoch' })
    await forge('evil.y', first.epoch, 2 ** 53 - 1, { forged: 'a topic the nodes have not seen' })
    await until(() => refused().every((n) => n === 4), 'every forged message refused on both nodes')
    // One more while real events flow: it waits on its check with them queued behind, and only they come out.
    await forge('evil.x', first.epoch, 2 ** 53 - 1, { forged: 'max, among real events' })
    for (let i = 2; i <= 6; i++) await a.app.live.publish('evil.x', { real: i })
    await a.app.live.publish('evil.y', { real: 1 })
    for (const s of subs) {
      const frames = await s.take(6, 10_000)
      t.same(
        frames.map((f) => [f.topic, f.seq, f.data]),
        [...range(2, 6).map((i) => ['evil.x', i, { real: i }]), ['evil.y', 1, { real: 1 }]],
        'only the real events, each once, in order'
      )
    }
    await until(() => refused().every((n) => n === 5), 'the forged message among real events refused on both nodes')
    for (const s of subs) t.same(s.frames, [], 'nothing forged came after')
    for (const node of [a, b]) {
      const figures = (node.app.liveBus as RedisBus).backplane
      t.equal(figures.refused, 5, 'every forged message refused and counted')
      t.ok(figures.gaps <= 3, `gaps bounded: ${figures.gaps}`)
      t.equal((await scrape(node.http)).get('realtime_backplane_refused_total'), 5, '/metrics shows them')
    }
    for (const s of subs) s.close()
  }
)

t.test('a Redis replay is read in pages as it is written: a recovering client holds one page, not the history', { skip: skip ?? false }, async (t) => {
  const redis = await startRedis(t)
  const [a] = await nodes(t, redis, 1)
  const payload = 'x'.repeat(500)
  const published = await Promise.all(Array.from({ length: 1000 }, (_, i) => a.app.live.publish('page.x', { i, payload })))
  const bus = a.app.liveBus as RedisBus
  const replay = (await bus.since('page.x', { epoch: published[0].epoch, seq: 0 }))!
  t.equal(replay.length, 1000)
  // What a replay holds before it must wait: the events readable without another Redis read.
  let ready = 0
  for (const item of replay) {
    if (!('seq' in item)) break
    ready++
  }
  t.ok(ready > 0 && ready <= 64, `one page at a time (${ready} events), not the 1,000 of the history`)

  // Clients recovering without reading, as in the attack: the server holds their pages, and each is
  // served whole once it reads.
  const clients = await Promise.all(Array.from({ length: 4 }, () => TestClient.open(a.url)))
  for (const c of clients) {
    c.ws.pause()
    c.send({ type: 'subscribe', id: 1, topic: 'page.x', since: { epoch: published[0].epoch, seq: 0 } })
  }
  await sleep(200) // a while without reading; what is checked is that every event comes once they read
  for (const c of clients) c.ws.resume()
  for (const c of clients) {
    t.match(await c.next(), { type: 'ack', recovered: true })
    const frames = await c.take(1000, 30_000)
    t.same(seqs(frames), range(1, 1000), 'every event in order')
  }
  await a.app.live.publish('page.x', { i: 1000, payload })
  for (const c of clients) t.match(await c.next(), { type: 'event', seq: 1001 }, 'then live')
  for (const c of clients) c.close()
})

t.test(
  'a Redis replay whose next page was trimmed meanwhile throws HistoryOverrun (its client is closed as a slow consumer)',
  { skip: skip ?? false },
  async (t) => {
    const redis = await startRedis(t)
    const a = await startServer(t, { bus: 'redis', redisUrl: redis.url, historySize: 100 })
    await until(() => a.app.live.ready, 'ready')
    const first = await a.app.live.publish('trim.x', { i: 1 })
    for (let i = 2; i <= 100; i++) await a.app.live.publish('trim.x', { i })
    const bus = a.app.liveBus as RedisBus
    const replay = (await bus.since('trim.x', { epoch: first.epoch, seq: 0 }))!
    t.equal(replay.length, 100)
    const iterator = replay[Symbol.iterator]()
    const seqs = Array.from({ length: 32 }, () => (iterator.next().value as { seq: number }).seq)
    t.same(seqs, range(1, 32), 'the first page, read with the replay')
    for (let i = 101; i <= 250; i++) await a.app.live.publish('trim.x', { i }) // history keeps 151..250 now
    const wait = iterator.next().value
    t.ok(wait instanceof PageRead, 'the next page is read when the writer gets to it')
    await (wait as PageRead).ready
    const thrown = t.throws(() => iterator.next(), { message: 'history of "trim.x" moved past seq 33' })
    t.ok(thrown instanceof HistoryOverrun, 'seq 33 is gone: the replay cannot keep its promise (HistoryOverrun, which closes its client with 4008)')
  }
)

t.test(
  'market data another process put on the backplane is checked at this process’s door: a bad book reaches neither the engine nor a client',
  { skip: skip ?? false },
  async (t) => {
    const redis = await startRedis(t)
    // A node without the engine checks only venue.>: a bad book published there is acked and goes on Redis.
    const [plain, engine] = await plainAndEngineNodes(t, redis)
    const watcher = await TestClient.open(engine.url)
    t.teardown(() => watcher.close())
    t.match(await watcher.request({ type: 'subscribe', topic: 'book.>', snapshot: false }), { type: 'ack' })
    const bad = {
      bids: [
        [1, 1],
        [2, 1]
      ],
      asks: [],
      exchangeTime: null
    }
    t.match(await plain.app.live.publish('book.a.BTC-USD', bad), { seq: 1 }, 'acked where nothing checks books')
    const good = { bids: [[99, 1]], asks: [[100, 1]], exchangeTime: null }
    await plain.app.live.publish('book.a.BTC-USD', good)
    t.match(await watcher.next(), { type: 'event', topic: 'book.a.BTC-USD', seq: 2, data: good }, 'the client gets the good one only: seq 1 never entered')
    t.equal(engine.app.liveBus.backplane?.rejected, 1, 'counted at the door')
    t.equal(plain.app.liveBus.backplane?.rejected, 0, 'the node that does not check books let it through')
    t.match(engine.app.liveArbitrage.counters, { books: 1 }, 'the engine got the good book alone')
    const m = await scrape(engine.http)
    t.equal(m.get('realtime_backplane_rejected_total'), 1)
    // A bad book last on its topic: a client subscribing with snapshots is not handed it as one.
    await plain.app.live.publish('book.a.ETH-USD', bad)
    await plain.app.live.publish('book.a.SOL-USD', good)
    const late = await TestClient.open(engine.url)
    t.teardown(() => late.close())
    t.match(await late.request({ type: 'subscribe', id: 1, topic: 'book.a.ETH-USD' }), { type: 'ack' })
    t.match(await late.request({ type: 'ping', id: 2 }), { type: 'pong', id: 2 }, 'no snapshot of the topic whose last event is bad')
    t.match(await late.request({ type: 'subscribe', id: 3, topic: 'book.a.>' }), { type: 'ack' })
    const snapshots = [await late.next(), await late.next()]
    t.match(await late.request({ type: 'ping', id: 4 }), { type: 'pong', id: 4 }, 'nor among the pattern’s')
    t.same(
      snapshots.map((f) => [f.type, f.topic, f.seq]).sort(),
      [
        ['snapshot', 'book.a.BTC-USD', 2],
        ['snapshot', 'book.a.SOL-USD', 1]
      ],
      'the good books only, by topic and by pattern'
    )
  }
)

t.test(
  'a recovery (since) from Redis history skips what this process’s door refuses: the recovering client sees the jump a live one saw',
  { skip: skip ?? false },
  async (t) => {
    const redis = await startRedis(t)
    // The node without the engine does not check tickers: it puts the bad ones on Redis, history included.
    const [plain, engine] = await plainAndEngineNodes(t, redis)
    const topic = 'ticker.b.BTC-USDT'
    const live = await TestClient.open(engine.url)
    t.teardown(() => live.close())
    t.match(await live.request({ type: 'subscribe', topic, snapshot: false }), { type: 'ack' })
    const good = (ts: number) => ({ exchange: 'b', symbol: 'BTC-USDT', bid: 99, ask: 100, bidSize: 1, askSize: 1, ts })
    const bad = (ts: number) => ({ ...good(ts), bid: -1 })
    // Seq 2 and 36 bad: from seq 2 a replay's second page starts at 34, so both pages hold good events past a bad one.
    const first = await plain.app.live.publish(topic, good(1))
    for (let seq = 2; seq <= 37; seq++) await plain.app.live.publish(topic, seq === 2 || seq === 36 ? bad(seq) : good(seq))
    const expected = [1, ...range(3, 35), 37]
    const seen = await live.take(expected.length)
    t.same(seqs(seen), expected, 'live: seq 2 and 36 never delivered, a jump over each')
    t.same(
      seen.map((f) => f.data.ts),
      expected,
      'the good events’ data'
    )
    t.equal(engine.app.liveBus.backplane?.rejected, 2, 'both counted at the door')

    /** Subscribes with `since`, and returns the ack and what was replayed (the pong after it ends the replay). */
    const recover = async (seq: number) => {
      const client = await TestClient.open(engine.url)
      t.teardown(() => client.close())
      const ack = await client.request({ type: 'subscribe', id: 1, topic, since: { epoch: first.epoch, seq } })
      client.send({ type: 'ping', id: 2 })
      const replayed: Frame[] = []
      for (let f = await client.next(); f.type !== 'pong'; f = await client.next()) replayed.push(f)
      return { ack, replayed }
    }
    const recovery = await recover(1)
    t.match(recovery.ack, { type: 'ack', recovered: true }, 'every event that passed the door is replayed: recovered')
    t.same(
      recovery.replayed.map((f) => [f.type, f.seq, f.data.ts]),
      range(3, 37)
        .filter((seq) => seq !== 36)
        .map((seq) => ['event', seq, seq]),
      'exactly the good events after seq 1, over two pages, with the live client’s jumps'
    )
    const tail = await recover(35)
    t.match(tail.ack, { recovered: true })
    t.same(
      tail.replayed.map((f) => [f.type, f.seq]),
      [['event', 37]],
      'from just before a bad event: the good one after it'
    )
    await plain.app.live.publish(topic, bad(38))
    await until(() => engine.app.liveBus.backplane?.rejected === 3, 'the third bad ticker refused')
    const refusedOnly = await recover(37)
    t.match(refusedOnly.ack, { recovered: true }, 'what is after the position was all refused: nothing deliverable was missed')
    t.same(refusedOnly.replayed, [], 'and nothing is replayed')
  }
)
