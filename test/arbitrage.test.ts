// The arbitrage engine: exact arithmetic, quote hygiene, lifecycle, the synthetic feed, end to end.
import t from 'tap'
import { ArbitrageEngine, spread, type OpportunityEvent, type Tick } from '../src/market/arbitrage.ts'
import { SyntheticFeed } from '../src/market/synthetic.ts'
import { startServer, TestClient } from './helper.ts'

const options = { minNetBps: 5, maxTickAgeMs: 1000, updateBps: 0.5, fees: { a: 0.001, b: 0.001, pricey: 0.002 }, defaultFee: 0.001 }
const tick = (exchange: string, bid: number, ask: number, ts = 1000, sizes: [number, number] = [2, 3]): Tick => ({
  exchange,
  symbol: 'BTC-USDT',
  bid,
  ask,
  bidSize: sizes[0],
  askSize: sizes[1],
  ts
})

t.test('spread, fee and profit arithmetic', async (t) => {
  const s = spread(100, 100.3, 2, 0.001, 0.001)
  t.equal(Math.round(s.grossBps * 1e6) / 1e6, 30)
  t.equal(Math.round(s.netBps * 1e6) / 1e6, 9.97, '(100.3 × 0.999 − 100 × 1.001) / 100 × 1e4')
  t.equal(Math.round(s.profit * 1e6) / 1e6, 0.1994, '2 × 0.0997')
  const pricey = spread(100, 100.3, 2, 0.002, 0.002)
  t.equal(Math.round(pricey.netBps * 1e6) / 1e6, -10.06, 'a 30 bps gross spread is a loss after 20 bps of fees a side')
  t.equal(Math.round(pricey.profit * 1e6) / 1e6, -0.2012)
})

t.test('an opportunity opens with exact figures and provenance', async (t) => {
  const engine = new ArbitrageEngine(options)
  t.equal(engine.onTick(tick('a', 99.9, 100, 990, [4, 3]), 1000), null)
  const events = engine.onTick(tick('b', 100.3, 100.4, 995, [2, 5]), 1005)!
  t.equal(events.length, 1)
  t.same(events[0], {
    id: events[0].id,
    status: 'open',
    symbol: 'BTC-USDT',
    buy: { exchange: 'a', price: 100, size: 3, ts: 990, receivedAt: 1000 },
    sell: { exchange: 'b', price: 100.3, size: 2, ts: 995, receivedAt: 1005 },
    size: 2,
    grossBps: 30,
    netBps: 9.97,
    profit: 0.1994,
    detectedAt: 1005,
    maxTickAgeMs: 15
  })
  t.match(events[0].id, /^BTC-USDT:a:b:/)
})

t.test('fees that eat the spread, stale, crossed and invalid quotes make nothing and are counted', async (t) => {
  const engine = new ArbitrageEngine(options)
  engine.onTick(tick('a', 99.9, 100), 1000)
  t.equal(engine.onTick(tick('pricey', 100.3, 100.4), 1000), null, '9.97 bps gross of fees with the pricey venue is −0.03 bps net')
  t.equal(engine.onTick(tick('b', 100.3, 100.4, -500), 1000), null, 'b quote 1500 ms old')
  t.equal(engine.counters.stale, 1)
  t.equal(engine.onTick(tick('b', 100.5, 100.3), 1000), null, 'crossed: bid >= ask')
  t.equal(engine.counters.crossed, 1)
  for (const bad of [tick('b', NaN, 100.4), tick('b', 100.3, Infinity), tick('b', -1, 100.4), tick('b', 100.3, 100.4, 1000, [0, 1])]) {
    t.equal(engine.onTick(bad, 1000), null)
  }
  t.equal(engine.counters.invalid, 4)
  t.equal(engine.counters.opened, 0)
})

t.test('lifecycle: open, material updates only, closed with lifetime and reason', async (t) => {
  const engine = new ArbitrageEngine(options)
  const all: OpportunityEvent[] = []
  const feed = (x: Tick, now: number) => {
    const e = engine.onTick(x, now)
    if (e) all.push(...e)
  }
  feed(tick('a', 99.9, 100, 1000), 1000)
  feed(tick('b', 100.3, 100.4, 1000), 1000)
  feed(tick('b', 100.3, 100.4, 1010), 1010)
  feed(tick('b', 100.301, 100.4, 1020), 1020)
  t.equal(all.length, 1, 'no duplicate, and a 0.1 bps change is not material')
  feed(tick('b', 100.32, 100.4, 1030), 1030)
  t.same(
    all.map((e) => e.status),
    ['open', 'update'],
    'a 1.9 bps change is'
  )
  feed(tick('b', 100.32, 100.4, 1040, [5, 3]), 1040)
  t.same(
    all.map((e) => e.status),
    ['open', 'update', 'update'],
    'so is the executable size going 2 -> 3'
  )
  t.equal(new Set(all.map((e) => e.id)).size, 1, 'one id while it persists')
  feed(tick('b', 100.05, 100.4, 1300), 1300)
  const closed = all[3]
  t.match(closed, { status: 'closed', id: all[0].id, reason: 'spread', lifetimeMs: 300, detectedAt: 1300 })
  feed(tick('b', 100.3, 100.4, 1400), 1400)
  t.equal(all[4].status, 'open')
  t.not(all[4].id, all[0].id, 'a new opportunity gets a new id')
  t.equal(engine.sweep(1500), null, 'fresh quotes: nothing to close')
  const swept = engine.sweep(2100)!
  t.match(swept, [{ status: 'closed', reason: 'stale', lifetimeMs: 700 }])
  t.same(engine.counters, { ticks: 8, refused: 0, stale: 0, crossed: 0, invalid: 0, opened: 2, updated: 2, closed: 2 })
})

