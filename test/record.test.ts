// Record and replay (docs/RECORDING.md): a server records its session from the mock exchange (all
// five venues' recorded real sessions) and from books a client publishes; the recording replayed
// offline through the same connectors and engine gives the opportunity events the live server
// published, field for field, at full speed, 10x and 1x (paced on a virtual clock: no real waiting).
import t, { type Test } from 'tap'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { crc32 } from 'node:zlib'
import { join } from 'node:path'
import { LiveClient } from '../src/client/index.ts'
import type { BusEvent } from '../src/core/protocol.ts'
import { envName, loadConfig, type Config } from '../src/config.ts'
import { spawnSync } from 'node:child_process'
import { replay } from '../src/record/replay.ts'
import { WaitingInputs } from '../src/record/waiting.ts'
import { RecordCursor, readRecording, segmentFiles, type Damage } from '../src/record/reader.ts'
import { Recorder, diskFiles, type SegmentFiles } from '../src/record/recorder.ts'
import { BLOCK_HEADER, BlockRecords, decodeBlock, Kind } from '../src/record/format.ts'
import { buildApp } from '../src/app.ts'
import Fastify from 'fastify'
import live from '../src/plugins/live.ts'
import recorderPlugin from '../src/plugins/recorder.ts'
import replayPlugin, { DEMO_VENUES } from '../src/plugins/replay.ts'
import { demoVenues, LATENCY_MS, schedule } from '../demo/make-venues.ts'
import { engineOptions } from '../src/market/settings.ts'
import { APP_VERSION } from '../src/record/version.ts'
import { engineVenueBody } from '../src/record/capture.ts'
import { shiftBook, shiftHealth, shiftPublish, shiftTicker } from '../src/record/shift.ts'
import { type BookEvent, type TickerEvent, type VenueHealth, ZERO_COUNTERS } from '../src/market/events.ts'
import type { OpportunityEvent } from '../src/market/arbitrage.ts'
import { startMockExchange } from './mock-exchange.ts'
import { root, spawnClean, startServer, TestClient, until } from './helper.ts'

const FEEDS = 'binance:NKN-USDT;binanceusdm:SUSHI-USDT-PERP;coinbase:BTC-USD;kraken:BTC-USD,BTC-USDT,ALGO-USD;okx:BTC-USDT,UNI-USD-INVPERP'
// As the golden file's engine: a threshold low enough that the recorded books of different days
// open, update and close opportunities; quotes count for a minute (the sessions play once).
const ENGINE: Partial<Config> = {
  arbitrage: true,
  minNetBps: -100,
  maxTickAgeMs: 60_000,
  takerFees: 'okx:perp=0.0005,coinbase=0.006',
  balances: 'kraken:USD=50000,BTC=1;coinbase:USD=20000,BTC=0.5;okx:USDT=10000,BTC=0.2'
}

/** What the engine published, without what the publish hooks (the scorer) add: an offline replay runs no hooks. */
function engineFields(data: unknown): Record<string, any> {
  const { volatilityBps: _v, score: _s, models: _m, ...engine } = data as Record<string, unknown>
  return JSON.parse(JSON.stringify(engine))
}

/** A virtual pace: sleeping moves its clock, no real time passes. */
function virtualPace() {
  let now = 0
  let slept = 0
  const sleep = async (ms: number) => {
    now += ms
    slept += ms
  }
  return { sleep, realNow: () => now, slept: () => slept }
}

/** The live session's recording and what the server published, for the tests after the first. */
let session: { dir: string; live: Record<string, any>[] } | null = null

t.test('a recorded live session replays to the opportunities the server published', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const { app, url } = await startServer(t, { ...ENGINE, feeds: FEEDS, feedsEndpoints: mock.endpoints, recordDir: dir })
  const live: Record<string, any>[] = []
  app.live.subscribe('opportunities.>', (e: BusEvent) => live.push(engineFields(e.data)))
  await until(() => app.liveVenues.list().length === 5 && app.liveFeeds.health().every((h) => h.booksLive === h.instruments), 'every book live')
  // A desk publishes its own BTC-USDT book: the engine pairs it with the venues' books.
  const client = await LiveClient.connect({ url: `${url}/ws/live` })
  t.teardown(() => client.close())
  const okx = app.liveFeeds.health().find((h) => h.exchange === 'okx')!
  t.ok(okx.messages > 0)
  for (const bid of [78_500, 79_500, 80_500]) {
    await client.publish('book.desk.BTC-USDT', { exchangeTime: null, bids: [[bid, 1]], asks: [[bid + 10, 1]], lotSize: 0.0001, minNotional: 1 })
  }
  await until(() => live.some((o) => (o as { sell: { exchange: string } }).sell.exchange === 'desk'), 'the desk book in an opportunity')
  await app.close()
  t.ok(live.length > 5, `${live.length} opportunity events live`)
  session = { dir, live }

  const engine = engineOptions(loadConfig({}, ENGINE))
  for (const speed of ['max', 10, 1] as const) {
    const pace = virtualPace()
    const replayed: unknown[] = []
    const result = await replay({
      dir,
      app: APP_VERSION,
      speed,
      engine,
      sink: { event: (topic, data) => topic.startsWith('opportunities.') && replayed.push(engineFields(data)) },
      sleep: pace.sleep,
      realNow: pace.realNow
    })
    t.equal(result.damage.length, 0, `${speed}: no damage`)
    t.equal(result.diverged, 0, `${speed}: every engine input found again`)
    t.same(replayed, live, `${speed}: the same opportunity events, field for field`)
    if (speed !== 'max') {
      const span = (result.last as number) - (result.first as number)
      t.ok(pace.slept() <= span / speed && pace.slept() > span / speed - 1, `${speed}x paced ${pace.slept()} ms for ${span} recorded`)
    }
  }
})

t.test('a shift moves the times of each market event type and nothing else, on copies', async (t) => {
  const book: BookEvent = {
    exchange: 'okx',
    symbol: 'BTC-USDT',
    ts: 1_787_612_486_107,
    exchangeTime: 1_787_612_486_107,
    receivedAt: 1_787_612_486_137,
    bids: [[78_722.2, 0.5]],
    asks: [[78_722.3, 0.38699412]],
    lotSize: 1e-8,
    minSize: 1e-5,
    minNotional: 0
  }
  t.same(shiftBook(book, 1000), { ...book, ts: 1_787_612_487_107, exchangeTime: 1_787_612_487_107, receivedAt: 1_787_612_487_137 })
  t.equal(book.ts, 1_787_612_486_107, 'the original is kept')
  t.same(shiftBook({ ...book, exchangeTime: null, ts: book.receivedAt }, -37), {
    ...book,
    exchangeTime: null,
    ts: 1_787_612_486_100,
    receivedAt: 1_787_612_486_100
  })
  const ticker: TickerEvent = { exchange: 'okx', symbol: 'BTC-USDT', ts: 5, exchangeTime: 5, receivedAt: 7, bid: 1, bidSize: 2, ask: 3, askSize: 4 }
  t.same(shiftTicker(ticker, 10), { ...ticker, ts: 15, exchangeTime: 15, receivedAt: 17 })
  const health = {
    exchange: 'okx',
    state: 'up',
    connected: true,
    instruments: 2,
    booksLive: 2,
    notLive: [],
    lastMessageAgeMs: 12,
    clockOffsetMs: 30,
    latencyMs: 4,
    rotations: 0,
    heldBytes: 0,
    ts: 2000,
    ...{ messages: 9, ignored: 0, invalid: 0, gaps: 0, checksumFailures: 0, resyncs: 0, reconnects: 0, silences: 0, errors: 0, overflows: 0 }
  } satisfies VenueHealth
  t.same(shiftHealth(health, 500), { ...health, ts: 2500 }, 'its offset, latency and message age are durations: kept')
  // A client's publish is anyone's data: only its time fields that are numbers move.
  t.same(shiftPublish('book.desk.BTC-USDT', { exchangeTime: null, ts: 'soon', receivedAt: 3, bids: [] }, 2), {
    exchangeTime: null,
    ts: 'soon',
    receivedAt: 5,
    bids: []
  })
  t.same(shiftPublish('ticker.desk.BTC-USD', { bid: 1, ask: 2, ts: 40 }, 2), { bid: 1, ask: 2, ts: 42 })
  t.same(shiftPublish('venue.desk', { state: 'up', ts: 7, clockOffsetMs: 1 }, 2), { state: 'up', ts: 9, clockOffsetMs: 1 })
  t.same(shiftPublish('orders.desk', { ts: 7 }, 2), { ts: 7 }, 'not a market topic: kept')
  t.equal(shiftPublish('book.desk.X', null, 2), null)
  t.same(shiftPublish('book.desk.X', [1, 2], 2), [1, 2])
})

