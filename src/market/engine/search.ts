// Pairing within a class: the most profitable buy source against the most profitable sell source,
// walked while the marginal net stays at MIN_NET_BPS, then the next pairing on what is left, no
// level counted twice.
import { conversion, nextRate } from './conversion.js'
import type { MarketClass, Markets, Source } from './markets.js'
import { type ConversionCursor, MAX_PAIRINGS } from './types.js'
import { type Cursor, floorToLot, netBps, walk } from './walk.js'

/** What a class's search found: one pairing of a buy source and a sell source. */
export interface Pairing {
  buy: Source
  sell: Source
  /** Across quote currencies: the conversion ladder, and where it stood when this pairing's walk began (its ladder and figures walk from there). */
  conversion: { cursor: ConversionCursor; k: number; left: number } | null
  /** The conversion rate of the first level this pairing converts at (1 within one currency). */
  rate: number
  midRate: number
  size: number
  maxSize: number
  /** Where both books stood when this pairing's walk began: its ladder walks from there. */
  start: Cursor
  buyTop: [number, number]
  sellTop: [number, number]
}

const NO_PAIRINGS: Pairing[] = []

/** The class's pairings, best first, each level used once. */
export function search(m: Markets, market: MarketClass, now: number): Pairing[] {
  const sources = market.usable
  sources.length = 0
  for (const s of market.sources) if (m.usable(s, now)) sources.push(s)
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
  const min = m.options.minNetBps
  // The walk: consume both sides while the marginal net stays at MIN_NET_BPS.
  const limits = { minNetBps: min, size: Number.POSITIVE_INFINITY, notional: Number.POSITIVE_INFINITY, dust: 0 }
  while (pairings.length < MAX_PAIRINGS) {
    let best = Number.NEGATIVE_INFINITY
    let bi = -1
    let si = -1
    for (let i = 0; i < sources.length; i++) {
      if (askAt[i] >= sources[i].asks.length) continue
      for (let j = 0; j < sources.length; j++) {
        if (i === j || bidAt[j] >= sources[j].bids.length || sources[i].exchange === sources[j].exchange) continue
        const rate = rateOf(m, sources[j], sources[i], now)
        if (rate === null) continue
        const net = netBps(sources[i].asks[askAt[i]][0], sources[j].bids[bidAt[j]][0], sources[i].fee, sources[j].fee, rate)
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
    const cursor = sell.quote === buy.quote ? null : cursorOf(m, sell, buy, now)
    const rate = cursor === null ? 1 : cursor.levels[cursor.k].rate
    const conv = cursor === null ? null : { cursor, k: cursor.k, left: cursor.left }
    const start: Cursor = { ai: askAt[bi], al: askLeft[bi], bj: bidAt[si], bl: bidLeft[si] }
    const at = { ...start }
    const walked = walk({ buy, sell }, at, cursor, limits)
    // A top of book (a tick) serves one pairing: its size says nothing of what is behind it.
    askAt[bi] = buy.fromBook ? at.ai : buy.asks.length
    askLeft[bi] = at.al
    bidAt[si] = sell.fromBook ? at.bj : sell.bids.length
    bidLeft[si] = at.bl
    const buyTop: [number, number] = [buy.asks[start.ai][0], start.al]
    const sellTop: [number, number] = [sell.bids[start.bj][0], start.bl]
    const maxSize = tradable({ buy, sell, buyTop, sellTop }, walked.size)
    // Under either venue's minimum order size no venue takes it: not published (its levels stay used).
    if (maxSize < minSize({ buy, sell })) continue
    pairings.push({
      buy,
      sell,
      conversion: conv,
      rate,
      midRate: cursor === null ? 1 : cursor.mid,
      size: Math.min(start.al, start.bl),
      maxSize,
      start,
      buyTop,
      sellTop
    })
  }
  return pairings
}

/**
 * The conversion of a currency pair in this evaluation, made on first need: one cursor shared by
 * every pairing of every class the evaluation searches, so what one converts, another does not.
 */
function cursorOf(m: Markets, sell: Source, buy: Source, now: number): ConversionCursor | null {
  const key = `${sell.quote} ${buy.quote}`
  let cursor = m.conversions.get(key)
  if (cursor === undefined) {
    cursor = conversion(m, sell.quote, buy.quote, now)
    m.conversions.set(key, cursor)
  }
  return cursor
}

/** The rate a sell source's proceeds convert at next into a buy source's quote (1 within one); null when they cannot. */
function rateOf(m: Markets, sell: Source, buy: Source, now: number): number | null {
  if (sell.quote === buy.quote) return 1
  const cursor = cursorOf(m, sell, buy, now)
  return cursor === null ? null : nextRate(cursor)
}

/** A size in lots of both venues; 0 when it is under either venue's minimum size, or its notional (at the pairing's top prices) under either's minimum. */
export function tradable(p: { buy: Source; sell: Source; buyTop: [number, number]; sellTop: [number, number] }, size: number): number {
  const lots = floorToLot(floorToLot(size, Math.max(p.buy.lotSize, p.sell.lotSize)), Math.min(p.buy.lotSize, p.sell.lotSize))
  if (lots <= 0 || lots < minSize(p) || lots * p.buyTop[0] < p.buy.minNotional || lots * p.sellTop[0] < p.sell.minNotional) return 0
  return lots
}

/** The larger of the two venues' minimum order sizes (0: neither states one). */
export const minSize = (p: { buy: Source; sell: Source }): number => Math.max(p.buy.minSize, p.sell.minSize)
