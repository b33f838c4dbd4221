// What the engine takes, gives and is configured with (docs/PROTOCOL.md "Opportunities"), and the
// bounds on what any publisher can make it hold.
import type { BookEvent, TickerEvent, VenueHealth } from '../events.js'

/**
 * A top of book: ticker.<exchange>.<symbol>, from the connectors (a TickerEvent) or any authorized
 * publisher; the fields the engine reads.
 */
export type Tick = Pick<TickerEvent, 'bid' | 'ask' | 'bidSize' | 'askSize' | 'ts'> & Partial<Pick<TickerEvent, 'exchange' | 'symbol'>>

/** A book: book.<exchange>.<symbol> (a BookEvent); the fields the engine reads. */
export type BookData = Pick<BookEvent, 'bids' | 'asks' | 'exchangeTime'> & Partial<Pick<BookEvent, 'lotSize' | 'minSize' | 'minNotional'>>

/**
 * The fields of venue.<exchange> the engine reads (readHealth in markets.ts): all a recording keeps
 * of each venue health the engine was given (record/capture.ts), all the replay checks.
 */
export const VENUE_REPORT_FIELDS = ['state', 'notLive', 'lastMessageAgeMs'] as const

/** A venue's health: venue.<exchange> (a VenueHealth, or a publisher's with its state alone); the fields the engine reads. */
export type VenueReport = Pick<VenueHealth, 'state'> & Partial<Pick<VenueHealth, (typeof VENUE_REPORT_FIELDS)[number]>>

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
  /** The step's size is under either leg's minimum order size (books' `minSize`): no venue takes it. */
  belowMinSize: boolean
}

export interface Conversion {
  /** Units of the buy leg's quote currency per unit of the sell leg's, executable, fees in: the average over what maxSize's proceeds convert through the conversion books' levels (the first level's rate when maxSize is 0). */
  rate: number
  /** The same at mid prices, no fees (what grossBps uses). */
  midRate: number
  /** Conversion levels maxSize's proceeds go through (a level through the reference currency is one). */
  levels: number
  /** The conversion books of the first level, in order: sell the sell leg's quote, buy the buy leg's. */
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
  /** Largest size whose marginal net stays at MIN_NET_BPS, in lots of both venues, 0 when under either minimum notional (an opportunity under either minimum size is not published). */
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
  /** Why it closed: `venue` (its venue degraded or down), `book` (one leg's book not live), `invalid`, `stale`, `spread`. */
  reason?: 'spread' | 'stale' | 'invalid' | 'venue' | 'book'
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
  /** Put before the number of every id: the lease generation of the engine's process (`<generation>.`), so engines never reuse each other's ids. */
  idPrefix?: string
}

export interface EngineCounters {
  ticks: number
  books: number
  /** Updates from a venue past MAX_EXCHANGES_PER_SYMBOL for their class. */
  refused: number
  stale: number
  crossed: number
  /** Quotes stamped more than MAX_AHEAD_MS ahead of the server's clock: refused. */
  ahead: number
  /** Clock samples rejected as outliers (clock-offset.ts). */
  clockOutliers: number
  opened: number
  updated: number
  closed: number
}

/** Venues (sources) per class: pairings are searched over their square. */
export const MAX_EXCHANGES_PER_SYMBOL = 32
/** Levels a side kept per source: what any publisher can make the engine hold and walk. */
export const MAX_LEVELS = 50
/** Symbols of one venue's health `notLive` the engine reads (a venue lists what its operator configured). */
export const MAX_NOT_LIVE = 4096
/** A quote whose exchange time is more than this ahead of the server's clock is refused. */
export const MAX_AHEAD_MS = 5000
/** Opportunities per class at once. */
export const MAX_PAIRINGS = 8
/** A class with no update for this many maxTickAgeMs is forgotten. */
export const FORGET_AFTER_AGES = 60
/** A change of maxSize by this fraction is material. */
export const SIZE_CHANGE = 0.25

export const DEFAULT_SIZE_LADDER = [1000, 10_000, 100_000] as const
export const DEFAULT_QUOTE_GROUPS = [['USD', 'USDT', 'USDC']] as const

/** The instrument kinds the engine tells apart (inverse ones class with their linear symbol's kind). */
export type Kind = 'spot' | 'perp' | 'future'

type Via = Conversion['via'][number]

/** One conversion level: units of `to` per unit of `from` (fees in), and how many `from` it takes. */
export interface Segment {
  rate: number
  capacity: number
  /** The books this level goes through (two through the reference currency). */
  via: Via[]
}

/** Where the conversion of a currency pair stands in this evaluation: its ladder and what is left of its current level. */
export interface ConversionCursor {
  readonly levels: Segment[]
  /** The same at mid prices of the best books, no fees (what grossBps uses). */
  readonly mid: number
  k: number
  left: number
}
