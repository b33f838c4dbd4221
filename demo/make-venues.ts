// Makes demo/venues, the recording DEMO=venues (npm run demo) loops: the genuine venue sessions the
// tests use (test/venue-sessions.ts, from test/fixtures/venues and their SOURCES.md) through the
// connectors and the engine as a server runs them, recorded as RECORD_DIR records a live server.
// Only books captured together meet (demoVenues: an instrument captured on another day than the
// rest of its class is left out). Only the times are made up: every book opens at the run's start
// and each venue's other frames are spread evenly over the run (schedule), so every book is live and
// every venue alive through the loop (the sessions were captured on different days and at different
// rates), and the venue's own timestamps in each frame and REST answer are moved onto that clock,
// its latest LATENCY_MS before the frame's receive time (the others keep their distance to it).
// The rest of the frames' bytes, the REST answers and the instruments are the captures'. The run
// goes on a virtual clock (the connectors' timers fire at its times), so it makes the same bytes
// every time.
//   npx tsx demo/make-venues.ts
// bench/record.ts records the same sessions many times over (one run each) as its long session.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ArbitrageEngine } from '../src/market/arbitrage.ts'
import { loadRegistry, startFeeds, VENUE_ENDPOINTS } from '../src/market/setup.ts'
import { VirtualClock } from '../src/market/clock.ts'
import type { Exchange } from '../src/market/venues/index.ts'
import { loadConfig } from '../src/config.ts'
import { recordEngine, recordingTransport, type RecordingMeta } from '../src/record/capture.ts'
import { Recorder } from '../src/record/recorder.ts'
import { engineOptions } from '../src/market/settings.ts'
import { APP_VERSION } from '../src/record/version.ts'
import { fakeConnect, type FakeSocket } from '../test/fake-venue.ts'
import { DIR, SESSIONS } from '../test/venue-sessions.ts'

/** As a live server: the engine's sweep every half MAX_TICK_AGE_MS. */
const SWEEP_MS = 500
/** How far into a run every instrument's opening arrives (the sockets are accepted 10 ms in). */
const FIRST_MS = 20
const BOOK_DEPTH = 10
/** How long before its receive time a frame's latest venue timestamp is put. */
export const LATENCY_MS = 30
const turn = () => new Promise((resolve) => setImmediate(resolve))

/**
 * The venues' timestamps in a frame or REST answer, by name: epoch milliseconds as a number or a
 * string (Binance's E and T, OKX's ts) or ISO 8601 in UTC (Coinbase's timestamp and event_time,
 * Kraken's timestamp, time_in and time_out).
 */
const STAMP = /("(?:E|T|ts|timestamp|event_time|time_in|time_out)":\s*"?)(\d{13}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)(?=[",}\s])/g
/** Stamps before this are placeholders (Coinbase's 1970 event_time of an old snapshot): left as they are. */
const STAMPS_FROM = Date.UTC(2000, 0, 1)

function stampTime(text: string): number {
  if (!text.includes('T')) return Number(text)
  const [, seconds, fraction = ''] = text.match(/^(.{19})(?:\.(\d+))?Z$/) as RegExpMatchArray
  return Date.parse(`${seconds}Z`) + Number(fraction.padEnd(3, '0').slice(0, 3))
}

/** A stamp moved by `delta` ms in its own form (an ISO stamp keeps its digits past the millisecond). */
function moveStamp(text: string, delta: number): string {
  const moved = stampTime(text) + delta
  if (!text.includes('T')) return String(moved)
  const fraction = text.match(/\.(\d+)Z$/)?.[1] ?? ''
  const iso = new Date(moved).toISOString()
  return `${iso.slice(0, 23)}${fraction.slice(3)}Z`
}

/** A frame or REST answer whose venue timestamps are moved together, its latest to `at` - LATENCY_MS. */
export function onClock(text: string, at: number): string {
  const stamps = [...text.matchAll(STAMP)].map((m) => stampTime(m[2])).filter((t) => t >= STAMPS_FROM)
  if (stamps.length === 0) return text
  const delta = at - LATENCY_MS - Math.max(...stamps)
  return text.replace(STAMP, (all, key: string, stamp: string) => (stampTime(stamp) >= STAMPS_FROM ? key + moveStamp(stamp, delta) : all))
}

/** The day (UTC) of the earliest venue stamp in these frames: the day they were captured; null when none has one. */
function captureDay(frames: string[]): string | null {
  const stamps = frames.flatMap((f) => [...f.matchAll(STAMP)].map((m) => stampTime(m[2]))).filter((t) => t >= STAMPS_FROM)
  return stamps.length === 0 ? null : new Date(Math.min(...stamps)).toISOString().slice(0, 10)
}

