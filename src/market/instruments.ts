// The instrument registry: one identity per tradable instrument, built from each venue's own
// metadata, never guessed from a symbol's suffix. Topic symbols (README "Market data"):
//   BTC-USDT             spot
//   BTC-USDT-PERP        perpetual settled in the quote currency (linear)
//   BTC-USD-INVPERP      perpetual settled in the base currency (inverse)
//   BTC-USDT-20250328    dated future, linear;  BTC-USD-INV20250328  dated future, inverse

export type InstrumentKind = 'spot' | 'perp' | 'inverse-perp' | 'future' | 'inverse-future'

export interface Instrument {
  /** binance, binanceusdm, coinbase, kraken, okx. */
  exchange: string
  /** What the venue's own messages call it: BTCUSDT, BTC-USD, BTC/USD, BTC-USDT-SWAP. */
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
  /** Smallest order value in the quote currency; 0 when the venue states none. */
  minNotional: number
  /** Expiry (ms) of a dated future. */
  expiry?: number
  /** Decimals the venue prints prices and sizes with (Kraken's checksum needs them). */
  priceDecimals: number
  sizeDecimals: number
}

export interface Parsed {
  instruments: Instrument[]
  /** Instruments listed but not taken: not trading, or of a kind this server does not stream. */
  skipped: number
}

/** Asset codes as the venues agree on them: Kraken's XBT and XDG are BTC and DOGE. */
const ALIASES: Record<string, string> = { XBT: 'BTC', XDG: 'DOGE' }
const ASSET = /^[A-Z0-9]{1,20}$/

function asset(code: unknown): string | null {
  if (typeof code !== 'string') return null
  const upper = code.toUpperCase()
  const name = ALIASES[upper] ?? upper
  return ASSET.test(name) ? name : null
}

