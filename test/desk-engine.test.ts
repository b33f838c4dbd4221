// Issue #31, the engine's side: what a desk can really do. Minimum order sizes (per venue, from the
// recorded metadata), actionableSize through the buy leg's depth, and a clock-offset estimate one
// bad timestamp cannot move. Exact expected values, worked by hand in the comments.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ArbitrageEngine, type BookData, type EngineOptions, type VenueReport } from '../src/market/arbitrage.ts'
import { CLOCK_OUTLIER_MS, ClockOffset } from '../src/market/clock-offset.ts'
import { topicSink } from '../src/market/events.ts'
import { type Instrument, InstrumentRegistry } from '../src/market/instruments.ts'
import type { ConnectionOptions } from '../src/market/connection.ts'
import { createConnection } from '../src/market/venues/index.ts'
import { liveClockWith } from '../src/market/clock.ts'
import { binanceCoinm, binanceSpot } from '../src/market/venues/binance.ts'
import { coinbaseProducts } from '../src/market/venues/coinbase.ts'
import { krakenAssetPairs } from '../src/market/venues/kraken.ts'
import { okxInstruments } from '../src/market/venues/okx.ts'
import { fakeConnect } from './fake-venue.ts'

const DIR = fileURLToPath(new URL('./fixtures/venues/', import.meta.url))
const json = (path: string) => JSON.parse(readFileSync(DIR + path, 'utf8'))

const zero: EngineOptions = { minNetBps: 0, maxTickAgeMs: 1000, updateBps: 0.5, fees: {}, defaultFee: 0 }
/** Equal to 1e-12 relative: a sum of levels in another order differs in its last bit. */
const near = (t: Test, actual: number, expected: number) => t.ok(Math.abs(actual - expected) <= 1e-12 * Math.abs(expected), `${actual} ≈ ${expected}`)
const book = (bids: [number, number][], asks: [number, number][], extra: Partial<BookData> = {}): BookData => ({ bids, asks, exchangeTime: null, ...extra })

t.test('minimum order sizes from each venue’s recorded metadata: an opportunity under either leg’s minimum is not published', async (t) => {
  const registry = new InstrumentRegistry()
    .add('binance', binanceSpot(json('binance/exchangeInfo.json')))
    .add('coinbase', coinbaseProducts(json('coinbase/exchange-products.json')))
    .add('kraken', krakenAssetPairs(json('kraken/AssetPairs.json')))
    .add('okx', okxInstruments(json('okx/instruments-SPOT.json')))
  // Kraken ordermin 0.0002, Coinbase base_min_size 0.0001, OKX minSz 0.00001, Binance LOT_SIZE.minQty 0.00001.
  for (const [exchange, symbol, minimum] of [
    ['kraken', 'BTC-USD', 0.0002],
    ['coinbase', 'BTC-USD', 0.0001],
    ['okx', 'BTC-USDT', 0.00001],
    ['binance', 'BTC-USDT', 0.00001]
  ] as const) {
    const i = registry.topic(exchange, symbol)!
    t.equal(i.minSize, minimum, `${exchange} ${symbol}: ${minimum}`)
    for (const [size, published] of [
      [minimum * 0.75, false],
      [minimum, true]
    ] as const) {
      const engine = new ArbitrageEngine(zero)
      // The venue sells `size` at 100; another, with no minimum, bids 101 for 1.
      engine.onBook(book([[99, 1]], [[100, size]], { minSize: i.minSize, lotSize: i.lotSize }), 1000, exchange, symbol)
      const out = engine.onBook(book([[101, 1]], [[102, 1]]), 1000, 'other', symbol)
      if (published) t.match(out, [{ status: 'open', maxSize: size }], `${exchange}: ${size} is published`)
      else t.equal(out, null, `${exchange}: ${size} (under ${minimum}) is not published`)
    }
  }
})

t.test('the ladder marks steps under either leg’s minimum size', async (t) => {
  const engine = new ArbitrageEngine({ ...zero, sizeLadder: [0.01, 0.03, 1] })
  engine.onBook(book([[99, 1]], [[100, 0.00025]], { minSize: 0.0002 }), 1000, 'kraken', 'BTC-USD')
  const [e] = engine.onBook(book([[101, 1]], [[102, 1]]), 1000, 'other', 'BTC-USD')!
  // 0.01 USD buys 0.0001 BTC (under 0.0002), 0.03 buys 0.0003 of which 0.00025 is there, 1 the same.
  t.same(
    e.ladder.map((s) => [s.notional, s.size, s.belowMinSize]),
    [
      [0.01, 0.0001, true],
      [0.03, 0.00025, false],
      [1, 0.00025, false]
    ]
  )
})

