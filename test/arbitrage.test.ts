// The arbitrage engine: exact arithmetic, quote hygiene, lifecycle, the synthetic feed, end to end.
import t from 'tap'
import { ArbitrageEngine, floorToLot, spread, HEALTH_FORGET_MS, type BookData, type OpportunityEvent, type Tick } from '../src/market/arbitrage.ts'
import { SyntheticFeed } from '../src/market/synthetic.ts'
import { readFileSync } from 'node:fs'
import { InstrumentRegistry } from '../src/market/instruments.ts'
import { createConnection } from '../src/market/venues/index.ts'
import { liveClockWith } from '../src/market/clock.ts'
import { topicSink } from '../src/market/events.ts'
import { okxInstruments } from '../src/market/venues/okx.ts'
import { fakeConnect } from './fake-venue.ts'
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

const r = (x: number, digits = 9) => Math.round(x * 10 ** digits) / 10 ** digits
const quote = (ex: string, symbol: string, bid: number, ask: number, sizes: [number, number] = [1, 1], ts = 1000): Tick => ({
  exchange: ex,
  symbol,
  bid,
  ask,
  bidSize: sizes[0],
  askSize: sizes[1],
  ts
})
const book = (bids: [number, number][], asks: [number, number][], extra: Partial<BookData> = {}): BookData => ({ bids, asks, exchangeTime: 1000, ...extra })
const zeroFees = { minNetBps: 5, maxTickAgeMs: 1000, updateBps: 0.5, fees: {}, defaultFee: 0 }

t.test('an opportunity opens with exact figures and provenance', async (t) => {
  const engine = new ArbitrageEngine(options)
  t.equal(engine.onTick(tick('a', 99.9, 100, 990, [4, 3]), 1000), null)
  const events = engine.onTick(tick('b', 100.3, 100.4, 995, [2, 5]), 1005)!
  t.equal(events.length, 1)
  const e = events[0]
  t.match(e, {
    status: 'open',
    symbol: 'BTC-USD', // BTC spot in the USD,USDT,USDC group
    currency: 'USDT',
    buy: {
      exchange: 'a',
      symbol: 'BTC-USDT',
      price: 100,
      size: 3,
      ts: 990,
      receivedAt: 1000,
      receiveAgeMs: 5,
      clockOffsetMs: 10,
      exchangeAgeMs: 5,
      fee: 0.001
    },
    sell: { exchange: 'b', symbol: 'BTC-USDT', price: 100.3, size: 2, ts: 995, receivedAt: 1005, receiveAgeMs: 0, clockOffsetMs: 10, exchangeAgeMs: 0 },
    size: 2,
    maxSize: 2,
    conversion: null,
    detectedAt: 1005,
    maxTickAgeMs: 5
  })
  t.equal(r(e.grossBps), 30)
  t.equal(r(e.netBps), 9.97)
  t.equal(r(e.profit), 0.1994, 'full precision, no rounding to 4 decimals')
  t.equal(r(e.maxProfit), 0.1994, 'a tick is its top of book: maxSize is the top size')
})

t.test('three venues: one opportunity, A→C, no level counted twice', async (t) => {
  // A ask 100 × 1, B bid 100.5, C bid 100.8: A→B, A→C and B→C were all published before (1.5 of edge advertised).
  const engine = new ArbitrageEngine(zeroFees)
  engine.onTick(quote('A', 'X-USD', 99, 100, [1, 1]), 1000)
  engine.onTick(quote('B', 'X-USD', 100.5, 101, [1, 1]), 1000)
  const events = engine.onTick(quote('C', 'X-USD', 100.8, 101.5, [1, 1]), 1000)!
  const open = events.filter((e) => e.status !== 'closed')
  t.equal(open.length, 1, 'one opportunity')
  t.match(open[0], { buy: { exchange: 'A', price: 100 }, sell: { exchange: 'C', price: 100.8 }, size: 1 })
  t.equal(r(open[0].profit), 0.8, '0.8 of gross edge, all there is')
  t.equal(r(open[0].grossBps), 80)

  // With books: A's level of 1 serves C's 0.4 first, then B takes the 0.6 left: 1 in all, never more.
  const books = new ArbitrageEngine(zeroFees)
  books.onBook(book([[99, 1]], [[100, 1]]), 1000, 'A', 'X-USD')
  books.onBook(book([[100.5, 5]], [[101, 1]]), 1000, 'B', 'X-USD')
  const found = books.onBook(book([[100.8, 0.4]], [[101.5, 1]]), 1000, 'C', 'X-USD')!
  const legs = found.filter((e) => e.status !== 'closed').map((e) => [e.buy.exchange, e.sell.exchange, r(e.maxSize), r(e.maxProfit)])
  t.same(legs.sort(), [
    ['A', 'B', 0.6, 0.3],
    ['A', 'C', 0.4, 0.32]
  ])
})