t.test('a shifted replay moves books, tickers and opportunities by the shift exactly; the engine finds the same', async (t) => {
  if (session === null) return t.fail('needs the recorded session')
  const S = 123_456_789
  const run = async (shift: number) => {
    const events: { topic: string; data: any; time: number }[] = []
    await replay({
      dir: session!.dir,
      app: APP_VERSION,
      speed: 'max',
      engine: engineOptions(loadConfig({}, ENGINE)),
      market: true,
      shift,
      sink: { event: (topic, data, time) => !topic.startsWith('venue.') && events.push({ topic, data: JSON.parse(JSON.stringify(data)), time }) }
    })
    return events
  }
  const plain = await run(0)
  const shifted = await run(S)
  const leg = (l: OpportunityEvent['buy']) => ({ ...l, ts: l.ts === null ? null : l.ts + S, receivedAt: l.receivedAt + S })
  const expected = plain.map(({ topic, data, time }) => ({
    topic,
    time: time + S,
    data: topic.startsWith('opportunities.')
      ? { ...data, detectedAt: data.detectedAt + S, buy: leg(data.buy), sell: leg(data.sell) }
      : shiftPublish(topic, data, S)
  }))
  t.ok(plain.filter((e) => e.topic.startsWith('opportunities.')).length > 5, 'opportunities to compare')
  t.ok(
    plain.some((e) => e.topic === 'book.desk.BTC-USDT'),
    "a client's recorded publish among them"
  )
  t.strictSame(shifted, expected, 'each event the unshifted one with every time moved by the shift: same ids, figures, legs and clock offsets')
})

/** A recording written record by record (one segment: it never rotates). */
function handRecorder(): { dir: string; recorder: Recorder } {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  const recorder = new Recorder({ dir, segmentBytes: 1 << 30, segmentMs: 3_600_000, maxBytes: 1 << 30, maxAgeMs: 0, app: APP_VERSION, now: () => 1_000_000 })
  return { dir, recorder }
}

/** `dir` replayed offline at full speed by the default engine: what it published, market events too, and its result. */
async function replayMarket(dir: string) {
  const seen: unknown[] = []
  const result = await replay({
    dir,
    app: APP_VERSION,
    speed: 'max',
    market: true,
    engine: engineOptions(loadConfig({})),
    sink: { event: (topic, data) => seen.push([topic, data]) }
  })
  return { seen, result }
}

/** A small recording written through the Recorder: `blocks` batches of `per` frames of one connection. */
async function smallRecording(blocks: number, per: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  const recorder = new Recorder({
    dir,
    segmentBytes: 1 << 30,
    segmentMs: 3_600_000,
    maxBytes: 1 << 30,
    maxAgeMs: 0,
    app: APP_VERSION,
    level: 1,
    now: () => 1_000_000
  })
  recorder.setMeta({ run: 1, app: APP_VERSION, bookDepth: 5, instruments: {} })
  for (let b = 0; b < blocks; b++) {
    for (let i = 0; i < per; i++) recorder.add(Kind.frame, 1_000_000 + b * per + i, 1, `{"n":${b * per + i},"pad":"${'x'.repeat(200)}"}`)
    await recorder.flush()
  }
  await recorder.close()
  return dir
}

const frames = (dir: string, damage: Damage[] = []) =>
  [...readRecording(dir, APP_VERSION, (d) => damage.push(d))].filter((r) => r.kind === Kind.frame).map((r) => JSON.parse(r.body.toString()).n as number)

/** frames() through a cursor reading ahead (the next block inflated on the thread pool), as a replay reads. */
async function framesAhead(dir: string, damage: Damage[] = []): Promise<number[]> {
  const r = new RecordCursor(dir, APP_VERSION, (d) => damage.push(d), true)
  const n: number[] = []
  while (r.next() || (await r.more())) if (r.kind === Kind.frame) n.push(JSON.parse(r.text()).n)
  return n
}

/** Offsets of the blocks of a segment, in order. */
function blockOffsets(buf: Buffer): number[] {
  const offsets: number[] = []
  let at = buf.indexOf(10) + 1
  while (at < buf.length) {
    offsets.push(at)
    at += BLOCK_HEADER + buf.readUInt32LE(at + 4)
  }
  return offsets
}

t.test('a corrupt block is reported with its file and offset and the rest replays; a truncated segment too', async (t) => {
  const dir = await smallRecording(4, 50)
  const [file] = segmentFiles(dir)
  t.same(frames(dir), [...Array(200).keys()], 'written and read back whole')
  t.same(await framesAhead(dir), [...Array(200).keys()], 'read back whole reading ahead')
  const buf = readFileSync(file)
  // The block holding the second batch of frames.
  const offsets = blockOffsets(buf)
  const second = offsets.find((at) => {
    const block = decodeBlock(buf, at)
    if (!block.ok) return false
    const records = new BlockRecords(block.raw)
    while (records.next()) if (records.kind === Kind.frame && JSON.parse(records.text()).n === 50) return true
    return false
  }) as number
  buf[second + BLOCK_HEADER + 10] ^= 0xff
  writeFileSync(file, buf)
  const damage: Damage[] = []
  const read = frames(dir, damage)
  t.same(damage, [{ file, offset: second, reason: 'block checksum mismatch' }])
  t.same(read, [...Array(50).keys(), ...Array.from({ length: 100 }, (_, i) => 100 + i)], 'the batches before and after the damage')
  const damageAhead: Damage[] = []
  t.same(await framesAhead(dir, damageAhead), read, 'the same records reading ahead')
  t.same(damageAhead, damage, 'and the same damage')
  // A torn write: the last block cut short.
  writeFileSync(file, buf.subarray(0, buf.length - 100))
  const torn: Damage[] = []
  t.equal(frames(dir, torn).length, 100)
  const cut = offsets.filter((at) => at < buf.length - 100).pop()
  t.match(torn[1], { file, offset: cut, reason: /^truncated block/ })
  const tornAhead: Damage[] = []
  t.equal((await framesAhead(dir, tornAhead)).length, 100)
  t.same(tornAhead, torn, 'the same damage reading ahead')
})

