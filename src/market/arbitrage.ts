// The arbitrage engine: best bid and ask per exchange per symbol, and cross-exchange opportunities
// with a lifecycle (open, update on material change, closed). No Fastify, no I/O: ticks in, events out.

export interface Tick {
  exchange: string
  symbol: string
  bid: number
  ask: number
  bidSize: number
  askSize: number
  /** Exchange time, ms. */
  ts: number
}

export interface Leg {
  exchange: string
  price: number
  size: number
  /** Exchange time of the quote, ms. */
  ts: number
  /** Server time the quote arrived, ms. */
  receivedAt: number
}

export interface OpportunityEvent {
  id: string
  status: 'open' | 'update' | 'closed'
  symbol: string
  buy: Leg
  sell: Leg
  size: number
  grossBps: number
  netBps: number
  profit: number
  detectedAt: number
  maxTickAgeMs: number
  /** On `closed`: how long it lived, and why it ended. */
  lifetimeMs?: number
  reason?: 'spread' | 'stale' | 'invalid'
}

export interface EngineOptions {
  minNetBps: number
  maxTickAgeMs: number
  /** Net bps change that makes an update worth sending (sizes: a 25% change). */
  updateBps: number
  /** Taker fee per exchange, as a fraction (0.001 = 10 bps). */
  fees: Readonly<Record<string, number>>
  defaultFee: number
}

export interface EngineCounters {
  ticks: number
  /** Ticks from a venue past MAX_EXCHANGES_PER_SYMBOL for their symbol. */
  refused: number
  stale: number
  crossed: number
  invalid: number
  opened: number
  updated: number
  closed: number
}

/** The arithmetic of PROTOCOL.md "Market data topics", for one buy ask and one sell bid. */
export function spread(buyPrice: number, sellPrice: number, size: number, buyFee: number, sellFee: number) {
  return {
    grossBps: ((sellPrice - buyPrice) / buyPrice) * 1e4,
    netBps: netBps(buyPrice, sellPrice, buyFee, sellFee),
    profit: size * netPerUnit(buyPrice, sellPrice, buyFee, sellFee)
  }
}

/** The net spread alone: what every tick checks, without building the event's figures. */
export const netBps = (buyPrice: number, sellPrice: number, buyFee: number, sellFee: number): number =>
  (netPerUnit(buyPrice, sellPrice, buyFee, sellFee) / buyPrice) * 1e4

const netPerUnit = (buyPrice: number, sellPrice: number, buyFee: number, sellFee: number): number => sellPrice * (1 - sellFee) - buyPrice * (1 + buyFee)

/** Venues per symbol: pairs (and the work of each tick) grow with the square of this. */
export const MAX_EXCHANGES_PER_SYMBOL = 64
/** A symbol with no tick for this many maxTickAgeMs is forgotten. */
const FORGET_AFTER_AGES = 60

/** A change of the executable size by this fraction is material. */
const SIZE_CHANGE = 0.25

/** One exchange's top of book for one symbol, updated in place. */
class Quote {
  bid = 0
  ask = 0
  bidSize = 0
  askSize = 0
  ts = 0
  receivedAt = 0
  valid = false
  constructor(
    readonly exchange: string,
    readonly fee: number,
    readonly slot: number
  ) {}
}

/** A buy-on-one, sell-on-another pair and its open opportunity, if any. */
class Pair {
  id: string | null = null
  openedAt = 0
  /** What the last published event said, to judge whether a change is material. */
  lastNetBps = 0
  lastSize = 0
  constructor(
    readonly buy: Quote,
    readonly sell: Quote
  ) {}
}

class SymbolBook {
  readonly quotes: Quote[] = []
  readonly bySlot = new Map<string, Quote>()
  /** pairs[buy.slot][sell.slot] */
  readonly pairs: (Pair | null)[][] = []
  readonly open = new Set<Pair>()
  constructor(readonly symbol: string) {}

  quote(exchange: string, fee: number): Quote {
    let q = this.bySlot.get(exchange)
    if (q !== undefined) return q
    q = new Quote(exchange, fee, this.quotes.length)
    for (const other of this.quotes) {
      this.pairs[other.slot].push(new Pair(other, q))
    }
    this.pairs.push(this.quotes.map((other) => new Pair(q!, other)))
    this.pairs[q.slot].push(null) // no pair with itself
    this.quotes.push(q)
    this.bySlot.set(exchange, q)
    return q
  }
}

const validNumber = (x: number) => typeof x === 'number' && Number.isFinite(x) && x > 0

/**
 * Feeds ticks in, gets opportunity events out. A tick re-evaluates only the pairs its exchange is
 * part of (2 × (exchanges − 1)), allocating nothing unless it emits an event.
 */
export class ArbitrageEngine {
  readonly counters: EngineCounters = { ticks: 0, refused: 0, stale: 0, crossed: 0, invalid: 0, opened: 0, updated: 0, closed: 0 }
  private readonly books = new Map<string, SymbolBook>()
  private nextId = 1

  constructor(readonly options: EngineOptions) {}

