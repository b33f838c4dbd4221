// The market pipeline's output on the recorded venue sessions, kept as a golden file: every venue's
// recorded frames (test/fixtures/venues, as the mock exchange sends them to the connectors that
// test/venue-feeds.test.ts runs) go through the connectors one frame per event-loop turn on a fake clock,
// their book and ticker events into the arbitrage engine as the arbitrage plugin feeds it (venue
// health is left out: it is about sockets and timers, which this replay has none of),
// and every book, ticker and opportunity event that comes out is compared with
// test/fixtures/golden/pipeline.jsonl. A change of the market code that changes what reaches a
// client's socket changes this file; refactors must leave it equal.
// UPDATE_GOLDEN=1 npx tap test/golden.test.ts rewrites it (say why in the commit).
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { loadRegistry, VENUE_ENDPOINTS } from '../src/market/setup.ts'
import { createConnection, type Exchange } from '../src/market/venues/index.ts'
import { liveClockWith } from '../src/market/clock.ts'
import { DIR, SESSIONS } from './venue-sessions.ts'
import { topicSink } from '../src/market/events.ts'
import { fakeConnect } from './fake-venue.ts'
import { ArbitrageEngine, type BookData, type Tick } from '../src/market/arbitrage.ts'

const GOLDEN = fileURLToPath(new URL('./fixtures/golden/pipeline.jsonl', import.meta.url))

t.test('the recorded venue sessions through connectors and engine give the golden events', async (t) => {
  const exchanges = Object.keys(SESSIONS) as Exchange[]
  const registry = await loadRegistry(exchanges, { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  let clock = 1_800_000_000_000
  const now = () => clock
  // As the arbitrage plugin is configured by default, with a net threshold low enough that the
  // recorded books (of different days) open, update and close opportunities, and balances so the
  // actionable size is computed too.
  const engine = new ArbitrageEngine({
    minNetBps: -100,
    maxTickAgeMs: 60_000,
    updateBps: 1,
    fees: { 'okx:perp': 0.0005, coinbase: 0.006 },
    defaultFee: 0.001,
    balances: { kraken: { USD: 50_000, BTC: 1 }, coinbase: { USD: 20_000, BTC: 0.5 }, okx: { USDT: 10_000, BTC: 0.2 } }
  })
  const out: string[] = []
  const record = (topic: string, data: unknown) => out.push(JSON.stringify({ topic, data }))
  const token = (topic: string, n: 1 | 2) => topic.split('.')[n]
  const publish = (topic: string, data: unknown) => {
    let opportunities = null
    if (topic.startsWith('book.')) {
      record(topic, data)
      opportunities = engine.onBook(data as BookData, now(), token(topic, 1), token(topic, 2))
    } else if (topic.startsWith('ticker.')) {
      record(topic, data)
      opportunities = engine.onTick(data as Tick, now(), token(topic, 1), token(topic, 2))
    }
    for (const o of opportunities ?? []) record(`opportunities.${o.symbol}`, o)
  }

  const connectors = exchanges.map((exchange) => {
    const session = SESSIONS[exchange]!
    const depth = session.depth ?? {}
    const fakeFetch: typeof fetch = async (url) => {
      const symbol = new URL(String(url)).searchParams.get('symbol') ?? ''
      return new Response(readFileSync(DIR + depth[symbol], 'utf8'))
    }
    const { connect, sockets } = fakeConnect()
    const feed = createConnection(exchange, {
      instruments: session.symbols.map((s) => registry.topic(exchange, s)!),
      endpoints: { ws: 'ws://unused', rest: 'http://unused' },
      bookDepth: 10,
      sink: topicSink(publish),
      fetch: fakeFetch,
      clock: liveClockWith(now),
      connect
    })
    feed.start()
    t.teardown(() => feed.stop())
    return { socket: sockets[0], frames: session.frames() }
  })

  const turn = () => new Promise((r) => setImmediate(r))
  // The connections open: each subscribes (to the fake socket) and asks for its snapshots.
  for (const { socket } of connectors) socket.accept()
  for (let i = 0; i < 3; i++) await turn() // the snapshots' answers read and applied
  const longest = Math.max(...connectors.map((c) => c.frames.length))
  for (let n = 0; n < longest; n++) {
    for (const { socket, frames } of connectors) {
      if (n >= frames.length) continue
      clock += 1
      socket.deliver(frames[n])
      await turn()
    }
  }

  t.ok(
    out.some((l) => l.startsWith('{"topic":"opportunities.')),
    'the sessions make opportunities'
  )
  for (const exchange of exchanges)
    t.ok(
      out.some((l) => l.startsWith(`{"topic":"book.${exchange}.`)),
      `${exchange} publishes books`
    )
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, `${out.join('\n')}\n`)
  const golden = readFileSync(GOLDEN, 'utf8').trimEnd().split('\n')
  t.equal(out.length, golden.length, 'as many events as the golden file')
  for (let i = 0; i < Math.max(out.length, golden.length); i++) if (out[i] !== golden[i]) t.equal(out[i], golden[i], `event ${i}`)
})
