// What every venue connection shares: the socket's life (connect, keepalive, silence, reconnect with
// backoff), one local book per instrument, publishing at most one book and one ticker event per
// book per event-loop turn, and the venue's health. Each venue's room (venues/) parses its own
// messages; the socket and REST access come in through transport.ts's seams, time through clock.ts's.
import { type MarketSink, type VenueCounters, type VenueHealth, type VenueState, ZERO_COUNTERS } from './events.js'
import { baseSize, type Instrument } from './instruments.js'
import { BookState, countLive, notLive, type PendingMessage } from './book-state.js'
import { ClockOffset } from './clock-offset.js'
import { type Clock, liveClock, type Timer } from './clock.js'
import { type Connect, connectWebSocket, type VenueSocket } from './transport.js'

export interface Endpoints {
  /** WebSocket base URL. */
  ws: string
  /** REST base URL (snapshots, metadata). */
  rest: string
}

export interface ConnectionOptions {
  instruments: Instrument[]
  endpoints: Endpoints
  /** Levels per side in book.<exchange>.<symbol> events. */
  bookDepth: number
  /** Where the books, tickers and health go. */
  sink: MarketSink
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
  /** What stamps receivedAt and runs the timers and the end-of-turn publish (default the live clock). */
  clock?: Clock
  /** Delay before the first reconnect; doubles up to 30 s, back to this once a connection lasts a minute. */
  reconnectMs?: number
  /** Override of the venue's silence limit (tests). */
  silenceMs?: number
  /** REST access (default fetch). */
  fetch?: typeof fetch
  /** Opens the socket (default ws). */
  connect?: Connect
  /**
   * Bytes one connection may hold for a venue: the text of the diffs kept while their books wait for
   * a snapshot, and the size of one REST snapshot answer (VENUE_BUFFER_MB).
   */
  bufferBytes?: number
  /**
   * Whether venue.<exchange> is published (default true). False where nobody reads it (an offline
   * replay whose engine takes the recorded venue health): the watchdog still pings and finds
   * silences, but builds no health at each tick; health() still answers when asked.
   */
  venueHealth?: boolean
}

export const DEFAULT_BUFFER_BYTES = 16 * 1024 * 1024

/**
 * The watchdog's period: silences are found, the socket pinged (its answer confirms every live book
 * on it) and venue health published this often, so a quiet book's confirmation is never much older.
 */
export const WATCHDOG_MS = 250

export abstract class VenueConnection {
  abstract readonly exchange: string
  /** Milliseconds without any message (or pong) after which the socket is taken for dead. */
  protected abstract readonly silenceLimitMs: number
  protected readonly books = new Map<string, BookState>()
  readonly counters: VenueCounters = { ...ZERO_COUNTERS }
  /** Bytes this connection holds for books waiting for their snapshot, at most `bufferBytes`. */
  private readonly held = { bytes: 0 }
  protected readonly bufferBytes: number
  protected ws: VenueSocket | null = null
  protected readonly clock: Clock
  protected readonly now: () => number
  protected readonly fetch: typeof fetch
  private readonly connectSocket: Connect
  private stopped = false
  /** Counts socket opens and closes: work started for one socket is dropped once it is gone. */
  protected session = 0
  private opened = 0
  private connectedAt = 0
  private lastMessageAt: number | null = null
  private reconnectDelay: number
  private reconnectTimer: Timer | null = null
  private watchdog: Timer | null = null
  private flushScheduled = false
  private readonly flushNow = () => this.flush()
  private readonly offset = new ClockOffset()
  private lastState: VenueState | null = null
  private lastBooksLive = -1

  constructor(protected readonly options: ConnectionOptions) {
    const clock = options.clock ?? liveClock
    this.clock = clock
    this.now = () => clock.now()
    this.fetch = options.fetch ?? fetch
    this.connectSocket = options.connect ?? connectWebSocket
    this.reconnectDelay = options.reconnectMs ?? 500
    this.bufferBytes = options.bufferBytes ?? DEFAULT_BUFFER_BYTES
    for (const i of options.instruments) this.books.set(i.venueSymbol, new BookState(i, this.held, this.levelTexts))
  }

  /** Whether the venue's checksum is over its levels' text (a getter: read while this constructor runs). */
  protected get levelTexts(): boolean {
    return false
  }

  /** The URL to connect to. */
  protected abstract url(): string
  /** Called when a socket opens: subscribe, fetch snapshots. */
  protected abstract onOpen(): void
  /** One parsed message (and its text). Throwing counts it invalid; it never takes the feed down. */
  protected abstract onMessage(message: unknown, receivedAt: number, text: string): void
  /** Get a fresh snapshot of one book (resubscribe, or a REST call). */
  protected abstract resubscribe(state: BookState): void
  /**
   * Sent every WATCHDOG_MS while open: a WebSocket ping, whose answer confirms every live book on this
   * socket (venues that also want an application ping add it).
   */
  protected keepalive(): void {
    const now = this.now()
    if (now - this.lastPingAt < this.pingIntervalMs) return
    this.lastPingAt = now
    this.ws?.ping()
  }
  /** Milliseconds between WebSocket pings: a venue that counts pings against a message limit raises it. */
  protected readonly pingIntervalMs: number = WATCHDOG_MS
  private lastPingAt = Number.NEGATIVE_INFINITY
  /** Messages that are not JSON but part of the protocol (OKX's "pong"). */
  protected onText(_text: string): boolean {
    return false
  }

