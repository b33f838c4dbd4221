// The connectors against the mock exchange (test/mock-exchange.ts: the recorded messages on
// 127.0.0.1), as people run them: in the server (FEEDS on npm start), as the feeds process, and as
// PM2's `feeds` app surviving kill -9.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { LiveClient } from '../src/client/index.ts'
import { startFeeds } from '../src/market/setup.ts'
import { parseEndpoints } from '../src/market/settings.ts'
import { topicSink, type VenueHealth } from '../src/market/events.ts'
import { startMockExchange } from './mock-exchange.ts'
import { root, scrape, sleep, spawnClean, startServer, type Teardown, until } from './helper.ts'

const FEEDS = 'binance:NKN-USDT;binanceusdm:SUSHI-USDT-PERP;coinbase:BTC-USD;kraken:BTC-USD,BTC-USDT,ALGO-USD;okx:BTC-USDT,UNI-USD-INVPERP;okx:NOPE-USDT'

t.test('FEEDS in the server: ticker, book and venue topics from all five markets', async (t) => {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const { url, http, app } = await startServer(t, { feeds: FEEDS, feedsEndpoints: mock.endpoints })
  const client = await LiveClient.connect({ url: `${url}/ws/live` })
  t.teardown(() => client.close())
  const seen = new Map<string, Record<string, unknown>>()
  for (const pattern of ['ticker.>', 'book.>', 'venue.>']) await client.subscribe(pattern, (e) => seen.set(e.topic, e.data as Record<string, unknown>))
  const expected = [
    'ticker.binance.NKN-USDT',
    'ticker.binanceusdm.SUSHI-USDT-PERP',
    'ticker.coinbase.BTC-USD',
    'ticker.kraken.BTC-USD',
    'ticker.kraken.BTC-USDT',
    'ticker.okx.BTC-USDT',
    'ticker.okx.UNI-USD-INVPERP'
  ]
  await until(() => expected.every((topic) => seen.has(topic)), `${expected} (seen ${[...seen.keys()]})`)
  t.match(seen.get('ticker.kraken.BTC-USD'), {
    exchange: 'kraken',
    symbol: 'BTC-USD',
    bid: 78871.5,
    bidSize: 0.01266503,
    ask: 78871.6,
    askSize: 4.21103066,
    receivedAt: Number
  })
  // The live Coinbase session: its last update sets the best offer's size.
  await until(() => seen.get('ticker.coinbase.BTC-USD')?.askSize === 0.08023149, 'the Coinbase session applied')
  t.match(seen.get('ticker.coinbase.BTC-USD'), { bid: 78856.05, bidSize: 0.04868904, ask: 78856.06, askSize: 0.08023149 })
  const coinbase = seen.get('book.coinbase.BTC-USD') as { bids: number[][]; asks: number[][] }
  t.same(coinbase.bids.slice(0, 3), [
    [78856.05, 0.04868904],
    [78855.8, 0.0023974],
    [78855.79, 0.10195826]
  ])
  t.same(coinbase.asks.slice(0, 3), [
    [78856.06, 0.08023149],
    [78857.64, 0.02536216],
    [78857.75, 0.1785107]
  ])
  // Kraken's recorded ALGO/USD snapshot and the update after it: applied, checksums verified.
  await until(() => (seen.get('book.kraken.ALGO-USD')?.bids as number[][] | undefined)?.[6]?.[1] === 6597.5173116, 'the Kraken update applied')
  t.same((seen.get('book.kraken.ALGO-USD')!.bids as number[][])[6], [0.12275, 6597.5173116])
  t.same(app.liveFeeds.unknown, [{ exchange: 'okx', symbol: 'NOPE-USDT' }], 'an instrument the venue does not list is skipped, not guessed')

  await until(() => app.liveVenues.list().length === 5, 'five venues report')
  const { venues } = await client.request<{ venues: VenueHealth[] }>('venues')
  t.same(venues.map((v) => v.exchange).sort(), ['binance', 'binanceusdm', 'coinbase', 'kraken', 'okx'])
  await until(async () => (await client.request<{ venues: VenueHealth[] }>('venues')).venues.every((v) => v.state === 'up'), 'every venue up')
  const metrics = await scrape(http)
  t.equal(metrics.get('realtime_venue_state{exchange="okx"}'), 2)
  t.equal(metrics.get('realtime_venue_gaps_total{exchange="binance"}'), 0)
  t.equal(metrics.get('realtime_venue_checksum_failures_total{exchange="kraken"}'), 0, 'every Kraken checksum verified')
})

