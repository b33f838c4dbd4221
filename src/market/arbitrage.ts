// The arbitrage engine: books (or top-of-book ticks) per venue in, opportunities out, one per
// dislocation: the most profitable buy venue against the most profitable sell venue, walked level
// by level while the marginal net stays at MIN_NET_BPS, then the next pairing on what liquidity is
// left, no level counted twice. Spot books of one base whose quotes are in one QUOTE_GROUPS group
// meet through live conversion books; every other instrument meets only its own symbol (so a
// perpetual pairs only with the same perpetual elsewhere, never with spot). No Fastify, no I/O.
// docs/PROTOCOL.md "Opportunities" is the contract of what comes out.

import type { BookEvent, TickerEvent } from './events.js'
import { parseSymbol } from './instruments.js'

/**
 * A top of book: ticker.<exchange>.<symbol>, from the connectors (a TickerEvent) or any authorized
 * publisher; the fields the engine reads.
 */
export type Tick = Pick<TickerEvent, 'bid' | 'ask' | 'bidSize' | 'askSize' | 'ts'> & Partial<Pick<TickerEvent, 'exchange' | 'symbol'>>

/** A book: book.<exchange>.<symbol> (a BookEvent); the fields the engine reads. */
export type BookData = Pick<BookEvent, 'bids' | 'asks' | 'exchangeTime'> & Partial<Pick<BookEvent, 'lotSize' | 'minNotional'>>

export interface Leg {
  exchange: string
  /** The instrument traded on this leg (its quote may differ from the other leg's). */
  symbol: string
  /** Best level when the opportunity was computed, in this leg's quote currency. */
  price: number
  size: number
  /** Exchange time of the quote (ms), or null when the venue gives none. */
  ts: number | null
  /** Server time the quote arrived, ms. */
  receivedAt: number
  /** now − receivedAt. */
  receiveAgeMs: number
  /** now − exchange time − clockOffsetMs; null without exchange time. */
  exchangeAgeMs: number | null
  /** The venue's estimated clock offset used (smallest receivedAt − exchange time seen); null when unknown. */
  clockOffsetMs: number | null
  fee: number
}

export interface LadderStep {
  /** Buy notional asked for, in `currency`. */
  notional: number
  /** What the books could fill of it (less than notional when they are too thin). */
  filled: number
  size: number
  netBps: number
  profit: number
}

export interface Conversion {
  /** Units of the buy leg's quote currency per unit of the sell leg's, executable, fees in. */
  rate: number
  /** The same at mid prices, no fees (what grossBps uses). */
  midRate: number
  /** The conversion books used, in order: sell the sell leg's quote, buy the buy leg's. */
  via: { exchange: string; symbol: string; side: 'bid' | 'ask'; price: number; fee: number }[]
}

export interface OpportunityEvent {
  id: string
  status: 'open' | 'update' | 'closed'
  /** The class: see docs/PROTOCOL.md (BTC-USD for BTC spot in the USD,USDT,USDC group). */
  symbol: string
  buy: Leg
  sell: Leg
  /** Money figures (profit, ladder notionals) are in this currency: the buy leg's quote. */
  currency: string
  /** Top of book: the smaller of the two best levels. */
  size: number
  grossBps: number
  netBps: number
  profit: number
  /** Largest size whose marginal net stays at MIN_NET_BPS, in lots of both venues, 0 when under either minimum notional. */
  maxSize: number
  /** Net profit of maxSize. */
  maxProfit: number
  ladder: LadderStep[]
  conversion: Conversion | null
  /** With BALANCES: whether the desk could do it now, and how much. */
  actionable?: boolean
  actionableSize?: number
  detectedAt: number
  /** The older leg's receive age. */
  maxTickAgeMs: number
  lifetimeMs?: number
  reason?: 'spread' | 'stale' | 'invalid' | 'venue'
}

