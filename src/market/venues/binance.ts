// Binance spot, USD-M and COIN-M futures: everything this server knows of them. Metadata from
// exchangeInfo, `<symbol>@depth@100ms` diffs joined to REST snapshots by update id, the REST weight
// budget, and the 24 h socket lifetime (the group rotates sockets before it).
import { applyPairs, type BookSide } from '../book.js'
import type { BookState } from '../book-state.js'
import type { ConnectionOptions } from '../connection.js'
import { SnapshotConnection } from '../snapshots.js'
import { asset, collect, makeInstrument, type Parsed, positive } from '../instruments.js'
import { isRow, type Row, rows } from '../rows.js'
import type { VenueSpec } from '../spec.js'

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
    return makeInstrument({
      exchange: 'binance',
      venueSymbol: row.symbol,
      base,
      quote,
      settle: quote,
      kind: 'spot',
      contractSize: 1,
      tickSize: positive(f.PRICE_FILTER?.tickSize),
      lotSize: positive(f.LOT_SIZE?.stepSize),
      minSize: positive(f.LOT_SIZE?.minQty) || 0,
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
    return makeInstrument({
      exchange: 'binanceusdm',
      venueSymbol: row.symbol,
      base,
      quote,
      settle,
      kind: perpetual ? 'perp' : 'future',
      contractSize: 1,
      tickSize: positive(f.PRICE_FILTER?.tickSize),
      lotSize: positive(f.LOT_SIZE?.stepSize),
      minSize: positive(f.LOT_SIZE?.minQty) || 0,
      minNotional: positive(f.MIN_NOTIONAL?.notional) || 0,
      expiry: dated ? Number(row.deliveryDate) : undefined
    })
  })
}

/**
 * Binance COIN-M futures `GET /dapi/v1/exchangeInfo`: inverse perpetuals and quarterlies, margined and
 * settled in their base asset, each contract worth `contractSize` USD (100 for BTC, 10 for the rest);
 * LOT_SIZE counts contracts.
 */
export function binanceCoinm(info: unknown): Parsed {
  return collect(rows((info as Row)?.symbols), (row) => {
    const base = asset(row.baseAsset)
    const quote = asset(row.quoteAsset)
    const settle = asset(row.marginAsset)
    if (row.contractStatus !== 'TRADING' || base === null || quote === null || settle !== base || typeof row.symbol !== 'string') return null
    const perpetual = row.contractType === 'PERPETUAL'
    const dated = row.contractType === 'CURRENT_QUARTER' || row.contractType === 'NEXT_QUARTER'
    if (!perpetual && !dated) return null
    const f = binanceFilters(row)
    return makeInstrument({
      exchange: 'binancecoinm',
      venueSymbol: row.symbol,
      base,
      quote,
      settle,
      kind: perpetual ? 'inverse-perp' : 'inverse-future',
      contractSize: positive(row.contractSize),
      tickSize: positive(f.PRICE_FILTER?.tickSize),
      lotSize: positive(f.LOT_SIZE?.stepSize),
      minSize: positive(f.LOT_SIZE?.minQty) || 0,
      minNotional: 0,
      expiry: dated ? Number(row.deliveryDate) : undefined
    })
  })
}

const levelCount = (m: Row) => (Array.isArray(m.b) ? m.b.length : 0) + (Array.isArray(m.a) ? m.a.length : 0)
/** A combined stream's payload (`{stream, data}`), or the message itself on a raw stream. */
const diffOf = (message: unknown) => (isRow(message) && isRow(message.data) ? message.data : message)

/** Levels a side of Binance's depth snapshot holds at most (request weight grows past it). */
const SNAPSHOT_LIMIT = 1000
function cutAtLimit(side: BookSide, levels: unknown[]): void {
  if (levels.length >= SNAPSHOT_LIMIT) side.unknownPastWorst()
}

/**
 * Binance's REST request weight per minute and IP (spot REQUEST_WEIGHT 6000, USD-M and COIN-M 2400): snapshots
 * pause at 80% of it until the next minute, so many books starting at once never reach the 429
 * that, ignored, becomes an IP ban (418).
 */
