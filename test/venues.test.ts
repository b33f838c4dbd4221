// The connectors on recorded real messages (test/fixtures/venues, SOURCES.md): the registry from
// the venues' own metadata, books rebuilt exactly (checked by the venues' checksums, and for Binance
// against the bookTicker the venue sent for the same update id), and each planted fault (a dropped
// message, an altered checksum or sequence) resyncing the book with nothing stale published.
import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { InstrumentRegistry, type Instrument } from '../src/market/instruments.ts'
import { type BookSide, MAX_LEVELS, OrderBook } from '../src/market/book.ts'
import { VENUE_ENDPOINTS } from '../src/market/setup.ts'
import { parseEndpoints, parseFeeds } from '../src/market/settings.ts'
import { VenueGroup } from '../src/market/group.ts'
import { topicSink } from '../src/market/events.ts'
import { createConnection, type Exchange } from '../src/market/venues/index.ts'
import { VirtualClock } from '../src/market/clock.ts'
import { binanceCoinm, binanceSpot, binanceUsdm } from '../src/market/venues/binance.ts'
import { coinbaseProducts } from '../src/market/venues/coinbase.ts'
import { krakenAssetPairs, krakenChecksum } from '../src/market/venues/kraken.ts'
import { okxChecksum, okxInstruments } from '../src/market/venues/okx.ts'
import { fakeConnect } from './fake-venue.ts'
import { marketDataError } from '../src/market/check.ts'

const parse = { binanceSpot, binanceUsdm, binanceCoinm, coinbase: coinbaseProducts, kraken: krakenAssetPairs, okx: okxInstruments }

const DIR = fileURLToPath(new URL('./fixtures/venues/', import.meta.url))
const read = (path: string) => readFileSync(DIR + path, 'utf8')
const json = (path: string) => JSON.parse(read(path))
const lines = (path: string): string[] => read(path).trim().split('\n')

const registry = new InstrumentRegistry()
  .add('binance', parse.binanceSpot(json('binance/exchangeInfo.json')))
  .add('binanceusdm', parse.binanceUsdm(json('binanceusdm/exchangeInfo.json')))
  .add('binancecoinm', parse.binanceCoinm(json('binancecoinm/exchangeInfo.json')))
  .add('coinbase', parse.coinbase(json('coinbase/exchange-products.json')))
  .add('kraken', parse.kraken(json('kraken/AssetPairs.json')))
  .add('okx', parse.okx(...['SPOT', 'SWAP', 'FUTURES'].map((type) => json(`okx/instruments-${type}.json`))))