t.test('actionableSize walks the buy leg’s levels with the quote held, fees in, capped by the base held where it sells', async (t) => {
  const engine = new ArbitrageEngine({ ...zero, fees: { a: 0.001 }, balances: { a: { USD: 300 }, b: { BTC: 10 } } })
  engine.onBook(
    book(
      [[99, 1]],
      [
        [100, 1],
        [110, 5]
      ]
    ),
    1000,
    'a',
    'BTC-USD'
  )
  const [e] = engine.onBook(book([[120, 10]], [[121, 10]]), 1000, 'b', 'BTC-USD')!
  t.equal(e.maxSize, 6, 'both ask levels are worth taking against 120')
  // 300 USD with a 0.1% fee buys a notional of 300 / 1.001 = 299.7002997...: 1 at 100, then
  // 199.7002997... / 110 at 110. The old top-of-book figure, 300 / (100 × 1.001) = 2.997, would cost 320.
  t.equal(e.actionableSize, 1 + (300 / 1.001 - 100) / 110)
  t.equal(Math.round(e.actionableSize! * 1e9) / 1e9, 2.81545727)
  t.equal(e.actionable, true)

  const capped = new ArbitrageEngine({ ...zero, balances: { a: { USD: 1e6 }, b: { BTC: 0.5 } } })
  capped.onBook(book([[99, 1]], [[100, 1]]), 1000, 'a', 'BTC-USD')
  const [c] = capped.onBook(book([[120, 10]], [[121, 10]]), 1000, 'b', 'BTC-USD')!
  t.equal(c.actionableSize, 0.5, 'the base held on the sell venue caps it')
})

t.test('clock offset: one quote stamped 60 s ahead is refused and counted; fresh quotes take part at once', async (t) => {
  const engine = new ArbitrageEngine(zero)
  // Venue a delivers 50 ms after its stamps.
  for (let now = 1000; now < 1200; now += 10) engine.onBook(book([[99, 1]], [[100, 1]], { exchangeTime: now - 50 }), now, 'a', 'BTC-USD')
  t.equal(engine.onBook(book([[99, 1]], [[100, 1]], { exchangeTime: 1200 + 60_000 }), 1200, 'a', 'BTC-USD'), null)
  t.equal(engine.counters.ahead, 1)
  engine.onBook(book([[99, 1]], [[100, 1]], { exchangeTime: 1160 }), 1210, 'a', 'BTC-USD')
  const [e] = engine.onBook(book([[101, 1]], [[102, 1]]), 1210, 'b', 'BTC-USD')!
  t.match(e, { status: 'open', buy: { exchange: 'a', clockOffsetMs: 50, exchangeAgeMs: 0 } })

  // Within the bound, 3 s ahead: an outlier, not learned from; the next quote takes part.
  engine.onBook(book([[99, 1]], [[100, 1]], { exchangeTime: 1220 + 3000 }), 1220, 'a', 'BTC-USD')
  t.equal(engine.counters.clockOutliers, 1)
  const out = engine.onBook(book([[99, 1]], [[100.5, 1]], { exchangeTime: 1180 }), 1230, 'a', 'BTC-USD')
  t.match(out, [{ status: 'update', buy: { price: 100.5, clockOffsetMs: 50, exchangeAgeMs: 0 } }])
})

t.test('ClockOffset: a low percentile over the window; outliers far below the median take no part', async (t) => {
  const first = new ClockOffset()
  first.sample(-3000) // the very first sample is the bad one
  for (let i = 0; i < 40; i++) first.sample(50 + (i % 10))
  t.equal(first.offset, 50, 'once the window has a median, the bad first sample is left out of the estimate')
  // Recomputed every 16 samples: at the 32nd the window's median was 54 (sorted: -3000, 50 ×4, 51..53 ×3, 54 ...).
  t.equal(first.latency(), 54 - 50)

  const window = new ClockOffset()
  for (let i = 0; i < 256; i++) window.sample(100 + i) // 100 .. 355
  // The 5th percentile of 256: index floor(255 × 0.05) = 12, so 112, whatever one low sample says.
  t.equal(window.offset, 112)
  t.equal(window.sample(100 - CLOCK_OUTLIER_MS - 1), false)
  t.equal(window.outliers, 1)
  t.equal(window.offset, 112)

  // A clock that really moved (every sample 5 s lower) is taken after 32 in a row.
  const moved = new ClockOffset()
  for (let i = 0; i < 20; i++) moved.sample(100)
  for (let i = 0; i < 31; i++) t.equal(moved.sample(-4900), false)
  t.equal(moved.sample(-4900), true)
  t.equal(moved.offset, -4900)
})

