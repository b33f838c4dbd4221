// Market data checked where it enters (market/check.ts, plugins/market-data.ts): the bad ticks,
// books and venue events the engine used to count as invalid are refused at the publish, with the
// protocol's error frame, and never reach the engine or the venue table.
import t from 'tap'
import { connectorSink, healthOf, marketDataError } from '../src/market/check.ts'
import { startServer, TestClient } from './helper.ts'

const tick = (bid: number, ask: number, sizes: [number, number] = [2, 3]) => ({
  exchange: 'b',
  symbol: 'BTC-USDT',
  bid,
  ask,
  bidSize: sizes[0],
  askSize: sizes[1],
  ts: 1000
})

// The engine's old rejection cases, each with the reason the entry now gives.
const badTicks: [unknown, string][] = [
  [tick(NaN, 100.4), 'data.bid must be a positive number under 1e100'],
  [tick(100.3, Infinity), 'data.ask must be a positive number under 1e100'],
  [tick(-1, 100.4), 'data.bid must be a positive number under 1e100'],
  [tick(100.3, 100.4, [0, 1]), 'data.bidSize must be a positive number under 1e100'],
  [{ ...tick(100.3, 100.4), ts: '1000' }, 'data.ts must be a finite number'],
  [{ ...tick(100.3, 100.4), exchange: 'c' }, 'data.exchange must be "b", the topic\'s'],
  [{ ...tick(100.3, 100.4), symbol: 'ETH-USDT' }, 'data.symbol must be "BTC-USDT", the topic\'s']
]
const badBooks: [unknown, string][] = [
  [null, 'data must be an object'],
  [{ bids: 'x', asks: [] }, 'data.bids must be an array of [price, size] levels'],
  [
    {
      bids: [
        [1, 1],
        [2, 1]
      ],
      asks: [],
      exchangeTime: 1
    },
    'data.bids must be best first, each price below the one before'
  ],
  [{ bids: [], asks: [[NaN, 1]], exchangeTime: 1 }, 'data.asks[0] must be [price, size], both positive numbers under 1e100'],
  [{ bids: [[1e200, 1e200]], asks: [[2e200, 1]], exchangeTime: 1 }, 'data.bids[0] must be [price, size], both positive numbers under 1e100'], // products past Infinity
  [{ bids: [], asks: [] }, 'data.exchangeTime must be a finite number or null'],
  [{ bids: [], asks: [], exchangeTime: null, lotSize: -1 }, 'data.lotSize must be a number from 0 to under 1e100']
]
const badVenues: [unknown, string][] = [
  [[1, 2], 'data must be an object'],
  [{ exchange: 'a', state: 7 }, 'data.state must be "up", "degraded" or "down"'],
  [{ exchange: 'a', notLive: [] }, 'data.state must be "up", "degraded" or "down"'],
  [{ exchange: 'a', state: 'up', notLive: [1, null, {}, ['BTC-USD']] }, 'data.notLive must be an array of topic symbols'],
  [{ exchange: 'a', state: 'up', notLive: 'BTC-USD' }, 'data.notLive must be an array of topic symbols'],
  [{ exchange: 'a', state: 'up', lastMessageAgeMs: -5 }, 'data.lastMessageAgeMs must be a number from 0, or null'],
  [{ exchange: 'b', state: 'up' }, 'data.exchange must be "a", the topic\'s']
]

t.test('each bad tick, book and venue event has its reason; good ones and other topics pass', async (t) => {
  for (const [data, reason] of badTicks) t.equal(marketDataError('ticker.b.BTC-USDT', data), `"ticker.b.BTC-USDT": ${reason}`)
  for (const [data, reason] of badBooks) t.equal(marketDataError('book.c.BTC-USDT', data), `"book.c.BTC-USDT": ${reason}`)
  for (const [data, reason] of badVenues) t.equal(marketDataError('venue.a', data), `"venue.a": ${reason}`)
  t.equal(marketDataError('ticker.b.BTC-USDT', tick(100.5, 100.3)), null, 'a crossed quote is valid data: the engine counts it')
  t.equal(marketDataError('ticker.b.BTC-USDT', { bid: 1, ask: 2, bidSize: 1, askSize: 1, ts: 5 }), null, 'exchange and symbol may be left out')
  t.equal(marketDataError('book.c.BTC-USDT', { bids: [[2, 1]], asks: [[3, 1]], exchangeTime: null, lotSize: 0 }), null)
  t.equal(marketDataError('venue.a', { exchange: 'a', state: 'down' }), null, 'a health may be its state alone')
  t.equal(marketDataError('ticker.b', tick(1, 2)), '"ticker.b": ticker topics are ticker.<exchange>.<symbol>')
  t.equal(marketDataError('book.a.b.c', {}), '"book.a.b.c": book topics are book.<exchange>.<symbol>')
  t.equal(marketDataError('venue.a.b', {}), '"venue.a.b": venue topics are venue.<exchange>')
  t.equal(marketDataError('tickers.x', 'anything'), null, 'not a market topic')
})