t.test('FEEDS and the engine in one server: a recorded OKX book and a desk ticker make the opportunity computed by hand', async (t) => {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  // The recording is replayed once on subscribe: quotes count for a minute here, not a second.
  const { url } = await startServer(t, { arbitrage: true, feeds: 'okx:BTC-USDT', feedsEndpoints: mock.endpoints, maxTickAgeMs: 60_000 })
  const client = await LiveClient.connect({ url: `${url}/ws/live` })
  t.teardown(() => client.close())
  let book: { asks: [number, number][]; exchangeTime: number } | null = null
  const opportunities: Record<string, any>[] = []
  await client.subscribe('book.okx.BTC-USDT', (e) => {
    book = e.data as { asks: [number, number][]; exchangeTime: number }
  })
  await client.subscribe('opportunities.>', (e) => opportunities.push(e.data as Record<string, any>))
  // The whole recorded session applied: the book stamped with its last message's time.
  const session = readFileSync(join(root, 'test/fixtures/venues/okx/books-2026.jsonl'), 'utf8').trim().split('\n')
  const last = Number(JSON.parse(session[session.length - 1]).data[0].ts)
  await until(() => book?.exchangeTime === last, 'the OKX book of the whole session')
  const asks = book!.asks
  const bid = asks[0][0] * 1.005
  await client.publish('ticker.desk.BTC-USDT', { bid, ask: bid * 1.001, bidSize: 2, askSize: 1, ts: Date.now() })
  await until(() => opportunities.some((o) => o.sell.exchange === 'desk'), 'an opportunity')
  const o = opportunities.find((x) => x.sell.exchange === 'desk')!
  // By hand, default fees (0.001 a side) and MIN_NET_BPS 5: OKX's asks while the marginal net holds.
  let size = 0
  let profit = 0
  for (const [price, available] of asks) {
    const unit = bid * 0.999 - price * 1.001
    if ((unit / price) * 1e4 < 5 || size >= 2) break
    const q = Math.min(available, 2 - size)
    size += q
    profit += q * unit
  }
  t.match(o, { symbol: 'BTC-USD', buy: { exchange: 'okx', symbol: 'BTC-USDT', price: asks[0][0] }, sell: { exchange: 'desk', price: bid } })
  const r = (x: number) => Math.round(x * 1e9) / 1e9
  t.equal(r(o.maxProfit), r(profit))
  t.ok(o.maxSize > 0 && o.maxSize <= size + 1e-9, `maxSize ${o.maxSize} of the ${size} walked, in OKX's lots`)
})

t.test('every market: a forced close reconnects and a silent socket is dropped; both resync their books', async (t) => {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const published: { topic: string; data: Record<string, unknown> }[] = []
  const markets = [
    ['binance', 'NKN-USDT'],
    ['binanceusdm', 'SUSHI-USDT-PERP'],
    ['coinbase', 'BTC-USD'],
    ['kraken', 'BTC-USD'],
    ['okx', 'BTC-USDT']
  ] as const
  const feeds = await startFeeds({
    feeds: new Map(markets.map(([exchange, symbol]) => [exchange, [symbol]])),
    endpoints: parseEndpoints(mock.endpoints)!,
    bookDepth: 5,
    silenceMs: 1500,
    sink: topicSink((topic, data) => published.push({ topic, data: data as Record<string, unknown> }))
  })
  t.teardown(() => feeds.stop())
  const health = (exchange: string) => feeds.health().find((h) => h.exchange === exchange)!
  const books = (exchange: string) => published.filter((p) => p.topic.startsWith(`book.${exchange}.`)).length
  const every = (check: (exchange: (typeof markets)[number][0]) => boolean) => markets.every(([exchange]) => check(exchange))
  await until(() => every((e) => health(e).booksLive === 1), 'every book live')

  // The venue closes the connection (Binance does so after 24 h).
  const before = new Map(markets.map(([e]) => [e, books(e)]))
  for (const [e] of markets) mock.venues[e].closeAll(1001)
  await until(() => every((e) => health(e).reconnects === 1 && health(e).booksLive === 1 && books(e) > before.get(e)!), 'reconnected and resynced')
  t.pass('every market reconnected, took a new snapshot and publishes again')

  // The venue goes quiet: no messages, no pongs.
  for (const [e] of markets) mock.venues[e].silent = true
  await until(() => every((e) => health(e).silences >= 1 && health(e).booksLive === 0), 'every silent socket dropped', 15_000)
  const quiet = new Map(markets.map(([e]) => [e, books(e)]))
  await sleep(300) // a window in which nothing may be published
  t.same(new Map(markets.map(([e]) => [e, books(e)])), quiet, 'nothing published while no book is live')
  for (const [e] of markets) mock.venues[e].silent = false
  await until(() => every((e) => health(e).booksLive === 1 && health(e).state !== 'down' && books(e) > quiet.get(e)!), 'back and resynced', 20_000)
  t.pass('every market came back with a new snapshot')
})

