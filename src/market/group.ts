// One venue's sockets. Its instruments are split across as many connections as the venue's limit
// per socket asks (its room's limits), and a socket the venue will close at a fixed age (24 h on
// one venue) is replaced before that: a second connection subscribes the same books and takes over only
// once every one of them is live, so a rotation publishes no gap. venue.<exchange> is the merge.
import { type ConnectionOptions, type VenueConnection, WATCHDOG_MS } from './connection.js'
import { type Clock, liveClock, type Timer } from './clock.js'
import { type MarketSink, type VenueCounters, type VenueHealth, type VenueState, ZERO_COUNTERS as ZERO } from './events.js'
import { type Exchange, VENUES } from './venues/index.js'

/** Rotate this long before the venue's own close. */
const ROTATE_MARGIN_MS = 30 * 60_000
/** A replacement that is not live by then is dropped and tried again later. */
const STANDBY_TIMEOUT_MS = 120_000
const STANDBY_RETRY_MS = 5 * 60_000
const COUNTERS = Object.keys(ZERO) as (keyof VenueCounters)[]

export interface GroupOptions extends ConnectionOptions {
  /** Instruments per socket; default the venue's (tests use 1). */
  perConnection?: number
  /** Socket age at which a replacement is opened; default the venue's lifetime less 30 min (tests use ms). */
  rotateAfterMs?: number
}

interface Shard {
  feed: VenueConnection
  /** The replacement being brought up, publishing nothing until every book is live. */
  next: VenueConnection | null
  nextStartedAt: number
  /** No replacement is tried before this (after one that failed to go live). */
  retryAt: number
}

export class VenueGroup {
  private readonly shards: Shard[] = []
  private readonly shardOf = new Map<VenueConnection, Shard>()
  /** Counters of the sockets rotated out, so the venue's totals never go back. */
  private readonly retired: VenueCounters = { ...ZERO }
  private rotations = 0
  private readonly rotateAfterMs: number | null
  private readonly clock: Clock
  private timer: Timer | null = null
  private lastPublishedAt = Number.NEGATIVE_INFINITY
  private lastState: VenueState | null = null
  private lastBooksLive = -1

  constructor(
    readonly exchange: Exchange,
    private readonly options: GroupOptions
  ) {
    this.clock = options.clock ?? liveClock
    const limits = VENUES[exchange].limits
    this.rotateAfterMs = options.rotateAfterMs ?? (limits.lifetimeMs === null ? null : limits.lifetimeMs - ROTATE_MARGIN_MS)
    const per = options.perConnection ?? limits.instruments
    for (let i = 0; i < options.instruments.length; i += per) {
      const shard: Shard = { feed: null as unknown as VenueConnection, next: null, nextStartedAt: 0, retryAt: 0 }
      shard.feed = this.feed(shard, options.instruments.slice(i, i + per))
      this.shards.push(shard)
    }
  }

  start(): void {
    for (const shard of this.shards) shard.feed.start()
    if (this.rotateAfterMs !== null) {
      this.timer = this.clock.interval(Math.min(1000, this.rotateAfterMs), () => this.checkRotations())
    }
  }

  stop(): void {
    this.timer?.cancel()
    for (const shard of this.shards) {
      shard.feed.stop()
      shard.next?.stop()
    }
  }

  /** The venue's health: its sockets' merged (`fresh`, one socket's health just read, is not read again). */
  health(fresh?: { feed: VenueConnection; health: VenueHealth }): VenueHealth {
    const all = this.shards.map((s) => (s.feed === fresh?.feed ? fresh.health : s.feed.health()))
    if (all.length === 1) {
      // One socket (most venues): its health is the venue's, with the rotated-out sockets' counts.
      const merged: VenueHealth = { ...all[0], rotations: this.rotations, ts: this.clock.now() }
      for (const key of COUNTERS) merged[key] += this.retired[key]
      return merged
    }
    const merged: VenueHealth = { ...all[0], ...this.retired, rotations: this.rotations, ts: this.clock.now() }
    const down = all.filter((h) => h.state === 'down').length
    merged.state = down === all.length ? 'down' : down > 0 || all.some((h) => h.state !== 'up') ? 'degraded' : 'up'
    merged.connected = all.every((h) => h.connected)
    merged.instruments = sum(all, (h) => h.instruments)
    merged.booksLive = sum(all, (h) => h.booksLive)
    merged.notLive = all.flatMap((h) => h.notLive)
    merged.heldBytes = sum(all, (h) => h.heldBytes)
    merged.lastMessageAgeMs = pick(all, (h) => h.lastMessageAgeMs, Math.max)
    merged.clockOffsetMs = pick(all, (h) => h.clockOffsetMs, Math.min)
    merged.latencyMs = pick(all, (h) => h.latencyMs, Math.max)
    for (const key of COUNTERS) merged[key] = this.retired[key] + sum(all, (h) => h[key])
    return merged
  }