t.test('every venue fixture names its source beside it, as SOURCES.md does', async (t) => {
  const rows = new Map<string, string[]>()
  for (const [, file, what, source] of read('SOURCES.md').matchAll(/^\| `([^`]+)` \| (.*) \| (.*) \|$/gm)) {
    rows.set(file, [...(rows.get(file) ?? []), `- ${what}\n  Source: ${source}`])
  }
  const files = readdirSync(DIR, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(json|jsonl)$/.test(f))
  t.equal(files.length, 22)
  for (const file of files) {
    t.ok(rows.has(file), `${file} is in the table`)
    const beside = read(`${file}.source.md`)
    t.match(beside, /https:\/\//, `${file}.source.md names a URL`)
    for (const row of rows.get(file) ?? []) t.ok(beside.includes(row), `${file}.source.md says what the table says`)
  }
})

t.test('registry: venue metadata to one identity per instrument', async (t) => {
  t.match(registry.venue('binance', 'BTCUSDT'), {
    symbol: 'BTC-USDT',
    kind: 'spot',
    base: 'BTC',
    quote: 'USDT',
    tickSize: 0.01,
    lotSize: 0.00001,
    minNotional: 10
  })
  t.match(registry.venue('binanceusdm', 'BTCUSDT'), { symbol: 'BTC-USDT-PERP', kind: 'perp', settle: 'USDT', tickSize: 0.01, lotSize: 0.001, minNotional: 5 })
  t.match(registry.venue('binanceusdm', 'BTCUSDT_210924'), { symbol: 'BTC-USDT-20210924', kind: 'future', expiry: 1632470400000 })
  t.match(registry.venue('coinbase', 'BTC-USD'), { symbol: 'BTC-USD', tickSize: 0.01, lotSize: 1e-8, minNotional: 5 })
  t.match(registry.venue('kraken', 'BTC/USD'), { symbol: 'BTC-USD', priceDecimals: 1, sizeDecimals: 8, tickSize: 0.1 })
  t.match(registry.venue('kraken', 'DOGE/USD'), { symbol: 'DOGE-USD' }, "Kraken's XDG is DOGE")
  t.match(registry.venue('okx', 'BTC-USDT-SWAP'), { symbol: 'BTC-USDT-PERP', contractSize: 0.01, settle: 'USDT' })
  t.match(registry.venue('okx', 'BTC-USD-SWAP'), { symbol: 'BTC-USD-INVPERP', kind: 'inverse-perp', contractSize: 100, settle: 'BTC' })
  t.match(registry.venue('okx', 'BTC-USD-220527'), { symbol: 'BTC-USD-INV20220527', kind: 'inverse-future' })

  // One spot instrument, one topic symbol on every venue; its perpetual never shares it.
  t.same(
    ['binance', 'kraken', 'okx'].map((e) => registry.topic(e, 'BTC-USDT')?.kind),
    ['spot', 'spot', 'spot']
  )
  t.same(
    ['coinbase', 'kraken'].map((e) => registry.topic(e, 'BTC-USD')?.venueSymbol),
    ['BTC-USD', 'BTC/USD']
  )
  t.equal(registry.topic('binanceusdm', 'BTC-USDT'), undefined, 'the Binance perpetual is not BTC-USDT')
  t.equal(registry.topic('okx', 'BTC-USDT')?.venueSymbol, 'BTC-USDT')
  t.equal(registry.topic('okx', 'BTC-USDT-PERP')?.venueSymbol, 'BTC-USDT-SWAP')

  // Advanced Trade's own product list names BTC-USD and BTC-USDC (each the other's alias). Its market
  // data channels stream BTC-USDC as BTC-USD's book, so BTC-USDC is skipped (on both lists).
  const advanced = parse.coinbase(json('coinbase/advanced-products.json'))
  t.same(
    advanced.instruments.map((i) => [i.symbol, i.venueSymbol, i.tickSize, i.lotSize, i.minNotional]),
    [['BTC-USD', 'BTC-USD', 0.01, 1e-8, 1]]
  )
  t.equal(advanced.skipped, 1)
  t.equal(registry.topic('coinbase', 'BTC-USDC'), undefined, 'the Exchange list has BTC-USDC too: skipped alike')
  // Not trading, or of kinds not streamed, are skipped and counted (Binance lists BTCSTUSDT's own kind).
  t.same(parse.binanceSpot({ symbols: [{ symbol: 'X', status: 'BREAK', baseAsset: 'A', quoteAsset: 'B' }, 'junk', null] }), { instruments: [], skipped: 1 })
  t.equal(parse.okx({ data: [{ instType: 'OPTION', state: 'live', instId: 'BTC-USD-220527-30000-C' }] }).skipped, 1)

  // Hostile metadata (planted on recorded rows) is a skipped row, never a start-up that throws.
  const quarterly = json('binanceusdm/exchangeInfo.json').symbols.find((r: { symbol: string }) => r.symbol === 'BTCUSDT_210924')
  t.same(parse.binanceUsdm({ symbols: [{ ...quarterly, deliveryDate: 1e20 }] }), { instruments: [], skipped: 1 }, 'a date past what Date holds')
  const pairs = json('kraken/AssetPairs.json')
  const [name, xbt] = Object.entries(pairs.result).find(([, r]) => (r as { wsname: string }).wsname === 'XBT/USD')!
  t.same(parse.kraken({ result: { [name]: { ...(xbt as object), pair_decimals: 1000 } } }), { instruments: [], skipped: 1 }, 'decimals no price has')
  const throwing = {
    ...quarterly,
    get filters(): never {
      throw new Error('a getter')
    }
  }
  t.same(parse.binanceUsdm({ symbols: [throwing, quarterly] }).skipped, 1, 'a row that throws is skipped, the rest kept')
})

t.test('FEEDS and FEEDS_ENDPOINTS', async (t) => {
  t.same(
    [...parseFeeds('binance:BTC-USDT,ETH-USDT; okx:BTC-USDT-PERP')!],
    [
      ['binance', ['BTC-USDT', 'ETH-USDT']],
      ['okx', ['BTC-USDT-PERP']]
    ]
  )
  for (const bad of ['nasdaq:AAPL-USD', 'binance:', 'binance:btc-usdt', 'binance:BTC.USDT', 'binance:BTC-USDT:x']) t.equal(parseFeeds(bad), null, bad)
  t.same(parseEndpoints('okx=ws://127.0.0.1:1/,http://127.0.0.1:1'), { okx: { ws: 'ws://127.0.0.1:1', rest: 'http://127.0.0.1:1' } })
  t.equal(parseEndpoints('okx=http://x,http://y'), null)
  // Binance USD-M serves depth on its routed /public path (the bare one is its legacy form).
  const { connect, sockets } = fakeConnect()
  const usdm = createConnection('binanceusdm', {
    instruments: [registry.topic('binanceusdm', 'SUSHI-USDT-PERP')!],
    endpoints: VENUE_ENDPOINTS.binanceusdm,
    bookDepth: 5,
    sink: { book() {}, ticker() {}, venue() {} },
    connect
  })
  usdm.start()
  usdm.stop()
  t.equal(sockets[0].url, 'wss://fstream.binance.com/public/stream?streams=sushiusdt@depth@100ms')
})

t.test('checksums: the venues’ own figures on genuine books', async (t) => {
  for (const line of lines('kraken/book-v2.jsonl').slice(0, 2)) {
    const m = JSON.parse(line).data[0]
    const i = registry.venue('kraken', m.symbol)!
    const book = new OrderBook(true)
    for (const l of m.bids) book.bids.set(l.price, l.qty, l.price.toFixed(i.priceDecimals), l.qty.toFixed(i.sizeDecimals))
    for (const l of m.asks) book.asks.set(l.price, l.qty, l.price.toFixed(i.priceDecimals), l.qty.toFixed(i.sizeDecimals))
    t.equal(krakenChecksum(book), m.checksum, `Kraken ${m.symbol}`)
  }
  const okx = new OrderBook(true)
  const m = JSON.parse(lines('okx/stream.jsonl').find((l) => l.includes('"BTC-USDT"},"action":"snapshot"'))!)
  for (const [p, s] of m.data[0].bids) okx.bids.set(Number(p), Number(s), p, s)
  for (const [p, s] of m.data[0].asks) okx.asks.set(Number(p), Number(s), p, s)
  t.equal(okxChecksum(okx), m.data[0].checksum, 'OKX BTC-USDT snapshot')
})

t.test('a side that dropped levels knows how deep it is exact', async (t) => {
  const book = new OrderBook()
  const bid = (price: number, size = 1) => book.bids.set(price, size, String(price), String(size))
  for (let p = 1; p <= MAX_LEVELS; p++) bid(p)
  t.ok(book.covers(MAX_LEVELS), 'a full side that dropped nothing is exact to its end')
  bid(0.5) // worse than every kept level: dropped
  t.equal(book.bids.length, MAX_LEVELS)
  t.equal(book.bids.price(MAX_LEVELS - 1), 1)
  bid(MAX_LEVELS + 1) // the best: kept, the worst (1) dropped
  t.equal(book.bids.price(MAX_LEVELS - 1), 2)
  t.ok(book.covers(20))
  // Removing all but 19 of the levels known to be whole (2 and better): the 20th is not known.
  for (let p = MAX_LEVELS + 1; p > 20; p--) bid(p, 0)
  t.same(book.bids.top(1), [[20, 1]])
  t.ok(book.covers(19), '19 levels, from 20 down to 2, are exact')
  t.notOk(book.covers(20), 'a 20th would be one the side dropped')
  bid(1.5) // a level past what is known joins, but does not make it known
  t.notOk(book.covers(20))
  book.clear()
  bid(3)
  t.ok(book.covers(20), 'a new snapshot knows every level again')
})

/** One real event-loop turn: the promises a fake fetch's answer goes through settle (no time passes). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * A connection on a fake socket, open: frames go in as the venue's, what it sends and publishes is
 * recorded, and it runs on a virtual clock: a frame arrives at the time the test says (1 unless
 * told), timers fire only when the test advances the clock, and the end of the turn (the book's
 * publish) comes when the test says. Without a fetch, a snapshot request never answers (nothing
 * reaches the network).
 */
function harness(exchange: Exchange, symbols: string[], extra: { fetch?: typeof fetch; bookDepth?: number; clock?: VirtualClock } = {}) {
  const published: { topic: string; data: Record<string, unknown> }[] = []
  const { connect, sockets } = fakeConnect()
  const clock = extra.clock ?? new VirtualClock(1)
  const feed = createConnection(exchange, {
    instruments: symbols.map((s) => registry.topic(exchange, s) as Instrument),
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: extra.bookDepth ?? 5,
    sink: topicSink((topic, data) => published.push({ topic, data: data as Record<string, unknown> })),
    fetch: extra.fetch ?? (() => new Promise<Response>(() => {})),
    clock,
    connect
  })
  feed.start()
  const socket = sockets[0]
  socket.accept()
  return {
    feed,
    socket,
    published,
    clock,
    sent: socket.sent,
    restarts: () => socket.terminated,
    message: (m: unknown, receivedAt = 1) => {
      clock.advanceTo(receivedAt)
      socket.deliver(typeof m === 'string' ? m : JSON.stringify(m))
    },
    state: (venueSymbol: string) => feed.book(venueSymbol)!,
    /** Answers settle, then the turn ends: the connection publishes what changed. */
    turn: async () => {
      await settle()
      clock.runDeferred()
    },
    /** Answers settle, `ms` pass on the clock (the timers due fire), and what they asked settles. */
    advance: async (ms: number) => {
      await settle()
      clock.advance(ms)
      await settle()
    },
    topics: () => published.filter((p) => !p.topic.startsWith('venue.')).map((p) => p.topic)
  }
}

const fakeFetch =
  (answers: Record<string, unknown>): typeof fetch =>
  async (url) => {
    const symbol = new URL(String(url)).searchParams.get('symbol')!
    return new Response(JSON.stringify(answers[symbol]), { status: answers[symbol] ? 200 : 400 })
  }

for (const [exchange, symbol, venueSymbol, depthFile, streamFile] of [
  ['binance', 'NKN-USDT', 'NKNUSDT', 'binance/depth-NKNUSDT.json', 'binance/stream.jsonl'],
  ['binanceusdm', 'SUSHI-USDT-PERP', 'SUSHIUSDT', 'binanceusdm/depth-SUSHIUSDT.json', 'binanceusdm/stream.jsonl'],
  ['binancecoinm', 'BCH-USD-INVPERP', 'BCHUSD_PERP', 'binancecoinm/depth-BCHUSD_PERP.json', 'binancecoinm/stream.jsonl']
] as const) {
  const stream = lines(streamFile).map((l) => JSON.parse(l).data)
  const depth = json(depthFile)

  t.test(`${exchange}: snapshot + recorded diffs reproduce the venue's own bookTicker at each shared update id`, async (t) => {
    const h = harness(exchange, [symbol], { fetch: fakeFetch({ [venueSymbol]: depth }) })
    await h.turn()
    await h.turn()
    t.ok(h.state(venueSymbol).live, 'live once the snapshot is in')
    const tickers = new Map(stream.filter((m) => m.s === venueSymbol && m.e !== 'depthUpdate' && m.b !== undefined && m.A !== undefined).map((m) => [m.u, m]))
    let compared = 0
    await h.turn()
    const booksBefore = h.published.filter((p) => p.topic === `book.${exchange}.${symbol}`).length
    for (const m of stream) {
      h.message({ stream: 'x', data: m })
      const ticker = tickers.get(m.u)
      // Diffs older than the snapshot are dropped (the COIN-M recording starts before it): the book is the snapshot's then.
      if (m.e !== 'depthUpdate' || m.s !== venueSymbol || ticker === undefined || m.u < depth.lastUpdateId) continue
      const { book } = h.state(venueSymbol)
      t.same(
        [book.bids.price(0), book.bids.size(0), book.asks.price(0), book.asks.size(0)],
        [Number(ticker.b), Number(ticker.B), Number(ticker.a), Number(ticker.A)],
        `top of book at update id ${m.u}`
      )
      compared++
    }
    t.ok(compared >= 10, `${compared} update ids compared`)
    t.match(h.feed.counters, { gaps: 0, resyncs: 0, invalid: 0 })
    t.ok(h.feed.counters.ignored > 0, 'bookTicker, kline and aggTrade messages are ignored, not quotes')
    await h.turn()
    const last = h.published.filter((p) => p.topic === `ticker.${exchange}.${symbol}`).pop()!
    const { book } = h.state(venueSymbol)
    t.match(last.data, { exchange, symbol, bid: book.bids.price(0), ask: book.asks.price(0) })
    t.equal(h.published.filter((p) => p.topic === `book.${exchange}.${symbol}`).length - booksBefore, 1, 'one book event for all the messages of one turn')
  })

  t.test(`${exchange}: a dropped diff is a gap: resync, a new snapshot, nothing stale published`, async (t) => {
    let snapshots = 0
    const fetchCounting: typeof fetch = async (...args) => {
      snapshots++
      return fakeFetch({ [venueSymbol]: depth })(...args)
    }
    const h = harness(exchange, [symbol], { fetch: fetchCounting })
    await h.turn()
    const diffs = stream.filter((m) => m.e === 'depthUpdate' && m.s === venueSymbol && m.u > depth.lastUpdateId)
    h.message(diffs[0])
    h.message(diffs[1])
    await h.turn()
    const before = h.topics().length
    h.message(diffs[3]) // diffs[2] never arrives
    t.equal(h.feed.counters.gaps, 1)
    t.notOk(h.state(venueSymbol).live, 'the book waits for a snapshot')
    h.message(diffs[4])
    await h.turn()
    t.equal(h.topics().length, before, 'nothing published for the book after the gap')
    await h.turn()
    // The fake venue answers with the same old snapshot, which the next diffs do not join: asked again.
    t.equal(snapshots, 2, 'a new snapshot was asked for at once')
  })
}