  start(): void {
    this.stopped = false
    this.connect()
    this.watchdog = this.clock.interval(WATCHDOG_MS, () => this.tick())
  }

  stop(): void {
    this.stopped = true
    this.session++ // work started for this socket (snapshot requests) ends with it
    this.reconnectTimer?.cancel()
    this.watchdog?.cancel()
    this.ws?.terminate()
    this.ws = null
  }

  private connect(): void {
    const ws: VenueSocket = this.connectSocket(this.url(), {
      onOpen: () => {
        if (this.opened++ > 0) this.counters.reconnects++
        this.session++
        this.connectedAt = this.now()
        this.lastMessageAt = this.connectedAt
        this.closingSoon = false
        for (const state of this.books.values()) state.reset()
        this.onOpen()
      },
      onMessage: (data, isBinary) => this.receive(data, isBinary),
      onAlive: () => {
        this.lastMessageAt = this.now()
      },
      onError: (err) => {
        this.counters.errors++
        this.options.log?.warn({ exchange: this.exchange, err: err.message }, 'venue socket error')
      },
      onClose: () => {
        if (this.ws !== ws) return
        this.ws = null
        this.session++
        // Nothing stale is published: every book waits for a new snapshot.
        for (const state of this.books.values()) state.reset()
        this.publishHealth()
        if (!this.stopped) this.scheduleReconnect()
      }
    })
    this.ws = ws
  }

