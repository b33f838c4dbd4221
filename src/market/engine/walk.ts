// The arithmetic of docs/PROTOCOL.md "Opportunities", and the one walk over a buy book's asks
// against a sell book's bids (and, across quote currencies, the conversion ladder the sell
// proceeds go through): a pairing's largest size, its ladder, the profit of a size and what the
// desk can do are each this walk with its own limits.
import type { ConversionCursor } from './types.js'

/** Net per unit bought: what the sell leg pays (after its fee, in the buy leg's quote at `rate`) less what the buy costs. */
export const netPerUnit = (buyPrice: number, sellPrice: number, buyFee: number, sellFee: number, rate = 1): number =>
  sellPrice * (1 - sellFee) * rate - buyPrice * (1 + buyFee)

export const netBps = (buyPrice: number, sellPrice: number, buyFee: number, sellFee: number, rate = 1): number =>
  (netPerUnit(buyPrice, sellPrice, buyFee, sellFee, rate) / buyPrice) * 1e4

/** The arithmetic of PROTOCOL.md for one buy ask and one sell bid (same quote currency). */
export function spread(buyPrice: number, sellPrice: number, size: number, buyFee: number, sellFee: number) {
  return {
    grossBps: ((sellPrice - buyPrice) / buyPrice) * 1e4,
    netBps: netBps(buyPrice, sellPrice, buyFee, sellFee),
    profit: size * netPerUnit(buyPrice, sellPrice, buyFee, sellFee)
  }
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

/** Where a walk stands: the ask level and what is left of it, the bid level and what is left of it. */
export interface Cursor {
  ai: number
  al: number
  bj: number
  bl: number
}

export interface WalkLimits {
  /** Stops where the marginal net falls under this many bps (-Infinity: never). */
  minNetBps: number
  /** Takes at most this size (Infinity: no limit). */
  size: number
  /** Spends at most this notional, buy price times size (Infinity: no limit). */
  notional: number
  /** A level with no more than this left is used up. */
  dust: number
}

export interface Walked {
  size: number
  /** Notional of the buys. */
  spent: number
  profit: number
  /** The sell proceeds (after the sell fee) converted, in the sell leg's quote, and what they became in the buy leg's. */
  converted: number
  convertedTo: number
  /** Conversion levels the walk took from. */
  conversionLevels: number
}

/** The books a walk reads: the buy leg's asks, the sell leg's bids, and their fees. */
export interface WalkLegs {
  buy: { asks: [number, number][]; fee: number }
  sell: { bids: [number, number][]; fee: number }
}

/**
 * Takes both books level by level from `at` (moved to where the walk stopped) until a book or a limit
 * ends it; each level is taken once. Within one quote currency (`conv` null) the sell proceeds count
 * as they are; across two, they are converted through `conv`'s levels (moved too), each level's rate
 * in the marginal net, and the walk ends where the conversion ladder does.
 */
export function walk({ buy, sell }: WalkLegs, at: Cursor, conv: ConversionCursor | null, limits: WalkLimits): Walked {
  const asks = buy.asks
  const bids = sell.bids
  let { ai, al, bj, bl } = at
  let size = 0
  let spent = 0
  let profit = 0
  let converted = 0
  let convertedTo = 0
  let conversionLevels = 0
  let touched = -1
  let left = limits.size
  while (ai < asks.length && bj < bids.length) {
    if (left <= 1e-12 || spent >= limits.notional) break
    const a = asks[ai][0]
    const b = bids[bj][0]
    let rate = 1
    let q = Math.min(al, bl, left, (limits.notional - spent) / a)
    const proceeds = b * (1 - sell.fee) // per unit sold, in the sell leg's quote
    if (conv !== null) {
      if (conv.k >= conv.levels.length) break
      rate = conv.levels[conv.k].rate
      q = Math.min(q, conv.left / proceeds)
    }
    if (limits.minNetBps > Number.NEGATIVE_INFINITY && netBps(a, b, buy.fee, sell.fee, rate) < limits.minNetBps) break
    size += q
    spent += q * a
    profit += q * netPerUnit(a, b, buy.fee, sell.fee, rate)
    left -= q
    al -= q
    bl -= q
    if (conv !== null) {
      if (touched !== conv.k) {
        touched = conv.k
        conversionLevels++
      }
      converted += q * proceeds
      convertedTo += q * proceeds * rate
      conv.left -= q * proceeds
      if (conv.left <= 1e-12 * conv.levels[conv.k].capacity && ++conv.k < conv.levels.length) conv.left = conv.levels[conv.k].capacity
    }
    if (al <= limits.dust && ++ai < asks.length) al = asks[ai][1]
    if (bl <= limits.dust && ++bj < bids.length) bl = bids[bj][1]
  }
  at.ai = ai
  at.al = al
  at.bj = bj
  at.bl = bl
  return { size, spent, profit, converted, convertedTo, conversionLevels }
}
