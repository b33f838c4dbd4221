// The five markets, each keeping its books the way the venue documents it. Messages of kinds a
// connector did not ask for are counted as ignored and change nothing.
import { type BookState, VenueFeed, type FeedOptions, type Endpoints } from './feed.js'
import { type BookSide, decimal, krakenChecksum, okxChecksum } from './book.js'
import { readJson, TooLargeError } from './rest.js'

type Row = Record<string, unknown>
const isRow = (x: unknown): x is Row => x !== null && typeof x === 'object' && !Array.isArray(x)

/** Applies [price, size] text pairs; false when one is not a decimal (the message is not what the venue documents). */
function applyPairs(side: BookSide, levels: unknown): boolean {
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

const levelCount = (m: Row) => (Array.isArray(m.b) ? m.b.length : 0) + (Array.isArray(m.a) ? m.a.length : 0)
/** A combined stream's payload (`{stream, data}`), or the message itself on a raw stream. */
const diffOf = (message: unknown) => (isRow(message) && isRow(message.data) ? message.data : message)

/** Levels a side of Binance's depth snapshot holds at most (request weight grows past it). */
const SNAPSHOT_LIMIT = 1000
function cutAtLimit(side: BookSide, levels: unknown[]): void {
  const worst = side.levels.at(-1)
  if (levels.length >= SNAPSHOT_LIMIT && worst !== undefined) side.unknownPast(worst.price)
}

/**
 * Binance's REST request weight per minute and IP (spot REQUEST_WEIGHT 6000, USD-M 2400): snapshots
 * pause at 80% of it until the next minute, so many books starting at once never reach the 429
 * that, ignored, becomes an IP ban (418).
 */
const WEIGHT_PER_MINUTE = { binance: 6000, binanceusdm: 2400 } as const
const WEIGHT_SHARE = 0.8

/** Seconds from a Retry-After header (Binance sends it with 429 and 418); 60 when it says nothing usable. */
function retryAfterMs(res: Response): number {
  const seconds = Number(res.headers.get('retry-after'))
  return (Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 3 * 24 * 3600) : 60) * 1000
}

/**
 * Binance spot and USD-M futures: `<symbol>@depth@100ms` diffs on one combined stream, a REST
 * snapshot per book, the venue's rules for joining them:
 * developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
 * USD-M adds `pu` (the previous event's `u`), which must equal the last applied `u`.
 */
export class BinanceFeed extends VenueFeed {
  readonly exchange: 'binance' | 'binanceusdm'
  protected readonly silenceLimitMs = 30_000
  private readonly fetchImpl: typeof fetch
  private snapshotQueue: BookState[] = []
  private snapshotRunning = false
  /** No snapshot is asked for before this (a 429/418's Retry-After, or the weight budget spent). */
  private restPausedUntil = 0

  constructor(options: FeedOptions, exchange: 'binance' | 'binanceusdm') {
    super(options)
    this.exchange = exchange
    this.fetchImpl = options.fetch ?? fetch
  }

  protected url(): string {
    const streams = [...this.books.keys()].map((s) => `${s.toLowerCase()}@depth@100ms`).join('/')
    return `${this.options.endpoints.ws}/stream?streams=${streams}`
  }

  protected onOpen(): void {
    this.snapshotQueue = [...this.books.values()]
    void this.fetchSnapshots()
  }

  protected resubscribe(state: BookState): void {
    if (!this.snapshotQueue.includes(state)) this.snapshotQueue.push(state)
    void this.fetchSnapshots()
  }

