// A local L2 order book: price levels per side, best first, with the venue's own text of each
// price and size kept for the venues whose checksums are computed over that text.

export interface Level {
  price: number
  size: number
  /** As the venue wrote them, for a checksum over that text; '' at venues without one. */
  priceText: string
  sizeText: string
}

/** Levels kept per side: what a hostile or broken venue can make a book hold. */
export const MAX_LEVELS = 5000

export class BookSide {
  readonly levels: Level[] = []
  /**
   * Levels worse than this price may exist that this side does not hold (dropped past MAX_LEVELS,
   * or cut off by a venue's snapshot limit: a level there that never changes is never sent again);
   * null while the side holds every level the venue has.
   */
  private knownTo: number | null = null

  constructor(private readonly descending: boolean) {}

  /** Levels worse than `price` are not all known. */
  unknownPast(price: number): void {
    if (this.knownTo === null || (this.descending ? price > this.knownTo : price < this.knownTo)) this.knownTo = price
  }

  /** Whether the best `depth` levels are certainly the venue's: none missing between them. */
  covers(depth: number): boolean {
    if (this.knownTo === null) return true
    const at = this.find(this.knownTo)
    return (at >= 0 ? at + 1 : -1 - at) >= depth
  }

  /** Index of `price`, or of where it would go (as -1 - index). */
  private find(price: number): number {
    const levels = this.levels
    let lo = 0
    let hi = levels.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const p = levels[mid].price
      if (p === price) return mid
      if (this.descending ? p > price : p < price) lo = mid + 1
      else hi = mid - 1
    }
    return -1 - lo
  }

  /** Sets a level's size; size 0 removes it. */
  set(price: number, size: number, priceText: string, sizeText: string): void {
    const levels = this.levels
    const worst = levels[levels.length - 1]
    // Past the worst (every level of a snapshot, read best first): no search.
    const at = worst === undefined || (this.descending ? price < worst.price : price > worst.price) ? -1 - levels.length : this.find(price)
    if (at >= 0) {
      if (size === 0) this.levels.splice(at, 1)
      else {
        this.levels[at].size = size
        this.levels[at].sizeText = sizeText
      }
      return
    }
    if (size === 0) return
    const insertAt = -1 - at
    if (insertAt >= MAX_LEVELS) {
      // Worse than every level of a full side: dropped, so what lies past the worst kept is not known.
      this.unknownPast(this.levels[MAX_LEVELS - 1].price)
      return
    }
    const level = { price, size, priceText, sizeText }
    // Past the worst: where every level of a snapshot (read best first) goes.
    if (insertAt === this.levels.length) this.levels.push(level)
    else this.levels.splice(insertAt, 0, level)
    if (this.levels.length > MAX_LEVELS) {
      this.levels.pop()
      this.unknownPast(this.levels[MAX_LEVELS - 1].price)
    }
  }

  /**
   * Keeps the best `depth` levels, for venues that keep the subscribed depth whole themselves
   * (Kraken sends the levels that come into it), so nothing past it becomes unknown.
   */
  truncate(depth: number): void {
    if (this.levels.length > depth) this.levels.length = depth
  }

  clear(): void {
    this.levels.length = 0
    this.knownTo = null
  }

  get best(): Level | undefined {
    return this.levels[0]
  }

  /**
   * The best `depth` levels as [price, size] pairs, each size through `size` (a derivative's
   * contracts to base units). Published pairs are never changed, so a level that `previous` (the
   * last publish) has at the same price and size is that same pair, and the whole list is `previous`
   * when none of its levels changed: a book's update mostly moves one published level or none, and
   * this runs for both sides of every book published.
   */
  top(depth: number, previous: readonly Pair[] = NO_PAIRS, size: SizeOf = venueSize): Pair[] {
    const levels = this.levels
    const n = Math.min(depth, levels.length)
    let same = n === previous.length
    for (let k = 0; same && k < n; k++) same = previous[k][0] === levels[k].price && previous[k][1] === size(levels[k].price, levels[k].size)
    if (same) return previous as Pair[]
    const out = new Array<Pair>(n)
    let j = 0
    for (let k = 0; k < n; k++) {
      const price = levels[k].price
      const base = size(price, levels[k].size)
      // Both lists are best first: a previous pair at this price is at j or after it.
      while (j < previous.length && (this.descending ? previous[j][0] > price : previous[j][0] < price)) j++
      out[k] = j < previous.length && previous[j][0] === price && previous[j][1] === base ? previous[j] : [price, base]
    }
    return out
  }
}

