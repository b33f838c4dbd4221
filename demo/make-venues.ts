// Makes demo/venues, the recording DEMO=venues (npm run demo) loops: the genuine venue sessions the
// tests use (test/venue-sessions.ts, from test/fixtures/venues and their SOURCES.md) through the
// connectors and the engine as a server runs them, recorded as RECORD_DIR records a live server.
// Only the times are made up: each venue's frames are spread evenly over LOOP_MS so every venue
// stays alive through the loop (the sessions were captured on different days and at different
// rates), and the venue's own timestamps in each frame and REST answer are moved onto that clock,
// its latest LATENCY_MS before the frame's receive time (the others keep their distance to it).
// The rest of the frames' bytes, the REST answers and the instruments are the captures'.
//   npx tsx demo/make-venues.ts
// bench/record.ts records the same sessions many times over (one run each) as its long session.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ArbitrageEngine } from '../src/market/arbitrage.ts'
import { loadRegistry, startFeeds, VENUE_ENDPOINTS } from '../src/market/setup.ts'
import { liveClockWith } from '../src/market/clock.ts'
import type { Exchange } from '../src/market/venues/index.ts'
import { loadConfig } from '../src/config.ts'
import { recordEngine, recordingTransport, type RecordingMeta } from '../src/record/capture.ts'
import { Recorder } from '../src/record/recorder.ts'
import { engineOptions } from '../src/market/settings.ts'
import { APP_VERSION } from '../src/record/version.ts'
import { fakeConnect, type FakeSocket } from '../test/fake-venue.ts'
import { DIR, SESSIONS } from '../test/venue-sessions.ts'

/** As a live server: venue health every second, the engine's sweep every half MAX_TICK_AGE_MS. */
const HEALTH_MS = 1000
const SWEEP_MS = 500
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

/** A clock the recording and the connectors read, set by the run. */
export interface Clock {
  now: number
}

/** One run (a server's start to stop) of the five sessions, `loopMs` long from `start`, into `recorder`. */
export async function recordSessions(recorder: Recorder, clock: Clock, start: number, loopMs: number): Promise<void> {
  clock.now = start
  const connectorClock = liveClockWith(() => clock.now)
  const engine = new ArbitrageEngine(engineOptions(loadConfig({})))
  recordEngine(recorder, engine)
  const exchanges = Object.keys(SESSIONS) as Exchange[]
  const registry = await loadRegistry(exchanges, { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  const sockets = new Map<Exchange, FakeSocket[]>()
  const feeds = await startFeeds({
    feeds: new Map(exchanges.map((e) => [e, SESSIONS[e]!.symbols])),
    registry,
    bookDepth: BOOK_DEPTH,
    clock: connectorClock,
    transport: (exchange) => {
      const fake = fakeConnect()
      sockets.set(exchange, fake.sockets)
      const depth = SESSIONS[exchange]!.depth ?? {}
      const fetch: typeof globalThis.fetch = async (url) => {
        const file = depth[new URL(String(url)).searchParams.get('symbol') ?? '']
        if (file === undefined) return new Response('{"code":-1121,"msg":"Invalid symbol."}', { status: 400 })
        return new Response(onClock(readFileSync(DIR + file, 'utf8'), clock.now))
      }
      return recordingTransport(recorder, exchange, { connect: fake.connect, fetch, clock: connectorClock })
    },
    beforeStart: (instruments) => {
      const meta: RecordingMeta = { run: start, app: APP_VERSION, bookDepth: BOOK_DEPTH, instruments: Object.fromEntries(instruments), engine: true }
      recorder.setMeta(meta)
    },
    // As the arbitrage plugin gives the engine what the connectors publish.
    sink: {
      book: (e) => engine.onBook(e, clock.now, e.exchange, e.symbol),
      ticker: (e) => engine.onTick(e, clock.now, e.exchange, e.symbol),
      venue: (h) => engine.onVenue(h.exchange, h.state, clock.now)
    }
  })
  type Step = { at: number; run: () => void }
  const steps: Step[] = []
  for (const exchange of exchanges) {
    const socket = sockets.get(exchange)![0]
    const frames = SESSIONS[exchange]!.frames()
    steps.push({ at: start + 10, run: () => socket.accept() })
    frames.forEach((frame, k) => {
      const at = start + 500 + Math.floor((k * (loopMs - 1000)) / frames.length)
      steps.push({ at, run: () => socket.deliver(onClock(frame, at)) })
    })
  }
  for (let at = start + HEALTH_MS; at < start + loopMs; at += HEALTH_MS)
    steps.push({ at, run: () => feeds.feeds.forEach((g) => engine.onVenue(g.exchange, g.health().state, clock.now)) })
  for (let at = start + SWEEP_MS; at < start + loopMs; at += SWEEP_MS) steps.push({ at, run: () => engine.sweep(clock.now) })
  steps.sort((a, b) => a.at - b.at)
  for (const step of steps) {
    clock.now = step.at
    step.run()
    await turn()
    await turn() // a snapshot's answer is read and applied before the next frame, as on a live socket
  }
  clock.now = start + loopMs
  feeds.stop()
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = fileURLToPath(new URL('./venues/', import.meta.url))
  mkdirSync(out, { recursive: true })
  for (const name of readdirSync(out)) if (name.endsWith('.rec')) rmSync(out + name)
  const clock: Clock = { now: 0 }
  const recorder = new Recorder({ dir: out, segmentBytes: 1 << 30, segmentMs: 86_400_000, maxBytes: 1 << 30, maxAgeMs: 0, app: APP_VERSION, now: () => clock.now, level: 9 })
  await recordSessions(recorder, clock, Date.UTC(2026, 0, 1), 20_000)
  await recorder.close()
  console.log(`${out}: ${recorder.counters.records} records, ${recorder.counters.bytes} bytes`)
}