t.test('a tick re-evaluates only the pairs of its exchange', async (t) => {
  const engine = new ArbitrageEngine(options)
  for (const ex of ['a', 'b', 'c', 'd', 'e']) engine.onTick(tick(ex, 99.9, 100), 1000)
  const evaluate = (engine as any).evaluate.bind(engine)
  let calls = 0
  ;(engine as any).evaluate = (...args: unknown[]) => {
    calls++
    return evaluate(...args)
  }
  engine.onTick(tick('c', 99.9, 100), 1001)
  t.equal(calls, 8, '2 × (5 − 1) pairs, not 20')
})

t.test('the synthetic feed is deterministic and the engine finds what it planted', async (t) => {
  const run = (seed: number) => {
    const feed = new SyntheticFeed({ seed, symbols: 5, exchanges: 5, dislocationRate: 0.002 })
    const engine = new ArbitrageEngine({ ...options, fees: {} })
    const opened: OpportunityEvent[] = []
    let now = 1_700_000_000_000
    for (let i = 0; i < 50_000; i++) {
      now += 1 // 1,000 ticks/s
      for (const e of engine.onTick(feed.next(now), now) ?? []) if (e.status === 'open') opened.push(e)
    }
    return { feed, opened }
  }
  const one = run(7)
  const again = run(7)
  t.same(again.feed.planted, one.feed.planted, 'same seed, same market')
  t.same(
    again.opened.map((e) => e.id),
    one.opened.map((e) => e.id)
  )
  t.ok(one.feed.planted.length >= 50, `${one.feed.planted.length} dislocations planted`)
  const explained = (e: OpportunityEvent) =>
    one.feed.planted.some(
      (d) =>
        d.symbol === e.symbol &&
        d.from <= e.detectedAt &&
        e.detectedAt <= d.until + 1000 &&
        ((d.bps < 0 && e.buy.exchange === d.exchange) || (d.bps > 0 && e.sell.exchange === d.exchange))
    )
  t.equal(one.opened.filter((e) => !explained(e)).length, 0, 'every opportunity comes from a planted dislocation')
  // A dislocation the engine could see: it lasted long enough for ticks of that exchange and another.
  const found = one.feed.planted.filter((d) =>
    one.opened.some(
      (e) => e.symbol === d.symbol && e.detectedAt >= d.from && e.detectedAt <= d.until && (e.buy.exchange === d.exchange || e.sell.exchange === d.exchange)
    )
  )
  t.ok(found.length / one.feed.planted.length > 0.9, `${found.length} of ${one.feed.planted.length} planted dislocations found`)
  t.not(run(8).feed.planted[0]?.from, one.feed.planted[0]?.from, 'another seed, another market')
})

t.test('end to end: ticks published over WebSocket, scored opportunities received over WebSocket', async (t) => {
  const { url, app } = await startServer(t, { arbitrage: true })
  const watcher = await TestClient.open(url)
  t.match(await watcher.request({ type: 'subscribe', topic: 'opportunities.*' }), { type: 'ack' })
  const publisher = await TestClient.open(url)
  const now = Date.now()
  t.match(await publisher.request({ type: 'publish', id: 1, topic: 'ticker.a.BTC-USDT', data: tick('a', 99.9, 100, now) }), { type: 'ack' })
  t.match(await publisher.request({ type: 'publish', id: 2, topic: 'ticker.b.BTC-USDT', data: tick('b', 100.3, 100.4, now) }), { type: 'ack' })
  const e = await watcher.next()
  t.match(e, { type: 'event', topic: 'opportunities.BTC-USDT', seq: 1 })
  t.match(e.data, {
    status: 'open',
    buy: { exchange: 'a', price: 100, ts: now },
    sell: { exchange: 'b', price: 100.3, ts: now },
    netBps: 9.97,
    model: { name: 'opportunity-logistic', version: '1.0.0' }
  })
  t.ok(e.data.score > 0 && e.data.score < 1, `scored ${e.data.score}`)
  t.ok(e.data.buy.receivedAt >= now && e.data.detectedAt >= e.data.sell.receivedAt, 'server receive and detection times')
  t.match((await publisher.request({ type: 'request', id: 3, method: 'arbitrage' })).result, { ticks: 2, opened: 1 })
  t.match(
    await publisher.request({ type: 'publish', id: 4, topic: 'ticker.b.BTC-USDT', data: 'nonsense' }),
    { type: 'ack' },
    "a bad tick is the engine's to count, not a crash"
  )
  t.match(app.liveArbitrage.counters, { invalid: 1 })
  watcher.close()
  publisher.close()
})