t.test('a block that passes its checksum but does not inflate to its stated size is damage, read ahead or not', async (t) => {
  const dir = await smallRecording(4, 20)
  const [file] = segmentFiles(dir)
  const buf = readFileSync(file)
  const [, second, third, fourth] = blockOffsets(buf)
  const rawLength = buf.readUInt32LE(second + 8)
  buf.writeUInt32LE(rawLength + 1000, second + 8) // the CRC covers the deflated bytes only
  buf.writeUInt32LE(64 * 1024 * 1024, third + 8) // as large as a block may be: no 64 MiB buffer is made for it
  // Not deflate at all, with a CRC that matches.
  const body = buf.subarray(fourth + BLOCK_HEADER, fourth + BLOCK_HEADER + buf.readUInt32LE(fourth + 4))
  body.fill(0xff)
  buf.writeUInt32LE(crc32(body), fourth + 12)
  writeFileSync(file, buf)
  const damage: Damage[] = []
  const last = Array.from({ length: 20 }, (_, i) => 60 + i) // the blocks after the segment's first: frames 0-19, 20-39, 40-59, 60-79
  t.same(frames(dir, damage), last, 'the last block only')
  t.match(damage, [
    { file, offset: second, reason: `block inflates to ${rawLength} bytes, not ${rawLength + 1000}` },
    { file, offset: third, reason: /^block inflates to \d+ bytes, not 67108864$/ },
    { file, offset: fourth, reason: /^block does not inflate: / }
  ])
  const ahead: Damage[] = []
  t.same(await framesAhead(dir, ahead), last, 'the same reading ahead')
  t.same(ahead, damage, 'with the same damage')
})

t.test('records that pass their checksum but cannot be used are reported with file and offset; the rest replays', async (t) => {
  const { dir, recorder } = handRecorder()
  recorder.add(Kind.meta, 1_000_000, 0, '{"run":1,"bookDepth":5,"instruments":{"nowhere":"x"}}')
  recorder.add(Kind.publish, 1_000_001, 0, '{"topic":"ticker.a.B","data":{"bid":1}}') // no run: skipped
  await recorder.flush()
  recorder.add(Kind.meta, 1_000_002, 0, '{"run":2,"bookDepth":5,"instruments":{}}')
  recorder.add(Kind.publish, 1_000_003, 0, '{"topic":"ticker.desk.BTC-USD", not json')
  recorder.add(Kind.rest, 1_000_004, 0, 'no header line')
  recorder.add(Kind.publish, 1_000_005, 0, '{"topic":"ticker.desk.BTC-USD","data":{"bid":5}}')
  await recorder.close()
  const [file] = segmentFiles(dir)
  const { seen, result } = await replayMarket(dir)
  t.same(seen, [['ticker.desk.BTC-USD', { bid: 5 }]], 'the usable publish replays')
  t.equal(result.damage.length, 3)
  t.ok(
    result.damage.every((d) => d.file === file && d.offset > 0),
    'each named with its file and block offset'
  )
  t.match(
    result.damage.map((d) => d.reason),
    [/^record of kind 1 unusable: a meta record whose instruments are not lists/, /^record of kind 9 unusable/, /^record of kind 8 unusable/]
  )
})

t.test('a record whose time is not a finite number is reported with file and offset, not run to: the replay ends', async (t) => {
  // Infinity would have the virtual clock fire the engine's sweep interval for ever.
  const { dir, recorder } = handRecorder()
  // Without the engine's inputs recorded (engine: false) the replay sweeps on an interval of the recorded clock.
  recorder.add(Kind.meta, 1_000_000, 0, '{"run":1,"bookDepth":5,"instruments":{},"engine":false}')
  recorder.add(Kind.publish, Number.POSITIVE_INFINITY, 0, '{"topic":"ticker.desk.BTC-USD","data":{"bid":1}}')
  recorder.add(Kind.publish, Number.NaN, 0, '{"topic":"ticker.desk.BTC-USD","data":{"bid":2}}')
  recorder.add(Kind.publish, 1_000_001, 0, '{"topic":"ticker.desk.BTC-USD","data":{"bid":3}}')
  await recorder.close()
  const [file] = segmentFiles(dir)
  const { seen, result } = await replayMarket(dir)
  t.same(seen, [['ticker.desk.BTC-USD', { bid: 3 }]], 'the record after them replays')
  t.same(
    result.damage.map((d) => [d.file, d.reason]),
    [
      [file, 'record of kind 9 unusable: its time is not a finite number'],
      [file, 'record of kind 9 unusable: its time is not a finite number']
    ]
  )
  t.equal(result.last, 1_000_001, 'the replay ends at the last usable time')
})

t.test('a record far in the future (a crafted time, a wall clock set forward) replays in bounded work: the intervals skip to it', async (t) => {
  const { dir, recorder } = handRecorder()
  recorder.add(Kind.meta, 1_000_000, 0, '{"run":1,"bookDepth":5,"instruments":{},"engine":false}')
  recorder.add(Kind.publish, 1e15, 0, '{"topic":"ticker.desk.BTC-USD","data":{"bid":1}}')
  await recorder.close()
  const { seen, result } = await replayMarket(dir)
  t.same(seen, [['ticker.desk.BTC-USD', { bid: 1 }]])
  t.equal(result.last, 1e15)
})

t.test("without the engine's markers the replayed engine is given each venue's health whole, as the live engine is from venue.<exchange>", async (t) => {
  // A feeds process's recording (engine: false): live, the server's engine read venue.kraken's
  // event whole (notLive: the books out; lastMessageAgeMs: as of when its books are current).
  const kraken = {
    exchange: 'kraken',
    venueSymbol: 'BTC/USD',
    base: 'BTC',
    quote: 'USD',
    settle: 'USD',
    kind: 'spot',
    contractSize: 1,
    tickSize: 0.1,
    lotSize: 1e-8,
    minSize: 0.0002,
    minNotional: 0,
    priceDecimals: 1,
    sizeDecimals: 8,
    symbol: 'BTC-USD'
  }
  const { dir, recorder } = handRecorder()
  recorder.setMeta({ run: 1, app: APP_VERSION, bookDepth: 5, instruments: { kraken: [kraken] }, engine: false })
  recorder.add(Kind.sweep, 1_001_000, 0, null) // a second of the recorded clock: the watchdog's health events
  await recorder.close()
  const given: unknown[] = []
  const onVenue = (_exchange: string, health: unknown) => {
    given.push(health)
    return null
  }
  const engine = { onBook: () => null, onTick: () => null, onVenue, sweep: () => null }
  await replay({ dir, app: APP_VERSION, speed: 'max', engine, sink: { event() {} } })
  t.ok(given.length > 0, 'the engine was given venue health')
  t.ok(
    given.every((h) => typeof h === 'object' && h !== null && (h as VenueHealth).exchange === 'kraken' && Array.isArray((h as VenueHealth).notLive)),
    'each whole, with its notLive and lastMessageAgeMs'
  )
  t.same((given[0] as VenueHealth).notLive, ['BTC-USD'], 'the book not live yet is out')
})