t.test('ClockOffset keeps its window sorted as it moves: after every sample, the estimate a fresh sort of the window gives', async (t) => {
  // The reference: the window as a list, sorted afresh at each recompute (every sample up to 64, then every 64th).
  const window: number[] = []
  let at = 0
  let since = 0
  let inARow = 0
  let median: number | null = null
  let offset: number | null = null
  const reference = (delta: number): boolean => {
    if (median !== null && delta < median - CLOCK_OUTLIER_MS) {
      if (++inARow < 32) return false
      window.length = 0
      at = 0
    }
    inARow = 0
    if (window.length < 256) window.push(delta)
    else window[at] = delta
    at = (at + 1) % 256
    if (window.length <= 64 || ++since >= 64) {
      since = 0
      const sorted = [...window].sort((a, b) => a - b)
      median = sorted[sorted.length >> 1]
      let first = 0
      while (sorted[first] < median - CLOCK_OUTLIER_MS) first++
      offset = sorted[first + Math.floor((sorted.length - 1 - first) * 0.05)]
    }
    return true
  }
  const clock = new ClockOffset()
  let seed = 5
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  let base = 200
  let differ = 0
  for (let k = 0; k < 5000; k++) {
    if (k % 1500 === 1499) base -= 5000 // the venue's clock moves: outliers, then the window starts again
    const delta = random() < 0.01 ? base - 3000 : base + Math.floor(random() * 40) // ties, and single outliers
    if (
      clock.sample(delta) !== reference(delta) ||
      clock.offset !== offset ||
      clock.latency() !== (median === null || offset === null ? null : median - offset)
    )
      differ++
  }
  t.equal(differ, 0)
  t.equal(clock.sample(Number.NaN), false, 'a delta that is not a number is not learned from')
})

t.test('a quiet book on a live venue stays open under one id for 3 s and closes when its venue goes down', async (t) => {
  const engine = new ArbitrageEngine(zero)
  const up: VenueReport = { state: 'up', notLive: [], lastMessageAgeMs: 100 }
  engine.onVenue('a', up, 1000)
  engine.onVenue('b', up, 1000)
  engine.onBook(book([[99, 1]], [[100, 1]], { exchangeTime: 990 }), 1000, 'a', 'BTC-USD')
  const [opened] = engine.onBook(book([[101, 1]], [[102, 1]], { exchangeTime: 990 }), 1000, 'b', 'BTC-USD')!
  // Published once; both venues say `up` every 250 ms (their connections heard from them 100 ms before).
  const events = []
  for (let now = 1250; now <= 4000; now += 250) {
    events.push(...(engine.onVenue('a', up, now) ?? []), ...(engine.onVenue('b', up, now) ?? []), ...(engine.sweep(now) ?? []))
  }
  t.same(events, [], 'no close, no reopen: 3 s on one id')
  // Without confirmations the same books are stale 1 s after their last change.
  const unconfirmed = new ArbitrageEngine(zero)
  unconfirmed.onBook(book([[99, 1]], [[100, 1]], { exchangeTime: 990 }), 1000, 'a', 'BTC-USD')
  unconfirmed.onBook(book([[101, 1]], [[102, 1]], { exchangeTime: 990 }), 1000, 'b', 'BTC-USD')
  t.match(unconfirmed.sweep(2001), [{ status: 'closed', reason: 'stale' }])

  t.match(engine.onVenue('a', { ...up, state: 'down' }, 4100), [{ id: opened.id, status: 'closed', reason: 'venue', lifetimeMs: 3100 }])
})

