// Where the recorder listens, each through a seam the live code already has: a venue's socket,
// REST access and clock (transport.ts), the publish function of the in-process connectors, and the
// engine's inputs (what it was given and when: how its timers are replayed in the live order).
import type { Instrument } from '../market/instruments.js'
import type { ArbitrageEngine } from '../market/arbitrage.js'
import { VENUE_REPORT_FIELDS, type VenueReport } from '../market/engine/types.js'
import type { VenueState } from '../market/events.js'
import type { Connect } from '../market/transport.js'
import { connectWebSocket } from '../market/transport.js'
import { type Clock, liveClock } from '../market/clock.js'
import { Kind } from './format.js'
import { Recorder, type RecorderOptions, type SegmentFiles } from './recorder.js'
import type { RecorderSettings } from './settings.js'
import type { StartOptions } from '../market/setup.js'
import { APP_VERSION } from './version.js'

export interface VenueTransport {
  connect: Connect
  fetch: typeof fetch
  clock: Clock
}

/** Bytes of one REST answer kept in the recording; the rest is cut (and said so). */
const MAX_REST_RECORD = 64 * 1024 * 1024

/**
 * One venue's transport, recorded: each socket gets a connection number, each frame is kept with
 * the time the connection stamps it with (the same reading: the clock's `now` returns it while it
 * is delivered). The timers are the inner clock's.
 */
export function recordingTransport(recorder: Recorder, venue: string, inner: { connect?: Connect; fetch?: typeof fetch; clock?: Clock } = {}): VenueTransport {
  const connect = inner.connect ?? connectWebSocket
  const innerFetch = inner.fetch ?? fetch
  const timers = inner.clock ?? liveClock
  const clock = () => timers.now()
  let stamp: number | null = null
  const delivering = (time: number, fn: () => void) => {
    stamp = time
    try {
      fn()
    } finally {
      stamp = null
    }
  }
  return {
    clock: {
      now: () => stamp ?? timers.now(),
      timeout: (ms, fn) => timers.timeout(ms, fn),
      interval: (ms, fn) => timers.interval(ms, fn),
      defer: (fn) => timers.defer(fn)
    },
    connect: (url, events) => {
      const conn = recorder.newConnection()
      recorder.add(Kind.open, clock(), conn, JSON.stringify({ venue, url }))
      return connect(url, {
        onOpen: () => {
          const t = clock()
          recorder.add(Kind.accept, t, conn, null)
          delivering(t, () => events.onOpen())
        },
        onMessage: (data, isBinary) => {
          const t = clock()
          recorder.add(isBinary ? Kind.binary : Kind.frame, t, conn, data)
          delivering(t, () => events.onMessage(data, isBinary))
        },
        onAlive: () => {
          const t = clock()
          recorder.add(Kind.alive, t, conn, null)
          delivering(t, () => events.onAlive())
        },
        onError: (err) => {
          const t = clock()
          recorder.add(Kind.error, t, conn, err.message)
          delivering(t, () => events.onError(err))
        },
        onClose: () => {
          const t = clock()
          recorder.add(Kind.close, t, conn, null)
          delivering(t, () => events.onClose())
        }
      })
    },
    fetch: async (input, init) => {
      const url = String(input instanceof Request ? input.url : input)
      const record = (status: number, body: Buffer, extra: object = {}) =>
        recorder.add(Kind.rest, clock(), 0, Buffer.concat([Buffer.from(`${JSON.stringify({ venue, url, status, ...extra })}\n`), body]))
      let res: Response
      try {
        res = await innerFetch(input, init)
      } catch (err) {
        record(0, Buffer.alloc(0), { error: (err as Error).message })
        throw err
      }
      // The connectors read headers (Binance's Retry-After and request weight pace its snapshots).
      const headers = Object.fromEntries(res.headers)
      if (!res.ok || res.body === null) {
        // A refusal's body is read by no connector (it would never be recorded): kept at once without it.
        record(res.status, Buffer.alloc(0), { headers })
        return res
      }
      // The body as the connection reads it, kept on the way; recorded when it ends or is cut off.
      const reader = res.body.getReader()
      const chunks: Uint8Array[] = []
      let kept = 0
      let done = false
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await reader.read().catch((err: Error) => {
            if (!done) record(res.status, Buffer.concat(chunks), { headers, error: err.message })
            done = true
            throw err
          })
          if (next.done) {
            if (!done) record(res.status, Buffer.concat(chunks), { headers })
            done = true
            controller.close()
            return
          }
          if (kept + next.value.byteLength <= MAX_REST_RECORD) chunks.push(next.value)
          kept += next.value.byteLength
          controller.enqueue(next.value)
        },
        async cancel(reason) {
          if (!done) record(res.status, Buffer.concat(chunks), { headers, cut: true })
          done = true
          await reader.cancel(reason)
        }
      })
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers })
    }
  }
}

