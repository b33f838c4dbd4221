// A looped replay's times moved to now (REPLAY_LOOP, DEMO=venues): every time in what the replayed
// world publishes moves by one shift, in this one place. The connectors run on the recording's own
// clock, so the clock offsets and latencies in venue health are the recorded ones (a shifted
// receive clock against the venues' unshifted stamps made them years); what they publish, and the
// recording's client publishes, are moved here before the engine and the clients get them. The
// engine runs on the shifted clock with these shifted inputs, so what it makes (detectedAt, the
// legs' ts and receivedAt) is moved by the same shift and nothing else in it changes.
import type { BookEvent, MarketSink, TickerEvent, VenueHealth } from '../market/events.js'

/** The times of a book or ticker: the venue's (exchangeTime, and ts which is it or receivedAt) and the receive time. */
const QUOTE_TIMES = ['ts', 'exchangeTime', 'receivedAt'] as const
/** Venue health's one time (its clock offset, latency and message age are durations). */
const HEALTH_TIMES = ['ts'] as const

/** A copy with each named field that holds a finite number moved (null and anything else kept). */
function moved<T extends object>(data: T, fields: readonly string[], shift: number): T {
  const out = { ...data } as Record<string, unknown>
  for (const field of fields) {
    const value = out[field]
    if (typeof value === 'number' && Number.isFinite(value)) out[field] = value + shift
  }
  return out as T
}

export const shiftBook = (e: BookEvent, shift: number): BookEvent => moved(e, QUOTE_TIMES, shift)
export const shiftTicker = (e: TickerEvent, shift: number): TickerEvent => moved(e, QUOTE_TIMES, shift)
export const shiftHealth = (h: VenueHealth, shift: number): VenueHealth => moved(h, HEALTH_TIMES, shift)

/** The connectors' events moved by `shift` on their way to `sink` (copies: the connectors keep theirs). */
export function shiftedSink(sink: MarketSink, shift: number): MarketSink {
  return {
    book: (e) => sink.book(shiftBook(e, shift)),
    ticker: (e) => sink.ticker(shiftTicker(e, shift)),
    venue: (h) => sink.venue(shiftHealth(h, shift))
  }
}

/**
 * A recorded client publish moved by `shift`: any publisher's data, so only the time fields it
 * has as numbers move (a desk's book without exchangeTime keeps its null).
 */
export function shiftPublish(topic: string, data: unknown, shift: number): unknown {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return data
  if (topic.startsWith('book.') || topic.startsWith('ticker.')) return moved(data, QUOTE_TIMES, shift)
  if (topic.startsWith('venue.')) return moved(data, HEALTH_TIMES, shift)
  return data
}
