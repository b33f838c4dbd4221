// OKX: public instruments (SPOT, SWAP, FUTURES) for metadata, v5 `books` by seqId (and, in
// sessions before June 2026, a CRC32 of the top 25 levels).
import { crc32 } from 'node:zlib'
import { applyPairs, type OrderBook } from '../book.js'
import { type BookState, VenueConnection } from '../connection.js'
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
  const parts: string[] = []
  const bids = book.bids.levels
  const asks = book.asks.levels
  for (let i = 0; i < 25; i++) {
    if (i < bids.length) parts.push(`${bids[i].priceText}:${bids[i].sizeText}`)
    if (i < asks.length) parts.push(`${asks[i].priceText}:${asks[i].sizeText}`)
  }
  return crc32(parts.join(':')) | 0
}

/**
 * OKX v5 public `books` (400 levels): snapshot then updates per instrument, `prevSeqId` equal to the
 * last applied `seqId`, and, until OKX deprecated it in June 2026 (now always 0), a CRC32 of the
 * top 25 levels (book.ts) in every message.
 * www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel
 */
export class OkxConnection extends VenueConnection {
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

export const okx: VenueSpec = {
  exchange: 'okx',
  endpoints: { ws: 'wss://ws.okx.com:8443/ws/v5/public', rest: 'https://www.okx.com' },
  metadata: { paths: ['SPOT', 'SWAP', 'FUTURES'].map((t) => `/api/v5/public/instruments?instType=${t}`), parse: (answer) => okxInstruments(answer) },
  limits: { instruments: Number.POSITIVE_INFINITY, lifetimeMs: null },
  connection: (options) => new OkxConnection(options)
}