const WEIGHT_PER_MINUTE = { binance: 6000, binanceusdm: 2400, binancecoinm: 2400 } as const
type BinanceExchange = keyof typeof WEIGHT_PER_MINUTE
/** Where each market's depth snapshot is. */
const DEPTH_PATH: Record<BinanceExchange, string> = { binance: '/api/v3/depth', binanceusdm: '/fapi/v1/depth', binancecoinm: '/dapi/v1/depth' }
const WEIGHT_SHARE = 0.8

/** Seconds from a Retry-After header (Binance sends it with 429 and 418); 60 when it says nothing usable. */
function retryAfterMs(res: Response): number {
  const seconds = Number(res.headers.get('retry-after'))
  return (Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 3 * 24 * 3600) : 60) * 1000
}

/**
 * Binance spot, USD-M and COIN-M futures: `<symbol>@depth@100ms` diffs on one combined stream, a REST
 * snapshot per book, the venue's rules for joining them:
 * developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
 * Spot: a diff whose `u` is at or below the book's update id is ignored (a repeat), not a gap.
 * The futures (USD-M and COIN-M) add `pu` (the previous event's `u`), which must equal the last applied `u`.
 */
export class BinanceConnection extends SnapshotConnection {
  readonly exchange: BinanceExchange
  private readonly futures: boolean
  protected readonly silenceLimitMs = 30_000
  // Spot allows 5 incoming messages a second on a connection, ping and pong frames included (the
  // futures 10), and closes one past it: two pings a second leave room for the pongs Binance asks.
  protected override readonly pingIntervalMs = 500
  constructor(options: ConnectionOptions, exchange: BinanceExchange) {
    super(options)
    this.exchange = exchange
    this.futures = exchange !== 'binance'
  }

  protected url(): string {
    const streams = [...this.books.keys()].map((s) => `${s.toLowerCase()}@depth@100ms`).join('/')
    return `${this.options.endpoints.ws}/stream?streams=${streams}`
  }

  protected onOpen(): void {
    for (const state of this.books.values()) this.requestSnapshot(state)
  }

  protected resubscribe(state: BookState): void {
    this.requestSnapshot(state)
  }

  protected override snapshotUrl(state: BookState): string {
    return `${this.options.endpoints.rest}${DEPTH_PATH[this.exchange]}?symbol=${state.instrument.venueSymbol}&limit=${SNAPSHOT_LIMIT}`
  }

  /** Reads the venue's rate-limit answer: Retry-After on 429 and 418, the weight used this minute. */
  protected override pace(res: Response): void {
    const now = this.now()
    if (res.status === 429 || res.status === 418) {
      this.restPausedUntil = Math.max(this.restPausedUntil, now + retryAfterMs(res))
      this.options.log?.warn({ exchange: this.exchange, status: res.status, resumeInMs: this.restPausedUntil - now }, 'venue rate limit: snapshots paused')
      return
    }
    const used = Number(res.headers.get('x-mbx-used-weight-1m'))
    if (used >= WEIGHT_PER_MINUTE[this.exchange] * WEIGHT_SHARE) {
      // Binance's minute intervals start on the minute; a quarter second past it for clock skew.
      this.restPausedUntil = Math.max(this.restPausedUntil, now - (now % 60_000) + 60_250)
    }
  }

  protected override applySnapshot(state: BookState, snapshot: unknown, receivedAt: number): void {
    const s = snapshot as Row
    const lastUpdateId = Number(s?.lastUpdateId)
    if (!Number.isSafeInteger(lastUpdateId)) {
      this.resync(state, 'invalid')
      return
    }
    const pending = state.pending
    state.reset()
    if (!applyPairs(state.book.bids, s.bids) || !applyPairs(state.book.asks, s.asks)) {
      this.resync(state, 'invalid')
      return
    }
    // A side cut at the limit: levels past it that never change are never sent (Binance says so),
    // so that book resyncs once the levels it knows no longer cover BOOK_DEPTH (connection.ts).
    cutAtLimit(state.book.bids, s.bids as unknown[])
    cutAtLimit(state.book.asks, s.asks as unknown[])
    state.seq = lastUpdateId
    state.live = true
    const time = typeof s.T === 'number' ? s.T : typeof s.E === 'number' ? s.E : null
    this.changed(state, time, receivedAt)
    // The diffs that came while the snapshot was on its way: the old ones are dropped, the rest joined.
    for (const diff of pending) if (state.live) this.applyDiff(state, diffOf(JSON.parse(diff.text)) as Row, receivedAt)
  }