type Published = { topic: string; data: Record<string, unknown> }[]

/** The venue.<exchange> events from `from` on. */
const venueEvents = (published: Published, from: number, exchange: string) => published.slice(from).filter((p) => p.topic === `venue.${exchange}`)

/**
 * The distinct states venue.<exchange> events said from `from` on, read once an event reports the
 * rotation. Without that wait the list can be empty (and the test vacuous): on a loaded machine the
 * book goes live just before the group's rotation check, and the whole rotation fits between two
 * health events.
 */
async function statesThroughRotation(published: Published, from: number, exchange: string) {
  await until(() => venueEvents(published, from, exchange).some((p) => p.data.rotations === 1), 'a venue event after the rotation')
  return [...new Set(venueEvents(published, from, exchange).map((p) => p.data.state))]
}

/** One Binance book (NKN-USDT) from the mock exchange, live; what it publishes is recorded. */
async function binanceBook(t: Teardown, rotateAfterMs?: number) {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const published: Published = []
  const feeds = await startFeeds({
    feeds: new Map([['binance', ['NKN-USDT']]]),
    endpoints: parseEndpoints(mock.endpoints)!,
    bookDepth: 5,
    rotateAfterMs,
    sink: topicSink((topic, data) => published.push({ topic, data: data as Record<string, unknown> }))
  })
  t.teardown(() => feeds.stop())
  const health = () => feeds.health()[0]
  await until(() => health().booksLive === 1, 'book live')
  return { mock, published, health }
}

t.test('Binance rotation: a second socket takes over once its book is live, before the venue closes the first', async (t) => {
  const { mock, published, health } = await binanceBook(t, 1500) // the venue's 24 h less 30 min, shortened
  const books = published.filter((p) => p.topic === 'book.binance.NKN-USDT').length
  const from = published.length
  // The mock replays its stream to a socket as it opens: the old one is still up then.
  let most = 0
  mock.venues.binance.rewrite = (message) => {
    most = Math.max(most, mock.venues.binance.sockets.size)
    return message
  }
  await until(() => health().rotations === 1, 'one rotation', 10_000)
  t.equal(most, 2, 'the new socket opened while the old one was still up')
  await until(() => mock.venues.binance.sockets.size === 1, 'the old socket closed')
  t.same(await statesThroughRotation(published, from, 'binance'), ['up'], 'every venue event said up: no gap')
  t.match(health(), { reconnects: 0, gaps: 0, resyncs: 0, booksLive: 1, instruments: 1 })
  t.ok(published.filter((p) => p.topic === 'book.binance.NKN-USDT').length > books, 'the new socket publishes the book')
})

t.test('Binance serverShutdown: the socket is replaced at once, not at its planned age, with no gap', async (t) => {
  const { mock, published, health } = await binanceBook(t)
  const from = published.length
  const shutdown = readFileSync(new URL('./fixtures/venues/binance/server-shutdown.json', import.meta.url), 'utf8').trim()
  for (const ws of mock.venues.binance.sockets) ws.send(shutdown)
  await until(() => health().rotations === 1, 'rotated', 10_000)
  await until(() => mock.venues.binance.sockets.size === 1, 'the announced socket closed')
  t.same(await statesThroughRotation(published, from, 'binance'), ['up'], 'every venue event said up: no gap')
  t.match(health(), { reconnects: 0, gaps: 0, resyncs: 0, ignored: 0, booksLive: 1 })
})