t.test("binanceusdm: a snapshot cut at the venue's limit resyncs once what it knows no longer covers BOOK_DEPTH", async (t) => {
  const depth = json('binanceusdm/depth-SUSHIUSDT.json')
  t.equal(depth.bids.length, 1000, 'the recorded snapshot is cut at limit=1000')
  let snapshots = 0
  const fetchCounting: typeof fetch = async (...args) => {
    snapshots++
    return fakeFetch({ SUSHIUSDT: depth })(...args)
  }
  const h = harness('binanceusdm', ['SUSHI-USDT-PERP'], { fetch: fetchCounting })
  await h.turn()
  const diffs = lines('binanceusdm/stream.jsonl')
    .map((l) => JSON.parse(l).data)
    .filter((m) => m.e === 'depthUpdate' && m.s === 'SUSHIUSDT' && m.u > depth.lastUpdateId)
  h.message(diffs[0])
  await h.turn()
  t.ok(h.topics().includes('book.binanceusdm.SUSHI-USDT-PERP'))
  const before = h.topics().length
  // Planted: the next recorded diff, edited to empty the 996 best bid levels (the harness
  // publishes 5 levels; 4 known ones are left, and the venue never resends the ones past them).
  const bids = h
    .state('SUSHIUSDT')
    .book.bids.top(996)
    .map(([price]) => [String(price), '0'])
  h.message({ ...diffs[1], b: bids })
  await h.turn()
  t.equal(h.topics().length, before, 'nothing published from the thinned book')
  t.match(h.feed.counters, { resyncs: 1, gaps: 0, invalid: 0 })
  await h.turn()
  t.equal(snapshots, 2, 'a new snapshot was asked for')
})

