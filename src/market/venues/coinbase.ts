// Coinbase: the Exchange API's product list for metadata, Advanced Trade's `level2` and
// `heartbeats` channels for books, one sequence per connection.
import type { BookState } from '../book-state.js'
import { VenueConnection } from '../connection.js'
import { asset, collect, makeInstrument, type Parsed, positive } from '../instruments.js'
import { decimal } from '../book.js'
import { isRow, type Row, rows } from '../rows.js'
import type { VenueSpec } from '../spec.js'

/**
 * Coinbase: Advanced Trade `GET /api/v3/brokerage/market/products` ({products: [...]}, spot only) or
 * Exchange `GET /products` (an array); the two agree on the product ids the WebSocket uses.
 */
/**
 * The only -USDC products Advanced Trade streams as their own books: its market data channels
 * "return the same data as the corresponding -USD based products" for the others (docs.cdp.coinbase.com,
 * Advanced Trade WebSocket channels), so those are skipped, not subscribed to a book that never comes.
 */
const COINBASE_USDC_BOOKS = new Set(['USDT', 'EURC'])

export function coinbaseProducts(products: unknown): Parsed {
  const list = Array.isArray(products) ? rows(products) : rows((products as Row)?.products)
  return collect(list, (row) => {
    const advanced = row.product_id !== undefined
    const id = advanced ? row.product_id : row.id
    const base = asset(advanced ? row.base_currency_id : row.base_currency)
    const quote = asset(advanced ? row.quote_currency_id : row.quote_currency)
    const online = typeof row.status === 'string' && row.status.toLowerCase() === 'online' && row.trading_disabled !== true && row.is_disabled !== true
    if (!online || typeof id !== 'string' || base === null || quote === null) return null
    if (advanced && row.product_type !== 'SPOT') return null
    if (quote === 'USDC' && !COINBASE_USDC_BOOKS.has(base)) return null
    return makeInstrument({
      exchange: 'coinbase',
      venueSymbol: id,
      base,
      quote,
      settle: quote,
      kind: 'spot',
      contractSize: 1,
      tickSize: positive(advanced ? (row.price_increment ?? row.quote_increment) : row.quote_increment),
      lotSize: positive(row.base_increment),
      minSize: positive(row.base_min_size) || 0,
      minNotional: positive(advanced ? row.quote_min_size : row.min_market_funds) || 0
    })
  })
}

/**
 * Coinbase Advanced Trade `level2`: a snapshot then updates per product, and one `sequence_num` per
 * connection across every channel: a gap means something on this connection was lost, so the
 * connection restarts and every book comes back with a new snapshot.
 * docs.cdp.coinbase.com/advanced-trade/docs/ws-channels#level2-channel
 */
export class CoinbaseConnection extends VenueConnection {
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

export const coinbase: VenueSpec = {
  exchange: 'coinbase',
  // The instrument list: the Exchange API's public /products, whose ids Advanced Trade uses.
  endpoints: { ws: 'wss://advanced-trade-ws.coinbase.com', rest: 'https://api.exchange.coinbase.com' },
  metadata: { paths: ['/products'], parse: coinbaseProducts },
  limits: { instruments: Number.POSITIVE_INFINITY, lifetimeMs: null },
  connection: (options) => new CoinbaseConnection(options)
}