/** A published level: price and size. */
export type Pair = [number, number]
/** A level's size as published, from its price and the venue's size. */
export type SizeOf = (price: number, size: number) => number
const NO_PAIRS: readonly Pair[] = []
const venueSize: SizeOf = (_price, size) => size

export class OrderBook {
  readonly bids = new BookSide(true)
  readonly asks = new BookSide(false)

  clear(): void {
    this.bids.clear()
    this.asks.clear()
  }

  /** Whether the best `depth` levels of both sides are certainly the venue's. */
  covers(depth: number): boolean {
    return this.bids.covers(depth) && this.asks.covers(depth)
  }

  get crossed(): boolean {
    const bid = this.bids.best
    const ask = this.asks.best
    return bid !== undefined && ask !== undefined && bid.price >= ask.price
  }
}

/** Exact powers of ten: a mantissa under 2^53 divided by one is the correctly rounded value, as Number() gives. */
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k)
const EXACT = 2 ** 53

/**
 * A price or size as the venue wrote it, parsed; NaN for anything that is not a plain non-negative
 * decimal (digits, optionally "." and digits, optionally "e" or "E", "-" and digits). One scan:
 * the usual price (under 16 digits, no exponent) is its digits over a power of ten, the same
 * number Number() gives, without a regular expression and a second parse per level.
 */
export function decimal(text: unknown): number {
  if (typeof text !== 'string' || text.length > 40) return NaN
  const n = text.length
  let mantissa = 0
  let i = 0
  for (; i < n; i++) {
    const d = text.charCodeAt(i) - 48
    if (d < 0 || d > 9) break
    mantissa = mantissa * 10 + d
  }
  if (i === 0) return NaN
  let fraction = 0
  if (i < n && text.charCodeAt(i) === 46) {
    const start = ++i
    for (; i < n; i++) {
      const d = text.charCodeAt(i) - 48
      if (d < 0 || d > 9) break
      mantissa = mantissa * 10 + d
    }
    fraction = i - start
    if (fraction === 0) return NaN
  }
  // 40 characters without an exponent are always finite.
  if (i === n) return mantissa < EXACT && fraction < POW10.length ? mantissa / POW10[fraction] : Number(text)
  if ((text.charCodeAt(i) | 32) !== 101) return NaN // "e" or "E"
  if (++i < n && text.charCodeAt(i) === 45) i++
  const start = i
  for (; i < n; i++) {
    const d = text.charCodeAt(i) - 48
    if (d < 0 || d > 9) break
  }
  if (i === start || i !== n) return NaN
  const value = Number(text)
  return Number.isFinite(value) ? value : NaN // "1e400" is Infinity
}

/**
 * Applies [price, size] text pairs; false when one is not a decimal (the message is not what the
 * venue documents). A venue whose checksum is not over the levels' text keeps none (`texts` false):
 * a book holds thousands of levels for its life, and their strings would be held with them.
 */
export function applyPairs(side: BookSide, levels: unknown, texts = true): boolean {
  if (!Array.isArray(levels)) return false
  for (const level of levels) {
    if (!Array.isArray(level)) return false
    const price = decimal(level[0])
    const size = decimal(level[1])
    if (!(price > 0) || !(size >= 0)) return false
    if (texts) side.set(price, size, level[0], level[1])
    else side.set(price, size, '', '')
  }
  return true
}