t.test('okx: a recorded session checks out, checksum by checksum', async (t) => {
  const h = harness('okx', ['BTC-USDT', 'UNI-USD-INVPERP', 'BTC-USD-INV20220527'])
  t.same(h.sent, [
    {
      op: 'subscribe',
      args: [
        { channel: 'books', instId: 'BTC-USDT' },
        { channel: 'books', instId: 'UNI-USD-SWAP' },
        { channel: 'books', instId: 'BTC-USD-220527' }
      ]
    }
  ])
  let books = 0
  for (const line of lines('okx/stream.jsonl')) {
    h.message(line)
    if (line.includes('"channel":"books"') && line.includes('"action"')) books++
  }
  t.equal(books, 290)
  t.match(h.feed.counters, { checksumFailures: 0, gaps: 0, resyncs: 0, invalid: 0 })
  t.ok(h.feed.counters.ignored > 0, 'tickers and trades are ignored')
  await h.turn()
  const inverse = h.published.filter((p) => p.topic === 'book.okx.UNI-USD-INVPERP').pop()!.data as { bids: [number, number][] }
  const uni = h.state('UNI-USD-SWAP').book
  t.equal(inverse.bids[0][1], (uni.bids.size(0) * 10) / uni.bids.price(0), 'inverse contracts (10 USD each) as base units')
})

t.test('okx: an altered checksum, and a sequence that skips, resync that book alone', async (t) => {
  const h = harness('okx', ['BTC-USDT'])
  const session = lines('okx/stream.jsonl').filter((l) => l.includes('"instId":"BTC-USDT"}') && l.includes('"channel":"books"') && l.includes('"action"'))
  h.message(session[0])
  h.message(session[1])
  await h.turn()
  const before = h.topics().length
  const altered = JSON.parse(session[2])
  altered.data[0].checksum += 1 // planted
  h.message(altered)
  t.equal(h.feed.counters.checksumFailures, 1)
  t.notOk(h.state('BTC-USDT').live)
  // At once: the engine stops using this book; the venue is up (a book's fault is the book's alone).
  t.match(h.published.at(-1), { topic: 'venue.okx', data: { state: 'up', checksumFailures: 1, booksLive: 0, notLive: ['BTC-USDT'] } }, 'venue health at once')
  t.same(h.sent.slice(-2), [
    { op: 'unsubscribe', args: [{ channel: 'books', instId: 'BTC-USDT' }] },
    { op: 'subscribe', args: [{ channel: 'books', instId: 'BTC-USDT' }] }
  ])
  h.message(session[3])
  await h.turn()
  t.equal(h.topics().length, before, 'updates before the new snapshot change and publish nothing')
})

t.test('okx: a book that keeps failing resubscribes later and later, not on every message', async (t) => {
  const h = harness('okx', ['BTC-USDT'])
  const snapshot = JSON.parse(lines('okx/stream.jsonl').find((l) => l.includes('"instId":"BTC-USDT"},"action":"snapshot"'))!)
  snapshot.data[0].checksum += 1 // planted: a snapshot that always fails
  // The subscribe the connection sent as it opened is not a resync's.
  const subscribes = () => h.sent.filter((m) => (m as { op: string }).op === 'subscribe').length - 1
  h.message(snapshot)
  t.equal(subscribes(), 1, 'the first failure resubscribes at once')
  h.message(snapshot)
  h.message(snapshot)
  t.equal(subscribes(), 1, 'failures in a row wait')
  t.equal(h.feed.counters.checksumFailures, 3)
  await h.advance(1999)
  t.equal(subscribes(), 1, 'the third failure in a row waits 2 s (the second waited 1 s; a later resync replaces the wait)')
  await h.advance(1)
  t.equal(subscribes(), 2, 'asked again after the backoff')
  t.equal(h.feed.counters.resyncs, 3)
  h.feed.stop()
})

t.test('okx: a 2026 session (checksum 0 since OKX deprecated it, seqId chained) reproduces the book; a skipped seqId is a gap', async (t) => {
  const [ack, snapshot, ...updates] = lines('okx/books-2026.jsonl')
  const h = harness('okx', ['BTC-USDT'])
  for (const line of [ack, snapshot, ...updates]) h.message(line, 5000)
  t.match(h.feed.counters, { checksumFailures: 0, gaps: 0, resyncs: 0, invalid: 0 })
  const { book } = h.state('BTC-USDT')
  t.same(book.bids.top(5), [
    [78722.2, 0.35528063],
    [78721.5, 0.03229],
    [78721.2, 0.0000102],
    [78719.3, 0.00126257],
    [78719.2, 0.0457243]
  ])
  t.same(book.asks.top(5), [
    [78722.3, 0.44699492],
    [78722.7, 0.0000102],
    [78724.1, 0.00001275],
    [78724.6, 0.03285579],
    [78724.7, 0.11006965]
  ])
  await h.turn()
  t.match(h.published.filter((p) => p.topic === 'ticker.okx.BTC-USDT').pop()!.data, {
    bid: 78722.2,
    bidSize: 0.35528063,
    ask: 78722.3,
    askSize: 0.44699492,
    exchangeTime: 1787612486707,
    receivedAt: 5000
  })

  const gap = harness('okx', ['BTC-USDT'])
  gap.message(snapshot)
  gap.message(updates[0])
  await gap.turn()
  const before = gap.topics().length
  gap.message(updates[2]) // updates[1] never arrives: its prevSeqId names a seqId not applied
  t.match(gap.feed.counters, { gaps: 1, resyncs: 1 })
  t.notOk(gap.state('BTC-USDT').live)
  t.same(gap.sent.slice(-2), [
    { op: 'unsubscribe', args: [{ channel: 'books', instId: 'BTC-USDT' }] },
    { op: 'subscribe', args: [{ channel: 'books', instId: 'BTC-USDT' }] }
  ])
  gap.message(updates[3])
  await gap.turn()
  t.equal(gap.topics().length, before, 'nothing published until a new snapshot')
})

t.test('kraken: snapshots check out; a mismatched checksum resubscribes that symbol', async (t) => {
  const h = harness('kraken', ['BTC-USD', 'BTC-USDT'])
  t.same(h.sent, [{ method: 'subscribe', params: { channel: 'book', symbol: ['BTC/USD', 'BTC/USDT'], depth: 10, snapshot: true } }])
  const [docs, recorded, , , heartbeat, ack] = lines('kraken/book-v2.jsonl')
  h.message(docs)
  h.message(recorded)
  h.message(heartbeat)
  h.message(ack)
  t.match(h.feed.counters, { checksumFailures: 0, ignored: 0 })
  t.ok(h.state('BTC/USD').live)
  // Depth 10 was asked for (BOOK_DEPTH 5 here): the 25-level recording is cut to 10 after the snapshot.
  t.equal(h.state('BTC/USDT').book.bids.length, 10)
  await h.turn()
  t.match(h.published.find((p) => p.topic === 'ticker.kraken.BTC-USDT')!.data, { bid: 105906.7, bidSize: 0.0944062, ask: 105906.8, askSize: 0.05665135 })

  const altered = JSON.parse(docs)
  altered.data[0].checksum = 1 // planted
  h.message(altered)
  t.equal(h.feed.counters.checksumFailures, 1)
  t.notOk(h.state('BTC/USD').live)
  t.same(h.sent.slice(-2), [
    { method: 'unsubscribe', params: { channel: 'book', symbol: ['BTC/USD'], depth: 10 } },
    { method: 'subscribe', params: { channel: 'book', symbol: ['BTC/USD'], depth: 10, snapshot: true } }
  ])
  t.ok(h.state('BTC/USDT').live, 'the other book is untouched')
})

