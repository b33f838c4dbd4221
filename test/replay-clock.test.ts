// A replay runs the connectors on a virtual clock set to the recorded times (docs/RECORDING.md
// "Timers and the end of the turn"): their timers fire where the recording says, so a reconnect's
// backoff opens the next socket before its recorded open, a resubscribe's backoff sends its snapshot
// request before the recorded answer, and the end-of-turn publish runs at each recorded end of turn.
// The live side here runs on a virtual clock too, so both are exact and nothing waits on real time.
import t from 'tap'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../src/market/clock.ts'
import { topicSink } from '../src/market/events.ts'
import { loadRegistry, startFeeds, VENUE_ENDPOINTS } from '../src/market/setup.ts'
import type { Exchange } from '../src/market/venues/index.ts'
import { recordingTransport, type RecordingMeta } from '../src/record/capture.ts'
import { Kind } from '../src/record/format.ts'
import { readRecording } from '../src/record/reader.ts'
import { Recorder } from '../src/record/recorder.ts'
import { replay } from '../src/record/replay.ts'
import { APP_VERSION } from '../src/record/version.ts'
import { fakeConnect, type FakeSocket } from './fake-venue.ts'
import { DIR, SESSIONS } from './venue-sessions.ts'

/** One real event-loop turn: the recorder writes its end-of-turn record, promises on in-memory bodies settle. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))
const START = Date.UTC(2026, 0, 1)
const copy = (data: unknown) => JSON.parse(JSON.stringify(data))

function recorderIn(dir: string, clock: VirtualClock): Recorder {
  return new Recorder({ dir, segmentBytes: 1 << 30, segmentMs: 86_400_000, maxBytes: 1 << 30, maxAgeMs: 0, app: APP_VERSION, now: () => clock.now() })
}

/** `dir` replayed at full speed without an engine: what the connectors published, and the result. */
async function replayMarket(dir: string) {
  const replayed: { topic: string; data: unknown }[] = []
  const result = await replay({
    dir,
    app: APP_VERSION,
    speed: 'max',
    engine: null,
    market: true,
    sink: { event: (topic, data) => replayed.push({ topic, data: copy(data) }) }
  })
  return { replayed, result }
}

/** One live step on `clock`: `ms` pass (the timers due fire), something arrives, the turn ends. */
function liveStep(clock: VirtualClock) {
  return async (ms: number, arrive: () => void = () => {}) => {
    clock.advance(ms)
    arrive()
    await turn()
    await turn()
    clock.runDeferred()
  }
}

