// The instrument registry: one identity per tradable instrument, built from each venue's own
// metadata (parsed in the venue's room, venues/), never guessed from a symbol's suffix; and the one
// grammar of topic symbols, both ways (README "Market data"):
//   BTC-USDT             spot
//   BTC-USDT-PERP        perpetual settled in the quote currency (linear)
//   BTC-USD-INVPERP      perpetual settled in the base currency (inverse)
//   BTC-USDT-20250328    dated future, linear;  BTC-USD-INV20250328  dated future, inverse

import type { Row } from './rows.js'

export type InstrumentKind = 'spot' | 'perp' | 'inverse-perp' | 'future' | 'inverse-future'

export interface Instrument {
  /** The venue (its room's exchange token). */
  exchange: string
  /** What the venue's own messages call it (BTCUSDT, BTC/USD, BTC-USDT-SWAP). */
  venueSymbol: string
  /** The topic token: ticker.<exchange>.<symbol>. */
  symbol: string
  base: string
  quote: string
  settle: string
  kind: InstrumentKind
  /** Base units per contract (linear), quote units per contract (inverse); 1 for spot. */
  contractSize: number
  tickSize: number
  lotSize: number
  /** Smallest order size, in the venue's order units as lotSize (contracts for derivatives); 0 when the venue states none. */
  minSize: number
  /** Smallest order value in the quote currency; 0 when the venue states none. */
  minNotional: number
  /** Expiry (ms) of a dated future. */
  expiry?: number
  /** Decimals the venue prints prices and sizes with (a checksum over that text needs them). */
  priceDecimals: number
  sizeDecimals: number
}

/** Sizes in base units: derivatives count contracts (inverse contracts are worth quote units). */
export function baseSize(i: Instrument, price: number, size: number): number {
  if (i.kind === 'inverse-perp' || i.kind === 'inverse-future') return (size * i.contractSize) / price
  return size * i.contractSize
}

export interface Parsed {
  instruments: Instrument[]
  /** Instruments listed but not taken: not trading, or of a kind this server does not stream. */
  skipped: number
}

/** Asset codes as the venues agree on them (XBT and XDG are one venue's BTC and DOGE). */
const ALIASES: Record<string, string> = { XBT: 'BTC', XDG: 'DOGE' }
const ASSET = /^[A-Z0-9]{1,20}$/

/** A venue's asset code as a topic's currency; null when it is not one. */
export function asset(code: unknown): string | null {
  if (typeof code !== 'string') return null
  const upper = code.toUpperCase()
  const name = ALIASES[upper] ?? upper
  return ASSET.test(name) ? name : null
}

/** A positive number from a venue's number or decimal text; NaN otherwise. */
export const positive = (x: unknown): number => {
  const n = typeof x === 'string' ? Number(x) : typeof x === 'number' ? x : NaN
  return Number.isFinite(n) && n > 0 ? n : NaN
}

/** Decimals of a step such as "0.00010000" (4) or "1" (0). */
export function decimalsOf(step: string | number): number {
  const text = typeof step === 'number' ? String(step) : step
  if (/e-/i.test(text)) return Number(text.split(/e-/i)[1])
  const dot = text.indexOf('.')
  if (dot === -1) return 0
  const digits = text.slice(dot + 1).replace(/0+$/, '')
  return digits.length
}

/** The instrument class a topic symbol names: the rule at the top of this file read backwards. */
export function parseSymbol(symbol: string): { base: string; quote: string; kind: 'spot' | 'perp' | 'future' } | null {
  const parts = symbol.split('-')
  if (parts.length === 2) return { base: parts[0], quote: parts[1], kind: 'spot' }
  if (parts.length !== 3) return null
  if (parts[2] === 'PERP' || parts[2] === 'INVPERP') return { base: parts[0], quote: parts[1], kind: 'perp' }
  if (/^(INV)?\d{8}$/.test(parts[2])) return { base: parts[0], quote: parts[1], kind: 'future' }
  return null
}

const yyyymmdd = (ms: number): string => new Date(ms).toISOString().slice(0, 10).replaceAll('-', '')

/** The topic symbol of an instrument (the rule at the top of this file). */
export function topicSymbol(base: string, quote: string, kind: InstrumentKind, expiry?: number): string {
  const pair = `${base}-${quote}`
  switch (kind) {
    case 'spot':
      return pair
    case 'perp':
      return `${pair}-PERP`
    case 'inverse-perp':
      return `${pair}-INVPERP`
    case 'future':
      return `${pair}-${yyyymmdd(expiry!)}`
    case 'inverse-future':
      return `${pair}-INV${yyyymmdd(expiry!)}`
  }
}

/** An instrument from a venue's metadata row; null when its steps or expiry are not usable. */
export function makeInstrument(
  fields: Omit<Instrument, 'symbol' | 'priceDecimals' | 'sizeDecimals'> & Partial<Pick<Instrument, 'priceDecimals' | 'sizeDecimals'>>
): Instrument | null {
  if (![fields.tickSize, fields.lotSize, fields.contractSize].every((n) => Number.isFinite(n) && n > 0)) return null
  // A date Date can hold (±8.64e15 ms): past it, toISOString throws.
  if ((fields.kind === 'future' || fields.kind === 'inverse-future') && !Number.isFinite(new Date(fields.expiry as number).getTime())) return null
  return {
    ...fields,
    symbol: topicSymbol(fields.base, fields.quote, fields.kind, fields.expiry),
    priceDecimals: fields.priceDecimals ?? decimalsOf(fields.tickSize),
    sizeDecimals: fields.sizeDecimals ?? decimalsOf(fields.lotSize)
  }
}

/** Collects what a parser takes and counts what it does not. */
export function collect(list: Row[], one: (row: Row) => Instrument | null): Parsed {
  const instruments: Instrument[] = []
  let skipped = 0
  for (const row of list) {
    let instrument: Instrument | null = null
    try {
      instrument = one(row)
    } catch {
      // A row no parser foresaw is skipped like any other unsupported one, never the whole venue.
    }
    if (instrument === null) skipped++
    else instruments.push(instrument)
  }
  return { instruments, skipped }
}

/** Every venue's instruments, found by venue symbol (messages) or topic symbol (configuration). */
export class InstrumentRegistry {
  private readonly byVenue = new Map<string, Instrument>()
  private readonly byTopic = new Map<string, Instrument>()
  readonly skipped: Record<string, number> = {}

  add(exchange: string, parsed: Parsed): this {
    this.skipped[exchange] = (this.skipped[exchange] ?? 0) + parsed.skipped
    for (const i of parsed.instruments) {
      // Two listings of one topic symbol (Binance's BTCUSDT once per status change) keep the first.
      if (this.byTopic.has(`${exchange}:${i.symbol}`)) continue
      this.byVenue.set(`${exchange}:${i.venueSymbol}`, i)
      this.byTopic.set(`${exchange}:${i.symbol}`, i)
    }
    return this
  }

  venue(exchange: string, venueSymbol: string): Instrument | undefined {
    return this.byVenue.get(`${exchange}:${venueSymbol}`)
  }

  topic(exchange: string, symbol: string): Instrument | undefined {
    return this.byTopic.get(`${exchange}:${symbol}`)
  }

  list(exchange?: string): Instrument[] {
    return [...this.byTopic.values()].filter((i) => exchange === undefined || i.exchange === exchange)
  }
}