t.test('a venue group splits its instruments across sockets and reports one venue', async (t) => {
  const instruments = ['BTC-USDT', 'ETH-USDT', 'NKN-USDT'].map((s) => registry.topic('binance', s)!)
  const { connect, sockets } = fakeConnect()
  const group = new VenueGroup('binance', {
    connect,
    instruments,
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: 5,
    sink: { book() {}, ticker() {}, venue() {} },
    perConnection: 2
  })
  group.start()
  group.stop()
  t.same(
    sockets.map((s) => s.url),
    ['ws://unused/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms', 'ws://unused/stream?streams=nknusdt@depth@100ms'],
    'two sockets'
  )
  t.match(group.health(), { exchange: 'binance', state: 'down', connected: false, instruments: 3, booksLive: 0, rotations: 0, messages: 0 })
  // One socket: its health is the venue's, field for field, as the merge of several makes it.
  const clock = new VirtualClock(1000)
  const one = new VenueGroup('binance', {
    connect,
    instruments: instruments.slice(2),
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: 5,
    sink: { book() {}, ticker() {}, venue() {} },
    clock
  })
  one.start()
  sockets.at(-1)!.accept()
  sockets.at(-1)!.deliver('{not json')
  clock.advance(100)
  t.same(one.health(), {
    exchange: 'binance',
    state: 'up',
    connected: true,
    instruments: 1,
    booksLive: 0,
    notLive: ['NKN-USDT'],
    lastMessageAgeMs: 100,
    clockOffsetMs: null,
    latencyMs: null,
    rotations: 0,
    heldBytes: 0,
    messages: 1,
    ignored: 0,
    invalid: 1,
    gaps: 0,
    checksumFailures: 0,
    resyncs: 0,
    reconnects: 0,
    silences: 0,
    errors: 0,
    overflows: 0,
    ts: 1100
  })
  one.stop()
})

t.test('kraken: a live 2026 session (status, subscribe reply, snapshot, heartbeats, updates): every checksum verifies', async (t) => {
  const h = harness('kraken', ['BTC-USD'], { bookDepth: 10 })
  for (const line of lines('kraken/book-2026.jsonl')) h.message(line, 7000)
  t.match(h.feed.counters, { checksumFailures: 0, resyncs: 0, invalid: 0, ignored: 0 })
  const { book } = h.state('BTC/USD')
  t.same(
    book.bids.top(10).map(([price]) => price),
    [78871.5, 78868.4, 78867.3, 78865.8, 78865.7, 78864.5, 78860.6, 78860.5, 78857, 78856.8],
    '78858.8 and 78859.2 removed, 78857.0 and 78856.8 come into the ten'
  )
  t.same(book.bids.top(10)[9], [78856.8, 0.60870868])
  await h.turn()
  t.match(h.published.filter((p) => p.topic === 'ticker.kraken.BTC-USD').pop()!.data, {
    bid: 78871.5,
    bidSize: 0.01266503,
    ask: 78871.6,
    askSize: 4.21103066,
    exchangeTime: Date.parse('2026-08-24T22:21:58.345080Z')
  })
})

t.test('kraken: a recorded snapshot and the update that followed it, both checksums verified', async (t) => {
  const h = harness('kraken', ['ALGO-USD'], { bookDepth: 10 })
  const [snapshot, update] = lines('kraken/book-v2.jsonl').slice(6, 8)
  h.message(snapshot)
  await h.turn()
  h.message(update)
  await h.turn()
  t.match(h.feed.counters, { checksumFailures: 0, resyncs: 0, invalid: 0 })
  const books = h.published.filter((p) => p.topic === 'book.kraken.ALGO-USD').map((p) => p.data as { bids: [number, number][] })
  t.equal(books.length, 2)
  t.same(books[0].bids[6], [0.12275, 4067], 'the snapshot level')
  t.same(books[1].bids[6], [0.12275, 6597.5173116], 'the update replaced its size')
  t.equal(h.published.filter((p) => p.topic === 'ticker.kraken.ALGO-USD').length, 1, 'the top did not move: one ticker')
})

t.test('coinbase: a live level2 session reproduces the book; an error is counted; a sequence gap restarts the connection', async (t) => {
  const h = harness('coinbase', ['BTC-USD'])
  t.same(h.sent, [
    { type: 'subscribe', product_ids: ['BTC-USD'], channel: 'level2' },
    { type: 'subscribe', channel: 'heartbeats' }
  ])
  const session = lines('coinbase/l2-2026.jsonl')
  const [, subscriptions, heartbeat, trades, error] = lines('coinbase/l2.jsonl')
  // The recorded numbering, its subscriptions message (sequence_num 3) among the updates.
  for (const line of session) h.message(line, 9000)
  const numbered = (line: string, n: number) => line.replace(/"sequence_num":\d+/, `"sequence_num":${n}`)
  h.message(numbered(trades, 12)) // a channel not asked for
  h.message(numbered(subscriptions, 13))
  h.message(numbered(heartbeat, 14))
  const { book } = h.state('BTC-USD')
  t.same(book.bids.top(5), [
    [78856.05, 0.04868904],
    [78855.8, 0.0023974],
    [78855.79, 0.10195826],
    [78855.47, 0.02540066],
    [78854.47, 0.02536318]
  ])
  t.same(book.asks.top(5), [
    [78856.06, 0.08023149],
    [78857.64, 0.02536216],
    [78857.75, 0.1785107],
    [78857.76, 0.27901289],
    [78859.51, 0.16657159]
  ])
  t.match(h.feed.counters, { ignored: 1, gaps: 0, invalid: 0 })
  await h.turn()
  t.same(h.topics(), ['book.coinbase.BTC-USD', 'ticker.coinbase.BTC-USD'], 'one event per book per turn')
  // The last update's event_time (the change), not its message's timestamp (22:34:14.032, when sent).
  const exchangeTime = Date.parse('2026-08-24T22:34:14.005584Z')
  t.same(h.published.find((p) => p.topic === 'ticker.coinbase.BTC-USD')!.data, {
    exchange: 'coinbase',
    symbol: 'BTC-USD',
    ts: exchangeTime,
    exchangeTime,
    receivedAt: 9000,
    bid: 78856.05,
    bidSize: 0.04868904,
    ask: 78856.06,
    askSize: 0.08023149
  })
  h.message(error)
  t.equal(h.feed.counters.errors, 1)
  h.message(numbered(heartbeat, 16)) // 15 never arrives
  t.equal(h.feed.counters.gaps, 1)
  t.equal(h.restarts(), 1, 'the connection restarts: every book comes back with a new snapshot')
})