t.test('a venue switch keeps the id: an update names the new legs', async (t) => {
  const engine = new ArbitrageEngine(zeroFees)
  engine.onTick(quote('A', 'X-USD', 99, 100), 1000)
  const [opened] = engine.onTick(quote('B', 'X-USD', 100.5, 101), 1000)!
  t.match(opened, { status: 'open', sell: { exchange: 'B' } })
  const [moved] = engine.onTick(quote('C', 'X-USD', 100.8, 101.5), 1001)!
  t.match(moved, { status: 'update', id: opened.id, buy: { exchange: 'A' }, sell: { exchange: 'C', price: 100.8 } })
  const [back] = engine.onTick(quote('C', 'X-USD', 99.5, 101.5), 1002)!
  t.match(back, { status: 'update', id: opened.id, sell: { exchange: 'B', price: 100.5 } })
  const [closed] = engine.onTick(quote('B', 'X-USD', 99.5, 101), 1003)!
  t.match(closed, { status: 'closed', id: opened.id, reason: 'spread', lifetimeMs: 3 })
})

t.test('sized from the books: walk, maxSize and the ladder by hand', async (t) => {
  const engine = new ArbitrageEngine({ ...options, fees: {}, defaultFee: 0.001, sizeLadder: [50, 150, 1000] })
  engine.onBook(
    book(
      [[99.9, 1]],
      [
        [100, 1],
        [100.1, 2]
      ]
    ),
    1000,
    'a',
    'BTC-USDT'
  )
  const [e] = engine.onBook(
    book(
      [
        [100.6, 1.5],
        [100.5, 10]
      ],
      [[100.7, 1]]
    ),
    1000,
    'b',
    'BTC-USDT'
  )!
  // Marginal nets: 100 vs 100.6 is 39.94 bps (1), 100.1 vs 100.6 29.90 bps (0.5), 100.1 vs 100.5 19.92 bps (1.5).
  const unit = (a: number, b: number) => b * 0.999 - a * 1.001
  t.equal(r(e.netBps), 39.94)
  t.equal(e.size, 1)
  t.equal(e.maxSize, 3, 'every level of a above 5 bps against b')
  t.equal(r(e.maxProfit), r(1 * unit(100, 100.6) + 0.5 * unit(100.1, 100.6) + 1.5 * unit(100.1, 100.5)))
  const q = 50 / 100.1
  t.same(
    e.ladder.map((s) => [s.notional, r(s.filled), r(s.size), r(s.profit), r(s.netBps, 6)]),
    [
      [50, 50, 0.5, r(0.5 * unit(100, 100.6)), r(((0.5 * unit(100, 100.6)) / 50) * 1e4, 6)],
      [150, 150, r(1 + q), r(unit(100, 100.6) + q * unit(100.1, 100.6)), r(((unit(100, 100.6) + q * unit(100.1, 100.6)) / 150) * 1e4, 6)],
      [1000, r(300.2), 3, r(e.maxProfit), r((e.maxProfit / 300.2) * 1e4, 6)] // the books hold 300.2 of it
    ]
  )
})

t.test('maxSize in lots of both venues, and none under a minimum notional', async (t) => {
  const engine = new ArbitrageEngine(zeroFees)
  engine.onBook(book([[99, 5]], [[100, 1.2345]], { lotSize: 0.001 }), 1000, 'a', 'X-USD')
  const [e] = engine.onBook(book([[101, 5]], [[102, 5]], { lotSize: 0.01 }), 1000, 'b', 'X-USD')!
  t.equal(e.maxSize, 1.23, '1.2345 in lots of 0.01 and 0.001')
  const small = new ArbitrageEngine(zeroFees)
  small.onBook(book([[99, 5]], [[100, 1.2345]], { lotSize: 0.001, minNotional: 200 }), 1000, 'a', 'X-USD')
  const [f] = small.onBook(book([[101, 5]], [[102, 5]]), 1000, 'b', 'X-USD')!
  t.equal(f.maxSize, 0, '123 of notional is under a’s minimum of 200')
})