export interface EngineOptions {
  minNetBps: number
  maxTickAgeMs: number
  /** Net bps change that makes an update worth sending (or a 25% change of maxSize, or new legs). */
  updateBps: number
  /** Taker fee per `exchange` or `exchange:kind` (kind spot, perp, future), as a fraction. */
  fees: Readonly<Record<string, number>>
  defaultFee: number
  /** Buy notionals for the ladder, in the buy leg's quote currency. */
  sizeLadder?: readonly number[]
  /** Quote currencies compared through conversion books; the first of each group is its reference. */
  quoteGroups?: readonly (readonly string[])[]
  /** What the desk holds, per exchange and currency. */
  balances?: Readonly<Record<string, Readonly<Record<string, number>>>> | null
}

export interface EngineCounters {
  ticks: number
  books: number
  /** Updates from a venue past MAX_EXCHANGES_PER_SYMBOL for their class. */
  refused: number
  stale: number
  crossed: number
  invalid: number
  opened: number
  updated: number
  closed: number
}

/** The arithmetic of PROTOCOL.md for one buy ask and one sell bid (same quote currency). */
export function spread(buyPrice: number, sellPrice: number, size: number, buyFee: number, sellFee: number) {
  return {
    grossBps: ((sellPrice - buyPrice) / buyPrice) * 1e4,
    netBps: netBps(buyPrice, sellPrice, buyFee, sellFee),
    profit: size * netPerUnit(buyPrice, sellPrice, buyFee, sellFee)
  }
}

export const netBps = (buyPrice: number, sellPrice: number, buyFee: number, sellFee: number, rate = 1): number =>
  (netPerUnit(buyPrice, sellPrice, buyFee, sellFee, rate) / buyPrice) * 1e4

const netPerUnit = (buyPrice: number, sellPrice: number, buyFee: number, sellFee: number, rate = 1): number =>
  sellPrice * (1 - sellFee) * rate - buyPrice * (1 + buyFee)

/** Venues (sources) per class: pairings are searched over their square. */
export const MAX_EXCHANGES_PER_SYMBOL = 32
/** Levels a side kept per source: what any publisher can make the engine hold and walk. */
export const MAX_LEVELS = 50
/** Opportunities per class at once. */
export const MAX_PAIRINGS = 8
/** A class with no update for this many maxTickAgeMs is forgotten. */
const FORGET_AFTER_AGES = 60
/** A change of maxSize by this fraction is material. */
const SIZE_CHANGE = 0.25
/** Clock samples per exchange for its offset estimate. */
const CLOCK_SAMPLES = 256
/** Venue health older than this counts as down (a feed publishes it every second). */
const VENUE_STALE_MS = 5000
/**
 * A venue with no health event for this long is forgotten as a reporter: its feed (or the
 * process running it) is gone, and the name's quotes from other publishers count again by their
 * own freshness, as for a venue that never reported.
 */
export const HEALTH_FORGET_MS = 30_000

export const DEFAULT_SIZE_LADDER = [1000, 10_000, 100_000] as const
export const DEFAULT_QUOTE_GROUPS = [['USD', 'USDT', 'USDC']] as const

type Kind = 'spot' | 'perp' | 'future'

/** One venue's book (or top of book) for one instrument, updated in place. */
class Source {
  bids: [number, number][] = []
  asks: [number, number][] = []
  exchangeTime: number | null = null
  receivedAt = 0
  lotSize = 0
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
    /** Its symbol's instrument: the class it is searched in, and whether it converts quotes. */
    readonly instrument: Instrument
  ) {}
}

/** One opportunity being published, and what it last said. */
interface Open {
  id: string
  openedAt: number
  last: OpportunityEvent
}

/** What a class's search found: one pairing of a buy source and a sell source. */
interface Pairing {
  buy: Source
  sell: Source
  conversion: Conversion | null
  rate: number
  midRate: number
  size: number
  maxSize: number
  /** What the walk took (maxSize before lots) and its profit. */
  walked: number
  walkedProfit: number
  /** Where both books stood when this pairing's walk began: its ladder walks from there. */
  start: { ai: number; al: number; bj: number; bl: number }
  buyTop: [number, number]
  sellTop: [number, number]
}

