// Conversion between quote currencies of one group (USD, USDT, USDC) through live conversion books:
// the best executable rate over every venue's book, direct or through the group's reference.
import type { Markets } from './markets.js'
import type { Conversion } from './types.js'

export interface Rate {
  rate: number
  mid: number
  via: Conversion['via']
}

export const SAME_CURRENCY: Rate = { rate: 1, mid: 1, via: [] }

/**
 * Best executable rate (units of `to` per unit of `from` sold, fees in) over every venue's
 * conversion book, and its mid; from === to is 1.
 */
function convert(m: Markets, from: string, to: string, now: number): Rate | null {
  if (from === to) return SAME_CURRENCY
  let best: Rate | null = null
  const consider = (symbol: string, sellBase: boolean) => {
    const i = m.instruments.get(symbol)
    if (i === undefined) return
    for (const s of i.byExchange.values()) {
      if (!m.usable(s, now) || s.bids.length === 0 || s.asks.length === 0) continue
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
export function conversion(m: Markets, sellQuote: string, buyQuote: string, now: number): Rate | null {
  if (sellQuote === buyQuote) return SAME_CURRENCY
  const direct = convert(m, sellQuote, buyQuote, now)
  const group = m.groupOf.get(sellQuote)
  const reference = group?.[0]
  if (reference === undefined || reference === sellQuote || reference === buyQuote) return direct
  const first = convert(m, sellQuote, reference, now)
  const second = first && convert(m, reference, buyQuote, now)
  const via = first && second ? { rate: first.rate * second.rate, mid: first.mid * second.mid, via: [...first.via, ...second.via] } : null
  if (direct === null) return via
  return via !== null && via.rate > direct.rate ? via : direct
}