t.test('quote currencies: USDT against USD through a live USDT-USD book, its spread and fee in the net', async (t) => {
  const engine = new ArbitrageEngine({ ...zeroFees, fees: { kraken: 0.002 } })
  engine.onTick(quote('binance', 'BTC-USDT', 99.9, 100), 1000)
  t.equal(engine.onTick(quote('coinbase', 'BTC-USD', 100.6, 100.7), 1000), null, 'no live rate: nothing, never an assumed 1:1')
  engine.onTick(quote('kraken', 'USDT-USD', 0.999, 0.9992, [1e6, 1e6]), 1000)
  const [e] = engine.onTick(quote('coinbase', 'BTC-USD', 100.6, 100.7), 1001)!
  // USD proceeds buy back USDT at kraken's ask, its fee on top: 1 / (0.9992 × 1.002) USDT per USD.
  const rate = 1 / (0.9992 * 1.002)
  const mid = 2 / (0.999 + 0.9992)
  t.match(e, {
    symbol: 'BTC-USD',
    currency: 'USDT',
    buy: { exchange: 'binance', symbol: 'BTC-USDT' },
    sell: { exchange: 'coinbase', symbol: 'BTC-USD' },
    conversion: { via: [{ exchange: 'kraken', symbol: 'USDT-USD', side: 'ask', price: 0.9992, fee: 0.002 }] }
  })
  t.equal(r(e.conversion!.rate), r(rate))
  t.equal(r(e.conversion!.midRate), r(mid))
  t.equal(r(e.netBps), r(((100.6 * rate - 100) / 100) * 1e4))
  t.equal(r(e.grossBps), r(((100.6 * mid - 100) / 100) * 1e4))
})

t.test('a perpetual never pairs with spot; it pairs with the same perpetual elsewhere', async (t) => {
  const engine = new ArbitrageEngine(zeroFees)
  engine.onTick(quote('okx', 'BTC-USDT', 99, 100), 1000)
  t.equal(engine.onTick(quote('binanceusdm', 'BTC-USDT-PERP', 101, 102), 1000), null, 'basis is not arbitrage')
  const [e] = engine.onTick(quote('okx', 'BTC-USDT-PERP', 99.5, 100.5), 1000)!
  t.match(e, { symbol: 'BTC-USDT-PERP', buy: { exchange: 'okx', symbol: 'BTC-USDT-PERP' }, sell: { exchange: 'binanceusdm' } })
})

t.test('time: each venue’s clock offset corrects its exchange age, and receive age bounds both', async (t) => {
  // A venue 1.5 s behind: by exchange time alone nothing of it was ever fresh.
  const behind = new ArbitrageEngine(zeroFees)
  behind.onTick(quote('slow', 'X-USD', 99, 100, [1, 1], 10_000 - 1500), 10_000)
  const [e] = behind.onTick(quote('fast', 'X-USD', 101, 102, [1, 1], 10_000), 10_000)!
  t.match(e, { status: 'open', buy: { exchange: 'slow', clockOffsetMs: 1500, exchangeAgeMs: 0, receiveAgeMs: 0 } })
  // A venue 2 s ahead: its quote dies by receive age, not 3 s later.
  const ahead = new ArbitrageEngine(zeroFees)
  ahead.onTick(quote('early', 'X-USD', 99, 100, [1, 1], 10_000 + 2000), 10_000)
  const [o] = ahead.onTick(quote('fast', 'X-USD', 101, 102, [1, 1], 10_000), 10_000)!
  t.match(o, { buy: { exchange: 'early', clockOffsetMs: -2000, exchangeAgeMs: 0 } })
  t.equal(ahead.sweep(11_000), null, '1000 ms: still fresh')
  t.match(ahead.sweep(11_001), [{ status: 'closed', reason: 'stale', id: o.id }])
})