  /**
   * One snapshot at a time: a full depth costs request weight the venue limits per minute. A book
   * whose last snapshot failed (no answer, or one it could not use) waits before the next one,
   * 1 s doubling to 30 s, so a broken venue is not hammered and the loop always yields.
   */
  private async fetchSnapshots(): Promise<void> {
    if (this.snapshotRunning) return
    this.snapshotRunning = true
    try {
      const session = this.session
      for (let state = this.snapshotQueue.shift(); state !== undefined && session === this.session; state = this.snapshotQueue.shift()) {
        const backoff = state.snapshotFailures > 0 ? Math.min(1000 * 2 ** (state.snapshotFailures - 1), 30_000) : 0
        const wait = Math.max(backoff, this.restPausedUntil - this.now())
        if (wait > 0) {
          await new Promise((r) => setTimeout(r, wait).unref())
          if (session !== this.session) break
        }
        const path = this.exchange === 'binance' ? '/api/v3/depth' : '/fapi/v1/depth'
        const symbol = state.instrument.venueSymbol
        let snapshot: unknown
        try {
          const res = await this.fetchImpl(`${this.options.endpoints.rest}${path}?symbol=${symbol}&limit=${SNAPSHOT_LIMIT}`, {
            signal: AbortSignal.timeout(10_000)
          })
          this.pace(res)
          if (!res.ok) throw new Error(`HTTP ${res.status}`)
          snapshot = await readJson(res, this.bufferBytes, 'VENUE_BUFFER_MB')
        } catch (err) {
          if (err instanceof TooLargeError) this.counters.overflows++
          else this.counters.errors++
          this.options.log?.warn({ exchange: this.exchange, symbol, err: (err as Error).message }, 'depth snapshot failed: retrying')
          state.snapshotFailures++
          this.snapshotQueue.push(state)
          continue
        }
        if (session !== this.session) break
        try {
          this.applySnapshot(state, snapshot, this.now())
        } catch {
          // As a message that throws: counted, that book resyncs; never a rejection that ends the process.
          this.resync(state, 'invalid')
        }
        state.snapshotFailures = state.live ? 0 : state.snapshotFailures + 1
      }
    } finally {
      this.snapshotRunning = false
    }
  }

