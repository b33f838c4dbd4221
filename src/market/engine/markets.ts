// What the engine holds: class membership (which symbols meet in which class), each venue's book or
// top of book per symbol (a source), and each venue's clock and health; and when a source takes
// part (fresh, not gated by its venue's health).
import { ClockOffset } from '../clock-offset.js'
import { VENUE_STALE_MS, type VenueState } from '../events.js'
import { parseSymbol } from '../instruments.js'
import {
  type ConversionCursor,
  DEFAULT_QUOTE_GROUPS,
  type EngineCounters,
  type EngineOptions,
  type Kind,
  MAX_AHEAD_MS,
  MAX_EXCHANGES_PER_SYMBOL,
  MAX_LEVELS,
  MAX_NOT_LIVE,
  type OpportunityEvent,
  type VenueReport
} from './types.js'

/** One venue's book (or top of book) for one instrument, updated in place. */
export class Source {
  bids: [number, number][] = []
  asks: [number, number][] = []
  exchangeTime: number | null = null
  receivedAt = 0
  lotSize = 0
  /** The venue's smallest order size in base units (book `minSize`); 0: none stated. */
  minSize = 0
  minNotional = 0
  /** From book.<exchange>.<symbol>; a ticker for the same instrument is then ignored while it is fresh. */
  fromBook = false
  valid = false
  constructor(
    readonly exchange: string,
    readonly symbol: string,
    readonly quote: string,
    readonly fee: number,
    readonly venue: Venue,
    /** Its symbol's listing: the class it is searched in, and whether it converts quotes. */
    readonly listing: Listing
  ) {}
}

/** One opportunity being published, and what it last said. */
export interface Open {
  id: string
  openedAt: number
  last: OpportunityEvent
}

/** Symbols that meet: their sources, open opportunities, and the search's scratch. */
export class MarketClass {
  readonly sources: Source[] = []
  /** The symbols of its sources, to forget them with it. */
  readonly symbols = new Set<string>()
  open: Open[] = []
  lastUpdate = 0
  // The search's scratch, per source: where each side's walk is, and what is left of that level.
  askAt: number[] = []
  askLeft: number[] = []
  bidAt: number[] = []
  bidLeft: number[] = []
  readonly usable: Source[] = []
  constructor(readonly key: string) {}
}

/** One topic symbol: its class, and its sources by exchange. */
export interface Listing {
  market: MarketClass
  quote: string
  kind: Kind
  /** A spot book between two currencies of one quote group (USDT-USD): it moves conversions. */
  converts: boolean
  byExchange: Map<string, Source>
}

/** A venue's clock and health as the engine sees them. */
export class Venue {
  /** The classes it quotes in: what its health moves. */
  readonly markets = new Set<MarketClass>()
  readonly clock = new ClockOffset()
  state: string | null = null
  stateAt = 0
  /** The symbols of its books its last health says are not live (each out alone). */
  notLive: ReadonlySet<string> = NONE
  /** When its last `up` health says its connection last heard from it: every live book it has is current as of then. */
  confirmedAt = Number.NEGATIVE_INFINITY
}

const NONE: ReadonlySet<string> = new Set()

/**
 * What a venue.<exchange> event says (docs/PROTOCOL.md "Venues"): `state`, `notLive` (the books
 * out, each alone) and `lastMessageAgeMs` (how long before `now` the venue last confirmed its
 * connection; absent or null: at arrival). A bare state is read as a state alone.
 */
export function readHealth(health: VenueState | VenueReport): { state: string; notLive: ReadonlySet<string>; heardMsAgo: number | null } {
  if (typeof health === 'string') return { state: health, notLive: NONE, heardMsAgo: null }
  const notLive = health.notLive === undefined ? NONE : new Set(health.notLive.slice(0, MAX_NOT_LIVE))
  // An event without lastMessageAgeMs confirms as of its arrival (a publisher that says `up` says its books are current).
  return { state: health.state, notLive, heardMsAgo: health.lastMessageAgeMs ?? 0 }
}

/** A side's first MAX_LEVELS levels, what the engine holds and walks (the published array, read only: no copy per update). */
export const kept = (levels: [number, number][]): [number, number][] => (levels.length > MAX_LEVELS ? levels.slice(0, MAX_LEVELS) : levels)

/** The engine's holdings and the rules of who takes part; the engine (arbitrage.ts) drives them. */
export class Markets {
  readonly counters: EngineCounters = {
    ticks: 0,
    books: 0,
    refused: 0,
    stale: 0,
    crossed: 0,
    ahead: 0,
    clockOutliers: 0,
    opened: 0,
    updated: 0,
    closed: 0
  }
  readonly classes = new Map<string, MarketClass>()
  /** Listings by topic symbol. */
  readonly instruments = new Map<string, Listing>()
  /** The conversion ladder of each currency pair in the evaluation under way (cleared at the start of each): shared, so no conversion level is used twice. */
  readonly conversions = new Map<string, ConversionCursor | null>()
  /** Classes with an open opportunity through a conversion book. */
  readonly converting = new Set<MarketClass>()
  readonly venues = new Map<string, Venue>()
  readonly groupOf = new Map<string, readonly string[]>()
  nextId = 1