/**
 * The instrument a venue's book message is about, as the venue names it: Binance's data.s, Kraken's
 * data[0].symbol, OKX's arg.instId beside its data, Coinbase's events[0].product_id. null for any
 * other message (subscribe answers).
 */
function bookSymbol(frame: string): string | null {
  const m = JSON.parse(frame)
  const symbol = m.data?.s ?? m.data?.[0]?.symbol ?? (m.data === undefined ? undefined : m.arg?.instId) ?? m.events?.[0]?.product_id
  return typeof symbol === 'string' ? symbol : null
}

/** One venue's part of the demo: its instruments, its frames as the session orders them, each frame's instrument. */
export interface DemoVenue {
  symbols: string[]
  frames: { text: string; symbol: string }[]
  depth: Record<string, string>
}

/** An instrument of the sessions the demo leaves out, and why. */
export interface LeftOut {
  exchange: Exchange
  symbol: string
  reason: string
}

/**
 * The sessions' instruments the demo serves: only books captured together meet in the engine. In
 * each class the engine pairs (a base and its quote group), the instruments captured on the day
 * most of them were (the later day on a tie) are kept and the others left out with their frames:
 * a book from another day, at another price level, would make a dislocation no market had. An
 * instrument alone in its class pairs with nothing and stays. A message naming no instrument goes
 * with the next one that does (a subscribe answer with its snapshot), the last ones with the last.
 */
