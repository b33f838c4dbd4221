// One instrument's book as a venue connection keeps it: the L2 book, where it stands in the venue's
// sequence, what it holds while its snapshot is on its way, and how soon it asks again after a resync.
import { baseSize, type Instrument } from './instruments.js'
import { OrderBook, type SizeOf } from './book.js'
import { backoffMs, type Clock, type Timer } from './clock.js'

/** A message kept for a book until its snapshot comes (Binance): its text, parsed again when joined. */
export interface PendingMessage {
  text: string
  levels: number
}

/** One instrument's book and where it stands in the venue's sequence. */
export class BookState {
  readonly book: OrderBook
  /** The book is whole and in sequence: only a live book is published. */
  live = false
  /** Last applied sequence number (Binance update id, OKX seqId); -1 before a snapshot. */
  seq = -1
  exchangeTime: number | null = null
  receivedAt = 0
  /** Binance's diffs that arrived before the snapshot, counted in the connection's held bytes. */
  pending: PendingMessage[] = []
  pendingLevels = 0
  pendingBytes = 0
  /** Binance: a diff has been joined to the snapshot, so each next one must follow the last. */
  joined = false
  /** Binance: failed snapshot requests in a row (their retries back off). */
  snapshotFailures = 0
  dirty = false
  /** A published level's size in base units (a spot size as it is). */
  readonly baseSize: SizeOf | undefined
  /** The top of book the last ticker said (NaN before the first: the next top always differs). */
  private lastBid = Number.NaN
  private lastBidSize = Number.NaN
  private lastAsk = Number.NaN
  private lastAskSize = Number.NaN
  /** Resyncs in a row, each within RESYNC_STREAK_MS of the last: how long the next one waits. */
  private resyncStreak = 0
  private lastResyncAt = Number.NEGATIVE_INFINITY
  private resubscribeTimer: Timer | null = null

  constructor(
    readonly instrument: Instrument,
    /** What the connection holds for all its books (VenueFeed.heldBytes). */
    private readonly held: { bytes: number },
    /** The venue's checksum is over its levels' text: the book keeps it. */
    levelTexts = false
  ) {
    this.book = new OrderBook(levelTexts)
    const inverse = instrument.kind === 'inverse-perp' || instrument.kind === 'inverse-future'
    this.baseSize = instrument.contractSize === 1 && !inverse ? undefined : (price, size) => baseSize(instrument, price, size)
  }

  /** Keeps a message until the snapshot; the oldest go first past MAX_PENDING messages or MAX_PENDING_LEVELS levels. */
  hold(message: PendingMessage): void {
    this.pending.push(message)
    this.pendingLevels += message.levels
    this.pendingBytes += message.text.length
    this.held.bytes += message.text.length
    while (this.pending.length > MAX_PENDING || this.pendingLevels > MAX_PENDING_LEVELS) {
      const old = this.pending.shift() as PendingMessage
      this.pendingLevels -= old.levels
      this.pendingBytes -= old.text.length
      this.held.bytes -= old.text.length
    }
  }

  /**
   * After a resync, asks again for the book: at once, but a book that keeps failing (resyncs within
   * RESYNC_STREAK_MS of each other) later and later, 1 s doubling to 30 s: a venue that keeps sending
   * what fails is not flooded with (rate-limited) subscribe requests. A later resync replaces the wait.
   */
  resubscribeAfterResync(clock: Clock, resubscribe: () => void): void {
    const now = clock.now()
    this.resyncStreak = now - this.lastResyncAt < RESYNC_STREAK_MS ? this.resyncStreak + 1 : 0
    this.lastResyncAt = now
    this.resubscribeTimer?.cancel()
    this.resubscribeTimer = null
    if (this.resyncStreak === 0) {
      resubscribe()
      return
    }
    this.resubscribeTimer = clock.timeout(backoffMs(this.resyncStreak), () => {
      this.resubscribeTimer = null
      resubscribe()
    })
  }

  /** Whether this top differs from the last one a ticker said; if so, it is the last one now. */
  topMoved(bid: number, bidSize: number, ask: number, askSize: number): boolean {
    if (bid === this.lastBid && bidSize === this.lastBidSize && ask === this.lastAsk && askSize === this.lastAskSize) return false
    this.lastBid = bid
    this.lastBidSize = bidSize
    this.lastAsk = ask
    this.lastAskSize = askSize
    return true
  }

  reset(): void {
    this.book.clear()
    this.live = false
    this.seq = -1
    this.joined = false
    this.pending = []
    this.pendingLevels = 0
    this.held.bytes -= this.pendingBytes
    this.pendingBytes = 0
    this.lastBid = Number.NaN // a resynced book's first ticker is published whatever it says
  }
}

/** Messages and their levels kept for one book while its snapshot is on its way. */
const MAX_PENDING = 1000
const MAX_PENDING_LEVELS = 100_000

/** Resyncs of one book closer together than this make a streak, and the streak backs off. */
const RESYNC_STREAK_MS = 10_000

/** How many of these books are live. */
export function countLive(books: Iterable<BookState>): number {
  let n = 0
  for (const state of books) if (state.live) n++
  return n
}

/** The topic symbols of the books not live (resyncing, or waiting for their snapshot). */
export function notLive(books: Iterable<BookState>): string[] {
  const out: string[] = []
  for (const state of books) if (!state.live) out.push(state.instrument.symbol)
  return out
}