  private scheduleReconnect(): void {
    if (this.now() - this.connectedAt > 60_000) this.reconnectDelay = this.options.reconnectMs ?? 500
    const delay = this.reconnectDelay
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, 30_000)
    this.reconnectTimer = this.clock.timeout(delay, () => {
      this.reconnectTimer = null
      if (!this.stopped) this.connect()
    })
  }

  private receive(data: Buffer, isBinary: boolean): void {
    const receivedAt = this.now()
    this.lastMessageAt = receivedAt
    this.counters.messages++
    const text = isBinary ? '' : data.toString()
    if (this.onText(text)) return
    let message: unknown
    try {
      message = JSON.parse(text)
    } catch {
      this.counters.invalid++
      return
    }
    try {
      this.onMessage(message, receivedAt, text)
    } catch (err) {
      this.counters.invalid++
      this.options.log?.warn({ exchange: this.exchange, err: (err as Error).message }, 'venue message not understood')
    }
  }

  private tick(): void {
    const open = this.ws?.open === true
    if (open && this.lastMessageAt !== null && this.now() - this.lastMessageAt > (this.options.silenceMs ?? this.silenceLimitMs)) {
      this.counters.silences++
      this.options.log?.warn({ exchange: this.exchange }, 'venue silent past its limit: reconnecting')
      // Its books are stale now, not when the socket's close event comes round.
      for (const state of this.books.values()) state.reset()
      this.ws?.terminate()
      return
    }
    if (open) this.keepalive()
    this.publishHealth()
  }

  /** Sends a message on the open socket (dropped when there is none: the next open resubscribes). */
  protected send(message: unknown): void {
    if (this.ws?.open) this.ws.send(typeof message === 'string' ? message : JSON.stringify(message))
  }

  /** Closes the socket: every book resyncs on the next connection. */
  protected restart(): void {
    this.ws?.terminate()
  }

  /**
   * A book lost its way (gap, checksum, bad message, or the levels it knows no longer cover
   * BOOK_DEPTH): count it, forget it, ask for a new snapshot.
   */
  protected resync(state: BookState, reason: 'gap' | 'checksum' | 'invalid' | 'depth' | 'overflow'): void {
    if (reason === 'gap') this.counters.gaps++
    else if (reason === 'checksum') this.counters.checksumFailures++
    else if (reason === 'invalid') this.counters.invalid++
    else if (reason === 'overflow') this.counters.overflows++
    this.counters.resyncs++
    this.options.log?.warn({ exchange: this.exchange, symbol: state.instrument.symbol, reason }, 'book resync')
    state.reset()
    const session = this.session
    state.resubscribeAfterResync(this.clock, () => {
      if (session === this.session) this.resubscribe(state)
    })
    // At once, not at the next tick: the engine stops using this book now (it is in notLive).
    this.publishHealth()
  }

  /**
   * Keeps a message for a book that waits for its snapshot. Past the connection's `bufferBytes`
   * (a venue that sends more than it answers), the book drops what it held and resyncs: counted in
   * `overflows`, and the connection never holds more than its limit.
   */
  protected hold(state: BookState, message: PendingMessage): void {
    state.hold(message)
    if (this.held.bytes > this.bufferBytes) this.resync(state, 'overflow')
  }

  /** Bytes this connection holds for books waiting for their snapshot. */
  get heldBytes(): number {
    return this.held.bytes
  }

  /** The book of a venue symbol the venue sent (anything), if this connection keeps it. */
  book(venueSymbol: unknown): BookState | undefined {
    return typeof venueSymbol === 'string' ? this.books.get(venueSymbol) : undefined
  }

  /** A book changed: published once at the end of this event-loop turn, however many messages changed it. */
  protected changed(state: BookState, exchangeTime: number | null, receivedAt: number): void {
    state.exchangeTime = exchangeTime
    state.receivedAt = receivedAt
    if (exchangeTime !== null && Number.isFinite(exchangeTime)) this.offset.sample(receivedAt - exchangeTime)
    if (state.dirty) return
    state.dirty = true
    if (!this.flushScheduled) {
      this.flushScheduled = true
      this.clock.defer(this.flushNow)
    }
  }

  private flush(): void {
    this.flushScheduled = false
    for (const state of this.books.values()) {
      if (!state.dirty) continue
      state.dirty = false
      if (!state.live || state.book.crossed) continue
      if (state.book.covers(this.options.bookDepth)) publishBook(this.exchange, state, this.options.bookDepth, this.options.sink)
      else this.resync(state, 'depth')
    }
    this.stateMaybeChanged()
  }

  get instruments(): Instrument[] {
    return this.options.instruments
  }

  /**
   * The venue said this socket will close soon (Binance's serverShutdown): its group opens the
   * replacement now instead of at the socket's planned age. Reset by the next connection.
   */
  closingSoon = false

  /** How long the current socket has been open; null while there is none. */
  connectionAgeMs(): number | null {
    return this.ws?.open ? this.now() - this.connectedAt : null
  }

  /** Every book in sequence: cheap, no clock statistics. */
  allBooksLive(): boolean {
    return this.state(this.now()).booksLive === this.books.size
  }

  /**
   * up, degraded or down (README "Market data from the venues"), from the connection's own faults
   * only: a book resyncing or failing its checksum is that book's (booksLive, notLive), not the
   * venue's. Cheap: no clock statistics.
   */
  private state(now: number): { state: VenueState; connected: boolean; booksLive: number; age: number | null } {
    const connected = this.ws?.open === true
    const booksLive = countLive(this.books.values())
    // A clock set back since the last message (NTP, a recording's) heard it just now: an age is never negative.
    const age = this.lastMessageAt === null ? null : Math.max(0, now - this.lastMessageAt)
    const silenceLimit = this.options.silenceMs ?? this.silenceLimitMs
    const state: VenueState = !connected || (age !== null && age > silenceLimit) ? 'down' : age !== null && age > silenceLimit / 2 ? 'degraded' : 'up'
    return { state, connected, booksLive, age }
  }

  health(): VenueHealth {
    const now = this.now()
    const { state, connected, booksLive, age } = this.state(now)
    const offset = this.offset.offset
    const latency = this.offset.latency()
    return {
      exchange: this.exchange,
      state,
      connected,
      instruments: this.books.size,
      booksLive,
      notLive: notLive(this.books.values()),
      lastMessageAgeMs: age,
      clockOffsetMs: offset,
      latencyMs: latency,
      rotations: 0,
      heldBytes: this.held.bytes,
      ...this.counters,
      ts: now
    }
  }

  /** venue.<exchange>: every WATCHDOG_MS, and at once when the state or the books live change. */
  publishHealth(): void {
    if (this.options.venueHealth === false) return
    const health = this.health()
    this.lastState = health.state
    this.lastBooksLive = health.booksLive
    this.options.sink.venue(health)
  }

  /** Health at once when the state moved or a book went live: checked once per turn, in flush(). */
  private stateMaybeChanged(): void {
    if (this.options.venueHealth === false) return
    const { state, booksLive } = this.state(this.now())
    if (state !== this.lastState || booksLive !== this.lastBooksLive) this.publishHealth()
  }
}

/** A live book's event, and its ticker when the top moved. */
function publishBook(exchange: string, state: BookState, depth: number, sink: MarketSink): void {
  const i = state.instrument
  const bids = state.book.bids.top(depth, state.baseSize)
  const asks = state.book.asks.top(depth, state.baseSize)
  const exchangeTime = state.exchangeTime
  const receivedAt = state.receivedAt
  const ts = exchangeTime ?? receivedAt
  const bid = bids[0]
  const ask = asks[0]
  // What the engine sizes against (in the book's base units: an inverse contract's lot at this price).
  const at = ask?.[0] ?? bid?.[0] ?? 1
  const lotSize = baseSize(i, at, i.lotSize)
  const minSize = baseSize(i, at, i.minSize)
  // Literals in the wire's field order (no spreads: this runs once per book per turn).
  sink.book({ exchange, symbol: i.symbol, ts, exchangeTime, receivedAt, bids, asks, lotSize, minSize, minNotional: i.minNotional })
  if (bid === undefined || ask === undefined || !state.topMoved(bid[0], bid[1], ask[0], ask[1])) return
  sink.ticker({ exchange, symbol: i.symbol, ts, exchangeTime, receivedAt, bid: bid[0], bidSize: bid[1], ask: ask[0], askSize: ask[1] })
}