class MarketClass {
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
interface Instrument {
  market: MarketClass
  quote: string
  kind: Kind
  /** A spot book between two currencies of one quote group (USDT-USD): it moves conversions. */
  converts: boolean
  byExchange: Map<string, Source>
}

const SAME_CURRENCY = { rate: 1, mid: 1, via: [] as Conversion['via'] }

/** A venue's clock and health as the engine sees them. */
class Venue {
  /** The classes it quotes in: what its health moves. */
  readonly markets = new Set<MarketClass>()
  readonly samples: number[] = []
  at = 0
  offset: number | null = null
  state: string | null = null
  stateAt = 0
  sample(delta: number): void {
    if (this.samples.length < CLOCK_SAMPLES) this.samples.push(delta)
    else this.samples[this.at] = delta
    this.at = (this.at + 1) % CLOCK_SAMPLES
    if (this.offset === null || delta < this.offset) this.offset = delta
    else if (this.at === 0) this.offset = Math.min(...this.samples) // the window moved past the old minimum
  }
}

const NO_PAIRINGS: Pairing[] = []

/** A price or size: positive, and under 1e100 so that products of them stay finite (no real one comes near). */
const positive = (x: unknown): x is number => typeof x === 'number' && x > 0 && x < 1e100

/**
 * A side as published, best first, its first MAX_LEVELS levels kept (the published arrays, read
 * only: no copy per update); null when malformed.
 */
function side(levels: unknown, descending: boolean): [number, number][] | null {
  if (!Array.isArray(levels)) return null
  const n = Math.min(levels.length, MAX_LEVELS)
  let previous = descending ? Number.POSITIVE_INFINITY : 0
  for (let i = 0; i < n; i++) {
    const l = levels[i] as unknown
    if (!Array.isArray(l) || !positive(l[0]) || !positive(l[1])) return null
    if (descending ? l[0] >= previous : l[0] <= previous) return null
    previous = l[0]
  }
  return (levels.length > n ? levels.slice(0, n) : levels) as [number, number][]
}

/**
 * Rounds down to a whole number of lots. A size summed from many book levels falls short of a whole
 * number of lots by float error that grows with the count (2 BTC in 1e-8 lots is 2e8 of them): the
 * tolerance is relative, far below one lot, so rounding error never costs a lot.
 */
export function floorToLot(size: number, lot: number): number {
  if (!(lot > 0)) return size
  const lots = size / lot
  return Math.floor(lots + Math.max(1e-9, lots * 1e-12)) * lot
}

/**
 * Book and tick updates in, opportunity events out. An update re-evaluates its class only:
 * O(levels of the class + pairings × sources²), all bounded (MAX_LEVELS, MAX_EXCHANGES_PER_SYMBOL, MAX_PAIRINGS).
 */
export class ArbitrageEngine {
  readonly counters: EngineCounters = { ticks: 0, books: 0, refused: 0, stale: 0, crossed: 0, invalid: 0, opened: 0, updated: 0, closed: 0 }
  private readonly classes = new Map<string, MarketClass>()
  private readonly instruments = new Map<string, Instrument>()
  /** Classes with an open opportunity through a conversion book. */
  private readonly converting = new Set<MarketClass>()
  private readonly venues = new Map<string, Venue>()
  private readonly groupOf = new Map<string, readonly string[]>()
  private nextId = 1

  constructor(readonly options: EngineOptions) {
    for (const group of options.quoteGroups ?? DEFAULT_QUOTE_GROUPS) for (const q of group) this.groupOf.set(q, group)
  }

  /** ticker.<exchange>.<symbol>: a top of book. `exchange` and `symbol` are the topic's. */
  onTick(tick: Tick, now: number, exchange: unknown = tick?.exchange, symbol: unknown = tick?.symbol): OpportunityEvent[] | null {
    this.counters.ticks++
    const source = this.source(exchange, symbol, now)
    if (source === null) return null
    if (source.fromBook && now - source.receivedAt <= this.options.maxTickAgeMs) return null // the book says more
    const t = tick as Partial<Tick> | null
    source.valid = false
    source.fromBook = false
    if (t === null || typeof t !== 'object' || !positive(t.bid) || !positive(t.ask) || !positive(t.bidSize) || !positive(t.askSize) || !Number.isFinite(t.ts)) {
      this.counters.invalid++
    } else if (t.bid >= t.ask) {
      this.counters.crossed++
    } else {
      source.bids = [[t.bid, t.bidSize]]
      source.asks = [[t.ask, t.askSize]]
      this.received(source, t.ts as number, now)
    }
    return this.evaluateSource(source, now)
  }