  private feed(shard: Shard, instruments: ConnectionOptions['instruments']): VenueConnection {
    const sink: MarketSink = {
      book: (e) => {
        if (this.passes(feed)) this.options.sink.book(e)
      },
      ticker: (e) => {
        if (this.passes(feed)) this.options.sink.ticker(e)
      },
      // One socket's health is part of the venue's: the group publishes the merge.
      venue: (health) => this.publishHealth({ feed, health })
    }
    const feed = VENUES[this.exchange].connection({ ...this.options, instruments, sink })
    this.shardOf.set(feed, shard)
    return feed
  }

  /** Whether this socket's books go out: its shard's socket, or the replacement once every book is live. */
  private passes(feed: VenueConnection): boolean {
    const shard = this.shardOf.get(feed)
    if (shard === undefined) return false // a socket rotated out: its last turn's books are not news
    if (feed === shard.next) {
      if (!feed.allBooksLive()) return false
      this.promote(shard)
    }
    return true
  }

  /**
   * venue.<exchange>: every WATCHDOG_MS (each socket ticks; merged at most that often) and at once
   * on a change of state or of the books live.
   */
  private publishHealth(fresh: { feed: VenueConnection; health: VenueHealth }): void {
    const health = this.health(fresh)
    if (health.state === this.lastState && health.booksLive === this.lastBooksLive && this.clock.now() - this.lastPublishedAt < WATCHDOG_MS * 0.8) return
    this.lastState = health.state
    this.lastBooksLive = health.booksLive
    this.lastPublishedAt = this.clock.now()
    this.options.sink.venue(health)
  }

  private checkRotations(): void {
    const now = this.clock.now()
    for (const shard of this.shards) {
      if (shard.next !== null) {
        if (now - shard.nextStartedAt < STANDBY_TIMEOUT_MS) continue
        this.options.log?.warn({ exchange: this.exchange }, 'replacement socket not live in time: keeping the old one')
        this.drop(shard.next)
        shard.next = null
        shard.retryAt = now + STANDBY_RETRY_MS
        continue
      }
      const age = shard.feed.connectionAgeMs()
      if (age === null || now < shard.retryAt || (age < (this.rotateAfterMs as number) && !shard.feed.closingSoon)) continue
      shard.next = this.feed(shard, shard.feed.instruments)
      shard.nextStartedAt = now
      shard.next.start()
    }
  }

  /** The replacement has every book live: it publishes from now on, the old socket closes. */
  private promote(shard: Shard): void {
    const old = shard.feed
    shard.feed = shard.next as VenueConnection
    shard.next = null
    this.rotations++
    this.drop(old)
    this.options.log?.info({ exchange: this.exchange, rotations: this.rotations }, 'socket rotated before the venue closes it')
  }

  private drop(feed: VenueConnection): void {
    feed.stop()
    this.shardOf.delete(feed)
    for (const key of COUNTERS) this.retired[key] += feed.counters[key]
  }
}

function sum(all: VenueHealth[], value: (h: VenueHealth) => number): number {
  let n = 0
  for (const h of all) n += value(h)
  return n
}

function pick(all: VenueHealth[], value: (h: VenueHealth) => number | null, choose: (a: number, b: number) => number): number | null {
  let out: number | null = null
  for (const h of all) {
    const v = value(h)
    if (v !== null) out = out === null ? v : choose(out, v)
  }
  return out
}