  constructor(readonly options: EngineOptions) {
    for (const group of options.quoteGroups ?? DEFAULT_QUOTE_GROUPS) for (const q of group) this.groupOf.set(q, group)
  }

  /**
   * A valid top of book or book arrived for `source`. One stamped more than MAX_AHEAD_MS ahead of the
   * server's clock is refused (counted in `ahead`, the source invalid) and not learned from.
   */
  received(source: Source, exchangeTime: number | null, now: number): void {
    if (exchangeTime !== null && now - exchangeTime < -MAX_AHEAD_MS) {
      this.counters.ahead++
      return
    }
    source.exchangeTime = exchangeTime
    source.receivedAt = now
    source.valid = true
    if (exchangeTime !== null && !this.venue(source.exchange).clock.sample(now - exchangeTime)) this.counters.clockOutliers++
    if (!this.fresh(source, now)) this.counters.stale++
  }

  venue(exchange: string): Venue {
    let v = this.venues.get(exchange)
    if (v === undefined) {
      v = new Venue()
      this.venues.set(exchange, v)
    }
    return v
  }

  /** The listing of a topic symbol, its class made on first sight. */
  listing(symbol: string, now: number): Listing {
    let i = this.instruments.get(symbol)
    if (i !== undefined) return i
    const parsed = parseSymbol(symbol)
    const group = parsed?.kind === 'spot' ? this.groupOf.get(parsed.quote) : undefined
    const key = parsed !== null && group !== undefined ? `${parsed.base}-${group[0]}` : symbol
    let market = this.classes.get(key)
    if (market === undefined) {
      market = new MarketClass(key)
      market.lastUpdate = now
      this.classes.set(key, market)
    }
    market.symbols.add(symbol)
    i = {
      market,
      quote: parsed?.quote ?? '',
      kind: parsed?.kind ?? 'spot',
      converts: parsed !== null && (group?.includes(parsed.base) ?? false),
      byExchange: new Map()
    }
    this.instruments.set(symbol, i)
    return i
  }

  /** The source of `exchange` for `symbol`, made on first sight within MAX_EXCHANGES_PER_SYMBOL; null (counted) past it. */
  source(exchange: string, symbol: string, now: number): Source | null {
    const i = this.listing(symbol, now)
    let source = i.byExchange.get(exchange)
    if (source === undefined) {
      if (i.market.sources.length >= MAX_EXCHANGES_PER_SYMBOL) {
        this.counters.refused++
        return null
      }
      const fee = this.options.fees[`${exchange}:${i.kind}`] ?? this.options.fees[exchange] ?? this.options.defaultFee
      source = new Source(exchange, symbol, i.quote, fee, this.venue(exchange), i)
      i.byExchange.set(exchange, source)
      i.market.sources.push(source)
      source.venue.markets.add(i.market)
    }
    i.market.lastUpdate = now
    return source
  }

  /**
   * Both ages under MAX_TICK_AGE_MS: receive age, and exchange age corrected by the venue's clock
   * offset. A book its venue confirmed since it last changed (an `up` health, the book not in
   * notLive) is as old as that confirmation: a quiet book on a live connection stays current.
   */
  fresh(source: Source, now: number): boolean {
    const v = source.venue
    const confirmed = source.fromBook && v.state === 'up' && v.confirmedAt > source.receivedAt && !this.bookOut(source)
    if (now - (confirmed ? v.confirmedAt : source.receivedAt) > this.options.maxTickAgeMs) return false
    if (source.exchangeTime === null || confirmed) return true
    return now - source.exchangeTime - (v.clock.offset ?? 0) <= this.options.maxTickAgeMs
  }

  /** Degraded, down, or silent past VENUE_STALE_MS after reporting (until HEALTH_FORGET_MS): takes part in nothing. */
  gated(v: Venue, now: number): boolean {
    if (v.state === null) return false // no health reported: its ticks are its health
    return v.state !== 'up' || now - v.stateAt > VENUE_STALE_MS
  }

  /** Its venue's health says this book is not live (resyncing, waiting for a snapshot): it alone is out. */
  bookOut(source: Source): boolean {
    const out = source.venue.notLive
    return out.size > 0 && out.has(source.symbol)
  }

  usable(source: Source, now: number): boolean {
    return source.valid && this.fresh(source, now) && !this.gated(source.venue, now) && !this.bookOut(source)
  }

  /** Forgets a class: its symbols, and its place in its venues. */
  forget(c: MarketClass): void {
    this.classes.delete(c.key)
    for (const symbol of c.symbols) this.instruments.delete(symbol)
    for (const s of c.sources) s.venue.markets.delete(c)
  }

  /** Forgets venues quoting nothing and silent about their health since `before` (publishers name venues). */
  forgetSilentVenues(before: number): void {
    for (const [exchange, v] of this.venues) if (v.markets.size === 0 && v.stateAt < before) this.venues.delete(exchange)
  }
}
