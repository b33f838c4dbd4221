// Kraken: AssetPairs for metadata, WebSocket v2 `book` with its CRC32 of the top 10 levels.
import type { BookSide, OrderBook } from '../book.js'
import type { BookState } from '../book-state.js'
import { CRC_START, crcChar, crcEnd } from '../checksum.js'
import { VenueConnection } from '../connection.js'
import { asset, collect, makeInstrument, type Parsed, positive } from '../instruments.js'
import { isRow, type Row, rows } from '../rows.js'
import type { VenueSpec } from '../spec.js'

/** Kraken `GET /0/public/AssetPairs`. WebSocket v2 names pairs by their wsname with BTC for XBT. */
export function krakenAssetPairs(assetPairs: unknown): Parsed {
  const result = (assetPairs as Row)?.result
  const list = result !== null && typeof result === 'object' ? rows(Object.values(result as Row)) : []
  return collect(list, (row) => {
    if (typeof row.wsname !== 'string' || (row.status !== undefined && row.status !== 'online')) return null
    const [b, q, extra] = row.wsname.split('/')
    const base = asset(b)
    const quote = asset(q)
    if (base === null || quote === null || extra !== undefined) return null
    const priceDecimals = Number(row.pair_decimals)
    const sizeDecimals = Number(row.lot_decimals)
    // Checksums format prices with these (toFixed takes 0 to 100; no venue uses more than 18).
    const decimalsOk = (n: number) => Number.isInteger(n) && n >= 0 && n <= 18
    if (!decimalsOk(priceDecimals) || !decimalsOk(sizeDecimals)) return null
    return makeInstrument({
      exchange: 'kraken',
      venueSymbol: `${base}/${quote}`,
      base,
      quote,
      settle: quote,
      kind: 'spot',
      contractSize: 1,
      tickSize: positive(row.tick_size) || 10 ** -priceDecimals,
      lotSize: 10 ** -sizeDecimals,
      minSize: positive(row.ordermin) || 0,
      minNotional: positive(row.costmin) || 0,
      priceDecimals,
      sizeDecimals
    })
  })
}

/**
 * Kraken (WebSocket v1 and v2): CRC32 of the top 10 asks (lowest first) then the top 10 bids
 * (highest first), each price and size with its "." and leading zeros removed.
 * docs.kraken.com/api/docs/guides/spot-ws-book-v2
 */
export function krakenChecksum(book: OrderBook): number {
  return crcEnd(krakenLevels(krakenLevels(CRC_START, book.asks), book.bids))
}

/** The CRC carried over a side's top 10 levels, price then size, each stripped as Kraken says. */
function krakenLevels(crc: number, side: BookSide): number {
  const n = Math.min(10, side.length)
  for (let i = 0; i < n; i++) crc = stripped(stripped(crc, side.priceText(i)), side.sizeText(i))
  return crc
}

/** The CRC carried over `text` without its first "." and then its leading zeros. */
function stripped(crc: number, text: string): number {
  let dot = false
  let leading = true
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k)
    if (c === 46 && !dot) dot = true
    else if (!(leading && c === 48)) {
      leading = false
      crc = crcChar(crc, c)
    }
  }
  return crc
}

/** Kraken's v2 book depths; the connector asks for the smallest one that covers BOOK_DEPTH. */
const KRAKEN_DEPTHS = [10, 25, 100, 500, 1000]

/**
 * Kraken WebSocket v2 `book`: snapshot then updates per symbol, each with a CRC32 of the top 10
 * levels (book.ts), the book truncated to the subscribed depth after every update.
 * docs.kraken.com/api/docs/guides/spot-ws-book-v2
 */
export class KrakenConnection extends VenueConnection {
  /** Its checksum is over the levels' text as sent. */
  protected override get levelTexts(): boolean {
    return true
  }

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

export const kraken: VenueSpec = {
  exchange: 'kraken',
  endpoints: { ws: 'wss://ws.kraken.com/v2', rest: 'https://api.kraken.com' },
  metadata: { paths: ['/0/public/AssetPairs'], parse: krakenAssetPairs },
  limits: { instruments: Number.POSITIVE_INFINITY, lifetimeMs: null },
  connection: (options) => new KrakenConnection(options)
}