  protected onMessage(message: unknown, receivedAt: number, text: string): void {
    const m = diffOf(message)
    if (isRow(m) && (m.e === 'serverShutdown' || (isRow(m.event) && m.event.e === 'serverShutdown'))) {
      // "Please establish a new connection as soon as possible": the group rotates this socket.
      this.closingSoon = true
      this.options.log?.info({ exchange: this.exchange }, 'venue announced a server shutdown: rotating the socket')
      return
    }
    if (!isRow(m) || m.e !== 'depthUpdate') {
      this.counters.ignored++
      return
    }
    const state = this.book(m.s)
    if (state === undefined) {
      this.counters.ignored++
      return
    }
    if (state.seq === -1) {
      // No snapshot yet: keep the diff's text (bounded in count, levels and the connection's bytes)
      // to join it once the snapshot arrives. Oldest first out: the snapshot joins the newest diffs,
      // and a lost old one is a gap it detects.
      this.hold(state, { text, levels: levelCount(m) })
      return
    }
    this.applyDiff(state, m, receivedAt)
  }

  private applyDiff(state: BookState, m: Row, receivedAt: number): void {
    const first = Number(m.U)
    const last = Number(m.u)
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last)) {
      this.resync(state, 'invalid')
      return
    }
    if (!state.joined) {
      // The first diff after the snapshot must straddle it; older ones are dropped.
      if (this.futures ? last < state.seq : last <= state.seq) return
      const straddles = this.futures ? first <= state.seq && last >= state.seq : first <= state.seq + 1 && last >= state.seq + 1
      if (!straddles) {
        this.resync(state, 'gap')
        return
      }
    } else if (!this.futures && last <= state.seq) {
      return // spot: "if the event u is <= the update ID of your local order book, ignore the event"
    } else if (this.futures ? Number(m.pu) !== state.seq : first !== state.seq + 1) {
      this.resync(state, 'gap')
      return
    }
    if (!applyPairs(state.book.bids, m.b) || !applyPairs(state.book.asks, m.a)) {
      this.resync(state, 'invalid')
      return
    }
    state.joined = true
    state.seq = last
    const time = typeof m.T === 'number' ? m.T : typeof m.E === 'number' ? m.E : null
    this.changed(state, time, receivedAt)
  }
}

/**
 * 1024 streams a connection are allowed and every connection closes at 24 h (developers.binance.com,
 * "WebSocket Streams"); 200 streams keep the combined-stream URL under 8 KB, below common
 * request-line limits.
 */
const LIMITS = { instruments: 200, lifetimeMs: 24 * 3600_000 }

export const binance: VenueSpec = {
  exchange: 'binance',
  endpoints: { ws: 'wss://stream.binance.com:9443', rest: 'https://api.binance.com' },
  metadata: { paths: ['/api/v3/exchangeInfo'], parse: binanceSpot },
  limits: LIMITS,
  connection: (options) => new BinanceConnection(options, 'binance')
}

export const binanceusdm: VenueSpec = {
  exchange: 'binanceusdm',
  // USD-M routes streams by path since April 2026: depth is on /public (Binance's "USD-M Futures
  // routes streams by path", developers.binance.com/docs/products/caas/market-data-streams).
  endpoints: { ws: 'wss://fstream.binance.com/public', rest: 'https://fapi.binance.com' },
  metadata: { paths: ['/fapi/v1/exchangeInfo'], parse: binanceUsdm },
  limits: LIMITS,
  connection: (options) => new BinanceConnection(options, 'binanceusdm')
}

export const binancecoinm: VenueSpec = {
  exchange: 'binancecoinm',
  endpoints: { ws: 'wss://dstream.binance.com', rest: 'https://dapi.binance.com' },
  metadata: { paths: ['/dapi/v1/exchangeInfo'], parse: binanceCoinm },
  limits: LIMITS,
  connection: (options) => new BinanceConnection(options, 'binancecoinm')
}