t.test(
  "a recording's venue markers with the whole health (older recordings) and with the fields the engine reads replay to the same opportunities",
  async (t) => {
    const at = 1_000_000
    const health = (exchange: string, state: VenueHealth['state'], notLive: string[], lastMessageAgeMs: number | null): VenueHealth => ({
      exchange,
      state,
      connected: state !== 'down',
      instruments: 1,
      booksLive: 1 - notLive.length,
      notLive,
      lastMessageAgeMs,
      clockOffsetMs: 12,
      latencyMs: 30,
      ...ZERO_COUNTERS,
      messages: 40,
      rotations: 0,
      heldBytes: 0,
      ts: at
    })
    const tick = (exchange: string, bid: number, ask: number) =>
      JSON.stringify({ topic: `ticker.${exchange}.BTC-USD`, data: { bid, ask, bidSize: 1, askSize: 1, ts: at } })
    // The engine's inputs in order: both venues up, their tops crossed (an opening), A's book out
    // (a close), back in as of 200 ms ago (it opens again), A down (it closes), A a bare `up`.
    const inputs: ({ publish: string } | { venue: string; health: VenueHealth | 'up' })[] = [
      { venue: 'a', health: health('a', 'up', [], 5) },
      { venue: 'b', health: health('b', 'up', [], 7) },
      { publish: tick('a', 99, 100) },
      { publish: tick('b', 101, 102) },
      { venue: 'a', health: health('a', 'up', ['BTC-USD'], 5) },
      { venue: 'a', health: health('a', 'up', [], 200) },
      { venue: 'a', health: health('a', 'down', [], null) },
      { venue: 'a', health: 'up' }
    ]
    const record = async (body: (exchange: string, health: VenueHealth | 'up') => string) => {
      const { dir, recorder } = handRecorder()
      recorder.setMeta({ run: 1, app: APP_VERSION, bookDepth: 5, instruments: {}, engine: true })
      inputs.forEach((input, i) => {
        if ('publish' in input) {
          recorder.add(Kind.publish, at + i, 0, input.publish)
          recorder.add(Kind.engineTicker, at + i, 0, (JSON.parse(input.publish) as { topic: string }).topic)
        } else recorder.add(Kind.engineVenue, at + i, 0, body(input.venue, input.health))
      })
      await recorder.close()
      return dir
    }
    const whole = await record((exchange, state) => JSON.stringify({ exchange, state })) // as recordEngine wrote them before
    const lean = await record(engineVenueBody)
    const opportunities = async (dir: string) => {
      const events: OpportunityEvent[] = []
      const result = await replay({
        dir,
        app: APP_VERSION,
        speed: 'max',
        engine: engineOptions(loadConfig({})),
        sink: { event: (_topic, e) => events.push(e as OpportunityEvent) }
      })
      t.equal(result.diverged, 0)
      return events
    }
    const fromWhole = await opportunities(whole)
    t.same(
      fromWhole.map((e) => [e.status, e.reason ?? null, e.buy.exchange, e.sell.exchange]),
      [
        ['open', null, 'a', 'b'],
        ['closed', 'book', 'a', 'b'],
        ['open', null, 'a', 'b'],
        ['closed', 'venue', 'a', 'b'],
        ['open', null, 'a', 'b']
      ]
    )
    t.strictSame(await opportunities(lean), fromWhole, 'the same events, field for field')
    t.equal(
      engineVenueBody('a', health('a', 'up', ['BTC-USD'], 5)),
      '{"exchange":"a","state":{"exchange":"a","state":"up","notLive":["BTC-USD"],"lastMessageAgeMs":5}}',
      'a marker keeps the fields the engine reads, and its exchange'
    )
    t.equal(engineVenueBody('a', 'up'), '{"exchange":"a","state":"up"}', 'a state alone as it is')
  }
)

t.test('inputs no engine marker asks for are held 10,000 at most', async (t) => {
  const { dir, recorder } = handRecorder()
  recorder.setMeta({ run: 1, app: APP_VERSION, bookDepth: 5, instruments: {}, engine: true })
  for (let i = 0; i < 10_005; i++)
    recorder.add(Kind.publish, 1_000_000 + i, 0, `{"topic":"ticker.desk.BTC-USD","data":{"bid":${i + 1},"ask":${i + 2},"bidSize":1,"askSize":1,"ts":1000000}}`)
  await recorder.close()
  const result = await replay({ dir, app: APP_VERSION, speed: 'max', engine: engineOptions(loadConfig({})), sink: { event() {} } })
  t.equal(result.diverged, 5, 'the oldest five dropped, each counted')
})

t.test(
  'waiting inputs: a marker takes the oldest of its topic, the older ones of other topics dropped and counted once; past the limit the oldest go',
  async (t) => {
    const waiting = new WaitingInputs(3)
    waiting.push('ticker.a.X', 'a1')
    waiting.push('ticker.b.X', 'b1')
    waiting.push('ticker.a.X', 'a2')
    t.same(waiting.take('ticker.a.X'), { topic: 'ticker.a.X', data: 'a1' })
    t.equal(waiting.diverged, 0, 'the oldest of all: nothing skipped')
    t.same(waiting.take('ticker.a.X'), { topic: 'ticker.a.X', data: 'a2' })
    t.equal(waiting.diverged, 1, 'b1 skipped: the live engine never got it')
    t.equal(waiting.size, 0)
    t.equal(waiting.take('ticker.b.X'), undefined, 'a skipped input is gone')
    for (const data of ['c1', 'c2', 'c3', 'c4']) waiting.push('ticker.c.X', data)
    t.equal(waiting.diverged, 2, 'the fourth pushed the oldest out')
    t.same(waiting.take('ticker.c.X'), { topic: 'ticker.c.X', data: 'c2' })
    t.equal(waiting.take('ticker.d.X'), undefined, 'a topic none of which waits')
    t.equal(waiting.diverged, 2, 'counted by the replay, not here')
    t.equal(waiting.size, 2)
  }
)

t.test('markers of a topic that never waits cost no scan of the held inputs (a crafted recording)', { timeout: 60_000 }, async (t) => {
  // Before: each such marker read all 10,000 held inputs; a million of them took minutes.
  const { dir, recorder } = handRecorder()
  recorder.setMeta({ run: 1, app: APP_VERSION, bookDepth: 5, instruments: {}, engine: true })
  for (let i = 0; i < 10_000; i++)
    recorder.add(Kind.publish, 1_000_000 + i, 0, `{"topic":"ticker.desk.BTC-USD","data":{"bid":${i + 1},"ask":${i + 2},"bidSize":1,"askSize":1,"ts":1000000}}`)
  for (let i = 0; i < 1_000_000; i++) {
    recorder.add(Kind.engineTicker, 2_000_000 + i, 0, 'ticker.desk.ETH-USD')
    if (i % 100_000 === 0) await recorder.flush() // under the recorder's 32 MiB waiting to be written
  }
  await recorder.close()
  const result = await replay({ dir, app: APP_VERSION, speed: 'max', engine: engineOptions(loadConfig({})), sink: { event() {} } })
  t.equal(result.diverged, 1_000_000, 'each marker that found nothing counted once')
})

