// A local L2 order book: price levels per side, best first. A venue whose checksum is over the
// text of its levels (OKX, Kraken) keeps each level as an object with that text; any other keeps
// only the numbers, in one plain array (unboxed doubles, no object per level: a book holds
// thousands of levels for its life, and each object would be one more for the garbage collector
// to carry into the old generation and mark there).

/** Levels kept per side: what a hostile or broken venue can make a book hold. */
export const MAX_LEVELS = 5000

export abstract class BookSide {
  /**
   * Levels worse than this price may exist that this side does not hold (dropped past MAX_LEVELS,
   * or cut off by a venue's snapshot limit: a level there that never changes is never sent again);
   * null while the side holds every level the venue has.
   */
  private knownTo: number | null = null

  constructor(protected readonly descending: boolean) {}

  /** Levels held. */
  abstract get length(): number
  /** The price of level i (0 the best). */
  abstract price(i: number): number
  abstract size(i: number): number
  /** Level i's price as the venue wrote it ('' where no text is kept). */
  abstract priceText(i: number): string
  abstract sizeText(i: number): string
  /** A new level i; those from i on move one down. */
  protected abstract insert(i: number, price: number, size: number, priceText: string, sizeText: string): void
  protected abstract remove(i: number): void
  protected abstract resize(i: number, size: number, sizeText: string): void
  /** Keeps the best `depth` levels (no more than it has). */
  protected abstract keep(depth: number): void

  /** Levels worse than `price` are not all known. */
  unknownPast(price: number): void {
    if (this.knownTo === null || (this.descending ? price > this.knownTo : price < this.knownTo)) this.knownTo = price
  }

  /** Levels past the worst held are not all known. */
  unknownPastWorst(): void {
    if (this.length > 0) this.unknownPast(this.price(this.length - 1))
  }

  /** Whether the best `depth` levels are certainly the venue's: none missing between them. */
  covers(depth: number): boolean {
    if (this.knownTo === null) return true
    const at = this.find(this.knownTo)
    return (at >= 0 ? at + 1 : -1 - at) >= depth
  }

  /**
   * Index of `price`, or of where it would go (as -1 - index); past the worst (a snapshot's levels,
   * read best first) without a search. Each kind of side has its own, on its own array: through
   * price(i) the search was a call a probe, and OKX's connector 4% slower.
   */
  protected abstract find(price: number): number

  /** Sets a level's size; size 0 removes it. */
  set(price: number, size: number, priceText: string, sizeText: string): void {
    const at = this.find(price)
    if (at >= 0) {
      if (size === 0) this.remove(at)
      else this.resize(at, size, sizeText)
      return
    }
    if (size === 0) return
    const insertAt = -1 - at
    if (insertAt >= MAX_LEVELS) {
      // Worse than every level of a full side: dropped, so what lies past the worst kept is not known.
      this.unknownPastWorst()
      return
    }
    this.insert(insertAt, price, size, priceText, sizeText)
    if (this.length > MAX_LEVELS) {
      this.keep(MAX_LEVELS)
      this.unknownPastWorst()
    }
  }

  /**
   * Keeps the best `depth` levels, for venues that keep the subscribed depth whole themselves
   * (Kraken sends the levels that come into it), so nothing past it becomes unknown.
   */
  truncate(depth: number): void {
    if (this.length > depth) this.keep(depth)
  }

  clear(): void {
    this.keep(0)
    this.knownTo = null
  }

  /** The best `depth` levels as [price, size] pairs, each size through `size` (a derivative's contracts to base units). */
  top(depth: number, size: SizeOf = venueSize): Pair[] {
    const n = Math.min(depth, this.length)
    const out = new Array<Pair>(n)
    for (let k = 0; k < n; k++) out[k] = [this.price(k), size(this.price(k), this.size(k))]
    return out
  }
}

/** The numbers only: level i's price at levels[2i], its size at levels[2i + 1]. */
class NumberSide extends BookSide {
  private readonly levels: number[] = []

  get length(): number {
    return this.levels.length >>> 1
  }

  price(i: number): number {
    return this.levels[2 * i]
  }