t.test('a venue degraded or down takes part in nothing; open opportunities using it close with reason venue', async (t) => {
  const engine = new ArbitrageEngine(zeroFees)
  engine.onVenue('A', 'up', 1000)
  engine.onTick(quote('A', 'X-USD', 99, 100), 1000)
  const [e] = engine.onTick(quote('B', 'X-USD', 100.8, 101), 1000)!
  t.match(engine.onVenue('A', 'down', 1001), [{ status: 'closed', id: e.id, reason: 'venue' }])
  t.equal(engine.onTick(quote('A', 'X-USD', 99, 100), 1002), null, 'down: no new one')
  engine.onVenue('A', 'degraded', 1003)
  t.equal(engine.onTick(quote('A', 'X-USD', 99, 100), 1004), null, 'degraded: none either')
  t.match(engine.onVenue('A', 'up', 1005), [{ status: 'open', buy: { exchange: 'A' } }])
  t.match(engine.onTick(quote('A', 'X-USD', 99, 100, [1, 1], 7000), 7000), [{ status: 'closed', reason: 'venue' }], 'no health for 5 s counts as down')
})

t.test('a venue that stops reporting is forgotten after 30 s: other publishers of its name count again', async (t) => {
  // A feed reported venue A down, then its process stopped; a desk publishes ticks named A.
  const engine = new ArbitrageEngine(zeroFees)
  engine.onVenue('A', 'down', 1000)
  engine.onTick(quote('B', 'X-USD', 100.8, 101, [1, 1], 2000), 2000)
  t.equal(engine.onTick(quote('A', 'X-USD', 99, 100, [1, 1], 2000), 2000), null, 'held back by the last health A reported')
  t.equal(engine.sweep(1000 + HEALTH_FORGET_MS), null, 'at 30 s the health still gates (its quotes are stale by now anyway)')
  t.equal(engine.onTick(quote('A', 'X-USD', 99, 100, [1, 1], 31_000), 31_000), null)
  engine.onTick(quote('B', 'X-USD', 100.8, 101, [1, 1], 31_000), 31_000)
  t.match(engine.sweep(1001 + HEALTH_FORGET_MS), [{ status: 'open', buy: { exchange: 'A' }, sell: { exchange: 'B' } }], 'forgotten: the quotes open one')
  t.match(engine.onVenue('A', 'down', 31_500), [{ status: 'closed', reason: 'venue' }], 'a feed reporting again gates again')
})

t.test('venues says when a health stops gating quotes', async (t) => {
  const { app } = await startServer(t)
  await app.live.publish('venue.A', { exchange: 'A', state: 'down' })
  const now = Date.now()
  t.match(app.liveVenues.list(now), [{ exchange: 'A', state: 'down', stale: false, gatesQuotes: true }])
  t.match(app.liveVenues.list(now + 6000), [{ exchange: 'A', state: 'down', stale: true, gatesQuotes: true }])
  t.match(app.liveVenues.list(now + HEALTH_FORGET_MS + 1000), [{ exchange: 'A', state: 'down', stale: true, gatesQuotes: false }])
})

t.test('an ETH-BTC profit of 0.00003 BTC is shown as such', async (t) => {
  const engine = new ArbitrageEngine(zeroFees)
  engine.onTick(quote('a', 'ETH-BTC', 0.0499, 0.05), 1000)
  const [e] = engine.onTick(quote('b', 'ETH-BTC', 0.05003, 0.0501), 1000)!
  t.match(e, { symbol: 'ETH-BTC', currency: 'BTC' })
  t.equal(r(e.profit, 12), 0.00003)
  t.equal(r(e.netBps), 6)
})

t.test('fees per venue and kind; BALANCES marks what the desk can do now', async (t) => {
  const engine = new ArbitrageEngine({
    ...zeroFees,
    fees: { 'a:perp': 0.0004, a: 0.001 },
    balances: { a: { USDT: 50 }, b: { BTC: 0.3 } }
  })
  engine.onTick(quote('a', 'BTC-USDT-PERP', 99, 100), 1000)
  const [perp] = engine.onTick(quote('b', 'BTC-USDT-PERP', 101, 102), 1000)!
  t.equal(perp.buy.fee, 0.0004)
  t.match(perp, { actionable: true })
  t.equal(r(perp.actionableSize!), r(Math.min(1, 50 / (100 * 1.0004), 0.3)), 'the USDT held on a buys 0.4998; b holds 0.3 BTC to sell')
  engine.onTick(quote('a', 'BTC-USDT', 99, 100), 1000)
  const [spot] = engine.onTick(quote('b', 'BTC-USDT', 101, 102), 1000)!
  t.equal(spot.buy.fee, 0.001, 'spot falls back to the exchange’s fee')
})