t.test('instruments beyond what one socket carries go on more sockets; the venue reports them as one', async (t) => {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const seen = new Set<string>()
  const feeds = await startFeeds({
    feeds: new Map([['okx', ['BTC-USDT', 'UNI-USD-INVPERP']]]),
    endpoints: parseEndpoints(mock.endpoints)!,
    bookDepth: 5,
    perConnection: 1, // Binance: 200
    sink: topicSink((topic) => seen.add(topic))
  })
  t.teardown(() => feeds.stop())
  await until(() => seen.has('ticker.okx.BTC-USDT') && seen.has('ticker.okx.UNI-USD-INVPERP'), 'both books publish')
  t.equal(mock.venues.okx.sockets.size, 2, 'one socket each')
  const subscribed = mock.venues.okx.received.map((r) => (r as { args: { instId: string }[] }).args.map((a) => a.instId).join())
  t.same(subscribed.sort(), ['BTC-USDT', 'UNI-USD-SWAP'], 'each socket subscribed its own instrument')
  await until(() => feeds.health()[0].state === 'up', 'one venue, up')
  t.match(feeds.health(), [{ exchange: 'okx', instruments: 2, booksLive: 2, connected: true }])
})

const built = existsSync(join(root, 'dist/feeds-process.js'))

t.test('the feeds process publishes into a server; under PM2 it comes back after kill -9', { skip: !built, timeout: 120_000 }, async (t) => {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const { url } = await startServer(t)
  const client = await LiveClient.connect({ url: `${url}/ws/live` })
  t.teardown(() => client.close())
  const received: { topic: string; data: Record<string, unknown> }[] = []
  await client.subscribe('ticker.okx.BTC-USDT', (e) => received.push({ topic: e.topic, data: e.data as Record<string, unknown> }))
  const env = { FEEDS: 'okx:BTC-USDT', FEEDS_ENDPOINTS: mock.endpoints, FEEDS_SERVER_URL: `${url}/ws/live`, LOG_LEVEL: 'warn' }

  const child = spawn(process.execPath, ['dist/feeds-process.js'], { cwd: root, env: { ...process.env, ...env } })
  t.teardown(() => child.kill('SIGKILL'))
  await until(() => received.length > 0, 'a ticker from the feeds process')
  t.match(received[0].data, { exchange: 'okx', symbol: 'BTC-USDT' })
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))

  const beforePm2 = received.length
  const home = mkdtempSync(join(tmpdir(), 'live-pm2-feeds-'))
  const pm2 = (...args: string[]) => spawnClean(process.execPath, [join(root, 'node_modules/pm2/bin/pm2'), ...args], { PM2_HOME: home, ...env }).done
  t.teardown(() => pm2('kill'))
  const started = await pm2('start', join(root, 'pm2.config.json'), '--only', 'feeds')
  t.equal(started.code, 0, started.stderr)
  const feedsApp = async () => {
    const list = JSON.parse((await pm2('jlist')).stdout) as { name: string; pid: number; pm2_env: { restart_time: number; status: string } }[]
    return list.find((p) => p.name === 'feeds')
  }
  await until(async () => (await feedsApp())?.pm2_env.status === 'online', 'feeds online under PM2', 30_000)
  await until(() => received.length > beforePm2, 'tickers from the PM2 feeds app', 30_000)
  const { pid } = (await feedsApp())!
  const beforeKill = received.length
  process.kill(pid, 'SIGKILL')
  await until(
    async () => {
      const app = await feedsApp()
      return app !== undefined && app.pm2_env.restart_time >= 1 && app.pid !== pid && app.pm2_env.status === 'online'
    },
    'PM2 restarted the feeds app',
    30_000
  )
  await until(() => received.length > beforeKill, 'its books resynced and publish again', 30_000)
  t.pass('restarted and resynced')
})

t.test('FEEDS syntax errors stop start-up with one line', async (t) => {
  const { loadConfig } = await import('../src/config.ts')
  t.throws(() => loadConfig({ FEEDS: 'nyse:IBM-USD' }), /FEEDS="nyse:IBM-USD" is not valid; expected exchange:SYMBOL/)
  t.throws(() => loadConfig({ FEEDS_ENDPOINTS: 'okx=ftp://x' }), /FEEDS_ENDPOINTS/)
})