export async function demoVenues(): Promise<{ venues: Map<Exchange, DemoVenue>; leftOut: LeftOut[] }> {
  const exchanges = Object.keys(SESSIONS) as Exchange[]
  const registry = await loadRegistry(exchanges, { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  const classes = new ArbitrageEngine(engineOptions(loadConfig({})))
  const found: { exchange: Exchange; symbol: string; day: string | null; key: string }[] = []
  const framed = new Map<Exchange, { text: string; symbol: string }[]>()
  for (const exchange of exchanges) {
    const session = SESSIONS[exchange]!
    const frames: { text: string; symbol: string }[] = []
    let waiting: string[] = []
    for (const text of session.frames()) {
      const venueSymbol = bookSymbol(text)
      if (venueSymbol === null) {
        waiting.push(text)
        continue
      }
      const symbol = registry.venue(exchange, venueSymbol)?.symbol
      if (symbol === undefined || !session.symbols.includes(symbol)) throw new Error(`${exchange}: a frame of ${venueSymbol}, not an instrument of its session`)
      for (const w of waiting) frames.push({ text: w, symbol })
      waiting = []
      frames.push({ text, symbol })
    }
    const last = frames.at(-1)?.symbol
    if (last !== undefined) for (const w of waiting) frames.push({ text: w, symbol: last })
    framed.set(exchange, frames)
    for (const symbol of session.symbols) {
      const own = frames.filter((f) => f.symbol === symbol && bookSymbol(f.text) !== null).map((f) => f.text)
      found.push({ exchange, symbol, day: captureDay(own), key: classes.listing(symbol, 0).market.key })
    }
  }
  const leftOut: LeftOut[] = []
  for (const key of new Set(found.map((f) => f.key))) {
    const members = found.filter((f) => f.key === key)
    const count = (day: string | null) => members.filter((m) => m.day === day).length
    const days = [...new Set(members.map((m) => m.day).filter((d) => d !== null))].sort()
    const day = days.reduce<string | null>((best, d) => (best === null || count(d) >= count(best) ? d : best), null)
    for (const m of members)
      if (members.length > 1 && m.day !== day)
        leftOut.push({ exchange: m.exchange, symbol: m.symbol, reason: `captured ${m.day ?? 'on a day its frames do not stamp'}, not on ${day} as the rest of ${key}` })
  }
  const venues = new Map<Exchange, DemoVenue>()
  for (const exchange of exchanges) {
    const out = new Set(leftOut.filter((l) => l.exchange === exchange).map((l) => l.symbol))
    const symbols = SESSIONS[exchange]!.symbols.filter((s) => !out.has(s))
    const frames = framed.get(exchange)!.filter((f) => !out.has(f.symbol))
    venues.set(exchange, { symbols, frames, depth: SESSIONS[exchange]!.depth ?? {} })
  }
  return { venues, leftOut }
}

/**
 * When each frame of a venue arrives in a run from `start`: each instrument's opening (its first
 * book message, and the subscribe answers before it) together FIRST_MS in, so every book is live
 * from the run's first moments; the rest in the session's order, evenly over the run, so the venue
 * is never silent long enough to look degraded.
 */
export function schedule(frames: DemoVenue['frames'], start: number, loopMs: number): { at: number; texts: string[] }[] {
  const opened = new Set<string>()
  const opening: string[] = []
  const rest: string[] = []
  for (const f of frames) {
    if (opened.has(f.symbol)) rest.push(f.text)
    else opening.push(f.text)
    if (bookSymbol(f.text) !== null) opened.add(f.symbol)
  }
  const span = loopMs - FIRST_MS
  return [{ at: start + FIRST_MS, texts: opening }, ...rest.map((text, k) => ({ at: start + FIRST_MS + Math.floor(((k + 1) * span) / (rest.length + 1)), texts: [text] }))]
}

/** One run (a server's start to stop) of the demo's venues, `loopMs` long from `start`, into `recorder`, whose clock is `clock`. */
export async function recordSessions(recorder: Recorder, clock: VirtualClock, start: number, loopMs: number): Promise<void> {
  clock.advanceTo(start)
  const engine = new ArbitrageEngine(engineOptions(loadConfig({})))
  recordEngine(recorder, engine)
  const { venues } = await demoVenues()
  const exchanges = [...venues.keys()]
  const registry = await loadRegistry(exchanges, { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  const sockets = new Map<Exchange, FakeSocket[]>()
  const feeds = await startFeeds({
    feeds: new Map(exchanges.map((e) => [e, venues.get(e)!.symbols])),
    registry,
    bookDepth: BOOK_DEPTH,
    clock,
    transport: (exchange) => {
      const fake = fakeConnect()
      sockets.set(exchange, fake.sockets)
      const depth = venues.get(exchange)!.depth
      const fetch: typeof globalThis.fetch = async (url) => {
        const file = depth[new URL(String(url)).searchParams.get('symbol') ?? '']
        if (file === undefined) return new Response('{"code":-1121,"msg":"Invalid symbol."}', { status: 400 })
        return new Response(onClock(readFileSync(DIR + file, 'utf8'), clock.now()))
      }
      return recordingTransport(recorder, exchange, { connect: fake.connect, fetch, clock })
    },
    beforeStart: (instruments) => {
      const meta: RecordingMeta = { run: start, app: APP_VERSION, bookDepth: BOOK_DEPTH, instruments: Object.fromEntries(instruments), engine: true }
      recorder.setMeta(meta)
    },
    // As the arbitrage plugin gives the engine what the connectors publish: venue health whole
    // (its books not live are out), every WATCHDOG_MS and at each change.
    sink: {
      book: (e) => engine.onBook(e, clock.now(), e.exchange, e.symbol),
      ticker: (e) => engine.onTick(e, clock.now(), e.exchange, e.symbol),
      venue: (h) => engine.onVenue(h.exchange, h, clock.now())
    }
  })
  const sweep = clock.interval(SWEEP_MS, () => engine.sweep(clock.now()))
  type Step = { at: number; run: () => void }
  const steps: Step[] = []
  for (const exchange of exchanges) {
    const socket = sockets.get(exchange)![0]
    steps.push({ at: start + 10, run: () => socket.accept() })
    for (const { at, texts } of schedule(venues.get(exchange)!.frames, start, loopMs))
      steps.push({ at, run: () => texts.forEach((text) => socket.deliver(onClock(text, at))) })
  }
  steps.sort((a, b) => a.at - b.at)
  for (const step of steps) {
    // The timers due by then fire first (the watchdog's health, the sweep, a snapshot's spacing).
    clock.advanceTo(step.at)
    step.run()
    await turn()
    await turn() // a snapshot's answer is read and applied, as on a live socket
    clock.runDeferred() // the end of the turn: the connectors publish what it changed
    await turn() // and the recorder ends that turn too
  }
  clock.advanceTo(start + loopMs)
  await turn()
  sweep.cancel()
  feeds.stop()
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = fileURLToPath(new URL('./venues/', import.meta.url))
  mkdirSync(out, { recursive: true })
  for (const name of readdirSync(out)) if (name.endsWith('.rec')) rmSync(out + name)
  const { leftOut } = await demoVenues()
  for (const l of leftOut) console.log(`left out: ${l.exchange} ${l.symbol}, ${l.reason}`)
  const clock = new VirtualClock()
  // Written once, at the close: no real-time flush names a segment by whatever the run's clock read then.
  const recorder = new Recorder({
    dir: out,
    segmentBytes: 1 << 30,
    segmentMs: 86_400_000,
    maxBytes: 1 << 30,
    maxAgeMs: 0,
    app: APP_VERSION,
    now: () => clock.now(),
    level: 9,
    flushMs: 3_600_000
  })
  await recordSessions(recorder, clock, Date.UTC(2026, 0, 1), 20_000)
  await recorder.close()
  console.log(`${out}: ${recorder.counters.records} records, ${recorder.counters.bytes} bytes`)
}
