// OKX: public instruments (SPOT, SWAP, FUTURES) for metadata, v5 `books` by seqId (and, in
// sessions before June 2026, a CRC32 of the top 25 levels).
import { applyPairs, type BookSide, type OrderBook } from '../book.js'
import type { BookState } from '../book-state.js'
import { CRC_START, crcChar, crcEnd, crcText } from '../checksum.js'
import { SnapshotConnection } from '../snapshots.js'
import { asset, collect, makeInstrument, type Parsed, positive } from '../instruments.js'
import { isRow, type Row, rows } from '../rows.js'
import type { VenueSpec } from '../spec.js'

/** OKX `GET /api/v5/public/instruments` for SPOT, SWAP and FUTURES (one response each, or their data arrays together). */
export function okxInstruments(...responses: unknown[]): Parsed {
  const list = responses.flatMap((r) => rows((r as Row)?.data))
  return collect(list, (row) => {
    if (row.state !== 'live' || typeof row.instId !== 'string') return null
    if (row.instType === 'SPOT') {
      const base = asset(row.baseCcy)
      const quote = asset(row.quoteCcy)
      if (base === null || quote === null) return null
      return makeInstrument({
        exchange: 'okx',
        venueSymbol: row.instId,
        base,
        quote,
        settle: quote,
        kind: 'spot',
        contractSize: 1,
        tickSize: positive(row.tickSz),
        lotSize: positive(row.lotSz),
        minSize: positive(row.minSz) || 0,
        minNotional: 0
      })
    }
    if (row.instType !== 'SWAP' && row.instType !== 'FUTURES') return null
    // Derivatives name their underlying (uly BTC-USD) and settle currency instead of base and quote.
    const [b, q, extra] = typeof row.uly === 'string' ? row.uly.split('-') : []
    const base = asset(b)
    const quote = asset(q)
    const settle = asset(row.settleCcy)
    if (base === null || quote === null || settle === null || extra !== undefined) return null
    const inverse = row.ctType === 'inverse'
    if ((inverse && settle !== base) || (!inverse && (row.ctType !== 'linear' || settle !== quote))) return null
    const swap = row.instType === 'SWAP'
    return makeInstrument({
      exchange: 'okx',
      venueSymbol: row.instId,
      base,
      quote,
      settle,
      kind: swap ? (inverse ? 'inverse-perp' : 'perp') : inverse ? 'inverse-future' : 'future',
      contractSize: positive(row.ctVal) * (positive(row.ctMult) || 1),
      tickSize: positive(row.tickSz),
      lotSize: positive(row.lotSz),
      minSize: positive(row.minSz) || 0,
      minNotional: 0,
      expiry: swap ? undefined : Number(row.expTime)
    })
  })
}

/**
 * OKX v5 `books`: CRC32, as a signed 32-bit integer, of the top 25 bids and asks interleaved
 * (bid, ask, bid, ask ...), each as price:size, joined by ":".
 */
export function okxChecksum(book: OrderBook): number {
  const { bids, asks } = book
  let crc = CRC_START
  let parts = 0
  for (let i = 0; i < 25; i++) {
    if (i < bids.length) crc = okxPart(crc, bids, i, parts++ > 0)
    if (i < asks.length) crc = okxPart(crc, asks, i, parts++ > 0)
  }
  return crcEnd(crc) | 0
}

const COLON = 58

/** The CRC carried over one level's price:size, after a ":" when it is not the first. */
function okxPart(crc: number, side: BookSide, i: number, after: boolean): number {
  const start = after ? crcChar(crc, COLON) : crc
  return crcText(crcChar(crcText(start, side.priceText(i)), COLON), side.sizeText(i))
}

/** Levels per side OKX's `GET /api/v5/market/books` gives at most (its `sz` limit). */
const REST_DEPTH = 400
/** OKX allows 40 `GET /api/v5/market/books` a 2 s per IP: one every 50 ms at most. */
const REST_SPACING_MS = 50

/**
 * OKX v5 public `books` (400 levels): a snapshot then updates per instrument, `prevSeqId` equal to the
 * last applied `seqId`, and, until OKX deprecated it in June 2026 (now always 0), a CRC32 of the
 * top 25 levels (book.ts) in every message.
 * www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel
 *
 * OKX's API changelog (12 February 2026) ends the WebSocket snapshot (production early August 2026):
 * a book whose first message is an update waits for `GET /api/v5/market/books`, joined by `seqId` as
 * OKX's "How to manage a local order book correctly" says: updates are held; a REST snapshot whose
 * seqId is below the first held update's prevSeqId is asked again; held updates at or below the
 * snapshot's seqId are dropped; the first one applied has prevSeqId <= snapshot seqId < seqId; every
 * later one has prevSeqId equal to the last applied seqId.
 */
export class OkxConnection extends SnapshotConnection {
  /** Its checksum is over the levels' text as sent. */
  protected override get levelTexts(): boolean {
    return true
  }

  readonly exchange = 'okx'
  // OKX closes a connection idle for 30 s; the connector sends "ping" every second it has nothing.
  protected readonly silenceLimitMs = 30_000
  protected override readonly snapshotSpacingMs = REST_SPACING_MS

  protected url(): string {
    return this.options.endpoints.ws
  }

  protected onOpen(): void {
    this.send({ op: 'subscribe', args: [...this.books.keys()].map((instId) => ({ channel: 'books', instId })) })
  }

  /** OKX wants its own "ping" at least every 30 s: once a second, beside the WebSocket pings. */
  protected override keepalive(): void {
    super.keepalive()
    if (++this.keepalives % 4 === 0) this.send('ping')
  }
  private keepalives = 0

  protected override onText(text: string): boolean {
    return text === 'pong'
  }