t.test('a recording of another format is refused naming both versions; --from/--to outside it names its range', async (t) => {
  const dir = await smallRecording(1, 3)
  const [file] = segmentFiles(dir)
  const buf = readFileSync(file)
  const engine = engineOptions(loadConfig({}))
  const sink = { event() {} }
  await t.rejects(replay({ dir, app: APP_VERSION, speed: 'max', engine, sink, from: Date.UTC(2030, 0, 1) }), {
    message: /^--from\/--to select nothing: the recording runs from 1970-01-01T00:16:40.000Z to 1970-01-01T00:16:40.00\dZ$/
  })
  await t.rejects(replay({ dir, app: APP_VERSION, speed: 'max', engine, sink, to: 5 }), { message: /the recording runs from 1970-01-01T00:16:40.000Z/ })
  const header = JSON.parse(buf.subarray(0, buf.indexOf(10)).toString())
  const other = Buffer.from(`${JSON.stringify({ ...header, version: 99, app: '9.0.0' })}\n`)
  writeFileSync(file, Buffer.concat([other, buf.subarray(buf.indexOf(10) + 1)]))
  await t.rejects(replay({ dir, app: APP_VERSION, speed: 'max', engine, sink }), {
    message: `${file}: recorded in format 99 by realtime 9.0.0; this is realtime ${APP_VERSION}, which reads format 1 only`
  })
})

t.test('segments rotate by size and the oldest go past RECORD_MAX_MB', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  const recorder = new Recorder({ dir, segmentBytes: 4096, segmentMs: 3_600_000, maxBytes: 16 * 1024, maxAgeMs: 0, app: APP_VERSION, level: 0 })
  recorder.setMeta({ run: 1, app: APP_VERSION, bookDepth: 5, instruments: {} })
  for (let b = 0; b < 40; b++) {
    recorder.add(Kind.frame, b, 1, `{"n":${b},"pad":"${'x'.repeat(3000)}"}`)
    await recorder.flush()
  }
  await recorder.close()
  const files = segmentFiles(dir)
  const total = files.reduce((n, f) => n + statSync(f).size, 0)
  t.ok(recorder.counters.segments >= 20, `${recorder.counters.segments} segments written`)
  t.ok(recorder.counters.removed > 0 && total <= 16 * 1024 + 8192, `${recorder.counters.removed} removed, ${total} bytes kept`)
  const kept = frames(dir)
  t.same(
    kept,
    Array.from({ length: kept.length }, (_, i) => 40 - kept.length + i),
    'the newest frames are kept, each segment readable alone'
  )
})

