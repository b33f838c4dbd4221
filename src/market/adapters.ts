// Feed adapters: one exchange's public market-data message in, the normalized tick out (or null).
import type { Tick } from './arbitrage.js'

export interface FeedAdapter {
  readonly exchange: string
  /** The tick a message carries, or null for messages that are not top-of-book updates. */
  parse(message: unknown, receivedAt: number): Tick | null
}

const QUOTES = ['USDT', 'USDC', 'FDUSD', 'BUSD', 'TUSD', 'BTC', 'ETH', 'BNB', 'EUR', 'TRY', 'BRL']

/** BTCUSDT -> BTC-USDT, by the longest quote asset the symbol ends with. */
export function splitBinanceSymbol(s: string): string | null {
  for (const quote of [...QUOTES].sort((a, b) => b.length - a.length)) {
    if (s.length > quote.length && s.endsWith(quote)) return `${s.slice(0, -quote.length)}-${quote}`
  }
  return null
}

const num = (x: unknown): number => (typeof x === 'string' && x !== '' ? Number(x) : typeof x === 'number' ? x : NaN)

/**
 * Binance `<symbol>@bookTicker`: {u, s, b, B, a, A} on spot; futures add E (event time) and T
 * (transaction time). Spot carries no time, so the receive time stands in for it.
 */
export const binanceBookTicker: FeedAdapter = {
  exchange: 'binance',
  parse(message, receivedAt) {
    const m = ((message as { data?: unknown })?.data ?? message) as Record<string, unknown> // combined streams wrap in {stream, data}
    if (typeof m?.s !== 'string' || m.b === undefined || m.a === undefined) return null
    const symbol = splitBinanceSymbol(m.s)
    if (symbol === null) return null
    return {
      exchange: 'binance',
      symbol,
      bid: num(m.b),
      ask: num(m.a),
      bidSize: num(m.B),
      askSize: num(m.A),
      ts: typeof m.T === 'number' ? m.T : typeof m.E === 'number' ? m.E : receivedAt
    }
  }
}

/** Coinbase Exchange `ticker` channel: {type:"ticker", product_id, best_bid, best_bid_size, best_ask, best_ask_size, time}. */
export const coinbaseTicker: FeedAdapter = {
  exchange: 'coinbase',
  parse(message) {
    const m = message as Record<string, unknown>
    if (m?.type !== 'ticker' || typeof m.product_id !== 'string') return null
    const ts = typeof m.time === 'string' ? Date.parse(m.time) : NaN
    return {
      exchange: 'coinbase',
      symbol: m.product_id,
      bid: num(m.best_bid),
      ask: num(m.best_ask),
      bidSize: num(m.best_bid_size),
      askSize: num(m.best_ask_size),
      ts
    }
  }
}

export const adapters: Readonly<Record<string, FeedAdapter>> = { binance: binanceBookTicker, coinbase: coinbaseTicker }