  /** book.<exchange>.<symbol>: the connectors' top levels. */
  onBook(book: BookData, now: number, exchange: unknown, symbol: unknown): OpportunityEvent[] | null {
    this.counters.books++
    const source = this.source(exchange, symbol, now)
    if (source === null) return null
    source.valid = false
    source.fromBook = true
    const b = book as Partial<BookData> | null
    const bids = b !== null && typeof b === 'object' ? side(b.bids, true) : null
    const asks = b !== null && typeof b === 'object' ? side(b.asks, false) : null
    const time = b?.exchangeTime
    if (bids === null || asks === null || (time !== null && !Number.isFinite(time))) {
      this.counters.invalid++
    } else if (bids.length > 0 && asks.length > 0 && bids[0][0] >= asks[0][0]) {
      this.counters.crossed++
    } else {
      source.bids = bids
      source.asks = asks
      source.lotSize = positive(b?.lotSize) ? b.lotSize : 0
      source.minNotional = positive(b?.minNotional) ? b.minNotional : 0
      this.received(source, time ?? null, now)
    }
    return this.evaluateSource(source, now)
  }

  /** venue.<exchange>: its state gates it (degraded or down take part in nothing). */
  onVenue(exchange: string, state: unknown, now: number): OpportunityEvent[] | null {
    if (typeof state !== 'string') return null
    const venue = this.venue(exchange)
    const before = venue.state
    venue.state = state
    venue.stateAt = now
    if (before === state) return null
    let events: OpportunityEvent[] | null = null
    for (const c of venue.markets) events = this.evaluate(c, now, events)
    return events
  }

  /** Closes what went stale with no update since and forgets idle classes; call it on a timer. */
  sweep(now: number): OpportunityEvent[] | null {
    let events: OpportunityEvent[] | null = null
    for (const v of this.venues.values()) {
      if (v.state === null || now - v.stateAt <= HEALTH_FORGET_MS) continue
      v.state = null
      for (const c of v.markets) events = this.evaluate(c, now, events)
    }
    const forgetBefore = now - FORGET_AFTER_AGES * this.options.maxTickAgeMs
    for (const [key, c] of this.classes) {
      if (c.open.length > 0) events = this.evaluate(c, now, events)
      if (c.open.length > 0 || c.lastUpdate >= forgetBefore) continue
      this.classes.delete(key)
      for (const symbol of c.symbols) this.instruments.delete(symbol)
      for (const s of c.sources) s.venue.markets.delete(c)
    }
    // A venue quoting nothing and silent about its health is forgotten too (publishers name venues).
    for (const [exchange, v] of this.venues) if (v.markets.size === 0 && v.stateAt < forgetBefore) this.venues.delete(exchange)
    return events
  }

  /** Classes the engine holds books for. */
  get symbols(): number {
    return this.classes.size
  }

  private received(source: Source, exchangeTime: number | null, now: number): void {
    source.exchangeTime = exchangeTime
    source.receivedAt = now
    source.valid = true
    if (exchangeTime !== null) this.venue(source.exchange).sample(now - exchangeTime)
    if (!this.fresh(source, now)) this.counters.stale++
  }

  private venue(exchange: string): Venue {
    let v = this.venues.get(exchange)
    if (v === undefined) {
      v = new Venue()
      this.venues.set(exchange, v)
    }
    return v
  }