t.test('segments rotate by age and RECORD_MAX_AGE removes those last written longer ago', async (t) => {
  let clock = 0
  const written = new Map<string, { bytes: number; modifiedAt: number }>()
  const files: SegmentFiles = {
    async open(path) {
      written.set(path, { bytes: 0, modifiedAt: clock })
      return {
        write: async (data: Buffer) => {
          const f = written.get(path)
          if (f) Object.assign(f, { bytes: f.bytes + data.length, modifiedAt: clock })
        },
        close: async () => {}
      }
    },
    list: () => [...written].map(([path, f]) => ({ name: path.slice(path.lastIndexOf('/') + 1), ...f })),
    remove: (path) => {
      written.delete(path)
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  const recorder = new Recorder({ dir, segmentBytes: 1 << 30, segmentMs: 2000, maxBytes: 1 << 30, maxAgeMs: 5000, app: APP_VERSION, files, now: () => clock })
  recorder.setMeta({ run: 1, app: APP_VERSION, bookDepth: 5, instruments: {} })
  for (let second = 0; second < 20; second++) {
    clock = second * 1000
    recorder.add(Kind.frame, clock, 1, '{}')
    await recorder.flush()
  }
  await recorder.close()
  t.equal(recorder.counters.segments, 10, 'a new segment every 2 s of 20')
  t.ok(recorder.counters.removed >= 6, `${recorder.counters.removed} removed`)
  t.ok(
    [...written.values()].every((f) => f.modifiedAt >= clock - 5000 - 2000),
    'what is left was written within RECORD_MAX_AGE of the last rotation'
  )
})

t.test('a full disk during a live run: recording dropped and counted, live clients unaffected', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  let room = 2048 // bytes the disk has left
  const full: SegmentFiles = {
    ...diskFiles,
    async open() {
      return {
        write: async (data: Buffer) => {
          if (data.length > room) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
          room -= data.length
        },
        close: async () => {}
      }
    }
  }
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, memoryLimitMb: 0, recordDir: dir }, { recordFiles: full })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws/live`
  const reader = await LiveClient.connect({ url })
  const publisher = await LiveClient.connect({ url })
  t.teardown(() => reader.close())
  t.teardown(() => publisher.close())
  const got: number[] = []
  await reader.subscribe('book.desk.>', (e) => got.push((e.data as { n: number }).n))
  const recorder = app.liveRecorder.recorder
  for (let n = 0; n < 200; n++) {
    await publisher.publish('book.desk.BTC-USDT', { n, bids: [[100 + n, 1]], asks: [[101 + n, 1]], exchangeTime: null, pad: 'x'.repeat(500) })
    if (n % 20 === 19) await recorder.flush()
  }
  await until(() => got.length === 200, 'every publish delivered')
  t.same(got, [...Array(200).keys()], 'the live client got every event, in order')
  await recorder.flush()
  const counted = await reader.request<{ dropped: number; writeErrors: number }>('recording')
  t.ok(counted.dropped > 0 && counted.writeErrors > 0, 'the recording method says what was dropped')
  t.ok(
    recorder.counters.dropped > 0 && recorder.counters.writeErrors > 0,
    `${recorder.counters.dropped} records dropped in ${recorder.counters.writeErrors} failed writes`
  )
})

t.test('realtime replay with MIN_NET_BPS overridden finds what the new threshold finds, computed by hand', async (t) => {
  if (session === null) return t.fail('needs the recorded session')
  const { dir, live } = session
  // The desk's richest book against the venue the engine bought from: its top-of-book net by hand.
  const desk = live.find((o) => o.status !== 'closed' && o.sell.exchange === 'desk' && o.sell.price === 80_500)!
  const net = ((desk.sell.price * (1 - desk.sell.fee) - desk.buy.price * (1 + desk.buy.fee)) / desk.buy.price) * 1e4
  const threshold = Math.floor(net) - 1
  t.ok(
    live.some((o) => o.status === 'open' && o.netBps < threshold),
    'live (MIN_NET_BPS -100) opened opportunities the new threshold would not'
  )
  const report = join(dir, 'report.csv')
  const run = spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'replay', dir, '--json', '--report', report], {
    env: { ...process.env, ...configEnv(ENGINE), MIN_NET_BPS: String(threshold) },
    encoding: 'utf8'
  })
  t.equal(run.status, 0, run.stderr)
  const events = run.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).data)
  const opened = events.filter((o) => o.status === 'open')
  t.ok(opened.length > 0, `${opened.length} opened`)
  t.ok(
    opened.every((o) => o.netBps >= threshold),
    'every opportunity opened at the new threshold'
  )
  const found = opened.find((o) => o.sell.exchange === 'desk' && o.sell.price === 80_500)
  t.ok(found, 'the desk book at 80,500 still makes one')
  t.equal(Math.round(found.netBps * 1e6) / 1e6, Math.round(net * 1e6) / 1e6, `its net ${found.netBps} bps is the one computed by hand`)
  t.match(run.stderr, /replayed \d+ records \(\d+ venue frames\), \d+ opportunity events\n$/)
  const rows = readFileSync(report, 'utf8').trim().split('\n')
  t.equal(
    rows[0],
    'id,class,buyExchange,buySymbol,sellExchange,sellSymbol,openedAt,closedAt,lifetimeMs,updates,bestNetBps,maxSize,maxProfit,currency,closeReason'
  )
  t.equal(rows.length - 1, new Set(events.map((o) => o.id)).size, 'one row per opportunity')
  t.match(readFileSync(join(dir, 'report-classes.csv'), 'utf8'), /^class,opportunities,closed,meanLifetimeMs,bestNetBps,maxProfit,totalMaxProfit\nBTC-USD,/)
})

/** `realtime replay <args>` with the engine's settings: it succeeded, and the opportunities its --json printed. */
function replayHooks(t: Test, args: string[]) {
  // A hook budget no stall reaches, as startServer gives the tests' servers.
  const env = { ...process.env, ...configEnv(ENGINE), LOG_LEVEL: 'silent', HOOK_BUDGET: '60000' }
  const run = spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'replay', ...args], { env, encoding: 'utf8' })
  t.equal(run.status, 0, run.stderr)
  const events: Record<string, any>[] = run.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).data)
  return { run, events, env }
}

t.test('realtime replay --hooks runs the server plugins: the scorer adds its fields to the live opportunities', async (t) => {
  if (session === null) return t.fail('needs the recorded session')
  const { dir, live } = session
  const { run, events } = replayHooks(t, [dir, '--json', '--hooks'])
  t.same(events.map(engineFields), live, "the live run's opportunity events")
  t.ok(
    events.every((o) => typeof o.score === 'number' && o.models?.scorer !== undefined),
    'each scored by the scorer, as live'
  )
  t.match(run.stderr, new RegExp(`replayed ${live.length} opportunity events\\n$`))
})

t.test('realtime replay --hooks --from --to: what comes before replays unreported, the replay stops after --to, as offline', async (t) => {
  if (session === null) return t.fail('needs the recorded session')
  const { dir, live } = session
  const from = live[Math.floor(live.length / 3)].detectedAt as number
  const to = live[Math.floor((2 * live.length) / 3)].detectedAt as number
  const span = live.filter((o) => o.detectedAt >= from && o.detectedAt <= to)
  t.ok(span.length > 0 && span.length < live.length, `${span.length} of the ${live.length} live events in the span`)
  const { run, events, env } = replayHooks(t, [dir, '--json', '--hooks', '--from', String(from), '--to', new Date(to).toISOString()])
  t.strictSame(events.map(engineFields), span, "the live run's opportunity events of the span, field for field")
  t.ok(
    events.every((o) => typeof o.score === 'number'),
    'each scored, as live'
  )
  t.equal(run.stderr, `realtime: replayed ${span.length} opportunity events\n`)
  // Outside the recording: the span it holds, as offline.
  const outside = spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'replay', dir, '--hooks', '--from', '2030-01-01T00:00:00Z'], {
    env,
    encoding: 'utf8'
  })
  t.equal(outside.status, 1)
  t.match(outside.stderr, /^realtime: --from\/--to select nothing: the recording runs from \d{4}-\d\d-\d\dT[\d:.]+Z to \d{4}-\d\d-\d\dT[\d:.]+Z\n$/)
})

/** Config overrides as the environment a process reads. */
function configEnv(config: Partial<Config>): Record<string, string> {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [envName(k), String(v)]))
}

t.test('REPLAY_DIR serves the recording over the protocol: the live opportunities, the hooks run', async (t) => {
  if (session === null) return t.fail('needs the recorded session')
  const { dir, live } = session
  const { app, url } = await startServer(t, { ...ENGINE, replayDir: dir, replaySpeed: 10 })
  const client = await LiveClient.connect({ url: `${url}/ws/live` })
  t.teardown(() => client.close())
  const books = new Set<string>()
  await client.subscribe('book.>', (e) => books.add(e.topic))
  await until(async () => (await client.request<{ passes: number }>('replay')).passes === 1, 'the pass done')
  // The replay began when the server was ready, before any client could subscribe: a client asks
  // for each opportunity topic's events from its first (since seq 0), as a reconnecting one would,
  // so none published before it came is missing however slow the machine.
  const topics = [...new Set(live.map((o) => `opportunities.${o.symbol}`))].sort()
  const { epoch } = await client.request<{ epoch: string }>('snapshot', { topic: topics[0] })
  const raw = await TestClient.open(url, { codec: 'json' })
  t.teardown(() => raw.close())
  raw.send({ type: 'subscribe', id: 1, topic: 'opportunities.>', since: Object.fromEntries(topics.map((topic) => [topic, { epoch, seq: 0 }])) })
  const frames = await raw.take(1 + live.length)
  t.match(frames[0], { type: 'ack', id: 1, recovered: true })
  const served = frames.slice(1)
  t.ok(
    served.every((f) => f.type === 'event'),
    'every one an event'
  )
  // Each topic's events in the live run's order (the recovery sends topic after topic).
  for (const topic of topics)
    t.same(
      served.filter((f) => f.topic === topic).map((f) => engineFields(f.data)),
      live.filter((o) => `opportunities.${o.symbol}` === topic),
      `${topic}: the live opportunity events, as a client receives them`
    )
  t.ok(
    served.every((f) => typeof f.data.score === 'number' && f.data.models?.scorer !== undefined),
    'the scorer hook ran on every one'
  )
  t.same([...books].sort(), [
    'book.binance.NKN-USDT',
    'book.binanceusdm.SUSHI-USDT-PERP',
    'book.coinbase.BTC-USD',
    'book.desk.BTC-USDT',
    'book.kraken.ALGO-USD',
    'book.kraken.BTC-USD',
    'book.kraken.BTC-USDT',
    'book.okx.BTC-USDT',
    'book.okx.UNI-USD-INVPERP'
  ])
  t.match(app.liveArbitrage.counters, { opened: Number }, 'the server engine made them')
})

/**
 * A venue health's place in its pass: its venue, messages and books live. Where a change of state
 * published it, the same place in every pass (its clock estimate too, made of the same frames).
 */
const healthPlace = (topic: string, data: Record<string, any>) => `${topic} messages ${data.messages} live ${data.booksLive}`
const clockOf = (data: Record<string, any>) => ({ clockOffsetMs: data.clockOffsetMs, latencyMs: data.latencyMs })

t.test('DEMO=venues loops the shipped recording of five venues with its times moved to now, clock offsets as recorded', async (t) => {
  // The recording's own offsets: its venues' stamps sit LATENCY_MS and more before their receive times.
  const recorded: { topic: string; data: Record<string, any> }[] = []
  await replay({
    dir: DEMO_VENUES,
    app: APP_VERSION,
    speed: 'max',
    engine: null,
    market: true,
    sink: { event: (topic, data) => recorded.push({ topic, data: data as Record<string, any> }) }
  })
  const recordedClock = new Map(recorded.filter((e) => e.topic.startsWith('venue.')).map((e) => [healthPlace(e.topic, e.data), clockOf(e.data)]))
  t.same(
    [...new Set(recorded.filter((e) => e.topic.startsWith('book.')).map((e) => e.topic))].sort(),
    [
      'book.binance.NKN-USDT',
      'book.binanceusdm.SUSHI-USDT-PERP',
      'book.coinbase.BTC-USD',
      'book.kraken.ALGO-USD',
      'book.kraken.BTC-USD',
      'book.okx.BTC-USDT',
      'book.okx.UNI-USD-INVPERP'
    ],
    "the books of the demo's instruments (demoVenues below)"
  )
  // Every book opens at the run's start: none is ever said not live, no venue is ever less than up.
  const notUp = recorded.filter((e) => e.topic.startsWith('venue.') && (e.data.state !== 'up' || e.data.notLive.length > 0))
  t.same(
    notUp.map((e) => `${e.topic} ${e.data.state} not live: ${e.data.notLive}`),
    [],
    'every book live and every venue up through the pass'
  )
  t.same([...new Set(recorded.filter((e) => e.topic.startsWith('venue.')).map((e) => e.topic))].sort(), [
    'venue.binance',
    'venue.binanceusdm',
    'venue.coinbase',
    'venue.kraken',
    'venue.okx'
  ])
  for (const [place, clock] of recordedClock)
    t.ok(
      clock.clockOffsetMs === null || (clock.clockOffsetMs >= LATENCY_MS && clock.clockOffsetMs < 1000),
      `${place}: offset ${clock.clockOffsetMs} ms recorded`
    )

  const started = Date.now()
  const { url } = await startServer(t, { demo: 'venues', replaySpeed: 50, arbitrage: true, minNetBps: -100, maxTickAgeMs: 60_000 })
  const client = await LiveClient.connect({ url: `${url}/ws/live` })
  t.teardown(() => client.close())
  const served: { topic: string; data: Record<string, any> }[] = []
  const opportunities: Record<string, any>[] = []
  await client.subscribe('venue.>', (e) => served.push({ topic: e.topic, data: e.data as Record<string, any> }))
  await client.subscribe('ticker.>', (e) => served.push({ topic: e.topic, data: e.data as Record<string, any> }))
  await client.subscribe('book.>', (e) => served.push({ topic: e.topic, data: e.data as Record<string, any> }))
  await client.subscribe('opportunities.>', (e) => opportunities.push(e.data as Record<string, any>))
  await until(async () => (await client.request<{ passes: number }>('replay')).passes >= 3, 'three passes')
  const venues = served.filter((e) => e.topic.startsWith('venue.'))
  // Health at the same place as in the unshifted replay has its clock offset and latency exactly.
  const same = venues.filter((e) => recordedClock.has(healthPlace(e.topic, e.data)))
  for (const topic of new Set(recorded.filter((e) => e.topic.startsWith('venue.')).map((e) => e.topic)))
    t.ok(same.filter((e) => e.topic === topic).length >= 2, `${topic}: served at its recorded places in the passes`)
  t.strictSame(
    same.map((e) => clockOf(e.data)),
    same.map((e) => recordedClock.get(healthPlace(e.topic, e.data))),
    'clock offsets and latencies as recorded, in each pass'
  )
  t.ok(
    venues.every((e) => e.data.clockOffsetMs === null || (e.data.clockOffsetMs >= LATENCY_MS && e.data.clockOffsetMs < 1000)),
    'every venue health: an offset of ms, not days'
  )
  // Books and tickers: the venue's time, ts and the receive time moved together, and to now.
  const quotes = served.filter((e) => !e.topic.startsWith('venue.'))
  t.ok(
    quotes.every((e) => e.data.receivedAt >= started - 1000),
    'receive times are now, not the recording day'
  )
  t.ok(
    quotes.every(
      (e) => e.data.exchangeTime === null || (e.data.receivedAt - e.data.exchangeTime >= LATENCY_MS && e.data.receivedAt - e.data.exchangeTime < 1000)
    ),
    "the venues' times moved with them"
  )
  t.ok(opportunities.length > 0, `${opportunities.length} opportunity events`)
  // Only the books captured together on 2026-08-24 meet: no opportunity of a book from another day.
  const legs = new Set(opportunities.flatMap((o) => [`${o.buy.exchange} ${o.buy.symbol}`, `${o.sell.exchange} ${o.sell.symbol}`]))
  t.same([...legs].sort(), ['coinbase BTC-USD', 'kraken BTC-USD'], "the opportunities' legs: BTC-USD books captured the same day")
  t.same(
    venues.filter((e) => e.data.state !== 'up' || e.data.notLive.length > 0).map((e) => `${e.topic} ${e.data.state} not live: ${e.data.notLive}`),
    [],
    'served: every book live, every venue up, across the passes'
  )
  t.ok(
    opportunities.every((o) => o.detectedAt >= started - 1000 && o.buy.receivedAt >= started - 1000 && (o.buy.ts === null || o.buy.ts >= started - 1000)),
    'opportunity times moved to now'
  )
  t.ok(
    opportunities.every((o) => o.buy.clockOffsetMs === null || Math.abs(o.buy.clockOffsetMs) < 1000),
    "the engine's clock offsets are the recording's too"
  )
  // One engine across the passes: its ids count on, a later pass's never meets an earlier one's.
  const opened = opportunities.filter((o) => o.status === 'open').map((o) => o.id)
  t.equal(new Set(opened).size, opened.length, `${opened.length} opportunities opened, each id once`)
  const { diverged, damaged } = await client.request<{ diverged: number; damaged: number }>('replay')
  t.same({ diverged, damaged }, { diverged: 0, damaged: 0 }, 'each pass is the recorded run')
  t.throws(() => loadConfig({ FEEDS: 'okx:BTC-USDT', DEMO: 'venues' }), {
    message: 'Invalid configuration: DEMO="venues" is not valid; expected empty when FEEDS is set (a replay serves recorded venues instead of live ones)'
  })
})

t.test('the demo pairs only books captured together: an instrument of another day than the rest of its class is left out', async (t) => {
  const { venues, leftOut } = await demoVenues()
  // Kraken's BTC/USDT snapshot (2025, no venue stamp) beside the BTC-USD books of 2026-08-24 made a +3,429 bps dislocation no market had.
  t.same(leftOut, [{ exchange: 'kraken', symbol: 'BTC-USDT', reason: 'captured on a day its frames do not stamp, not on 2026-08-24 as the rest of BTC-USD' }])
  t.same(Object.fromEntries([...venues].map(([exchange, v]) => [exchange, v.symbols])), {
    binance: ['NKN-USDT'],
    binanceusdm: ['SUSHI-USDT-PERP'],
    coinbase: ['BTC-USD'],
    kraken: ['BTC-USD', 'ALGO-USD'],
    okx: ['BTC-USDT', 'UNI-USD-INVPERP']
  })
  t.notOk(
    venues.get('kraken')!.frames.some((f) => f.text.includes('"BTC/USDT"')),
    'nor its frames'
  )
})

t.test("the demo's schedule: every book opens 20 ms into the run, the venue's other messages follow in order, evenly", async (t) => {
  const book = (symbol: string, n: number) => ({ text: JSON.stringify({ channel: 'book', data: [{ symbol, n }] }), symbol })
  const ack = { text: '{"method":"subscribe","success":true}', symbol: 'Y' }
  const frames = [book('X', 0), book('X', 1), ack, book('Y', 0), book('X', 2), book('Y', 1)]
  t.same(schedule(frames, 1000, 20_000), [
    { at: 1020, texts: [frames[0].text, ack.text, frames[3].text] },
    { at: 1020 + 4995, texts: [frames[1].text] },
    { at: 1020 + 9990, texts: [frames[4].text] },
    { at: 1020 + 14_985, texts: [frames[5].text] }
  ])
})

t.test('the feeds process records its venues; the replay gives the books the server received and the engine runs on them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const { app, url } = await startServer(t)
  const received = new Map<string, { bids: unknown; asks: unknown }>()
  app.live.subscribe('book.>', (e: BusEvent) => {
    const { bids, asks } = e.data as { bids: unknown; asks: unknown }
    received.set(e.topic, { bids, asks })
  })
  const env = { FEEDS, FEEDS_ENDPOINTS: mock.endpoints, FEEDS_SERVER_URL: `${url}/ws/live`, LOG_LEVEL: 'warn', RECORD_DIR: dir }
  const { child, done } = spawnClean(process.execPath, [join(root, 'dist/feeds-process.js')], env)
  t.teardown(() => child.kill('SIGKILL'))
  // The last update of each session, as test/venue-feeds.test.ts knows them.
  await until(
    () =>
      (received.get('book.coinbase.BTC-USD')?.asks as number[][] | undefined)?.[0]?.[1] === 0.08023149 &&
      (received.get('book.kraken.ALGO-USD')?.bids as number[][] | undefined)?.[6]?.[1] === 6597.5173116 &&
      received.size === 8,
    'every session applied'
  )
  child.kill('SIGTERM')
  t.equal((await done).code, 0, 'the feeds process stops cleanly, its recording closed')

  // Every state of every book the replay publishes: the process may have recorded frames whose books
  // it had not sent before it stopped, so the replay can go further than the server got.
  const replayed = new Map<string, string[]>()
  let opportunities = 0
  const result = await replay({
    dir,
    app: APP_VERSION,
    speed: 'max',
    market: true,
    engine: engineOptions(loadConfig({}, ENGINE)),
    sink: {
      event(topic, data) {
        if (topic.startsWith('opportunities.')) opportunities++
        if (!topic.startsWith('book.')) return
        const { bids, asks } = data as { bids: unknown; asks: unknown }
        replayed.set(topic, [...(replayed.get(topic) ?? []), JSON.stringify({ bids, asks })])
      }
    }
  })
  t.same(result.damage, [])
  t.same([...replayed.keys()].sort(), [...received.keys()].sort(), 'the same books')
  for (const [topic, book] of received) t.ok(replayed.get(topic)!.includes(JSON.stringify(book)), `${topic}: the state the server received last`)
  for (const topic of ['book.coinbase.BTC-USD', 'book.kraken.ALGO-USD'])
    t.equal(replayed.get(topic)!.at(-1), JSON.stringify(received.get(topic)), `${topic}: its session's last update, as the server`)
  t.ok(opportunities > 0, `${opportunities} opportunity events from the engine given the replayed books`)
})