const positive = (x: unknown): number => {
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

function make(
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

type Row = Record<string, unknown>
const rows = (x: unknown): Row[] => (Array.isArray(x) ? x.filter((r): r is Row => r !== null && typeof r === 'object') : [])

/** Collects what a parser takes and counts what it does not. */
function collect(list: Row[], one: (row: Row) => Instrument | null): Parsed {
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

function binanceFilters(row: Row): Record<string, Row> {
  const byType: Record<string, Row> = {}
  for (const f of rows(row.filters)) if (typeof f.filterType === 'string') byType[f.filterType] = f
  return byType
}

/** Binance spot `GET /api/v3/exchangeInfo`. */
export function binanceSpot(info: unknown): Parsed {
  return collect(rows((info as Row)?.symbols), (row) => {
    const base = asset(row.baseAsset)
    const quote = asset(row.quoteAsset)
    if (row.status !== 'TRADING' || base === null || quote === null || typeof row.symbol !== 'string') return null
    const f = binanceFilters(row)
    return make({
      exchange: 'binance',
      venueSymbol: row.symbol,
      base,
      quote,
      settle: quote,
      kind: 'spot',
      contractSize: 1,
      tickSize: positive(f.PRICE_FILTER?.tickSize),
      lotSize: positive(f.LOT_SIZE?.stepSize),
      minNotional: positive(f.NOTIONAL?.minNotional ?? f.MIN_NOTIONAL?.minNotional) || 0
    })
  })
}

/** Binance USD-M futures `GET /fapi/v1/exchangeInfo`: perpetuals and quarterlies, all settled in their margin asset. */
export function binanceUsdm(info: unknown): Parsed {
  return collect(rows((info as Row)?.symbols), (row) => {
    const base = asset(row.baseAsset)
    const quote = asset(row.quoteAsset)
    const settle = asset(row.marginAsset)
    if (row.status !== 'TRADING' || base === null || quote === null || settle === null || typeof row.symbol !== 'string') return null
    const perpetual = row.contractType === 'PERPETUAL'
    const dated = row.contractType === 'CURRENT_QUARTER' || row.contractType === 'NEXT_QUARTER'
    if ((!perpetual && !dated) || settle !== quote) return null
    const f = binanceFilters(row)
    return make({
      exchange: 'binanceusdm',
      venueSymbol: row.symbol,
      base,
      quote,
      settle,
      kind: perpetual ? 'perp' : 'future',
      contractSize: 1,
      tickSize: positive(f.PRICE_FILTER?.tickSize),
      lotSize: positive(f.LOT_SIZE?.stepSize),
      minNotional: positive(f.MIN_NOTIONAL?.notional) || 0,
      expiry: dated ? Number(row.deliveryDate) : undefined
    })
  })
}

/**
 * Coinbase: Advanced Trade `GET /api/v3/brokerage/market/products` ({products: [...]}, spot only) or
 * Exchange `GET /products` (an array); the two agree on the product ids the WebSocket uses.
 */
/**
 * The only -USDC products Advanced Trade streams as their own books: its market data channels
 * "return the same data as the corresponding -USD based products" for the others (docs.cdp.coinbase.com,
 * Advanced Trade WebSocket channels), so those are skipped, not subscribed to a book that never comes.
 */
const COINBASE_USDC_BOOKS = new Set(['USDT', 'EURC'])

export function coinbase(products: unknown): Parsed {
  const list = Array.isArray(products) ? rows(products) : rows((products as Row)?.products)
  return collect(list, (row) => {
    const advanced = row.product_id !== undefined
    const id = advanced ? row.product_id : row.id
    const base = asset(advanced ? row.base_currency_id : row.base_currency)
    const quote = asset(advanced ? row.quote_currency_id : row.quote_currency)
    const online = typeof row.status === 'string' && row.status.toLowerCase() === 'online' && row.trading_disabled !== true && row.is_disabled !== true
    if (!online || typeof id !== 'string' || base === null || quote === null) return null
    if (advanced && row.product_type !== 'SPOT') return null
    if (quote === 'USDC' && !COINBASE_USDC_BOOKS.has(base)) return null
    return make({
      exchange: 'coinbase',
      venueSymbol: id,
      base,
      quote,
      settle: quote,
      kind: 'spot',
      contractSize: 1,
      tickSize: positive(advanced ? (row.price_increment ?? row.quote_increment) : row.quote_increment),
      lotSize: positive(row.base_increment),
      minNotional: positive(advanced ? row.quote_min_size : row.min_market_funds) || 0
    })
  })
}

/** Kraken `GET /0/public/AssetPairs`. WebSocket v2 names pairs by their wsname with BTC for XBT. */
export function kraken(assetPairs: unknown): Parsed {
  const result = (assetPairs as Row)?.result
  const list = result !== null && typeof result === 'object' ? rows(Object.values(result as Row)) : []
  return collect(list, (row) => {
    if (typeof row.wsname !== 'string' || (row.status !== undefined && row.status !== 'online')) return null
    const [b, q, extra] = row.wsname.split('/')
    const base = asset(b)
    const quote = asset(q)
    if (base === null || quote === null || extra !== undefined) return null
    const priceDecimals = Number(row.pair_decimals)
    const sizeDecimals = Number(row.lot_decimals)
    // Checksums format prices with these (toFixed takes 0 to 100; no venue uses more than 18).
    const decimalsOk = (n: number) => Number.isInteger(n) && n >= 0 && n <= 18
    if (!decimalsOk(priceDecimals) || !decimalsOk(sizeDecimals)) return null
    return make({
      exchange: 'kraken',
      venueSymbol: `${base}/${quote}`,
      base,
      quote,
      settle: quote,
      kind: 'spot',
      contractSize: 1,
      tickSize: positive(row.tick_size) || 10 ** -priceDecimals,
      lotSize: 10 ** -sizeDecimals,
      minNotional: positive(row.costmin) || 0,
      priceDecimals,
      sizeDecimals
    })
  })
}

/** OKX `GET /api/v5/public/instruments` for SPOT, SWAP and FUTURES (one response each, or their data arrays together). */
export function okx(...responses: unknown[]): Parsed {
  const list = responses.flatMap((r) => rows((r as Row)?.data))
  return collect(list, (row) => {
    if (row.state !== 'live' || typeof row.instId !== 'string') return null
    if (row.instType === 'SPOT') {
      const base = asset(row.baseCcy)
      const quote = asset(row.quoteCcy)
      if (base === null || quote === null) return null
      return make({
        exchange: 'okx',
        venueSymbol: row.instId,
        base,
        quote,
        settle: quote,
        kind: 'spot',
        contractSize: 1,
        tickSize: positive(row.tickSz),
        lotSize: positive(row.lotSz),
        minNotional: 0
      })
    }
    if (row.instType !== 'SWAP' && row.instType !== 'FUTURES') return null
    // Derivatives name their underlying (uly BTC-USD) and settle currency instead of base and quote.
    const [b, q, extra] = typeof row.uly === 'string' ? row.uly.split('-') : []
    const base = asset(b)
    const quote = asset(q)
    const settle = asset(row.settleCcy)
    if (base === null || quote === null || settle === null || extra !== undefined) return null
    const inverse = row.ctType === 'inverse'
    if ((inverse && settle !== base) || (!inverse && (row.ctType !== 'linear' || settle !== quote))) return null
    const swap = row.instType === 'SWAP'
    return make({
      exchange: 'okx',
      venueSymbol: row.instId,
      base,
      quote,
      settle,
      kind: swap ? (inverse ? 'inverse-perp' : 'perp') : inverse ? 'inverse-future' : 'future',
      contractSize: positive(row.ctVal) * (positive(row.ctMult) || 1),
      tickSize: positive(row.tickSz),
      lotSize: positive(row.lotSz),
      minNotional: 0,
      expiry: swap ? undefined : Number(row.expTime)
    })
  })
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