t.test("coinbase: the documentation's snapshot has bids only: a book is published, a ticker is not", async (t) => {
  const [docs] = lines('coinbase/l2.jsonl')
  const h = harness('coinbase', ['BTC-USD'])
  h.message(docs)
  t.same(h.state('BTC-USD').book.bids.top(5), [
    [21921.73, 0.06317902],
    [21921.3, 0.02]
  ])
  await h.turn()
  t.same(h.topics(), ['book.coinbase.BTC-USD'], 'a ticker needs both sides')
  const other = harness('coinbase', ['ETH-USD'])
  other.message(docs)
  await other.turn()
  t.equal(other.feed.counters.ignored, 1, 'a product not subscribed is counted')
  t.same(other.topics(), [], 'and changes nothing')
})

t.test('bad input from a venue is counted, never thrown, never quoted', async (t) => {
  for (const [exchange, symbol, message] of [
    ['okx', 'BTC-USDT', { arg: { channel: 'books', instId: 'BTC-USDT' }, action: 'snapshot', data: [{ bids: [['NaN', '1']], asks: [], checksum: 0 }] }],
    ['okx', 'BTC-USDT', { arg: { channel: 'books', instId: 'BTC-USDT' }, action: 'snapshot', data: [{ bids: [['1e400', '1']], asks: [], checksum: 0 }] }],
    ['kraken', 'BTC-USD', { channel: 'book', type: 'snapshot', data: [{ symbol: 'BTC/USD', bids: [{ price: -1, qty: 1 }], asks: [], checksum: 0 }] }],
    [
      'coinbase',
      'BTC-USD',
      {
        channel: 'l2_data',
        sequence_num: 0,
        events: [{ type: 'snapshot', product_id: 'BTC-USD', updates: [{ side: 'up', price_level: '1', new_quantity: '1' }] }]
      }
    ],
    ['binance', 'NKN-USDT', { e: 'depthUpdate', s: 'NKNUSDT', U: 'x', u: 1, b: [], a: [] }]
  ] as const) {
    const h = harness(exchange, [symbol])
    t.doesNotThrow(() => h.message(message))
    await h.turn()
    t.same(h.topics(), [], `${exchange}: nothing published`)
  }
  const h = harness('kraken', ['BTC-USD'])
  t.doesNotThrow(() => h.socket.deliver('{not json'))
  t.equal(h.feed.counters.invalid, 1)
})

t.test('binance: a snapshot the connector throws on is counted and resynced, never an unhandled rejection', async (t) => {
  let calls = 0
  const snapshot = read('binance/depth-NKNUSDT.json')
  const answer: typeof fetch = async () => {
    calls++
    return new Response(snapshot)
  }
  const h = harness('binance', ['NKN-USDT'], { fetch: answer })
  // A held diff whose text no longer parses: joining it throws inside the snapshot's application.
  h.state('NKNUSDT').pending.push({ text: '{"unforeseen"', levels: 0 })
  await h.turn()
  t.equal(calls, 1)
  t.equal(h.feed.counters.invalid, 1)
  await h.advance(1000)
  t.equal(calls, 2, 'asked again after the backoff')
  h.feed.stop()
})

t.test('binance: an unusable snapshot is asked for again after a backoff, not in a loop that hammers the venue', async (t) => {
  let calls = 0
  const invalid: typeof fetch = async () => {
    calls++
    return new Response('{"lastUpdateId":"none","bids":[],"asks":[]}')
  }
  const h = harness('binance', ['NKN-USDT'], { fetch: invalid })
  await h.advance(999)
  t.equal(calls, 1, 'at once')
  await h.advance(1)
  t.equal(calls, 2, 'then after 1 s (it used to ask again at once, forever)')
  await h.advance(1500)
  t.equal(calls, 2, 'the third waits 2 s')
  h.feed.stop()
  t.equal(h.feed.counters.invalid, 2)
  await h.advance(60_000)
  t.equal(calls, 2, 'a stopped feed asks for nothing more')
})

t.test(
  "binance: a snapshot request unanswered for 10 s on the connection's clock is given up and asked again after 1 s; real time aborts nothing",
  async (t) => {
    const asked: number[] = []
    const aborted: number[] = []
    const clock = new VirtualClock(1000)
    // A venue that never answers; the request ends only when its signal aborts (as fetch's does).
    const hanging: typeof fetch = (_url, init) =>
      new Promise<Response>((_resolve, reject) => {
        asked.push(clock.now())
        init?.signal?.addEventListener('abort', () => {
          aborted.push(clock.now())
          reject(init.signal?.reason)
        })
      })
    const h = harness('binance', ['NKN-USDT'], { fetch: hanging, clock })
    await new Promise((resolve) => setTimeout(resolve, 20)) // real time passes: nothing aborts
    t.same({ asked, aborted }, { asked: [1000], aborted: [] })
    await h.advance(9_999)
    t.same(aborted, [], 'not before 10 s')
    await h.advance(1)
    t.same(aborted, [11_000], 'aborted at 10 s on the clock')
    t.equal(h.feed.counters.errors, 1, 'counted as a failed snapshot')
    await h.advance(999)
    t.same(asked, [1000], 'the retry waits its 1 s backoff')
    await h.advance(1)
    t.same(asked, [1000, 12_000], 'asked again 1 s after')
    h.feed.stop()
    await h.advance(10_000)
    t.same(aborted, [11_000, 22_000], "the second request's deadline is its own")
  }
)

t.test("binance: a 429's Retry-After pauses every snapshot, and a minute's weight spent waits for the next minute", async (t) => {
  // Binance's documented answers: 429 with Retry-After (seconds); X-MBX-USED-WEIGHT-1M on every answer.
  const depth = json('binance/depth-NKNUSDT.json')
  const asked: number[] = []
  const answers = [
    () => new Response(null, { status: 429, headers: { 'retry-after': '3' } }), // its body is not read
    () => new Response(JSON.stringify(depth), { headers: { 'x-mbx-used-weight-1m': '5900' } }),
    () => new Response(JSON.stringify(depth), { headers: { 'x-mbx-used-weight-1m': '50' } })
  ]
  // The clock starts 4.6 s before a minute's end: the 429 answers at 55.4 s, the spent weight at
  // 58.4 s, and the next snapshot waits for 60.25 s (the minute turned, a quarter second on).
  const clock = new VirtualClock(55_400)
  const paced: typeof fetch = async () => {
    asked.push(clock.now())
    return answers[Math.min(asked.length - 1, answers.length - 1)]()
  }
  const h = harness('binance', ['NKN-USDT'], { fetch: paced, clock })
  await h.advance(2999)
  t.same(asked, [55_400], 'a failure alone waits 1 s: the 429 pauses snapshots longer')
  await h.advance(1)
  t.same(asked, [55_400, 58_400], 'asked again once Retry-After (3 s) passed')
  // The second answer is a good snapshot with 5,900 of 6,000 used: when the book next resyncs (a
  // diff that skips past it: a gap), its snapshot waits for the minute to turn.
  t.ok(h.state('NKNUSDT').live, 'the second snapshot applied')
  const skip = depth.lastUpdateId + 100
  h.message({ stream: 'nknusdt@depth@100ms', data: { e: 'depthUpdate', E: 1, s: 'NKNUSDT', U: skip, u: skip, b: [], a: [] } }, 58_500)
  t.equal(h.feed.counters.gaps, 1)
  await h.advance(60_249 - 58_500)
  t.equal(asked.length, 2, 'not before the minute turned')
  await h.advance(1)
  t.same(asked, [55_400, 58_400, 60_250], 'asked a quarter second after the minute turned')
  h.feed.stop()
})

