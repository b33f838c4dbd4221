// A synthetic market: random-walk mids for up to 20 symbols on 3 to 5 exchanges, with realistic
// spreads, sizes and per-exchange latency, and occasional planted dislocations that open arbitrage.
// Deterministic: the same seed and clock give the same ticks.
import type { Tick } from './arbitrage.js'

/** A synthetic tick names its exchange and symbol. */
export type SyntheticTick = Tick & { exchange: string; symbol: string }

export const SYMBOLS: readonly [string, number][] = [
  ['BTC-USDT', 67000],
  ['ETH-USDT', 3500],
  ['SOL-USDT', 150],
  ['XRP-USDT', 0.6],
  ['ADA-USDT', 0.45],
  ['DOGE-USDT', 0.15],
  ['AVAX-USDT', 35],
  ['LINK-USDT', 15],
  ['DOT-USDT', 7],
  ['LTC-USDT', 80],
  ['TRX-USDT', 0.12],
  ['ATOM-USDT', 9],
  ['UNI-USDT', 8],
  ['ETC-USDT', 25],
  ['XLM-USDT', 0.11],
  ['BCH-USDT', 450],
  ['APT-USDT', 9],
  ['ARB-USDT', 1.1],
  ['OP-USDT', 2.3],
  ['NEAR-USDT', 6]
]

/** name, typical feed latency in ms */
export const EXCHANGES: readonly [string, number][] = [
  ['binance', 5],
  ['okx', 12],
  ['bybit', 15],
  ['coinbase', 20],
  ['kraken', 30]
]

export interface SyntheticOptions {
  seed: number
  symbols?: number
  exchanges?: number
  /** Chance per tick that the ticking exchange dislocates from the others. */
  dislocationRate?: number
}

export interface Dislocation {
  symbol: string
  exchange: string
  /** Signed shift of that exchange's mid, in bps. */
  bps: number
  from: number
  until: number
}

/** mulberry32: a small, fast, seedable PRNG. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class SyntheticFeed {
  readonly symbols: readonly [string, number][]
  readonly exchanges: readonly [string, number][]
  /** Every dislocation planted so far, for tests and demos to check the engine against. */
  readonly planted: Dislocation[] = []
  private readonly rng: () => number
  private readonly mids: number[]
  /** Per symbol × exchange: basis to the common mid (bps, mean-reverting) and top-of-book notionals. */
  private readonly basis: number[]
  private readonly bidNotional: number[]
  private readonly askNotional: number[]
  private readonly active: (Dislocation | null)[]
  private readonly dislocationRate: number

  constructor(options: SyntheticOptions) {
    const symbols = Math.min(Math.max(options.symbols ?? 5, 1), SYMBOLS.length)
    const exchanges = Math.min(Math.max(options.exchanges ?? 5, 3), EXCHANGES.length)
    this.symbols = SYMBOLS.slice(0, symbols)
    this.exchanges = EXCHANGES.slice(0, exchanges)
    this.rng = random(options.seed)
    this.mids = this.symbols.map(([, price]) => price)
    this.active = new Array(symbols * exchanges).fill(null)
    this.basis = new Array(symbols * exchanges).fill(0)
    this.bidNotional = new Array(symbols * exchanges).fill(50_000)
    this.askNotional = new Array(symbols * exchanges).fill(50_000)
    this.dislocationRate = options.dislocationRate ?? 0.002
  }

  /** The next tick at server time `now` (ms): a random symbol on a random exchange. */
  next(now: number): SyntheticTick {
    const r = this.rng
    const s = Math.floor(r() * this.symbols.length)
    const e = Math.floor(r() * this.exchanges.length)
    const [symbol] = this.symbols[s]
    const [exchange, latency] = this.exchanges[e]
    // The common mid walks about 0.1 bps per tick of its symbol.
    this.mids[s] *= 1 + (r() - 0.5) * 2e-5
    const slot = s * this.exchanges.length + e
    let dislocation = this.active[slot]
    if (dislocation !== null && now >= dislocation.until) dislocation = this.active[slot] = null
    if (dislocation === null && r() < this.dislocationRate) {
      // 40-80 bps away from the others for 0.3-1.5 s: well past two taker fees.
      const bps = (40 + r() * 40) * (r() < 0.5 ? -1 : 1)
      dislocation = this.active[slot] = { symbol, exchange, bps, from: now, until: now + 300 + r() * 1200 }
      this.planted.push(dislocation)
    }
    // Each exchange drifts slowly around the common mid (within about ±1 bps), plus its dislocation.
    this.basis[slot] = this.basis[slot] * 0.98 + (r() - 0.5) * 0.2
    const mid = this.mids[s] * (1 + (this.basis[slot] + (dislocation?.bps ?? 0)) * 1e-4)
    const half = mid * (0.75 + r() * 0.25) * 1e-4 // spreads of 1.5-2 bps
    // $5k-$200k at the top of the book, changing up to ±10% a tick.
    this.bidNotional[slot] = clamp(this.bidNotional[slot] * (0.9 + r() * 0.2), 5_000, 200_000)
    this.askNotional[slot] = clamp(this.askNotional[slot] * (0.9 + r() * 0.2), 5_000, 200_000)
    return {
      exchange,
      symbol,
      bid: round(mid - half, mid),
      ask: round(mid + half, mid),
      bidSize: round(this.bidNotional[slot] / mid, 1 / mid),
      askSize: round(this.askNotional[slot] / mid, 1 / mid),
      ts: Math.round(now - latency - r() * latency * 0.5)
    }
  }
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x))

/** Rounds to about 8 significant digits of `scale`, like an exchange's tick size. */
function round(x: number, scale: number): number {
  const digits = Math.min(12, Math.max(0, 7 - Math.floor(Math.log10(scale))))
  return Number(x.toFixed(digits))
}

/** A book of `levels` a side around a tick: steps of half its spread, sizes growing by half the top's a level (benchmarks). */
export function bookAround(tick: Tick, levels = 20): { bids: [number, number][]; asks: [number, number][] } {
  const step = (tick.ask - tick.bid) / 2
  const bids: [number, number][] = []
  const asks: [number, number][] = []
  for (let i = 0; i < levels; i++) {
    bids.push([tick.bid - i * step, tick.bidSize * (1 + i / 2)])
    asks.push([tick.ask + i * step, tick.askSize * (1 + i / 2)])
  }
  return { bids, asks }
}