t.test('fees that eat the spread, stale and crossed quotes make nothing and are counted', async (t) => {
  // Invalid ticks and books are refused where they enter, before the engine: test/market-data.test.ts.
  const engine = new ArbitrageEngine(options)
  engine.onTick(tick('a', 99.9, 100), 1000)
  t.equal(engine.onTick(tick('pricey', 100.3, 100.4), 1000), null, '9.97 bps gross of fees with the pricey venue is −0.03 bps net')
  t.equal(engine.onTick(tick('b', 100.3, 100.4, 1000), 2001), null, 'b quote received, then 1001 ms later')
  t.equal(engine.onTick(tick('b', 100.5, 100.3), 1000), null, 'crossed: bid >= ask')
  t.equal(engine.counters.crossed, 1)
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
    'so is maxSize going 2 -> 3'
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
  t.match(engine.counters, { ticks: 8, opened: 2, updated: 2, closed: 2 })
})

t.test('recorded OKX messages through the connector and the engine: the opportunity computed by hand from the real book', async (t) => {
  const dir = new URL('./fixtures/venues/okx/', import.meta.url)
  const registry = new InstrumentRegistry().add(
    'okx',
    okxInstruments(...['SPOT', 'SWAP', 'FUTURES'].map((k) => JSON.parse(readFileSync(new URL(`instruments-${k}.json`, dir), 'utf8'))))
  )
  const session = readFileSync(new URL('stream.jsonl', dir), 'utf8').trim().split('\n')
  const engine = new ArbitrageEngine(zeroFees)
  // A second after the recording's last stamp (a quote stamped ahead of the server's clock is refused).
  const now = 1_652_459_237_119
  const { connect, sockets } = fakeConnect()
  const feed = createConnection('okx', {
    connect,
    instruments: [registry.topic('okx', 'BTC-USDT')!],
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: 20,
    clock: liveClockWith(() => now),
    // The server's path: a book event's exchange and symbol are its topic's.
    sink: topicSink((topic, data) => {
      const [kind, exchange, symbol] = topic.split('.')
      if (kind === 'book') engine.onBook(data as BookData, now, exchange, symbol)
    })
  })
  feed.start()
  t.teardown(() => feed.stop())
  for (const line of session) sockets[0].deliver(line)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(feed.counters.checksumFailures, 0)

  // The same book by hand: the snapshot, then each update's levels (size 0 removes one).
  const asks = new Map<string, number>()
  for (const line of session) {
    const m = JSON.parse(line)
    if (m.arg?.channel !== 'books' || m.arg.instId !== 'BTC-USDT' || !m.action) continue
    if (m.action === 'snapshot') asks.clear()
    for (const [p, size] of m.data[0].asks) Number(size) === 0 ? asks.delete(p) : asks.set(p, Number(size))
  }
  const levels = [...asks].map(([p, size]) => [Number(p), size]).sort((a, b) => a[0] - b[0])
  // A desk's venue bids 20 bps over OKX's best ask for 0.5 BTC, a second later by exchange time.
  const bid = levels[0][0] * 1.002
  // The engine's clock for OKX is the recording's: the desk quote and the book are as fresh.
  const [e] = engine.onTick(quote('desk', 'BTC-USDT', bid, bid * 1.001, [0.5, 1], now), now)!
  let left = 0.5
  let size = 0
  let profit = 0
  for (const [price, available] of levels) {
    if (left <= 0 || ((bid - price) / price) * 1e4 < 5) break
    const q = Math.min(left, available)
    size += q
    profit += q * (bid - price)
    left -= q
  }
  t.match(e, { status: 'open', buy: { exchange: 'okx', symbol: 'BTC-USDT', price: levels[0][0], size: levels[0][1] }, sell: { exchange: 'desk' } })
  t.equal(r(e.maxSize), r(size), `walked ${size} BTC of OKX's recorded asks`)
  t.equal(r(e.maxProfit), r(profit))
  t.ok(size > levels[0][1], 'deeper than the top level: the book, not the top of book')
})

