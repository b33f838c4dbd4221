// What the live layer counts for /metrics and PM2: plain numbers bumped on the hot path (no
// allocation, no labels), read and labelled only when scraped.
import { Histogram } from './histogram.js'

// Close codes counted by their number: RFC 6455's (1000-1015), the server's own (4008, 4029) and
// the SDK's for a server gone silent (4000). Clients may close with any of 3000-4999; the rest
// count as 'other', so they cannot mint /metrics series.
const NAMED_CLOSE_CODES: ReadonlySet<number> = new Set([...Array.from({ length: 16 }, (_, i) => 1000 + i), 4000, 4008, 4029])

export class LiveFigures {
  connects = 0
  /** Disconnects by close code (or 'other'); written once per connection, not per frame. */
  readonly disconnects = new Map<number | 'other', number>()
  /** Frames received by type; `invalid` ones did not decode or validate. */
  readonly framesIn = { request: 0, ping: 0, subscribe: 0, unsubscribe: 0, publish: 0, invalid: 0 }
  /** Frames sent by type; an event counts once per subscriber it was written to. */
  readonly framesOut = { event: 0, snapshot: 0, ack: 0, response: 0, error: 0, pong: 0 }
  bytesIn = 0
  bytesOut = 0
  /** (connection, pattern) pairs held by live connections. */
  subscriptions = 0
  /** Slow consumers closed with 4008, and congestion episodes under the conflate policy. */
  slowClosed = 0
  slowConflated = 0
  /** Events held back while their connection was congested (only each topic's latest is sent). */
  conflatedEvents = 0
  /** From the bus handing an event to delivery to the write of its last subscriber's frame. */
  readonly publishToSend = new Histogram()

  disconnected(code: number): void {
    const key = NAMED_CLOSE_CODES.has(code) ? code : 'other'
    this.disconnects.set(key, (this.disconnects.get(key) ?? 0) + 1)
  }
}

/** Subscription filters: the distinct ones held, what one event costs them (field reads), evaluations since start. */
export interface FilterFigures {
  held: number
  cost: number
  evaluations: number
}

/** Delta frames: made since start (at most one per event and codec), and the bytes of delta state held. */
export interface DeltaFigures {
  made: number
  stateBytes: number
}
