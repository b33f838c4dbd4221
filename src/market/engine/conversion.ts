// Conversion between quote currencies of one group (USD, USDT, USDC) through live conversion books,
// through their depth: every usable conversion book's levels, direct or through the group's
// reference currency, as one ladder of rates best first, each level with what it can convert.
// A search walks it beside the two legs' books; what one opportunity converts is not converted
// again by another in the same evaluation (the cursor is shared: Markets.conversions).
import type { Markets } from './markets.js'
import type { ConversionCursor, Segment } from './types.js'

/** A usable book's levels as conversion segments from `from` to `to`, and the book's mid in that direction. */
function bookSegments(m: Markets, from: string, to: string, now: number, out: Segment[]): number | null {
  let bestMid: number | null = null
  let bestRate = Number.NEGATIVE_INFINITY
  const consider = (symbol: string, sellBase: boolean) => {
    const i = m.instruments.get(symbol)
    if (i === undefined) return
    for (const s of i.byExchange.values()) {
      if (!m.usable(s, now) || s.bids.length === 0 || s.asks.length === 0) continue
      const bid = s.bids[0][0]
      const ask = s.asks[0][0]
      // from-to book: sell `from` at its bids; to-from book: buy `to` at its asks, paying from.
      for (const [price, size] of sellBase ? s.bids : s.asks) {
        const rate = sellBase ? price * (1 - s.fee) : 1 / (price * (1 + s.fee))
        const capacity = sellBase ? size : size * price * (1 + s.fee)
        out.push({ rate, capacity, via: [{ exchange: s.exchange, symbol, side: sellBase ? 'bid' : 'ask', price, fee: s.fee }] })
      }
      const top = sellBase ? bid * (1 - s.fee) : 1 / (ask * (1 + s.fee))
      if (top > bestRate) {
        bestRate = top
        bestMid = sellBase ? (bid + ask) / 2 : 2 / (bid + ask)
      }
    }
  }
  consider(`${from}-${to}`, true)
  consider(`${to}-${from}`, false)
  return bestMid
}

const byRate = (a: Segment, b: Segment) => b.rate - a.rate

/** Two ladders one after the other (from -> reference -> to): each level as much as both can take. */
function compose(first: Segment[], second: Segment[]): Segment[] {
  const out: Segment[] = []
  let i = 0
  let j = 0
  let leftA = first[0]?.capacity ?? 0
  let leftB = second[0]?.capacity ?? 0
  while (i < first.length && j < second.length) {
    const a = first[i]
    const b = second[j]
    const x = Math.min(leftA, leftB / a.rate) // in `from` units
    if (x > 0) out.push({ rate: a.rate * b.rate, capacity: x, via: [...a.via, ...b.via] })
    leftA -= x
    leftB -= x * a.rate
    if (leftA <= 1e-12 * a.capacity && ++i < first.length) leftA = first[i].capacity
    if (leftB <= 1e-12 * b.capacity && ++j < second.length) leftB = second[j].capacity
  }
  return out
}

/**
 * The ladder converting `sellQuote` into `buyQuote`: every usable conversion book's levels, direct
 * and through the group's reference currency, best rate first; null when there is none.
 */
export function conversion(m: Markets, sellQuote: string, buyQuote: string, now: number): ConversionCursor | null {
  const levels: Segment[] = []
  let mid = bookSegments(m, sellQuote, buyQuote, now, levels)
  const reference = m.groupOf.get(sellQuote)?.[0]
  if (reference !== undefined && reference !== sellQuote && reference !== buyQuote) {
    const first: Segment[] = []
    const second: Segment[] = []
    const midA = bookSegments(m, sellQuote, reference, now, first)
    const midB = bookSegments(m, reference, buyQuote, now, second)
    if (midA !== null && midB !== null) {
      const via = compose(first.sort(byRate), second.sort(byRate))
      if (mid === null || (via.length > 0 && levels.every((l) => l.rate < via[0].rate))) mid = midA * midB
      for (const l of via) levels.push(l)
    }
  }
  if (levels.length === 0 || mid === null) return null
  levels.sort(byRate)
  return { levels, mid, k: 0, left: levels[0].capacity }
}

/** The rate of the conversion level a walk would take next; null when the ladder is used up. */
export const nextRate = (c: ConversionCursor): number | null => (c.k < c.levels.length ? c.levels[c.k].rate : null)