t.test('a book its venue lists as not live closes alone with reason book; the venue’s other books stay open', async (t) => {
  const engine = new ArbitrageEngine(zero)
  const up: VenueReport = { state: 'up', notLive: [], lastMessageAgeMs: 0 }
  engine.onVenue('a', up, 1000)
  engine.onBook(book([[99, 1]], [[100, 1]]), 1000, 'a', 'BTC-USD')
  engine.onBook(book([[101, 1]], [[102, 1]]), 1000, 'b', 'BTC-USD')
  engine.onBook(book([[9, 1]], [[10, 1]]), 1000, 'a', 'ETH-USD')
  const [eth] = engine.onBook(book([[10.1, 1]], [[10.2, 1]]), 1000, 'b', 'ETH-USD')!
  const out = engine.onVenue('a', { ...up, notLive: ['BTC-USD'] }, 1100)!
  t.match(out, [{ symbol: 'BTC-USD', status: 'closed', reason: 'book' }], 'only the BTC-USD opportunity closes')
  t.equal(out.length, 1)
  t.same(engine.sweep(1200), null, `ETH-USD (${eth.id}) stays open`)
  t.match(engine.onVenue('a', up, 1300), [{ symbol: 'BTC-USD', status: 'open' }], 'live again: it reopens')
})

t.test('recorded OKX books: a checksum failure on one book closes its opportunity (reason book) and leaves the other book’s alone', async (t) => {
  const registry = new InstrumentRegistry().add('okx', okxInstruments(...['SPOT', 'SWAP'].map((k) => json(`okx/instruments-${k}.json`))))
  const session = readFileSync(`${DIR}okx/stream.jsonl`, 'utf8').trim().split('\n')
  const books = (instId: string) => session.filter((l) => l.includes(`"channel":"books","instId":"${instId}"}`) && l.includes('"action"'))
  const engine = new ArbitrageEngine(zero)
  const now = 1_652_459_237_119 // a second after the recording's last stamp
  const out: { symbol: string; status: string; reason?: string }[] = []
  const record = (events: ReturnType<ArbitrageEngine['onBook']>) => out.push(...(events ?? []))
  const { connect, sockets } = fakeConnect()
  const feed = createConnection('okx', {
    connect,
    instruments: [registry.topic('okx', 'BTC-USDT')!, registry.topic('okx', 'UNI-USD-INVPERP')!],
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: 5,
    clock: liveClockWith(() => now),
    // As the arbitrage plugin feeds it: books and venue health, typed.
    sink: {
      book: (e) => record(engine.onBook(e, now, e.exchange, e.symbol)),
      ticker: () => {},
      venue: (h) => record(engine.onVenue(h.exchange, h, now))
    }
  })
  feed.start()
  t.teardown(() => feed.stop())
  sockets[0].accept()
  const btc = books('BTC-USDT')
  const uni = books('UNI-USD-SWAP')
  for (const line of [btc[0], btc[1], ...uni.slice(0, -1)]) sockets[0].deliver(line)
  await new Promise((r) => setImmediate(r))
  feed.publishHealth()
  t.match(feed.health(), { state: 'up', booksLive: 2, notLive: [] })
  // A desk bids 0.2% over each of OKX's best asks for 100 (a UNI contract is 10 USD, about 2 UNI: 1 would be under OKX's minimum).
  for (const [symbol, instId] of [
    ['BTC-USDT', 'BTC-USDT'],
    ['UNI-USD-INVPERP', 'UNI-USD-SWAP']
  ]) {
    const ask = feed.book(instId)!.book.asks.price(0)
    record(engine.onTick({ bid: ask * 1.002, ask: ask * 1.003, bidSize: 100, askSize: 100, ts: now }, now, 'desk', symbol))
  }
  // BTC-USDT meets on the BTC-USD class (its quote group's); the inverse perpetual on its own symbol.
  t.match(out, [
    { symbol: 'BTC-USD', status: 'open', buy: { symbol: 'BTC-USDT' } },
    { symbol: 'UNI-USD-INVPERP', status: 'open' }
  ])
  out.length = 0
  const altered = JSON.parse(btc[2])
  altered.data[0].checksum += 1 // planted
  sockets[0].deliver(JSON.stringify(altered))
  t.match(feed.health(), { state: 'up', booksLive: 1, notLive: ['BTC-USDT'], checksumFailures: 1 }, 'the venue is up: the fault is the book’s')
  t.match(out, [{ symbol: 'BTC-USD', status: 'closed', reason: 'book' }])
  t.equal(out.length, 1, 'the UNI-USD-INVPERP opportunity stays open')
  sockets[0].deliver(uni.at(-1)!)
  await new Promise((r) => setImmediate(r))
  t.notOk(
    out.some((e) => e.symbol === 'UNI-USD-INVPERP' && e.status === 'closed'),
    'its book keeps updating and its opportunity stays open'
  )
})