t.test('a restart keeps what was recorded: the next run appends, and a replay goes through both', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  for (const bid of [100, 200]) {
    const { app, url } = await startServer(t, { recordDir: dir })
    const client = await LiveClient.connect({ url: `${url}/ws/live` })
    await client.publish('ticker.desk.BTC-USD', { bid, ask: bid + 1, bidSize: 1, askSize: 1, ts: 1 })
    client.close()
    await app.close()
  }
  t.equal(segmentFiles(dir).length, 2, 'a segment per run')
  const runs = [...readRecording(dir, APP_VERSION, () => {})].filter((r) => r.kind === Kind.meta).map((r) => JSON.parse(r.body.toString()).run)
  t.equal(new Set(runs).size, 2, 'two runs')
  const seen: unknown[] = []
  await replay({
    dir,
    app: APP_VERSION,
    speed: 'max',
    market: true,
    engine: engineOptions(loadConfig({})),
    sink: { event: (topic, data) => topic.startsWith('ticker.') && seen.push((data as { bid: number }).bid) }
  })
  t.same(seen, [100, 200], "each run's publish, in order")
})

t.test('the recorder and replay plugins take their own settings: one left out at its default, a bad one refused by name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-record-'))
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(live, { heartbeatInterval: 0 })
  await app.register(recorderPlugin, { recordDir: dir })
  await app.ready()
  const recording = app.liveHooks.methods.get('recording')!({}, { id: 0, codec: 'json', remoteAddress: undefined })
  t.same(recording, { dir, ...app.liveRecorder.recorder.counters }, 'RECORD_DIR alone: its bounds at their defaults')
  const refused = async (register: (app: ReturnType<typeof Fastify>) => void, message: string) => {
    const bad = Fastify()
    t.teardown(() => bad.close())
    await bad.register(live, { heartbeatInterval: 0 })
    register(bad)
    await t.rejects(
      async () => {
        await bad.ready()
      },
      new RegExp(`^${message}; expected `)
    )
  }
  await refused((bad) => bad.register(recorderPlugin, { recordDir: dir, recordSegmentMb: 0 }), 'recorder: option recordSegmentMb 0 is not valid')
  await refused((bad) => bad.register(replayPlugin, { replayDir: dir, replaySpeed: 0 }), 'replay: option replaySpeed 0 is not valid')
})

