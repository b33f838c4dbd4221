// The arbitrage engine: books (or top-of-book ticks) per venue in, opportunities out, one per
// dislocation: the most profitable buy venue against the most profitable sell venue, walked level
// by level while the marginal net stays at MIN_NET_BPS, then the next pairing on what liquidity is
// left, no level counted twice. Spot books of one base whose quotes are in one QUOTE_GROUPS group
// meet through live conversion books; every other instrument meets only its own symbol (so a
// perpetual pairs only with the same perpetual elsewhere, never with spot). No Fastify, no I/O.
// docs/PROTOCOL.md "Opportunities" is the contract of what comes out.

import { HEALTH_FORGET_MS, type VenueState } from './events.js'
import { publish } from './engine/lifecycle.js'
import { kept, type MarketClass, Markets, readHealth, type Source } from './engine/markets.js'
import { search } from './engine/search.js'
import { type BookData, FORGET_AFTER_AGES, type OpportunityEvent, type Tick, type VenueReport } from './engine/types.js'

export * from './engine/types.js'
export { floorToLot, netBps, spread } from './engine/walk.js'
export { HEALTH_FORGET_MS }

/**
 * Book and tick updates in, opportunity events out. An update re-evaluates its class only:
 * O(levels of the class + pairings × sources²), all bounded (MAX_LEVELS, MAX_EXCHANGES_PER_SYMBOL, MAX_PAIRINGS).
 * The engine's parts, one concern each, are in engine/: what it holds (markets.ts), the pairing
 * search (search.ts), the one depth walk (walk.ts), conversions (conversion.ts), the identity
 * and lifecycle of opportunities (lifecycle.ts).
 */
export class ArbitrageEngine extends Markets {
  /**
   * ticker.<exchange>.<symbol>: a top of book, checked where it entered (market/check.ts). `exchange`
   * and `symbol` are the topic's; a direct caller may leave them to the tick's own.
   */
  onTick(tick: Tick, now: number, exchange: string = tick.exchange ?? '', symbol: string = tick.symbol ?? ''): OpportunityEvent[] | null {
    this.conversions.clear() // an evaluation: each conversion level used once across its classes
    this.counters.ticks++
    const source = this.source(exchange, symbol, now)
    if (source === null) return null
    if (source.fromBook && now - source.receivedAt <= this.options.maxTickAgeMs) return null // the book says more
    source.valid = false
    source.fromBook = false
    if (tick.bid >= tick.ask) {
      this.counters.crossed++
    } else {
      source.bids = [[tick.bid, tick.bidSize]]
      source.asks = [[tick.ask, tick.askSize]]
      this.received(source, tick.ts, now)
    }
    return this.evaluateSource(source, now)
  }

  /** book.<exchange>.<symbol>: the connectors' top levels, checked where they entered (market/check.ts). */
  onBook(book: BookData, now: number, exchange: string, symbol: string): OpportunityEvent[] | null {
    this.conversions.clear() // an evaluation: each conversion level used once across its classes
    this.counters.books++
    const source = this.source(exchange, symbol, now)
    if (source === null) return null
    source.valid = false
    source.fromBook = true
    const bids = kept(book.bids)
    const asks = kept(book.asks)
    if (bids.length > 0 && asks.length > 0 && bids[0][0] >= asks[0][0]) {
      this.counters.crossed++
    } else {
      source.bids = bids
      source.asks = asks
      source.lotSize = book.lotSize ?? 0
      source.minSize = book.minSize ?? 0
      source.minNotional = book.minNotional ?? 0
      this.received(source, book.exchangeTime, now)
    }
    return this.evaluateSource(source, now)
  }

  /**
   * venue.<exchange> (the event, or its state alone): its state gates it (degraded or down take part
   * in nothing), the books it lists in `notLive` are out one by one, and an `up` confirms every other
   * book of it as of its `lastMessageAgeMs` before `now`.
   */
  onVenue(exchange: string, health: VenueState | VenueReport, now: number): OpportunityEvent[] | null {
    this.conversions.clear() // an evaluation: each conversion level used once across its classes
    const h = readHealth(health)
    const venue = this.venue(exchange)
    const before = venue.state
    const notLiveBefore = venue.notLive
    venue.state = h.state
    venue.stateAt = now
    venue.notLive = h.notLive
    if (h.state === 'up' && h.heardMsAgo !== null) venue.confirmedAt = Math.max(venue.confirmedAt, now - h.heardMsAgo)
    if (before === h.state && sameSet(notLiveBefore, h.notLive)) return null
    let events: OpportunityEvent[] | null = null
    for (const c of venue.markets) events = this.evaluate(c, now, events)
    return events
  }

  /** Closes what went stale with no update since and forgets idle classes; call it on a timer. */
  sweep(now: number): OpportunityEvent[] | null {
    this.conversions.clear() // an evaluation: each conversion level used once across its classes
    let events: OpportunityEvent[] | null = null
    for (const v of this.venues.values()) {
      if (v.state === null || now - v.stateAt <= HEALTH_FORGET_MS) continue
      v.state = null
      for (const c of v.markets) events = this.evaluate(c, now, events)
    }
    const forgetBefore = now - FORGET_AFTER_AGES * this.options.maxTickAgeMs
    for (const c of this.classes.values()) {
      if (c.open.length > 0) events = this.evaluate(c, now, events)
      if (c.open.length === 0 && c.lastUpdate < forgetBefore) this.forget(c)
    }
    this.forgetSilentVenues(forgetBefore)
    return events
  }

  /** Classes the engine holds books for. */
  get symbols(): number {
    return this.classes.size
  }

  private evaluateSource(source: Source, now: number): OpportunityEvent[] | null {
    const i = source.listing
    let events = this.evaluate(i.market, now, null)
    // A conversion book (USDT-USD) moves the classes whose open opportunities convert (a class
    // that could start converting waits for its own next update).
    if (i.converts) for (const c of this.converting) if (c !== i.market) events = this.evaluate(c, now, events)
    return events
  }

  /** The class's pairings, best first, each level used once; then open/update/close events against what is open. */
  protected evaluate(market: MarketClass, now: number, events: OpportunityEvent[] | null): OpportunityEvent[] | null {
    return publish(this, market, search(this, market, now), now, events)
  }
}

const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => {
  if (a.size !== b.size) return false
  for (const x of a) if (!b.has(x)) return false
  return true
}