/** The instruments each venue streams, as the replay rebuilds its registry from them. */
export type RecordedInstruments = Record<string, Instrument[]>

export interface RecordingMeta {
  /** One run of a server or feeds process: a restart begins a new one (connection numbers anew). */
  run: number
  app: string
  bookDepth: number
  instruments: RecordedInstruments
  /**
   * Whether the engine's inputs are recorded (a server with the engine). Without them (the feeds
   * process) a replay gives its engine what the replayed connectors publish, when they publish it.
   */
  engine?: boolean
}

/** RECORD_DIR's recorder, as the settings say. */
export function recorderFor(settings: RecorderSettings, log: RecorderOptions['log'], files?: SegmentFiles): Recorder {
  return new Recorder({
    dir: settings.recordDir,
    segmentBytes: settings.recordSegmentMb * 1024 * 1024,
    segmentMs: settings.recordSegmentAge,
    maxBytes: settings.recordMaxMb * 1024 * 1024,
    maxAgeMs: settings.recordMaxAge,
    app: APP_VERSION,
    log,
    files
  })
}

/** What startFeeds is handed so its connectors are recorded: their transports and the run's meta. */
export function recordFeeds(recorder: Recorder, bookDepth: number, engine: boolean): Pick<StartOptions, 'transport' | 'beforeStart'> {
  const run = Date.now()
  return {
    transport: (exchange) => recordingTransport(recorder, exchange),
    beforeStart: (instruments) => {
      const meta: RecordingMeta = { run, app: APP_VERSION, bookDepth, instruments: Object.fromEntries(instruments), engine }
      recorder.setMeta(meta)
    }
  }
}

/**
 * A venue marker's body, JSON {exchange, state}: a state alone as it is, a health cut to the fields
 * the engine reads (a whole one is mostly counters it never reads). The health keeps `exchange` so
 * it stays a venue.<exchange> event, which a reader of format 1 checks it as.
 */
export function engineVenueBody(exchange: string, health: VenueState | VenueReport): string {
  if (typeof health === 'string') return JSON.stringify({ exchange, state: health })
  const kept: Record<string, unknown> = { exchange }
  for (const field of VENUE_REPORT_FIELDS) if (health[field] !== undefined) kept[field] = health[field]
  return JSON.stringify({ exchange, state: kept })
}

/**
 * The engine's inputs recorded as markers in the order it got them, each with the time it was
 * given: book and ticker events of the in-process connectors by topic (the replay's connectors
 * publish them again), everything else whole (client publishes are recorded as they reach the bus).
 */
export function recordEngine(recorder: Recorder, engine: ArbitrageEngine): void {
  const onBook = engine.onBook.bind(engine)
  const onTick = engine.onTick.bind(engine)
  const onVenue = engine.onVenue.bind(engine)
  const sweep = engine.sweep.bind(engine)
  engine.onBook = (book, now, exchange, symbol) => {
    recorder.add(Kind.engineBook, now, 0, `book.${exchange}.${symbol}`)
    return onBook(book, now, exchange, symbol)
  }
  engine.onTick = (tick, now, exchange, symbol) => {
    recorder.add(Kind.engineTicker, now, 0, `ticker.${exchange}.${symbol}`)
    return onTick(tick, now, exchange, symbol)
  }
  engine.onVenue = (exchange, state, now) => {
    recorder.add(Kind.engineVenue, now, 0, engineVenueBody(exchange, state))
    return onVenue(exchange, state, now)
  }
  engine.sweep = (now) => {
    recorder.add(Kind.sweep, now, 0, null)
    return sweep(now)
  }
}
