// Opportunities leave the delivery of the book that made them (issue #30): every subscriber of the
// book event has it before the opportunity is published, never an opportunity from inside the
// book's own fan-out. The engine alone, as an embedder registers it (no scorer hook, whose model
// answers off the event loop and so hid the re-entrancy in the whole server).
import t from 'tap'
import Fastify from 'fastify'
import live from '../src/index.ts'
import arbitrage from '../src/plugins/arbitrage.ts'
import marketData from '../src/plugins/market-data.ts'

/** What the engine reads is checked where it enters: the market-data plugin, registered before it. */
const checked = { kinds: ['book', 'ticker', 'venue'] } as const

t.test('a book is delivered to all its subscribers before the opportunity it opens is published', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(live, { heartbeatInterval: 0 })
  await app.register(marketData, checked)
  await app.register(arbitrage, { minNetBps: 5, maxTickAgeMs: 60_000, opportunityUpdateBps: 1, takerFees: '', defaultTakerFee: 0.001 })
  await app.ready()
  const order: string[] = []
  // Subscribed after the engine: in the book's fan-out, after the engine has seen it.
  app.live.subscribe('book.>', (e) => order.push(e.topic))
  app.live.subscribe('opportunities.>', (e) => order.push(`${e.topic} ${(e.data as { status: string }).status}`))
  const book = (exchange: string, bid: number, ask: number) => ({ exchange, symbol: 'BTC-USDT', bids: [[bid, 1]], asks: [[ask, 1]], exchangeTime: null })
  await app.live.publish('book.a.BTC-USDT', book('a', 100, 101))
  await app.live.publish('book.b.BTC-USDT', book('b', 103, 104))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(order, ['book.a.BTC-USDT', 'book.b.BTC-USDT', 'opportunities.BTC-USD open'])
})

t.test('the engine plugin takes its own settings only, an omitted one at its default, a bad one refused by name', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(live, { heartbeatInterval: 0 })
  await app.register(marketData, checked)
  await app.register(arbitrage, {})
  await app.ready()
  t.same(app.liveArbitrage.engine.options.sizeLadder, [1000, 10_000, 100_000], 'SIZE_LADDER at its default')
  t.equal(app.liveArbitrage.engine.options.minNetBps, 5, 'MIN_NET_BPS at its default')
  const bad = Fastify()
  t.teardown(() => bad.close())
  await bad.register(live, { heartbeatInterval: 0 })
  await bad.register(marketData, checked)
  bad.register(arbitrage, { takerFees: 'binance=0.5' })
  await t.rejects(async () => {
    await bad.ready()
  }, /^arbitrage: option takerFees "binance=0.5" is not valid; expected exchange=fraction or exchange:kind=fraction/)
})