  protected resubscribe(state: BookState): void {
    const args = [{ channel: 'books', instId: state.instrument.venueSymbol }]
    this.send({ op: 'unsubscribe', args })
    this.send({ op: 'subscribe', args })
  }

  protected onMessage(message: unknown, receivedAt: number, text: string): void {
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
    if (message.action !== 'snapshot' && message.action !== 'update') throw new Error('book message of no known action')
    if (message.action === 'update' && !state.live) {
      // No snapshot came before it (OKX no longer sends one): held, and the REST snapshot asked for.
      if (state.seq === -1) this.awaitSnapshot(state, text, Array.isArray(message.data) ? message.data.length : 0)
      return
    }
    for (const d of Array.isArray(message.data) ? message.data : []) {
      if (!isRow(d)) throw new Error('book data not an object')
      if (message.action === 'snapshot') {
        state.reset()
        if (!applyPairs(state.book.bids, d.bids) || !applyPairs(state.book.asks, d.asks)) {
          this.resync(state, 'invalid')
          return
        }
        if (!this.checksumOk(state, d)) return
        if (typeof d.seqId === 'number') state.seq = d.seqId
        state.joined = true // the WebSocket's snapshot and its updates chain exactly
        state.live = true
        this.changed(state, okxTime(d), receivedAt)
      } else if (!this.applyUpdate(state, d, receivedAt)) return
    }
  }

  /** One update to a live book, by OKX's sequence rules; false when the book resynced. */
  private applyUpdate(state: BookState, d: Row, receivedAt: number): boolean {
    // seqId arrived in 2022: a connection without it is checked by checksum alone.
    if (d.prevSeqId !== undefined) {
      const seqId = Number(d.seqId)
      const prev = Number(d.prevSeqId)
      if (!state.joined) {
        // After a REST snapshot: updates it already holds are dropped; the first one must straddle it.
        if (seqId <= state.seq) return true
        if (!(prev <= state.seq)) {
          this.resync(state, 'gap')
          return false
        }
      } else if (prev !== state.seq) {
        this.resync(state, 'gap')
        return false
      }
    }
    if (!applyPairs(state.book.bids, d.bids) || !applyPairs(state.book.asks, d.asks)) {
      this.resync(state, 'invalid')
      return false
    }
    if (!this.checksumOk(state, d)) return false
    if (typeof d.seqId === 'number') state.seq = d.seqId
    state.joined = true
    this.changed(state, okxTime(d), receivedAt)
    return true
  }

  /**
   * OKX sends 0 since it deprecated the checksum (June 2026: "will always return 0 and must no longer
   * be used"), and drops the field with the WebSocket snapshot: seqId and prevSeqId carry the check
   * then. Older sessions have no seqId and a real checksum.
   */
  private checksumOk(state: BookState, d: Row): boolean {
    if (typeof d.checksum !== 'number' || d.checksum === 0 || okxChecksum(state.book) === d.checksum) return true
    this.resync(state, 'checksum')
    return false
  }

  /** Holds an update for a book with no snapshot and asks for its REST snapshot. */
  private awaitSnapshot(state: BookState, text: string, levels: number): void {
    this.hold(state, { text, levels })
    if (state.pending.length > 0) this.requestSnapshot(state)
  }

  protected override wantsSnapshot(state: BookState): boolean {
    return !state.live && state.pending.length > 0
  }

  protected override snapshotUrl(state: BookState): string {
    return `${this.options.endpoints.rest}/api/v5/market/books?instId=${state.instrument.venueSymbol}&sz=${REST_DEPTH}`
  }

  /** The REST snapshot joined to the held updates (the rules above). */
  protected override applySnapshot(state: BookState, answer: unknown, receivedAt: number): void {
    const a = answer as Row
    const d = Array.isArray(a?.data) ? (a.data[0] as Row) : undefined
    const seqId = Number(d?.seqId)
    if (a?.code !== '0' || !isRow(d) || !Number.isSafeInteger(seqId)) {
      this.resync(state, 'invalid')
      return
    }
    const pending = state.pending
    const firstPrev = Number((JSON.parse(pending[0].text) as { data: Row[] }).data[0]?.prevSeqId)
    if (seqId < firstPrev) {
      // Older than what the stream held: OKX says ask again (after a backoff: it counts as a failure).
      this.requestSnapshot(state)
      return
    }
    state.reset()
    if (!applyPairs(state.book.bids, d.bids) || !applyPairs(state.book.asks, d.asks)) {
      this.resync(state, 'invalid')
      return
    }
    // A side of REST_DEPTH levels may have more past it; the updates bring levels that come into it.
    for (const side of [state.book.bids, state.book.asks]) {
      if (side.length >= REST_DEPTH) side.unknownPastWorst()
    }
    state.seq = seqId
    state.live = true
    this.changed(state, okxTime(d), receivedAt)
    for (const held of pending) {
      for (const u of (JSON.parse(held.text) as { data: unknown[] }).data) {
        if (!isRow(u)) throw new Error('book data not an object')
        if (!this.applyUpdate(state, u, receivedAt)) return
      }
    }
  }
}

/** OKX's `ts` (ms, as text); null when it is not a time. */
function okxTime(d: Row): number | null {
  const time = Number(d.ts)
  return Number.isFinite(time) && time > 0 ? time : null
}

export const okx: VenueSpec = {
  exchange: 'okx',
  endpoints: { ws: 'wss://ws.okx.com:8443/ws/v5/public', rest: 'https://www.okx.com' },
  metadata: { paths: ['SPOT', 'SWAP', 'FUTURES'].map((t) => `/api/v5/public/instruments?instType=${t}`), parse: (answer) => okxInstruments(answer) },
  limits: { instruments: Number.POSITIVE_INFINITY, lifetimeMs: null },
  connection: (options) => new OkxConnection(options)
}