  size(i: number): number {
    return this.levels[2 * i + 1]
  }

  priceText(): string {
    return ''
  }

  sizeText(): string {
    return ''
  }

  protected insert(i: number, price: number, size: number): void {
    if (2 * i === this.levels.length) this.levels.push(price, size)
    else this.levels.splice(2 * i, 0, price, size)
  }

  protected remove(i: number): void {
    this.levels.splice(2 * i, 2)
  }

  protected resize(i: number, size: number): void {
    this.levels[2 * i + 1] = size
  }

  protected find(price: number): number {
    const levels = this.levels
    const n = levels.length >>> 1
    if (n === 0 || (this.descending ? price < levels[2 * n - 2] : price > levels[2 * n - 2])) return -1 - n
    let lo = 0
    let hi = n - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const p = levels[2 * mid]
      if (p === price) return mid
      if (this.descending ? p > price : p < price) lo = mid + 1
      else hi = mid - 1
    }
    return -1 - lo
  }

  protected keep(depth: number): void {
    this.levels.length = 2 * depth
  }
}

interface Level {
  price: number
  size: number
  priceText: string
  sizeText: string
}

/** Each level an object with the venue's text of its price and size (one splice a level). */
class TextSide extends BookSide {
  private readonly levels: Level[] = []

  get length(): number {
    return this.levels.length
  }

  price(i: number): number {
    return this.levels[i].price
  }

  size(i: number): number {
    return this.levels[i].size
  }

  priceText(i: number): string {
    return this.levels[i].priceText
  }

  sizeText(i: number): string {
    return this.levels[i].sizeText
  }

  protected insert(i: number, price: number, size: number, priceText: string, sizeText: string): void {
    const level = { price, size, priceText, sizeText }
    if (i === this.levels.length) this.levels.push(level)
    else this.levels.splice(i, 0, level)
  }

  protected remove(i: number): void {
    this.levels.splice(i, 1)
  }

  protected resize(i: number, size: number, sizeText: string): void {
    this.levels[i].size = size
    this.levels[i].sizeText = sizeText
  }

  protected find(price: number): number {
    const levels = this.levels
    const n = levels.length
    if (n === 0 || (this.descending ? price < levels[n - 1].price : price > levels[n - 1].price)) return -1 - n
    let lo = 0
    let hi = n - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const p = levels[mid].price
      if (p === price) return mid
      if (this.descending ? p > price : p < price) lo = mid + 1
      else hi = mid - 1
    }
    return -1 - lo
  }

  protected keep(depth: number): void {
    this.levels.length = depth
  }
}

export class OrderBook {
  readonly bids: BookSide
  readonly asks: BookSide

  /** `texts`: the venue's checksum is over its levels' text (OKX, Kraken), so each side keeps it. */
  constructor(texts = false) {
    this.bids = texts ? new TextSide(true) : new NumberSide(true)
    this.asks = texts ? new TextSide(false) : new NumberSide(false)
  }

  clear(): void {
    this.bids.clear()
    this.asks.clear()
  }

  /** Whether the best `depth` levels of both sides are certainly the venue's. */
  covers(depth: number): boolean {
    return this.bids.covers(depth) && this.asks.covers(depth)
  }

  get crossed(): boolean {
    return this.bids.length > 0 && this.asks.length > 0 && this.bids.price(0) >= this.asks.price(0)
  }
}

/** A published level: price and size. */
export type Pair = [number, number]
/** A level's size as published, from its price and the venue's size. */
export type SizeOf = (price: number, size: number) => number
const venueSize: SizeOf = (_price, size) => size

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

/** Applies [price, size] text pairs; false when one is not a decimal (the message is not what the venue documents). */
export function applyPairs(side: BookSide, levels: unknown): boolean {
  if (!Array.isArray(levels)) return false
  for (const level of levels) {
    if (!Array.isArray(level)) return false
    const price = decimal(level[0])
    const size = decimal(level[1])
    if (!(price > 0) || !(size >= 0)) return false
    side.set(price, size, level[0], level[1])
  }
  return true
}