t.test('a looped replay whose records take no real time still lets the server answer between its passes', async (t) => {
  // Records all at one time: no pass sleeps for its pace, and one pass follows another at once.
  const { dir, recorder } = handRecorder()
  recorder.add(Kind.meta, 1_000_000, 0, '{"run":1,"bookDepth":5,"instruments":{}}')
  recorder.add(Kind.publish, 1_000_000, 0, '{"topic":"quotes.desk","data":{"bid":1}}')
  await recorder.close()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(live, { heartbeatInterval: 0 })
  await app.register(replayPlugin, { replayDir: dir, replaySpeed: 1, replayLoop: true })
  app.get('/ping', async () => 'pong')
  await app.ready()
  // until() waits on real timers: they fire while the loop goes on.
  await until(() => app.liveReplay.counters.passes >= 3, 'three passes')
  const res = await app.inject({ method: 'GET', url: '/ping' })
  t.equal(res.statusCode, 200, 'the server answers')
})

t.test("a looped replay's shift is taken from the first usable record: one whose time is not a number does not move every time to -Infinity", async (t) => {
  const { dir, recorder } = handRecorder()
  recorder.add(Kind.publish, Number.POSITIVE_INFINITY, 0, '{"topic":"ticker.desk.BTC-USD","data":{"bid":1}}')
  recorder.add(Kind.meta, 1_000_000, 0, '{"run":1,"bookDepth":5,"instruments":{}}')
  recorder.add(Kind.publish, 1_000_000, 0, '{"topic":"ticker.desk.BTC-USD","data":{"bid":1,"ask":2,"bidSize":1,"askSize":1,"ts":1000000}}')
  await recorder.close()
  const started = Date.now()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(live, { heartbeatInterval: 0 })
  const ts: unknown[] = []
  app.live.subscribe('ticker.>', (e) => ts.push((e.data as { ts: unknown }).ts))
  await app.register(replayPlugin, { replayDir: dir, replaySpeed: 1, replayLoop: true })
  await app.ready()
  await app.liveReplay.firstPass
  t.equal(ts.length, 1)
  t.ok(typeof ts[0] === 'number' && ts[0] >= started, `the ticker's time moved to now (${ts[0]})`)
})