t.test('binance: diffs held before the snapshot are capped by levels, not only by count', async (t) => {
  const h = harness('binance', ['NKN-USDT'])
  // A hostile or broken venue: 1,000 diffs of 10,000 levels each before any snapshot.
  const levels = Array.from({ length: 10_000 }, (_, i) => [String(1 + i / 1e4), '1'])
  for (let i = 0; i < 1000; i++) h.message({ e: 'depthUpdate', s: 'NKNUSDT', U: i, u: i, b: levels, a: [] })
  const total = h.state('NKNUSDT').pending.reduce((n, d) => n + JSON.parse(d.text).b.length, 0)
  t.ok(total <= 100_000, `${total} levels held`)
})

// Issue #31, the venues' side: minimum order sizes, Binance's repeated diff, Binance COIN-M, OKX's
// REST snapshot. The one thing no genuine capture exists for, OKX's REST answer with `seqId`, is
// built from OKX's documented schema around a recorded book (said where it is).
t.test('minimum order sizes from every venue’s own metadata, in the registry', async (t) => {
  // Kraken ordermin, OKX minSz, Coinbase base_min_size, Binance LOT_SIZE.minQty: the recorded answers.
  t.match(registry.topic('kraken', 'BTC-USD'), { minSize: 0.0002, lotSize: 1e-8 })
  t.match(registry.topic('okx', 'BTC-USDT'), { minSize: 0.00001, lotSize: 1e-8 })
  t.match(registry.topic('okx', 'BTC-USD-INVPERP'), { minSize: 1, lotSize: 1, contractSize: 100 }, 'derivatives count contracts')
  t.match(registry.topic('coinbase', 'BTC-USD'), { minSize: 0.0001 })
  t.match(registry.topic('binance', 'BTC-USDT'), { minSize: 0.00001 })
  t.match(registry.topic('binanceusdm', 'SUSHI-USDT-PERP'), { minSize: 1 })
  t.match(registry.topic('binancecoinm', 'BTC-USD-INVPERP'), { minSize: 1, lotSize: 1, contractSize: 100 })
})

t.test('binancecoinm: inverse perpetuals and quarterlies from the recorded exchangeInfo, named as OKX’s are', async (t) => {
  t.match(registry.venue('binancecoinm', 'BTCUSD_PERP'), {
    symbol: 'BTC-USD-INVPERP',
    kind: 'inverse-perp',
    base: 'BTC',
    quote: 'USD',
    settle: 'BTC',
    contractSize: 100,
    tickSize: 0.1
  })
  t.match(registry.venue('binancecoinm', 'BTCUSD_210924'), { symbol: 'BTC-USD-INV20210924', kind: 'inverse-future', expiry: 1632470400000 })
  t.match(registry.venue('binancecoinm', 'BCHUSD_PERP'), { symbol: 'BCH-USD-INVPERP', contractSize: 10, tickSize: 0.01 })
  t.equal(registry.topic('okx', 'BTC-USD-INVPERP')?.venueSymbol, 'BTC-USD-SWAP', 'OKX’s inverse swap is the same symbol: they pair')
  t.equal(parse.binanceCoinm({ symbols: [{ ...json('binancecoinm/exchangeInfo.json').symbols[0], contractStatus: 'SETTLING' }] }).skipped, 1)
})

t.test('binancecoinm: its own stream and snapshot paths; sizes published in base units (a contract is 10 USD)', async (t) => {
  const depth = json('binancecoinm/depth-BCHUSD_PERP.json')
  const asked: string[] = []
  const h = harness('binancecoinm', ['BCH-USD-INVPERP'], {
    fetch: async (url) => {
      asked.push(String(url))
      return new Response(JSON.stringify(depth))
    }
  })
  t.equal(h.socket.url, 'ws://unused/stream?streams=bchusd_perp@depth@100ms')
  await h.turn()
  t.ok(h.state('BCHUSD_PERP').live, 'live')
  t.same(asked, ['http://unused/dapi/v1/depth?symbol=BCHUSD_PERP&limit=1000'])
  await h.turn()
  // The book says how much BCH, at its own price; the lot and minimum (1 contract) likewise.
  const event = h.published.filter((p) => p.topic === 'book.binancecoinm.BCH-USD-INVPERP').pop()!.data
  const { book } = h.state('BCHUSD_PERP')
  t.same((event.bids as number[][])[0], [book.bids.price(0), (book.bids.size(0) * 10) / book.bids.price(0)])
  t.equal(event.minSize, 10 / book.asks.price(0))
  t.equal(event.lotSize, 10 / book.asks.price(0))
})

t.test('binance spot: a repeated diff (u at or below the book’s id) is ignored, as Binance says, not a resync', async (t) => {
  const depth = json('binance/depth-NKNUSDT.json')
  const h = harness('binance', ['NKN-USDT'], { fetch: async () => new Response(JSON.stringify(depth)) })
  await h.turn()
  t.ok(h.state('NKNUSDT').live)
  const diffs = lines('binance/stream.jsonl')
    .map((l) => JSON.parse(l).data)
    .filter((m) => m.e === 'depthUpdate' && m.s === 'NKNUSDT' && m.u > depth.lastUpdateId)
  h.message(diffs[0])
  h.message(diffs[1])
  const before = JSON.stringify(h.state('NKNUSDT').book.bids.top(20)) + JSON.stringify(h.state('NKNUSDT').book.asks.top(20))
  h.message(diffs[1]) // delivered again
  h.message(diffs[0]) // and an older one
  t.match(h.feed.counters, { gaps: 0, resyncs: 0 })
  t.ok(h.state('NKNUSDT').live)
  t.equal(JSON.stringify(h.state('NKNUSDT').book.bids.top(20)) + JSON.stringify(h.state('NKNUSDT').book.asks.top(20)), before, 'the book unchanged')
  h.message(diffs[2])
  t.equal(h.state('NKNUSDT').seq, diffs[2].u, 'the next diff follows on')
  t.match(h.feed.counters, { gaps: 0, resyncs: 0 })
})

t.test('book events carry minSize in base units beside lotSize and minNotional', async (t) => {
  const [ack, snapshot] = lines('okx/books-2026.jsonl')
  const h = harness('okx', ['BTC-USDT'])
  h.message(ack)
  h.message(snapshot)
  await h.turn()
  t.match(h.published.filter((p) => p.topic === 'book.okx.BTC-USDT').pop()?.data, { lotSize: 1e-8, minSize: 0.00001, minNotional: 0 })
})