t.test('books go live one by one: a venue waiting for one snapshot is up, with that book in notLive', async (t) => {
  const registry = new InstrumentRegistry().add('binance', binanceSpot(json('binance/exchangeInfo.json')))
  const depth = json('binance/depth-NKNUSDT.json')
  const { connect, sockets } = fakeConnect()
  const health: { state: string; notLive: string[]; booksLive: number }[] = []
  const feed = createConnection('binance', {
    connect,
    instruments: [registry.topic('binance', 'NKN-USDT')!, registry.topic('binance', 'BTC-USDT')!],
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: 5,
    // NKNUSDT's snapshot answers; BTCUSDT's never does.
    fetch: (url) => (String(url).includes('NKNUSDT') ? Promise.resolve(new Response(JSON.stringify(depth))) : new Promise<Response>(() => {})),
    sink: topicSink((topic, data) => {
      if (topic.startsWith('venue.')) health.push(data as (typeof health)[0])
    })
  })
  feed.start()
  t.teardown(() => feed.stop())
  sockets[0].accept()
  while (!feed.book('NKNUSDT')?.live) await new Promise((r) => setTimeout(r, 5))
  await new Promise((r) => setImmediate(r))
  t.match(health.at(-1), { state: 'up', booksLive: 1, notLive: ['BTC-USDT'] }, 'published at once when NKN-USDT went live')
})

t.test('conversion through depth: a 2-unit dislocation of 100 USDT vs 101 USD with 0.5 USDT at 0.9992 behind it is 0.0049 BTC, not 2', async (t) => {
  const engine = new ArbitrageEngine({ ...zero, sizeLadder: [100] })
  engine.onBook(
    book(
      [[0.999, 1000]],
      [
        [0.9992, 0.5],
        [1.05, 1000]
      ]
    ),
    1000,
    'k',
    'USDT-USD'
  )
  engine.onBook(book([[99, 2]], [[100, 2]]), 1000, 'a', 'BTC-USDT')
  const [e] = engine.onBook(book([[101, 2]], [[102, 2]]), 1000, 'b', 'BTC-USD')!
  // The USD proceeds buy USDT at the ask: 0.5 USDT cost 0.4996 USD at 0.9992, the rest 1.05, where
  // 101 / 1.05 = 96.19 < 100 loses. So the walk stops when 0.4996 USD of proceeds are converted.
  const q = 0.4996 / 101
  t.equal(e.maxSize, q)
  t.equal(e.maxProfit, q * (101 * (1 / 0.9992) - 100))
  t.match(e.conversion, { rate: 1 / 0.9992, levels: 1, via: [{ exchange: 'k', symbol: 'USDT-USD', side: 'ask', price: 0.9992 }] })
  t.equal(e.netBps, ((101 / 0.9992 - 100) / 100) * 1e4, 'the top of book at the first conversion level')
  // The ladder's 100 USDT buys 1 BTC: q of it converts at 0.9992, the rest at 1.05.
  t.equal(e.ladder[0].size, 1)
  near(t, e.ladder[0].profit, q * (101 * (1 / 0.9992) - 100) + (1 - q) * (101 * (1 / 1.05) - 100))
})

t.test('conversion through depth: 10 USDT at 0.9992 then 1.01 behind the README’s books (the issue’s case)', async (t) => {
  const engine = new ArbitrageEngine({ ...zero, fees: { okx: 0.001, coinbase: 0.0025, kraken: 0.002 } })
  engine.onBook(
    book(
      [[0.9991, 1e6]],
      [
        [0.9992, 10],
        [1.01, 1e6]
      ]
    ),
    1000,
    'kraken',
    'USDT-USD'
  )
  engine.onBook(
    book(
      [[67000, 1]],
      [
        [67010.1, 0.41],
        [67012.4, 0.9]
      ]
    ),
    1000,
    'okx',
    'BTC-USDT'
  )
  const [e] = engine.onBook(book([[67420.5, 1.2]], [[67430, 1]]), 1000, 'coinbase', 'BTC-USD')!
  // 10 USDT cost 10 × 0.9992 × 1.002 USD; the 1.2 BTC would bring 80,702 USD, which at 1.01 lose.
  const rate = 1 / (0.9992 * 1.002)
  const q = (10 * 0.9992 * 1.002) / (67420.5 * (1 - 0.0025))
  t.equal(e.maxSize, q)
  t.equal(e.maxProfit, q * (67420.5 * (1 - 0.0025) * rate - 67010.1 * 1.001))
  t.match(e.conversion, { levels: 1 })
  near(t, e.conversion!.rate, rate)
})