t.test('a reconnect after its backoff and a snapshot asked after a resubscribe backoff replay exactly, with nothing diverged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-replay-clock-'))
  const clock = new VirtualClock(START)
  const recorder = recorderIn(dir, clock)
  const exchanges: Exchange[] = ['binance', 'kraken']
  const registry = await loadRegistry(exchanges, { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  const sockets = new Map<Exchange, FakeSocket[]>()
  const asked: number[] = []
  const live: { topic: string; data: unknown }[] = []
  const depth = readFileSync(`${DIR}binance/depth-NKNUSDT.json`, 'utf8')
  const feeds = await startFeeds({
    feeds: new Map([
      ['binance', ['NKN-USDT']],
      ['kraken', ['BTC-USD']]
    ]),
    registry,
    bookDepth: 5,
    clock,
    transport: (exchange) => {
      const fake = fakeConnect()
      sockets.set(exchange, fake.sockets)
      const fetch: typeof globalThis.fetch = async () => {
        asked.push(clock.now())
        return new Response(depth)
      }
      return recordingTransport(recorder, exchange, { connect: fake.connect, fetch, clock })
    },
    beforeStart: (instruments) => {
      const meta: RecordingMeta = { run: START, app: APP_VERSION, bookDepth: 5, instruments: Object.fromEntries(instruments), engine: false }
      recorder.setMeta(meta)
    },
    sink: topicSink((topic, data) => live.push({ topic, data: copy(data) }))
  })
  const step = liveStep(clock)
  const binance = () => sockets.get('binance')!.at(-1)!
  const kraken = () => sockets.get('kraken')!.at(-1)!
  const binanceFrames = SESSIONS.binance!.frames()
  const krakenFrames = SESSIONS.kraken!.frames().filter((f) => f.includes('"BTC/USD"'))
  // Planted: a diff past the session's last update id, so one is missing before it.
  const lastId = JSON.parse(binanceFrames.at(-1)!).data.u as number
  const gap = (n: number) =>
    JSON.stringify({ stream: 'nknusdt@depth@100ms', data: { e: 'depthUpdate', E: 1, s: 'NKNUSDT', U: lastId + n, u: lastId + n, b: [], a: [] } })

  await step(10, () => {
    binance().accept() // asks for its snapshot
    kraken().accept()
  })
  for (let i = 0; i < Math.max(binanceFrames.length, krakenFrames.length); i++)
    await step(40, () => {
      if (i < binanceFrames.length) binance().deliver(binanceFrames[i])
      if (i < krakenFrames.length) kraken().deliver(krakenFrames[i])
    })
  // Planted gaps: the first resync asks again at once, the second (within 10 s) after 1 s.
  await step(50, () => binance().deliver(gap(10)))
  await step(100, () => binance().deliver(gap(20)))
  await step(1200)
  t.equal(asked.length, 3, 'snapshots: at the open, at the first gap, 1 s after the second')
  t.equal(asked[2] - asked[1], 1100, 'the second resync waited 1 s on the clock (asked at the next step after it)')
  // Kraken's socket closes: the connection reconnects after its 500 ms backoff.
  await step(10, () => kraken().close())
  await step(600)
  t.equal(sockets.get('kraken')!.length, 2, 'the reconnect opened a second socket')
  await step(10, () => kraken().accept())
  for (const frame of krakenFrames) await step(40, () => kraken().deliver(frame))
  // A silence past Kraken's 10 s: the watchdog closes the socket (as ws reports, its close follows).
  await step(10_500)
  t.equal(kraken().terminated, 1, 'the watchdog gave up on the silent socket')
  await step(1, () => kraken().close())
  await step(1000)
  t.equal(sockets.get('kraken')!.length, 3, 'and reconnected after the backoff')
  feeds.stop()
  await recorder.close()

  const kinds = [...readRecording(dir, APP_VERSION, () => {})].map((r) => r.kind)
  t.equal(kinds.filter((k) => k === Kind.open).length, 4, 'four sockets opened live: binance once, kraken three times')
  t.equal(kinds.filter((k) => k === Kind.rest).length, 3)

  const { replayed, result } = await replayMarket(dir)
  t.same(result.damage, [])
  t.equal(result.diverged, 0, 'every socket and request made by the time the recording says')
  const quotes = (events: typeof live) => events.filter((e) => !e.topic.startsWith('venue.'))
  t.ok(quotes(live).length > 20, `${quotes(live).length} book and ticker events live`)
  t.same(quotes(replayed), quotes(live), 'the same books and tickers, field for field')
  t.same(replayed, live, 'and the same venue health: the watchdog ticked at the same times')
})