// OKX's REST answer: `GET /api/v5/market/books` returns {code:"0", msg:"", data:[{asks, bids, ts}]}
// and, as OKX's changelog (12 February 2026) and its "How to manage a local order book correctly"
// say, a `seqId` to join the stream by. No genuine answer with seqId was found (searched: OKX's
// documentation pages, ccxt, cryptofeed, nautilus_trader, tickvault), so the answer here is that
// documented envelope around the recorded WebSocket snapshot of books-2026.jsonl (its levels, ts and
// seqId): what the venue's book was at that seqId.
function restAnswer(snapshotLine: string, seqId?: number) {
  const d = JSON.parse(snapshotLine).data[0]
  return { code: '0', msg: '', data: [{ asks: d.asks, bids: d.bids, ts: d.ts, seqId: seqId ?? d.seqId }] }
}

t.test('okx: no WebSocket snapshot: updates held, the REST snapshot joined by seqId gives the book the WebSocket snapshot gives', async (t) => {
  const [ack, snapshot, ...updates] = lines('okx/books-2026.jsonl')
  const viaWs = harness('okx', ['BTC-USDT'])
  for (const line of [ack, snapshot, ...updates]) viaWs.message(line)

  const asked: string[] = []
  const answer = () => restAnswer(snapshot)
  const viaRest = harness('okx', ['BTC-USDT'], {
    fetch: async (url) => {
      asked.push(String(url))
      return new Response(JSON.stringify(answer()))
    }
  })
  viaRest.message(ack)
  for (const line of updates.slice(0, 3)) viaRest.message(line) // what OKX sends once the snapshot is gone
  t.notOk(viaRest.state('BTC-USDT').live, 'not live before its snapshot')
  await viaRest.advance(49)
  t.same(asked, [], "OKX's REST requests are spaced 50 ms")
  await viaRest.advance(1)
  t.ok(viaRest.state('BTC-USDT').live)
  t.same(asked, ['http://unused/api/v5/market/books?instId=BTC-USDT&sz=400'])
  for (const line of updates.slice(3)) viaRest.message(line)
  t.match(viaRest.feed.counters, { gaps: 0, resyncs: 0, invalid: 0, checksumFailures: 0 })
  const ws = viaWs.state('BTC-USDT')
  const rest = viaRest.state('BTC-USDT')
  t.same(rest.book.bids.top(50), ws.book.bids.top(50))
  t.same(rest.book.asks.top(50), ws.book.asks.top(50))
  t.equal(rest.seq, 80274875033)

  // A snapshot newer than some held updates: those are dropped, the next one straddles it. The
  // snapshot is the recorded book at seqId 80274874876 (the recorded snapshot and first update, as
  // the venue's text), in the documented envelope.
  const at876 = harness('okx', ['BTC-USDT'])
  at876.message(snapshot)
  at876.message(updates[0])
  const side = (levels: BookSide) => Array.from({ length: levels.length }, (_, i) => [levels.priceText(i), levels.sizeText(i), '0', '1'])
  const book876 = at876.state('BTC-USDT').book
  const later = harness('okx', ['BTC-USDT'], {
    fetch: async () =>
      Response.json({
        code: '0',
        msg: '',
        data: [{ asks: side(book876.asks), bids: side(book876.bids), ts: '1787612486207', seqId: 80274874876 }]
      })
  })
  later.message(updates[0])
  later.message(updates[1])
  await later.advance(50)
  t.ok(later.state('BTC-USDT').live, 'live after the join')
  t.equal(later.state('BTC-USDT').seq, 80274874887, 'the held update at the snapshot dropped, the one after it applied')
  t.match(later.feed.counters, { gaps: 0, resyncs: 0 })
  for (const line of updates.slice(2)) later.message(line)
  t.same(later.state('BTC-USDT').book.asks.top(50), ws.book.asks.top(50))
  t.same(later.state('BTC-USDT').book.bids.top(50), ws.book.bids.top(50))

  // A snapshot older than the first held update's prevSeqId is asked again (OKX: "go back to step 3").
  let calls = 0
  const stale = harness('okx', ['BTC-USDT'], {
    fetch: async () => {
      calls++
      return new Response(JSON.stringify(calls === 1 ? restAnswer(snapshot, 80274874700) : restAnswer(snapshot)))
    }
  })
  stale.message(updates[0])
  await stale.advance(50)
  t.notOk(stale.state('BTC-USDT').live, 'not live on the stale snapshot')
  await stale.advance(999)
  t.equal(calls, 1, 'a snapshot it could not use waits 1 s before the next')
  await stale.advance(1)
  t.ok(stale.state('BTC-USDT').live, 'live on the second snapshot')
  t.equal(calls, 2)
})

t.test('okx: REST join with a planted gap: the held update after a missing one resyncs that book, nothing stale published', async (t) => {
  const [, snapshot, ...updates] = lines('okx/books-2026.jsonl')
  const h = harness('okx', ['BTC-USDT'], { fetch: async () => new Response(JSON.stringify(restAnswer(snapshot))) })
  h.message(updates[0])
  h.message(updates[2]) // planted: updates[1] never arrives
  await h.advance(50)
  t.match(h.feed.counters, { gaps: 1, resyncs: 1 })
  t.notOk(h.state('BTC-USDT').live)
  await h.turn()
  t.same(
    h.published.filter((p) => p.topic === 'book.okx.BTC-USDT'),
    [],
    'no book from a join that failed'
  )
  t.same(h.socket.sent.slice(-2), [
    { op: 'unsubscribe', args: [{ channel: 'books', instId: 'BTC-USDT' }] },
    { op: 'subscribe', args: [{ channel: 'books', instId: 'BTC-USDT' }] }
  ])
})

t.test('okx: a REST answer that is not OKX’s documented schema is counted invalid, never thrown', async (t) => {
  const [, , ...updates] = lines('okx/books-2026.jsonl')
  for (const bad of [{ code: '50011', msg: 'Too Many Requests', data: [] }, { code: '0', data: [{ asks: [], bids: [] }] }, [1, 2], 'x']) {
    const h = harness('okx', ['BTC-USDT'], { fetch: async () => new Response(JSON.stringify(bad)) })
    h.message(updates[0])
    await h.advance(50)
    t.equal(h.feed.counters.invalid, 1)
    t.notOk(h.state('BTC-USDT').live, JSON.stringify(bad))
  }
})

t.test('a clock that steps back (NTP, a recording) reports the last message as heard just now, not a negative age the market-data door refuses', async (t) => {
  const h = harness('kraken', ['BTC-USD'])
  h.message('{"channel":"heartbeat"}', 5000)
  h.clock.advanceTo(4000) // the wall clock set back a second after the message came
  const health = h.feed.health()
  t.equal(health.lastMessageAgeMs, 0)
  // Over a Redis backplane every process's door (Bus.admit) checks it: a negative age dropped the venue's health.
  t.equal(marketDataError('venue.kraken', health), null)
  h.clock.advanceTo(4100)
  t.equal(h.feed.health().lastMessageAgeMs, 0, 'until the clock passes the message again')
  h.clock.advanceTo(5100)
  t.equal(h.feed.health().lastMessageAgeMs, 100)
  h.feed.stop()
})
