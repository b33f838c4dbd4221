// The market wing's events, typed from a venue's socket to the engine: what a connection emits
// into a MarketSink, and what the server turns into book.<exchange>.<symbol>,
// ticker.<exchange>.<symbol> and venue.<exchange> (docs/PROTOCOL.md "Market data topics").

/** A book's best levels, sizes in base units: book.<exchange>.<symbol>. */
export interface BookEvent {
  exchange: string
  symbol: string
  /** exchangeTime, or receivedAt where the venue gives none. */
  ts: number
  /** The venue's time of the change; null where it gives none. */
  exchangeTime: number | null
  /** When the server received it. */
  receivedAt: number
  bids: [number, number][]
  asks: [number, number][]
  /** The smallest order step in the book's base units. */
  lotSize: number
  /** The smallest order size in the book's base units (an inverse contract's at the best price); 0 when the venue states none. */
  minSize: number
  /** The smallest order value in the quote currency; 0 when the venue states none. */
  minNotional: number
}

/** A book's top, when it moved: ticker.<exchange>.<symbol>. */
export interface TickerEvent {
  exchange: string
  symbol: string
  ts: number
  exchangeTime: number | null
  receivedAt: number
  bid: number
  bidSize: number
  ask: number
  askSize: number
}

export type VenueState = 'up' | 'degraded' | 'down'

export interface VenueCounters {
  messages: number
  /** Messages of a kind the connector did not ask for, or for instruments it did not subscribe. */
  ignored: number
  /** Messages that are not what the venue documents (not JSON, missing fields, bad numbers). */
  invalid: number
  gaps: number
  checksumFailures: number
  resyncs: number
  reconnects: number
  /** Sockets dropped because nothing came for longer than the venue's silence limit. */
  silences: number
  errors: number
  /** Books resynced and REST answers refused because the connection would hold more than VENUE_BUFFER_MB. */
  overflows: number
}

export const ZERO_COUNTERS: Readonly<VenueCounters> = {
  messages: 0,
  ignored: 0,
  invalid: 0,
  gaps: 0,
  checksumFailures: 0,
  resyncs: 0,
  reconnects: 0,
  silences: 0,
  errors: 0,
  overflows: 0
}

/** venue.<exchange> events and the `venues` method: docs/PROTOCOL.md "Market data topics". */
export interface VenueHealth extends VenueCounters {
  exchange: string
  state: VenueState
  connected: boolean
  instruments: number
  booksLive: number
  /** Topic symbols of the books not live (resyncing, or waiting for their snapshot): only these are out. */
  notLive: string[]
  /** ms since the last message; null before the first. */
  lastMessageAgeMs: number | null
  /** Estimates over the last messages carrying exchange time: see docs/PROTOCOL.md. */
  clockOffsetMs: number | null
  latencyMs: number | null
  /** Sockets replaced before the venue's own close (Binance, 24 h): no gap, not a reconnect. */
  rotations: number
  /** Bytes held for books waiting for their snapshot (at most VENUE_BUFFER_MB per connection). */
  heldBytes: number
  ts: number
}

/** Venue health older than this counts as down (a feed publishes it every second). */
export const VENUE_STALE_MS = 5000

/**
 * A venue with no health event for this long is forgotten as a reporter: its feed (or the
 * process running it) is gone, and the name's quotes from other publishers count again by their
 * own freshness, as for a venue that never reported.
 */
export const HEALTH_FORGET_MS = 30_000

/** Where market events go: the server's topics, a test's list, a recording. */
export interface MarketSink {
  book(event: BookEvent): void
  ticker(event: TickerEvent): void
  venue(health: VenueHealth): void
}

/**
 * The sink that publishes each event on its topic. Each topic's string is made once (as many as the
 * connectors' instruments): every map an event passes through then meets a string already flat
 * and hashed, not a new one a publish.
 */
export function topicSink(publish: (topic: string, data: unknown) => void): MarketSink {
  const book = topicsOf('book')
  const ticker = topicsOf('ticker')
  const venues = new Map<string, string>()
  return {
    book: (e) => publish(book(e.exchange, e.symbol), e),
    ticker: (e) => publish(ticker(e.exchange, e.symbol), e),
    venue: (h) => {
      let topic = venues.get(h.exchange)
      if (topic === undefined) {
        topic = `venue.${h.exchange}`
        venues.set(h.exchange, topic)
      }
      publish(topic, h)
    }
  }
}

/** `<kind>.<exchange>.<symbol>`, each made once. */
function topicsOf(kind: string): (exchange: string, symbol: string) => string {
  const byExchange = new Map<string, Map<string, string>>()
  return (exchange, symbol) => {
    let bySymbol = byExchange.get(exchange)
    if (bySymbol === undefined) {
      bySymbol = new Map()
      byExchange.set(exchange, bySymbol)
    }
    let topic = bySymbol.get(symbol)
    if (topic === undefined) {
      topic = `${kind}.${exchange}.${symbol}`
      bySymbol.set(symbol, topic)
    }
    return topic
  }
}