t.test('the synthetic feed is deterministic and the engine finds what it planted', async (t) => {
  const run = (seed: number) => {
    const feed = new SyntheticFeed({ seed, symbols: 5, exchanges: 5, dislocationRate: 0.002 })
    const engine = new ArbitrageEngine({ ...options, fees: {}, quoteGroups: [] })
    const reported: OpportunityEvent[] = []
    let now = 1_700_000_000_000
    for (let i = 0; i < 50_000; i++) {
      now += 1 // 1,000 ticks/s
      for (const e of engine.onTick(feed.next(now), now) ?? []) if (e.status !== 'closed') reported.push(e) // an update may name new legs
    }
    return { feed, reported }
  }
  const one = run(7)
  const again = run(7)
  t.same(again.feed.planted, one.feed.planted, 'same seed, same market')
  t.same(
    again.reported.map((e) => e.id),
    one.reported.map((e) => e.id)
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
  t.equal(one.reported.filter((e) => !explained(e)).length, 0, 'every opportunity comes from a planted dislocation')
  // A dislocation the engine could see: it lasted long enough for ticks of that exchange and another.
  const found = one.feed.planted.filter((d) =>
    one.reported.some(
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
  t.match(e, { type: 'event', topic: 'opportunities.BTC-USD', seq: 1 })
  t.match(e.data, {
    status: 'open',
    buy: { exchange: 'a', price: 100, ts: now },
    sell: { exchange: 'b', price: 100.3, ts: now },
    models: { scorer: { version: '1', arm: 'serving' } }
  })
  t.equal(r(e.data.netBps), 9.97)
  t.ok(e.data.score > 0 && e.data.score < 1, `scored ${e.data.score}`)
  t.ok(e.data.buy.receivedAt >= now && e.data.detectedAt >= e.data.sell.receivedAt, 'server receive and detection times')
  t.match((await publisher.request({ type: 'request', id: 3, method: 'arbitrage' })).result, { ticks: 2, opened: 1 })
  t.same(
    await publisher.request({ type: 'publish', id: 4, topic: 'ticker.b.BTC-USDT', data: 'nonsense' }),
    { type: 'error', id: 4, code: 'bad_request', message: '"ticker.b.BTC-USDT": data must be an object' },
    'a bad tick is refused where it enters: the engine never sees it'
  )
  t.match(app.liveArbitrage.counters, { ticks: 2 })
  watcher.close()
  publisher.close()
})

t.test('hostile venue and conversion updates cost what their own sources cost, not every class', async (t) => {
  // The engine, counting its class evaluations.
  let calls = 0
  const engine = new (class extends ArbitrageEngine {
    protected override evaluate(...args: Parameters<ArbitrageEngine['evaluate']>) {
      calls++
      return super.evaluate(...args)
    }
  })(zeroFees)
  // 500 classes quoted by two venues, each with an open opportunity; one more venue with one class.
  for (let i = 0; i < 500; i++) {
    engine.onTick(quote('a', `S${i}-EUR`, 99, 100), 1000)
    engine.onTick(quote('b', `S${i}-EUR`, 101, 102), 1000)
  }
  engine.onTick(quote('x', 'X-EUR', 99, 100), 1000)
  calls = 0
  for (let i = 0; i < 100; i++) engine.onVenue('x', i % 2 === 0 ? 'down' : 'up', 1000 + i)
  t.equal(calls, 100, 'a venue flapping 100 times re-evaluates its one class 100 times, not 500 classes each time')
  calls = 0
  for (let i = 0; i < 100; i++) engine.onTick(quote('kraken', 'USDT-USD', 0.999, 1.001, [1e6, 1e6], 1000), 1000 + i)
  t.equal(calls, 100, 'a conversion book moves only the classes that convert through it (none here): its own class only')
  engine.sweep(1000 + 61_000)
  t.same([engine.classes.size, engine.instruments.size, engine.venues.size], [0, 0, 0], 'after a minute of nothing, nothing held: classes, symbols, venues')
})

t.test('floorToLot: float error in a size summed from levels never costs a lot; a real part of one is dropped', async (t) => {
  t.equal(0.7 + 0.1 + 0.1 + 0.1, 0.9999999999999999, 'a sum that falls short of 1 by float error')
  t.equal(floorToLot(0.7 + 0.1 + 0.1 + 0.1, 1e-8), 1)
  t.equal(floorToLot(1.9999999999999996, 1e-8), 2, '2e8 lots of 1e-8, not one fewer')
  t.equal(floorToLot(1.999999985, 1e-8), 199999998 * 1e-8, 'half a lot is not a lot')
  t.equal(floorToLot(6.9999, 1), 6)
  t.equal(floorToLot(0.25, 0), 0.25, 'no lot size: the size as it is')
})