t.test('a socket or request the connectors never make is counted as divergence, not waited for', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-replay-clock-'))
  const clock = new VirtualClock(START)
  const recorder = recorderIn(dir, clock)
  const registry = await loadRegistry(['kraken'], { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  const instruments = { kraken: [registry.topic('kraken', 'BTC-USD')!] }
  recorder.setMeta({ run: START, app: APP_VERSION, bookDepth: 5, instruments, engine: false } satisfies RecordingMeta)
  const frame = SESSIONS.kraken!.frames().find((f) => f.includes('"BTC/USD"'))!
  recorder.add(Kind.open, START, 1, JSON.stringify({ venue: 'kraken', url: 'wss://ws.kraken.com/v2' }))
  recorder.add(Kind.accept, START + 10, 1, null)
  recorder.add(Kind.frame, START + 20, 1, frame)
  // A second socket while the first is open: no timer of the connection opens one.
  recorder.add(Kind.open, START + 30, 2, JSON.stringify({ venue: 'kraken', url: 'wss://ws.kraken.com/v2' }))
  recorder.add(Kind.accept, START + 40, 2, null)
  for (let i = 0; i < 3; i++) recorder.add(Kind.frame, START + 50 + i, 2, frame)
  // An answer to a request Kraken never makes.
  recorder.add(Kind.rest, START + 60, 0, `${JSON.stringify({ venue: 'kraken', url: 'https://api.kraken.com/0/public/Depth?pair=XBTUSD', status: 200 })}\n{}`)
  await recorder.close()
  const books: string[] = []
  const result = await replay({ dir, app: APP_VERSION, speed: 'max', engine: null, market: true, sink: { event: (topic) => books.push(topic) } })
  t.equal(result.diverged, 5, "the second socket's accept and three frames, and the answer nobody asked for")
  t.equal(result.frames, 4)
  t.ok(books.includes('book.kraken.BTC-USD'), "the first socket's frame reached its connector")
})

t.test('venueHealth false: the connectors publish no venue health, and their watchdog still pings and finds a silence', async (t) => {
  const registry = await loadRegistry(['kraken'], { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  const frames = SESSIONS.kraken!.frames().filter((f) => f.includes('"BTC/USD"'))
  // The same session twice, with venue health published (the default) and without.
  const run = async (venueHealth: boolean | undefined) => {
    const clock = new VirtualClock(START)
    const fake = fakeConnect()
    const topics: string[] = []
    const feeds = await startFeeds({
      feeds: new Map([['kraken', ['BTC-USD']]]),
      registry,
      bookDepth: 5,
      clock,
      silenceMs: 2000,
      venueHealth,
      connect: fake.connect,
      sink: topicSink((topic, data) => topics.push(topic === 'venue.kraken' ? `${topic} ${clock.now() - START} ${(data as { state: string }).state}` : topic))
    })
    const step = (ms: number, arrive: () => void) => {
      clock.advance(ms)
      arrive()
      clock.runDeferred()
    }
    step(10, () => fake.sockets[0].accept())
    for (const frame of frames.slice(0, 20)) step(40, () => fake.sockets[0].deliver(frame))
    step(2500, () => {}) // silent past its 2 s limit
    const health = feeds.health()[0]
    feeds.stop()
    return { topics, pings: fake.sockets[0].pings, terminated: fake.sockets[0].terminated, silences: health.silences, booksLive: health.booksLive }
  }
  const published = await run(undefined)
  const quiet = await run(false)
  t.same(
    published.topics.filter((topic) => topic.startsWith('venue.')),
    [
      'venue.kraken 50 up', // the book went live
      ...[250, 500, 750, 1000].map((ms) => `venue.kraken ${ms} up`),
      ...[1250, 1500, 1750, 2000].map((ms) => `venue.kraken ${ms} degraded`), // silent past half its limit
      // 2250: silent past its 2 s limit (last frame at 170), the socket terminated; its close has not come.
      'venue.kraken 2500 down'
    ],
    'by default: venue health as the book went live and at every tick of the watchdog'
  )
  t.same(
    quiet.topics,
    published.topics.filter((topic) => !topic.startsWith('venue.')),
    'without it: the same books and tickers, no venue health'
  )
  // Pinged at 250 ... 2000 (8 ticks); terminated by the silence at 2250 and by stop().
  const watchdog = { pings: 8, terminated: 2, silences: 1, booksLive: 0 }
  t.same(
    { pings: quiet.pings, terminated: quiet.terminated, silences: quiet.silences, booksLive: quiet.booksLive },
    watchdog,
    'the watchdog pinged and dropped the silent socket'
  )
  t.same({ pings: published.pings, terminated: published.terminated, silences: published.silences, booksLive: published.booksLive }, watchdog)
})

t.test("a venue's rate-limit answer replays with its headers: a 429's Retry-After paces the next snapshot request as it did live", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-replay-clock-'))
  const clock = new VirtualClock(START)
  const recorder = recorderIn(dir, clock)
  const registry = await loadRegistry(['binance'], { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  const depth = readFileSync(`${DIR}binance/depth-NKNUSDT.json`, 'utf8')
  const asked: number[] = []
  const live: { topic: string; data: unknown }[] = []
  let socket: FakeSocket | undefined
  const feeds = await startFeeds({
    feeds: new Map([['binance', ['NKN-USDT']]]),
    registry,
    bookDepth: 5,
    clock,
    transport: () => {
      const fake = fakeConnect()
      const fetch: typeof globalThis.fetch = async () => {
        asked.push(clock.now() - START)
        // Binance's answer past its request weight: wait 5 s (docs: "Retry-After" with 429).
        if (asked.length === 1) return new Response('{"code":-1003,"msg":"Too many requests"}', { status: 429, headers: { 'retry-after': '5' } })
        return new Response(depth, { headers: { 'x-mbx-used-weight-1m': '20' } })
      }
      const transport = recordingTransport(recorder, 'binance', { connect: fake.connect, fetch, clock })
      return {
        ...transport,
        connect: (url, events) => {
          const s = transport.connect(url, events)
          socket = fake.sockets.at(-1)
          return s
        }
      }
    },
    beforeStart: (instruments) => recorder.setMeta({ run: START, app: APP_VERSION, bookDepth: 5, instruments: Object.fromEntries(instruments), engine: false }),
    sink: topicSink((topic, data) => live.push({ topic, data: copy(data) }))
  })
  const step = liveStep(clock)
  await step(10, () => socket!.accept())
  for (const frame of SESSIONS.binance!.frames()) await step(500, () => socket!.deliver(frame))
  feeds.stop()
  await recorder.close()
  t.same(asked, [10, 5010], 'live: asked at the open, and again once Retry-After passed')

  const { replayed, result } = await replayMarket(dir)
  t.equal(result.diverged, 0, 'the second request made before its recorded answer')
  t.ok(
    replayed.some((e) => e.topic === 'book.binance.NKN-USDT'),
    'the book went live'
  )
  t.same(replayed, live, 'the same books, tickers and venue health')
})