t.test('conversion liquidity one opportunity uses is not used again by another in the same evaluation, across symbols', async (t) => {
  const engine = new ArbitrageEngine(zero)
  const deep = book([[0.999, 1e6]], [[0.9992, 1e6]])
  engine.onBook(deep, 1000, 'k', 'USDT-USD')
  engine.onBook(book([[99, 1]], [[100, 1]]), 1000, 'a', 'BTC-USDT')
  t.match(engine.onBook(book([[101, 1]], [[102, 1]]), 1000, 'b', 'BTC-USD'), [{ symbol: 'BTC-USD', status: 'open', maxSize: 1 }])
  engine.onBook(book([[9.9, 1]], [[10, 1]]), 1000, 'a', 'ETH-USDT')
  t.match(engine.onBook(book([[10.1, 1]], [[10.2, 1]]), 1000, 'b', 'ETH-USD'), [{ symbol: 'ETH-USD', status: 'open', maxSize: 1 }])
  // The book now holds 100 USDT at 0.9992, then 1.05: BTC's 101 USD of proceeds take all of the
  // first level, so ETH, searched next in the same evaluation, meets 1.05 and loses.
  const out = engine.onBook(
    book(
      [[0.999, 1e6]],
      [
        [0.9992, 100],
        [1.05, 1e6]
      ]
    ),
    1001,
    'k',
    'USDT-USD'
  )!
  // (BTC's maxSize, 1 to 0.9893, is no material change: no update.)
  t.match(out, [{ symbol: 'ETH-USD', status: 'closed', reason: 'spread' }])
  t.equal(out.length, 1)
  // Alone in an evaluation (its own book's update), ETH has the first level to itself again.
  t.match(engine.onBook(book([[10.1, 1]], [[10.2, 1]]), 1002, 'b', 'ETH-USD'), [{ symbol: 'ETH-USD', status: 'open', maxSize: 1 }])
})

t.test('the README’s worked example is what the engine computes from the inputs the README states', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const at = readme.indexOf('What the engine publishes for an OKX `BTC-USDT` book')
  const block = readme.slice(readme.indexOf('```json\n', at) + 8, readme.indexOf('```', readme.indexOf('```json\n', at) + 8))
  // The inputs as the README states them, with the defaults (MIN_NET_BPS 5, SIZE_LADDER, QUOTE_GROUPS).
  const engine = new ArbitrageEngine({
    minNetBps: 5,
    maxTickAgeMs: 1000,
    updateBps: 0.5,
    fees: { okx: 0.001, coinbase: 0.0025, kraken: 0.002 },
    defaultFee: 0.001
  })
  const t0 = 1795800000000
  engine.onBook(book([[0.9991, 250_000]], [[0.9992, 250_000]]), t0 + 130, 'kraken', 'USDT-USD')
  engine.onBook(
    book(
      [[67000, 1]],
      [
        [67010.1, 0.41],
        [67012.4, 0.9]
      ],
      { exchangeTime: t0 + 120 }
    ),
    t0 + 133,
    'okx',
    'BTC-USDT'
  )
  const [e] = engine.onBook(book([[67420.5, 1.2]], [[67430, 1]], { exchangeTime: t0 + 125 }), t0 + 134, 'coinbase', 'BTC-USD')!
  t.same(JSON.parse(block), JSON.parse(JSON.stringify(e)))
  t.equal(e.maxSize, 1.2, 'the Coinbase bid holds 1.2')
  t.equal(Math.round(e.maxProfit * 100) / 100, 111.39)
})