  /**
   * Applies a tick received at `now` (server ms) and returns the events it causes, usually none.
   * `exchange` and `symbol` are the topic's (ticker.<exchange>.<symbol>): a feed speaks for the
   * venue its topic names, which its publish grant covers, not for whatever its data says.
   */
  onTick(tick: Tick, now: number, exchange: unknown = tick.exchange, symbol: unknown = tick.symbol): OpportunityEvent[] | null {
    this.counters.ticks++
    if (typeof exchange !== 'string' || typeof symbol !== 'string') {
      this.counters.invalid++
      return null
    }
    let book = this.books.get(symbol)
    if (book === undefined) {
      book = new SymbolBook(symbol)
      this.books.set(symbol, book)
    }
    // Pairs grow with the square of the venues: a symbol takes ticks from this many at most.
    if (book.quotes.length >= MAX_EXCHANGES_PER_SYMBOL && !book.bySlot.has(exchange)) {
      this.counters.refused++
      return null
    }
    const q = book.quote(exchange, this.options.fees[exchange] ?? this.options.defaultFee)
    q.valid = false
    if (!validNumber(tick.bid) || !validNumber(tick.ask) || !validNumber(tick.bidSize) || !validNumber(tick.askSize) || !Number.isFinite(tick.ts)) {
      this.counters.invalid++
    } else if (tick.bid >= tick.ask) {
      this.counters.crossed++
    } else {
      q.bid = tick.bid
      q.ask = tick.ask
      q.bidSize = tick.bidSize
      q.askSize = tick.askSize
      q.ts = tick.ts
      q.receivedAt = now
      q.valid = true
      if (now - tick.ts > this.options.maxTickAgeMs) this.counters.stale++
    }
    let events: OpportunityEvent[] | null = null
    const row = book.pairs[q.slot]
    for (let i = 0; i < row.length; i++) {
      const asBuyer = row[i]
      if (asBuyer !== null) events = this.evaluate(book, asBuyer, now, events)
      const asSeller = book.pairs[i][q.slot]
      if (asSeller !== null) events = this.evaluate(book, asSeller, now, events)
    }
    return events
  }

  /**
   * Closes opportunities whose quotes went stale with no tick since, and forgets symbols that had
   * no tick for FORGET_AFTER_AGES × maxTickAgeMs (their topics expire too); call it on a timer.
   */
  sweep(now: number): OpportunityEvent[] | null {
    let events: OpportunityEvent[] | null = null
    const forgetBefore = now - FORGET_AFTER_AGES * this.options.maxTickAgeMs
    for (const [symbol, book] of this.books) {
      for (const pair of book.open) events = this.evaluate(book, pair, now, events)
      if (book.open.size === 0 && book.quotes.every((q) => q.receivedAt < forgetBefore)) this.books.delete(symbol)
    }
    return events
  }

  /** Symbols the engine holds quotes for. */
  get symbols(): number {
    return this.books.size
  }

  private evaluate(book: SymbolBook, pair: Pair, now: number, events: OpportunityEvent[] | null): OpportunityEvent[] | null {
    const { buy, sell } = pair
    const age = Math.max(0, now - Math.min(buy.ts, sell.ts))
    let reason: OpportunityEvent['reason'] | null = null
    if (!buy.valid || !sell.valid) reason = 'invalid'
    else if (age > this.options.maxTickAgeMs) reason = 'stale'
    const size = Math.min(buy.askSize, sell.bidSize)
    // The net spread alone decides; the event's figures (spread()) are built only for an event.
    const net = reason === null ? netBps(buy.ask, sell.bid, buy.fee, sell.fee) : NaN
    if (net < this.options.minNetBps) reason = 'spread'

    if (reason !== null) {
      if (pair.id === null) return events
      const closed = this.event(book, pair, 'closed', now, age, size)
      closed.lifetimeMs = now - pair.openedAt
      closed.reason = reason
      pair.id = null
      book.open.delete(pair)
      this.counters.closed++
      return push(events, closed)
    }
    if (pair.id === null) {
      pair.id = `${book.symbol}:${buy.exchange}:${sell.exchange}:${(this.nextId++).toString(36)}`
      pair.openedAt = now
      book.open.add(pair)
      this.counters.opened++
      return push(events, this.event(book, pair, 'open', now, age, size))
    }
    const material = Math.abs(net - pair.lastNetBps) >= this.options.updateBps || Math.abs(size - pair.lastSize) >= SIZE_CHANGE * pair.lastSize
    if (!material) return events
    this.counters.updated++
    return push(events, this.event(book, pair, 'update', now, age, size))
  }

  private event(book: SymbolBook, pair: Pair, status: OpportunityEvent['status'], now: number, age: number, size: number): OpportunityEvent {
    const { buy, sell } = pair
    const s = spread(buy.ask, sell.bid, size, buy.fee, sell.fee)
    pair.lastNetBps = s.netBps
    pair.lastSize = size
    return {
      id: pair.id!,
      status,
      symbol: book.symbol,
      buy: { exchange: buy.exchange, price: buy.ask, size: buy.askSize, ts: buy.ts, receivedAt: buy.receivedAt },
      sell: { exchange: sell.exchange, price: sell.bid, size: sell.bidSize, ts: sell.ts, receivedAt: sell.receivedAt },
      size,
      grossBps: round(s.grossBps),
      netBps: round(s.netBps),
      profit: round(s.profit),
      detectedAt: now,
      maxTickAgeMs: age
    }
  }
}

const push = (events: OpportunityEvent[] | null, e: OpportunityEvent) => {
  if (events === null) return [e]
  events.push(e)
  return events
}

/** Four decimals: bps and quote-currency profit beyond that are noise on the wire. */
const round = (x: number) => Math.round(x * 1e4) / 1e4