  /** Reads the venue's rate-limit answer: Retry-After on 429 and 418, the weight used this minute. */
  private pace(res: Response): void {
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

  private applySnapshot(state: BookState, snapshot: unknown, receivedAt: number): void {
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
    // so that book resyncs once the levels it knows no longer cover BOOK_DEPTH (feed.ts).
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
      if (this.exchange === 'binance' ? last <= state.seq : last < state.seq) return
      const straddles = this.exchange === 'binance' ? first <= state.seq + 1 && last >= state.seq + 1 : first <= state.seq && last >= state.seq
      if (!straddles) {
        this.resync(state, 'gap')
        return
      }
    } else if (this.exchange === 'binance' ? first !== state.seq + 1 : Number(m.pu) !== state.seq) {
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
 * Coinbase Advanced Trade `level2`: a snapshot then updates per product, and one `sequence_num` per
 * connection across every channel: a gap means something on this connection was lost, so the
 * connection restarts and every book comes back with a new snapshot.
 * docs.cdp.coinbase.com/advanced-trade/docs/ws-channels#level2-channel
 */
export class CoinbaseFeed extends VenueFeed {
  readonly exchange = 'coinbase'
  // The heartbeats channel sends one message a second.
  protected readonly silenceLimitMs = 10_000
  private sequence = -1

  protected url(): string {
    return this.options.endpoints.ws
  }

  protected onOpen(): void {
    this.sequence = -1
    this.send({ type: 'subscribe', product_ids: [...this.books.keys()], channel: 'level2' })
    this.send({ type: 'subscribe', channel: 'heartbeats' })
  }

  protected override keepalive(): void {}

  protected resubscribe(): void {
    this.restart()
  }

  protected onMessage(message: unknown, receivedAt: number): void {
    if (!isRow(message)) throw new Error('not an object')
    if (message.type === 'error') {
      this.counters.errors++
      this.options.log?.warn({ exchange: this.exchange, message: String(message.message).slice(0, 200) }, 'venue error')
      return
    }
    const sequence = Number(message.sequence_num)
    if (!Number.isSafeInteger(sequence)) throw new Error('no sequence_num')
    if (this.sequence !== -1 && sequence !== this.sequence + 1) {
      if (sequence <= this.sequence) return // a repeat
      this.counters.gaps++
      this.counters.resyncs++
      this.options.log?.warn({ exchange: this.exchange, expected: this.sequence + 1, got: sequence }, 'sequence gap: reconnecting')
      this.restart()
      return
    }
    this.sequence = sequence
    if (message.channel !== 'l2_data') {
      if (message.channel !== 'heartbeats' && message.channel !== 'subscriptions') this.counters.ignored++
      return
    }
    const time = typeof message.timestamp === 'string' ? Date.parse(message.timestamp) : Number.NaN
    const exchangeTime = Number.isFinite(time) ? time : null
    for (const event of Array.isArray(message.events) ? message.events : []) {
      if (!isRow(event)) throw new Error('event not an object')
      const state = this.book(event.product_id)
      if (state === undefined) {
        this.counters.ignored++
        continue
      }
      if (event.type === 'snapshot') state.reset()
      else if (event.type !== 'update' || !state.live) continue // updates before the snapshot join nothing
      const changedAt = this.applyUpdates(state, event.updates)
      if (changedAt === null) {
        this.resync(state, 'invalid')
        continue
      }
      state.live = true
      // The time of the change (event_time) where there is one: the message's timestamp is when
      // it was sent, 0.2 s later on the live capture. The documentation's snapshot has 1970 there.
      this.changed(state, changedAt > 0 ? changedAt : exchangeTime, receivedAt)
    }
  }

  /** Applies the levels; the latest event_time among them (0 if none), or null if one is invalid. */
  private applyUpdates(state: BookState, updates: unknown): number | null {
    if (!Array.isArray(updates)) return null
    let latest = 0
    let latestText = ''
    for (const u of updates) {
      if (!isRow(u)) return null
      const price = decimal(u.price_level)
      const size = decimal(u.new_quantity)
      if (!(price > 0) || !(size >= 0)) return null
      const side = u.side === 'bid' ? state.book.bids : u.side === 'offer' || u.side === 'ask' ? state.book.asks : null
      if (side === null) return null
      side.set(price, size, u.price_level as string, u.new_quantity as string)
      // One message's levels share one event_time: parsed once, not per level.
      if (typeof u.event_time === 'string' && u.event_time !== latestText) {
        latestText = u.event_time
        const t = Date.parse(u.event_time)
        if (t > latest) latest = t
      }
    }
    return latest
  }
}

/** Kraken's v2 book depths; the connector asks for the smallest one that covers BOOK_DEPTH. */
const KRAKEN_DEPTHS = [10, 25, 100, 500, 1000]

/**
 * Kraken WebSocket v2 `book`: snapshot then updates per symbol, each with a CRC32 of the top 10
 * levels (book.ts), the book truncated to the subscribed depth after every update.
 * docs.kraken.com/api/docs/guides/spot-ws-book-v2
 */
export class KrakenFeed extends VenueFeed {
  readonly exchange = 'kraken'
  // Kraken sends a heartbeat every second on a subscribed connection.
  protected readonly silenceLimitMs = 10_000
  private readonly depth = KRAKEN_DEPTHS.find((d) => d >= this.options.bookDepth) ?? 1000

  protected url(): string {
    return this.options.endpoints.ws
  }

  protected onOpen(): void {
    this.send({ method: 'subscribe', params: { channel: 'book', symbol: [...this.books.keys()], depth: this.depth, snapshot: true } })
  }

  protected override keepalive(): void {}

  protected resubscribe(state: BookState): void {
    const symbol = [state.instrument.venueSymbol]
    this.send({ method: 'unsubscribe', params: { channel: 'book', symbol, depth: this.depth } })
    this.send({ method: 'subscribe', params: { channel: 'book', symbol, depth: this.depth, snapshot: true } })
  }

  protected onMessage(message: unknown, receivedAt: number): void {
    if (!isRow(message)) throw new Error('not an object')
    if (message.channel !== 'book') {
      if (message.method === 'subscribe' && message.success === false) {
        this.counters.errors++
        this.options.log?.warn({ exchange: this.exchange, error: String(message.error).slice(0, 200) }, 'subscribe refused')
      } else if (message.channel !== 'heartbeat' && message.channel !== 'status' && message.method === undefined) this.counters.ignored++
      return
    }
    if (message.type !== 'snapshot' && message.type !== 'update') throw new Error('book message of no known type')
    for (const item of Array.isArray(message.data) ? message.data : []) {
      if (!isRow(item)) throw new Error('book item not an object')
      const state = this.book(item.symbol)
      if (state === undefined) {
        this.counters.ignored++
        continue
      }
      if (message.type === 'snapshot') state.reset()
      else if (!state.live) continue
      if (!this.applyLevels(state, item.bids, state.book.bids) || !this.applyLevels(state, item.asks, state.book.asks)) {
        this.resync(state, 'invalid')
        continue
      }
      state.book.bids.truncate(this.depth)
      state.book.asks.truncate(this.depth)
      if (krakenChecksum(state.book) !== item.checksum) {
        this.resync(state, 'checksum')
        continue
      }
      state.live = true
      const time = typeof item.timestamp === 'string' ? Date.parse(item.timestamp) : Number.NaN
      this.changed(state, Number.isFinite(time) ? time : null, receivedAt)
    }
  }

  /** v2 sends numbers; the checksum needs the text the venue prints, which its pair's decimals give. */
  private applyLevels(state: BookState, levels: unknown, side: BookSide): boolean {
    if (!Array.isArray(levels)) return false
    const { priceDecimals, sizeDecimals } = state.instrument
    for (const l of levels) {
      if (!isRow(l) || typeof l.price !== 'number' || typeof l.qty !== 'number' || !(l.price > 0) || !(l.qty >= 0) || !Number.isFinite(l.price + l.qty))
        return false
      side.set(l.price, l.qty, l.price.toFixed(priceDecimals), l.qty.toFixed(sizeDecimals))
    }
    return true
  }
}

/**
 * OKX v5 public `books` (400 levels): snapshot then updates per instrument, `prevSeqId` equal to the
 * last applied `seqId`, and, until OKX deprecated it in June 2026 (now always 0), a CRC32 of the
 * top 25 levels (book.ts) in every message.
 * www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel
 */
export class OkxFeed extends VenueFeed {
  readonly exchange = 'okx'
  // OKX closes a connection idle for 30 s; the connector sends "ping" every second it has nothing.
  protected readonly silenceLimitMs = 30_000

  protected url(): string {
    return this.options.endpoints.ws
  }

  protected onOpen(): void {
    this.send({ op: 'subscribe', args: [...this.books.keys()].map((instId) => ({ channel: 'books', instId })) })
  }

  protected override keepalive(): void {
    this.send('ping')
  }

  protected override onText(text: string): boolean {
    return text === 'pong'
  }

  protected resubscribe(state: BookState): void {
    const args = [{ channel: 'books', instId: state.instrument.venueSymbol }]
    this.send({ op: 'unsubscribe', args })
    this.send({ op: 'subscribe', args })
  }

  protected onMessage(message: unknown, receivedAt: number): void {
    if (!isRow(message)) throw new Error('not an object')
    if (message.event !== undefined) {
      if (message.event === 'error') {
        this.counters.errors++
        this.options.log?.warn({ exchange: this.exchange, msg: String(message.msg).slice(0, 200) }, 'venue error')
      }
      return
    }
    const arg = message.arg
    if (!isRow(arg) || arg.channel !== 'books') {
      this.counters.ignored++
      return
    }
    const state = this.book(arg.instId)
    if (state === undefined) {
      this.counters.ignored++
      return
    }
    for (const d of Array.isArray(message.data) ? message.data : []) {
      if (!isRow(d)) throw new Error('book data not an object')
      if (message.action === 'snapshot') state.reset()
      else if (message.action !== 'update') throw new Error('book message of no known action')
      else if (!state.live) continue
      // seqId arrived in 2022: a connection without it is checked by checksum alone.
      if (message.action === 'update' && d.prevSeqId !== undefined && d.prevSeqId !== state.seq) {
        this.resync(state, 'gap')
        return
      }
      if (!applyPairs(state.book.bids, d.bids) || !applyPairs(state.book.asks, d.asks)) {
        this.resync(state, 'invalid')
        return
      }
      // OKX sends 0 since it deprecated the checksum (June 2026: "must no longer be used"); seqId
      // and prevSeqId carry the check then. Older sessions have no seqId and a real checksum.
      if (typeof d.checksum === 'number' && d.checksum !== 0 && okxChecksum(state.book) !== d.checksum) {
        this.resync(state, 'checksum')
        return
      }
      if (typeof d.seqId === 'number') state.seq = d.seqId
      state.live = true
      const time = Number(d.ts)
      this.changed(state, Number.isFinite(time) && time > 0 ? time : null, receivedAt)
    }
  }
}

export const EXCHANGES = ['binance', 'binanceusdm', 'coinbase', 'kraken', 'okx'] as const
export type Exchange = (typeof EXCHANGES)[number]

/** Where each venue is, as it publishes it (README "Market data" says how to point elsewhere). */
export const VENUE_ENDPOINTS: Record<Exchange, Endpoints> = {
  binance: { ws: 'wss://stream.binance.com:9443', rest: 'https://api.binance.com' },
  // USD-M routes streams by path since April 2026: depth is on /public (Binance's "USD-M Futures
  // routes streams by path", developers.binance.com/docs/products/caas/market-data-streams).
  binanceusdm: { ws: 'wss://fstream.binance.com/public', rest: 'https://fapi.binance.com' },
  // Coinbase's instrument list: the Exchange API's public /products, whose ids Advanced Trade uses.
  coinbase: { ws: 'wss://advanced-trade-ws.coinbase.com', rest: 'https://api.exchange.coinbase.com' },
  kraken: { ws: 'wss://ws.kraken.com/v2', rest: 'https://api.kraken.com' },
  okx: { ws: 'wss://ws.okx.com:8443/ws/v5/public', rest: 'https://www.okx.com' }
}

/**
 * What one socket carries and how long the venue keeps it. Binance allows 1024 streams a
 * connection and closes every connection at 24 h (developers.binance.com, "WebSocket Streams");
 * 200 streams keep the combined-stream URL under 8 KB, below common request-line limits.
 */
export const CONNECTION_LIMITS: Record<Exchange, { instruments: number; lifetimeMs: number | null }> = {
  binance: { instruments: 200, lifetimeMs: 24 * 3600_000 },
  binanceusdm: { instruments: 200, lifetimeMs: 24 * 3600_000 },
  coinbase: { instruments: Number.POSITIVE_INFINITY, lifetimeMs: null },
  kraken: { instruments: Number.POSITIVE_INFINITY, lifetimeMs: null },
  okx: { instruments: Number.POSITIVE_INFINITY, lifetimeMs: null }
}

export function createFeed(exchange: Exchange, options: FeedOptions): VenueFeed {
  switch (exchange) {
    case 'binance':
    case 'binanceusdm':
      return new BinanceFeed(options, exchange)
    case 'coinbase':
      return new CoinbaseFeed(options)
    case 'kraken':
      return new KrakenFeed(options)
    case 'okx':
      return new OkxFeed(options)
  }
}