  /** The instrument of a topic symbol, its class made on first sight. */
  private instrument(symbol: string, now: number): Instrument {
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

  private source(exchange: unknown, symbol: unknown, now: number): Source | null {
    if (typeof exchange !== 'string' || typeof symbol !== 'string') {
      this.counters.invalid++
      return null
    }
    const i = this.instrument(symbol, now)
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

  /** Both ages under MAX_TICK_AGE_MS: receive age, and exchange age corrected by the venue's clock offset. */
  private fresh(source: Source, now: number): boolean {
    if (now - source.receivedAt > this.options.maxTickAgeMs) return false
    if (source.exchangeTime === null) return true
    return now - source.exchangeTime - (source.venue.offset ?? 0) <= this.options.maxTickAgeMs
  }

  /** Degraded, down, or silent past VENUE_STALE_MS after reporting (until HEALTH_FORGET_MS): takes part in nothing. */
  private gated(v: Venue, now: number): boolean {
    if (v.state === null) return false // no health reported: its ticks are its health
    return v.state !== 'up' || now - v.stateAt > VENUE_STALE_MS
  }

  private usable(source: Source, now: number): boolean {
    return source.valid && this.fresh(source, now) && !this.gated(source.venue, now)
  }

  private evaluateSource(source: Source, now: number): OpportunityEvent[] | null {
    const i = source.instrument
    let events = this.evaluate(i.market, now, null)
    // A conversion book (USDT-USD) moves the classes whose open opportunities convert (a class
    // that could start converting waits for its own next update).
    if (i.converts) for (const c of this.converting) if (c !== i.market) events = this.evaluate(c, now, events)
    return events
  }

  /**
   * Best executable rate (units of `to` per unit of `from` sold, fees in) over every venue's
   * conversion book, and its mid; from === to is 1.
   */
  private convert(from: string, to: string, now: number): { rate: number; mid: number; via: Conversion['via'] } | null {
    if (from === to) return SAME_CURRENCY
    let best: { rate: number; mid: number; via: Conversion['via'] } | null = null
    const consider = (symbol: string, sellBase: boolean) => {
      const i = this.instruments.get(symbol)
      if (i === undefined) return
      for (const s of i.byExchange.values()) {
        if (!this.usable(s, now) || s.bids.length === 0 || s.asks.length === 0) continue
        const bid = s.bids[0][0]
        const ask = s.asks[0][0]
        // from-to book: sell `from` at its bid; to-from book: buy `to` at its ask.
        const rate = sellBase ? bid * (1 - s.fee) : 1 / (ask * (1 + s.fee))
        const mid = sellBase ? (bid + ask) / 2 : 2 / (bid + ask)
        if (best === null || rate > best.rate)
          best = { rate, mid, via: [{ exchange: s.exchange, symbol, side: sellBase ? 'bid' : 'ask', price: sellBase ? bid : ask, fee: s.fee }] }
      }
    }
    consider(`${from}-${to}`, true)
    consider(`${to}-${from}`, false)
    return best
  }

  /** Units of `buyQuote` per unit of `sellQuote`: direct, or through the group's reference currency. */
  private conversion(sellQuote: string, buyQuote: string, now: number): { rate: number; mid: number; via: Conversion['via'] } | null {
    if (sellQuote === buyQuote) return SAME_CURRENCY
    const direct = this.convert(sellQuote, buyQuote, now)
    const group = this.groupOf.get(sellQuote)
    const reference = group?.[0]
    if (reference === undefined || reference === sellQuote || reference === buyQuote) return direct
    const first = this.convert(sellQuote, reference, now)
    const second = first && this.convert(reference, buyQuote, now)
    const via = first && second ? { rate: first.rate * second.rate, mid: first.mid * second.mid, via: [...first.via, ...second.via] } : null
    if (direct === null) return via
    return via !== null && via.rate > direct.rate ? via : direct
  }

  /** The class's pairings, best first, each level used once; then open/update/close events against what is open. */
  private evaluate(market: MarketClass, now: number, events: OpportunityEvent[] | null): OpportunityEvent[] | null {
    const pairings = this.search(market, now)
    return this.publish(market, pairings, now, events)
  }

  private search(market: MarketClass, now: number): Pairing[] {
    const sources = market.usable
    sources.length = 0
    for (const s of market.sources) if (this.usable(s, now)) sources.push(s)
    if (sources.length < 2) return NO_PAIRINGS
    const pairings: Pairing[] = []
    // What each source has left: index and remaining size of its current level, per side.
    const { askAt, askLeft, bidAt, bidLeft } = market
    for (let k = 0; k < sources.length; k++) {
      const s = sources[k]
      askAt[k] = 0
      askLeft[k] = s.asks.length > 0 ? s.asks[0][1] : 0
      bidAt[k] = 0
      bidLeft[k] = s.bids.length > 0 ? s.bids[0][1] : 0
    }
    let rates: Map<string, ReturnType<ArbitrageEngine['conversion']>> | null = null
    const rateOf = (sell: Source, buy: Source) => {
      if (sell.quote === buy.quote) return SAME_CURRENCY
      const key = `${sell.quote} ${buy.quote}`
      rates ??= new Map()
      if (!rates.has(key)) rates.set(key, this.conversion(sell.quote, buy.quote, now))
      return rates.get(key)!
    }
    const min = this.options.minNetBps
    while (pairings.length < MAX_PAIRINGS) {
      let best = -Infinity
      let bi = -1
      let si = -1
      for (let i = 0; i < sources.length; i++) {
        if (askAt[i] >= sources[i].asks.length) continue
        for (let j = 0; j < sources.length; j++) {
          if (i === j || bidAt[j] >= sources[j].bids.length || sources[i].exchange === sources[j].exchange) continue
          const conv = rateOf(sources[j], sources[i])
          if (conv === null) continue
          const net = netBps(sources[i].asks[askAt[i]][0], sources[j].bids[bidAt[j]][0], sources[i].fee, sources[j].fee, conv.rate)
          if (net > best) {
            best = net
            bi = i
            si = j
          }
        }
      }
      if (bi === -1 || best < min) break
      const buy = sources[bi]
      const sell = sources[si]
      const conv = rateOf(sell, buy)!
      const start = { ai: askAt[bi], al: askLeft[bi], bj: bidAt[si], bl: bidLeft[si] }
      // The walk: consume both sides while the marginal net stays at MIN_NET_BPS.
      let size = 0
      let profit = 0
      let ai = start.ai
      let al = start.al
      let bj = start.bj
      let bl = start.bl
      while (ai < buy.asks.length && bj < sell.bids.length) {
        const a = buy.asks[ai][0]
        const b = sell.bids[bj][0]
        if (netBps(a, b, buy.fee, sell.fee, conv.rate) < min) break
        const q = Math.min(al, bl)
        size += q
        profit += q * netPerUnit(a, b, buy.fee, sell.fee, conv.rate)
        al -= q
        bl -= q
        if (al <= 0 && ++ai < buy.asks.length) al = buy.asks[ai][1]
        if (bl <= 0 && ++bj < sell.bids.length) bl = sell.bids[bj][1]
      }
      // A top of book (a tick) serves one pairing: its size says nothing of what is behind it.
      if (!buy.fromBook) ai = buy.asks.length
      if (!sell.fromBook) bj = sell.bids.length
      askAt[bi] = ai
      askLeft[bi] = al
      bidAt[si] = bj
      bidLeft[si] = bl
      const buyTop: [number, number] = [buy.asks[start.ai][0], start.al]
      const sellTop: [number, number] = [sell.bids[start.bj][0], start.bl]
      const maxSize = this.tradable({ buy, sell, buyTop, sellTop }, size)
      pairings.push({
        buy,
        sell,
        conversion: conv.via.length === 0 ? null : { rate: conv.rate, midRate: conv.mid, via: conv.via },
        rate: conv.rate,
        midRate: conv.mid,
        size: Math.min(start.al, start.bl),
        maxSize,
        walked: size,
        walkedProfit: profit,
        start,
        buyTop,
        sellTop
      })
    }
    return pairings
  }

  /** A size in lots of both venues; 0 when its notional (at the pairing's top prices) is under either venue's minimum. */
  private tradable(p: { buy: Source; sell: Source; buyTop: [number, number]; sellTop: [number, number] }, size: number): number {
    const lots = floorToLot(floorToLot(size, Math.max(p.buy.lotSize, p.sell.lotSize)), Math.min(p.buy.lotSize, p.sell.lotSize))
    if (lots <= 0 || lots * p.buyTop[0] < p.buy.minNotional || lots * p.sellTop[0] < p.sell.minNotional) return 0
    return lots
  }

  /** Net profit of `size` taken from the walk's start (the walk went further than the lots allow). */
  private walkProfit(buy: Source, sell: Source, start: { ai: number; al: number; bj: number; bl: number }, size: number, rate: number): number {
    let left = size
    let profit = 0
    let { ai, al, bj, bl } = start
    while (left > 1e-12 && ai < buy.asks.length && bj < sell.bids.length) {
      const q = Math.min(al, bl, left)
      profit += q * netPerUnit(buy.asks[ai][0], sell.bids[bj][0], buy.fee, sell.fee, rate)
      left -= q
      al -= q
      bl -= q
      if (al <= 0 && ++ai < buy.asks.length) al = buy.asks[ai][1]
      if (bl <= 0 && ++bj < sell.bids.length) bl = sell.bids[bj][1]
    }
    return profit
  }

  /** SIZE_LADDER: net bps and profit of buying each notional (buy quote currency) and selling it across. */
  private ladder(buy: Source, sell: Source, start: { ai: number; al: number; bj: number; bl: number }, rate: number): LadderStep[] {
    const steps: LadderStep[] = []
    for (const notional of this.options.sizeLadder ?? DEFAULT_SIZE_LADDER) {
      let spent = 0
      let size = 0
      let profit = 0
      let { ai, al, bj, bl } = start
      while (spent < notional && ai < buy.asks.length && bj < sell.bids.length) {
        const a = buy.asks[ai][0]
        const q = Math.min(al, bl, (notional - spent) / a)
        spent += q * a
        size += q
        profit += q * netPerUnit(a, sell.bids[bj][0], buy.fee, sell.fee, rate)
        al -= q
        bl -= q
        if (al <= 1e-12 && ++ai < buy.asks.length) al = buy.asks[ai][1]
        if (bl <= 1e-12 && ++bj < sell.bids.length) bl = sell.bids[bj][1]
      }
      steps.push({ notional, filled: spent, size, netBps: spent > 0 ? (profit / spent) * 1e4 : 0, profit })
    }
    return steps
  }

  private publish(market: MarketClass, pairings: Pairing[], now: number, events: OpportunityEvent[] | null): OpportunityEvent[] | null {
    const open = market.open
    if (pairings.length === 0 && open.length === 0) return events
    const matched = new Array<Open | null>(pairings.length).fill(null)
    const taken = new Set<Open>()
    // Identity: the same legs first, then a shared venue (the dislocation moved), then in order.
    const rules: ((o: Open, p: Pairing) => boolean)[] = [
      (o, p) => o.last.buy.exchange === p.buy.exchange && o.last.sell.exchange === p.sell.exchange,
      (o, p) => o.last.buy.exchange === p.buy.exchange || o.last.sell.exchange === p.sell.exchange,
      () => true
    ]
    for (const rule of rules)
      for (let k = 0; k < pairings.length; k++) {
        if (matched[k] !== null) continue
        const o = open.find((x) => !taken.has(x) && rule(x, pairings[k]))
        if (o !== undefined) {
          matched[k] = o
          taken.add(o)
        }
      }
    const next: Open[] = []
    for (const o of open) {
      if (taken.has(o)) continue
      const closed: OpportunityEvent = { ...o.last, status: 'closed', detectedAt: now, lifetimeMs: now - o.openedAt, reason: this.reason(o.last, now) }
      this.counters.closed++
      events = push(events, closed)
    }
    for (let k = 0; k < pairings.length; k++) {
      const p = pairings[k]
      const o = matched[k]
      if (o === null) {
        const id = `${market.key}:${(this.nextId++).toString(36)}`
        const event = this.event(market, p, id, 'open', now)
        next.push({ id, openedAt: now, last: event })
        this.counters.opened++
        events = push(events, event)
        continue
      }
      next.push(o)
      const material =
        o.last.buy.exchange !== p.buy.exchange ||
        o.last.sell.exchange !== p.sell.exchange ||
        o.last.buy.symbol !== p.buy.symbol ||
        o.last.sell.symbol !== p.sell.symbol ||
        Math.abs(netBps(p.buyTop[0], p.sellTop[0], p.buy.fee, p.sell.fee, p.rate) - o.last.netBps) >= this.options.updateBps ||
        Math.abs(p.maxSize - o.last.maxSize) > SIZE_CHANGE * o.last.maxSize
      if (!material) continue
      o.last = this.event(market, p, o.id, 'update', now)
      this.counters.updated++
      events = push(events, o.last)
    }
    market.open = next
    if (next.some((o) => o.last.conversion !== null)) this.converting.add(market)
    else this.converting.delete(market)
    return events
  }

  /** Why an opportunity no search found again ended. */
  private reason(last: OpportunityEvent, now: number): NonNullable<OpportunityEvent['reason']> {
    const legs = [
      this.instruments.get(last.buy.symbol)?.byExchange.get(last.buy.exchange),
      this.instruments.get(last.sell.symbol)?.byExchange.get(last.sell.exchange)
    ]
    if (legs.some((s) => s !== undefined && this.gated(s.venue, now))) return 'venue'
    if (legs.some((s) => s === undefined || !s.valid)) return 'invalid'
    if (legs.some((s) => s !== undefined && !this.fresh(s, now))) return 'stale'
    return 'spread'
  }

  private leg(s: Source, top: [number, number], now: number): Leg {
    const offset = s.venue.offset
    return {
      exchange: s.exchange,
      symbol: s.symbol,
      price: top[0],
      size: top[1],
      ts: s.exchangeTime,
      receivedAt: s.receivedAt,
      receiveAgeMs: now - s.receivedAt,
      exchangeAgeMs: s.exchangeTime === null ? null : now - s.exchangeTime - (offset ?? 0),
      clockOffsetMs: offset,
      fee: s.fee
    }
  }

  private event(market: MarketClass, p: Pairing, id: string, status: OpportunityEvent['status'], now: number): OpportunityEvent {
    const [a, aSize] = p.buyTop
    const [b, bSize] = p.sellTop
    const size = Math.min(aSize, bSize)
    const unit = netPerUnit(a, b, p.buy.fee, p.sell.fee, p.rate)
    const event: OpportunityEvent = {
      id,
      status,
      symbol: market.key,
      buy: this.leg(p.buy, p.buyTop, now),
      sell: this.leg(p.sell, p.sellTop, now),
      currency: p.buy.quote || market.key,
      size,
      grossBps: ((b * p.midRate - a) / a) * 1e4,
      netBps: (unit / a) * 1e4,
      profit: size * unit,
      maxSize: p.maxSize,
      // Figures only an event needs, computed for it alone (most evaluations publish nothing).
      maxProfit: p.maxSize === p.walked ? p.walkedProfit : this.walkProfit(p.buy, p.sell, p.start, p.maxSize, p.rate),
      ladder: this.ladder(p.buy, p.sell, p.start, p.rate),
      conversion: p.conversion,
      detectedAt: now,
      maxTickAgeMs: Math.max(now - p.buy.receivedAt, now - p.sell.receivedAt)
    }
    const balances = this.options.balances
    if (balances) {
      // Buy with what the desk holds of the buy leg's quote there; sell what it holds of the base where it sells.
      const base = parseSymbol(p.sell.symbol)?.base ?? ''
      const quoteHeld = balances[p.buy.exchange]?.[p.buy.quote] ?? 0
      const baseHeld = balances[p.sell.exchange]?.[base] ?? 0
      const can = Math.min(p.maxSize, quoteHeld / (a * (1 + p.buy.fee)), baseHeld)
      const lots = this.tradable(p, can)
      event.actionable = lots > 0
      event.actionableSize = lots
    }
    return event
  }
}

const push = (events: OpportunityEvent[] | null, e: OpportunityEvent) => {
  if (events === null) return [e]
  events.push(e)
  return events
}