t.test('a Binance COIN-M inverse perpetual pairs with OKX’s inverse swap (both BTC-USD-INVPERP), never with spot', async (t) => {
  const registry = new InstrumentRegistry()
    .add('binancecoinm', binanceCoinm(json('binancecoinm/exchangeInfo.json')))
    .add('okx', okxInstruments(json('okx/instruments-SWAP.json')))
  const coinm = registry.venue('binancecoinm', 'BTCUSD_PERP')!
  const okx = registry.venue('okx', 'BTC-USD-SWAP')!
  t.equal(coinm.symbol, okx.symbol)
  // Books as the connections publish them: contracts of 100 USD in BTC at each level's price.
  const base = (price: number, contracts: number): [number, number] => [price, (contracts * 100) / price]
  const engine = new ArbitrageEngine(zero)
  engine.onBook(book([[39990, 1]], [[40000, 1]]), 1000, 'kraken', 'BTC-USD')
  engine.onBook(book([base(39990, 50)], [base(40000, 50)]), 1000, 'binancecoinm', coinm.symbol)
  const [e] = engine.onBook(book([base(40040, 20)], [base(40050, 20)]), 1000, 'okx', okx.symbol)!
  t.match(e, { symbol: 'BTC-USD-INVPERP', buy: { exchange: 'binancecoinm' }, sell: { exchange: 'okx' } })
  // OKX bids 20 contracts = 2,000 USD = 0.04995 BTC at 40,040: all of it is taken.
  t.equal(e.maxSize, 2000 / 40040)
})

t.test('a venue event whose notLive lists past 4,096 books is read within bounds, never thrown on', async (t) => {
  // Its hostile shapes (non-strings, a string, a negative age, no state) are refused where they
  // enter: test/market-data.test.ts.
  const engine = new ArbitrageEngine(zero)
  engine.onBook(book([[99, 1]], [[100, 1]]), 1000, 'a', 'BTC-USD')
  engine.onBook(book([[101, 1]], [[102, 1]]), 1000, 'b', 'BTC-USD')
  const huge = Array.from({ length: 100_000 }, (_, i) => `X${i}-USD`)
  for (const notLive of [huge, [...huge, 'BTC-USD']]) {
    t.doesNotThrow(() => engine.onVenue('a', { state: 'up', notLive, lastMessageAgeMs: 0 }, 1100))
  }
  t.equal(engine.sweep(1200), null, 'BTC-USD past the 4,096 read is not taken out: the opportunity stays open')
  t.match(engine.onVenue('a', { state: 'up', notLive: ['BTC-USD'] }, 1300), [{ status: 'closed', reason: 'book' }])
})

/** One connection of `exchange` on a fake socket, started and accepted: its socket, to count pings on. */
function openConnection(t: Test, exchange: 'okx' | 'binance', instrument: Instrument, options: Partial<ConnectionOptions> = {}) {
  const { connect, sockets } = fakeConnect()
  const feed = createConnection(exchange, {
    connect,
    instruments: [instrument],
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: 5,
    sink: topicSink(() => {}),
    ...options
  })
  feed.start()
  t.teardown(() => feed.stop())
  sockets[0].accept()
  return sockets[0]
}

t.test('every connection pings every 250 ms (its answer confirms the books on it); OKX adds its own "ping" once a second', async (t) => {
  const registry = new InstrumentRegistry().add('okx', okxInstruments(json('okx/instruments-SPOT.json')))
  const socket = openConnection(t, 'okx', registry.topic('okx', 'BTC-USDT')!)
  while (!socket.texts.includes('ping')) await new Promise((r) => setTimeout(r, 50))
  t.ok(socket.pings >= 3, `${socket.pings} WebSocket pings before the first "ping"`)
})

t.test('Binance sockets are pinged at most twice a second: spot counts ping and pong frames against 5 messages a second', async (t) => {
  const registry = new InstrumentRegistry().add('binance', binanceSpot(json('binance/exchangeInfo.json')))
  let now = 1_000_000
  const socket = openConnection(t, 'binance', registry.topic('binance', 'NKN-USDT')!, {
    clock: liveClockWith(() => now),
    fetch: () => new Promise<Response>(() => {}) // the snapshot never comes: only the pings matter here
  })
  const ticks = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 250))
  }
  while (socket.pings === 0) await ticks(1)
  await ticks(3) // the watchdog runs on, the clock stands still: no second ping
  t.equal(socket.pings, 1, 'one ping while less than 500 ms passed on the connection clock')
  now += 500
  while (socket.pings === 1) await ticks(1)
  t.equal(socket.pings, 2, 'the next once 500 ms passed')
})