t.test('a recorded venue marker is a state or a venue event of its exchange', async (t) => {
  t.equal(healthOf('a', 'up'), 'up')
  t.same(healthOf('a', { exchange: 'a', state: 'down' }), { exchange: 'a', state: 'down' })
  for (const [exchange, health] of [
    ['a', 'sideways'],
    ['a', { exchange: 'b', state: 'up' }],
    [7, 'up'],
    ['a', null]
  ])
    t.equal(healthOf(exchange, health), null)
})

t.test('over WebSocket: each bad one gets its error frame, the engine and the venue table see none of them', async (t) => {
  const { url, app } = await startServer(t, { arbitrage: true })
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  let id = 0
  const refused = async (topic: string, data: unknown, reason: string) => {
    id++
    t.same(await c.request({ type: 'publish', id, topic, data }), { type: 'error', id, code: 'bad_request', message: `"${topic}": ${reason}` }, reason)
  }
  // JSON has no NaN or Infinity: those cases are the codec's; the rest go over the wire as they are.
  const wire = ([data]: [unknown, string]) => JSON.stringify(data) === JSON.stringify(data, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? 'x' : v))
  for (const [data, reason] of badTicks.filter(wire)) await refused('ticker.b.BTC-USDT', data, reason)
  for (const [data, reason] of badBooks.filter(wire)) await refused('book.c.BTC-USDT', data, reason)
  for (const [data, reason] of badVenues) await refused('venue.a', data, reason)
  await refused('ticker.b.BTC-USDT', 'nonsense', 'data must be an object')
  t.match(app.liveArbitrage.counters, { ticks: 0, books: 0 }, 'the engine got none of them')
  t.same(app.liveVenues.list(), [], 'nor the venue table')
  t.match(await c.request({ type: 'publish', id: 99, topic: 'ticker.b.BTC-USDT', data: tick(100.3, 100.4) }), { type: 'ack', id: 99 })
  t.match(app.liveArbitrage.counters, { ticks: 1 }, 'a good tick goes on to the engine')
})

t.test('without the engine, book.> and ticker.> are topics like any other; venue.> is still checked', async (t) => {
  const { url } = await startServer(t)
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  t.match(await c.request({ type: 'publish', id: 1, topic: 'ticker.x.BTC', data: { i: 1 } }), { type: 'ack', id: 1 })
  t.same(await c.request({ type: 'publish', id: 2, topic: 'venue.a', data: { exchange: 'a' } }), {
    type: 'error',
    id: 2,
    code: 'bad_request',
    message: '"venue.a": data.state must be "up", "degraded" or "down"'
  })
})

t.test("a connector's own event passes unchecked, and only it: a publish made while it is delivered is checked", async (t) => {
  const { app } = await startServer(t, { arbitrage: true })
  const refused: string[] = []
  // An in-process subscriber that republishes as each book is delivered, in the same call.
  app.live.subscribe('book.>', () => app.live.publishDetached('ticker.b.BTC-USDT', { ...tick(100.3, 100.4), bid: -1 }, () => refused.push('derived')))
  const sink = connectorSink((topic, data) => app.live.publishDetached(topic, data, () => refused.push(topic)))
  sink.book({
    exchange: 'b',
    symbol: 'BTC-USDT',
    ts: 1000,
    exchangeTime: 1000,
    receivedAt: 1001,
    bids: [[100.3, 2]],
    asks: [[100.4, 3]],
    lotSize: 0.001,
    minSize: 0,
    minNotional: 0
  })
  t.same(refused, ['derived'], "the subscriber's bad ticker is refused; the connector's book went on")
  t.match(app.liveArbitrage.counters, { books: 1, ticks: 0 }, 'the engine got the book, not the bad ticker')
})
