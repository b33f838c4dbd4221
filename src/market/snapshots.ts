// Connections whose books start from a REST snapshot (SnapshotConnection: Binance, and OKX past its
// WebSocket depth) and their queue of snapshots: asked one at a time, spaced by the venue's request
// limit, backed off after a failure, and dropped with the socket they were asked for.
import type { BookState } from './book-state.js'
import { backoffMs, type Clock, timeoutSignal } from './clock.js'
import { VenueConnection } from './connection.js'
import { readJson, TooLargeError } from './rest.js'

/** A snapshot's request, answer read in full, or it is given up and retried after the backoff. */
const SNAPSHOT_TIMEOUT_MS = 10_000

/** A connection whose books start from a REST snapshot: its venue says where one is and how to join it. */
export abstract class SnapshotConnection extends VenueConnection {
  /** No REST snapshot is asked for before this (a venue's rate-limit answer). */
  protected restPausedUntil = 0
  /** Least time between two REST snapshots (the venue's request limit). */
  protected readonly snapshotSpacingMs: number = 0
  /** Books waiting for a REST snapshot, asked one at a time. */
  private readonly snapshots = new SnapshotQueue<BookState>({
    exchange: () => this.exchange,
    session: () => this.session,
    clock: this.clock,
    fetch: this.fetch,
    bufferBytes: this.bufferBytes,
    counters: this.counters,
    log: this.options.log,
    spacingMs: () => this.snapshotSpacingMs,
    pausedUntil: () => this.restPausedUntil,
    url: (state) => this.snapshotUrl(state),
    pace: (res) => this.pace(res),
    wants: (state) => this.wantsSnapshot(state),
    apply: (state, answer, receivedAt) => this.applySnapshot(state, answer, receivedAt),
    invalid: (state) => this.resync(state, 'invalid')
  })

  /** Where a book's REST snapshot is. */
  protected abstract snapshotUrl(state: BookState): string

  /** A book's REST snapshot arrived: join it to what the stream held. Throwing counts it invalid. */
  protected abstract applySnapshot(state: BookState, answer: unknown, receivedAt: number): void

  /** Whether a book still waits for its REST snapshot (a WebSocket one may have come meanwhile). */
  protected wantsSnapshot(_state: BookState): boolean {
    return true
  }

  /** Reads a venue's rate-limit answer on a snapshot response (sets restPausedUntil). */
  protected pace(_res: Response): void {}

  /** Queues a book's REST snapshot, once. */
  protected requestSnapshot(state: BookState): void {
    this.snapshots.request(state)
  }
}

/** What the queue reads and writes of one book. */
export interface SnapshotBook {
  readonly instrument: { readonly venueSymbol: string }
  /** The book is whole and in sequence. */
  live: boolean
  /** Failed snapshot requests in a row (their retries back off). */
  snapshotFailures: number
}

/** The connection a queue works for: its venue's rules for snapshots, and where failures are counted. */
export interface SnapshotVenue<B extends SnapshotBook> {
  exchange(): string
  /** Counts socket opens and closes: a snapshot asked for one socket is dropped once it is gone. */
  session(): number
  /** Reads the time and spaces the requests. */
  clock: Clock
  fetch: typeof fetch
  /** Largest snapshot answer read (VENUE_BUFFER_MB). */
  bufferBytes: number
  counters: { overflows: number; errors: number }
  log?: { warn(obj: object, msg: string): void }
  /** Least time between two snapshots (the venue's request limit). */
  spacingMs(): number
  /** No snapshot is asked for before this (a venue's rate-limit answer). */
  pausedUntil(): number
  url(book: B): string
  /** Reads a venue's rate-limit answer on a snapshot response. */
  pace(res: Response): void
  /** Whether a book still waits for its snapshot (a WebSocket one may have come meanwhile). */
  wants(book: B): boolean
  /** Joins a snapshot to what the stream held; throwing counts it invalid. */
  apply(book: B, answer: unknown, receivedAt: number): void
  /** A snapshot that could not be used: the book resyncs. */
  invalid(book: B): void
}

export class SnapshotQueue<B extends SnapshotBook> {
  private queue: B[] = []
  /** The socket session the queued books were asked for. */
  private queuedFor = -1
  private running = false

  constructor(private readonly venue: SnapshotVenue<B>) {}

  /** Queues a book's snapshot, once; what was asked for an earlier socket is not asked again. */
  request(book: B): void {
    if (this.queuedFor !== this.venue.session()) {
      this.queue = []
      this.queuedFor = this.venue.session()
    }
    if (!this.queue.includes(book)) this.queue.push(book)
    void this.run()
  }

  /**
   * One snapshot at a time: a full depth costs request weight the venue limits. A book whose last
   * snapshot failed (no answer, or one it could not use) waits before the next one, 1 s doubling to
   * 30 s, so a broken venue is not hammered and the loop always yields.
   */
  private async run(): Promise<void> {
    if (this.running) return
    this.running = true
    const venue = this.venue
    try {
      const session = venue.session()
      for (let book = this.queue.shift(); book !== undefined && session === venue.session(); book = this.queue.shift()) {
        const backoff = book.snapshotFailures > 0 ? backoffMs(book.snapshotFailures) : venue.spacingMs()
        const wait = Math.max(backoff, venue.pausedUntil() - venue.clock.now())
        if (wait > 0) {
          await new Promise<void>((r) => venue.clock.timeout(wait, r))
          if (session !== venue.session()) break
        }
        if (!venue.wants(book)) continue
        const symbol = book.instrument.venueSymbol
        let answer: unknown
        // The request's deadline on the connectors' clock: the answer read in full within 10 s.
        const deadline = timeoutSignal(venue.clock, SNAPSHOT_TIMEOUT_MS)
        try {
          const res = await venue.fetch(venue.url(book), { signal: deadline.signal })
          venue.pace(res)
          if (!res.ok) throw new Error(`HTTP ${res.status}`)
          answer = await readJson(res, venue.bufferBytes, 'VENUE_BUFFER_MB')
        } catch (err) {
          if (err instanceof TooLargeError) venue.counters.overflows++
          else venue.counters.errors++
          venue.log?.warn({ exchange: venue.exchange(), symbol, err: (err as Error).message }, 'depth snapshot failed: retrying')
          book.snapshotFailures++
          this.queue.push(book)
          continue
        } finally {
          deadline.cancel()
        }
        if (session !== venue.session()) break
        if (!venue.wants(book)) continue
        try {
          venue.apply(book, answer, venue.clock.now())
        } catch {
          // As a message that throws: counted, that book resyncs; never a rejection that ends the process.
          venue.invalid(book)
        }
        book.snapshotFailures = book.live ? 0 : book.snapshotFailures + 1
      }
    } finally {
      this.running = false
    }
  }
}
