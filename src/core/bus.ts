// The bus: where a publish gets its seq, enters history, sets the topic's last value and is handed to delivery.
import { randomBytes } from 'node:crypto'
import { matches } from './topics.ts'
import type { BusEvent, Position } from './protocol.ts'

export type MaybePromise<T> = T | Promise<T>

export interface TopicInfo {
  topic: string
  seq: number
  epoch: string
}

export interface BackplaneFigures {
  /** Times the subscriber connection came back and caught up. */
  reconnects: number
  /** Seq gaps seen on the pub/sub stream, and the events fetched from history to fill them. */
  gaps: number
  refetched: number
  /** Gaps that history could not fill: clients saw a seq jump. */
  unfilled: number
}

/**
 * What the connection layer needs from a bus. Methods return plain values where the bus can
 * answer at once (the in-memory bus always does) and promises where it must ask a backplane;
 * callers check for a thenable instead of awaiting, so the in-memory path costs no microtask.
 */
export interface Bus {
  /** Receives every committed event, in seq order per topic. Set once by the delivery layer. */
  onEvent: (event: BusEvent) => void
  /** Assigns the next seq, records the event, and hands it to onEvent. */
  publish(topic: string, data: unknown): MaybePromise<BusEvent>
  /** The topic's last event, if it has one. */
  last(topic: string): MaybePromise<BusEvent | undefined>
  /** The last event of every topic the pattern matches. */
  lastMatching(pattern: string): MaybePromise<BusEvent[]>
  /** Every event after `position`, oldest first, or null when some of them are gone (or the epoch differs). */
  since(topic: string, position: Position): MaybePromise<BusEvent[] | null>
  /** Every topic that holds a value. */
  topics(): MaybePromise<TopicInfo[]>
  /**
   * Local subscribers now need (or no longer need) this pattern: a backplane subscribes upstream,
   * and resolves once it receives the pattern's events, so a history read after that misses none.
   */
  watch(pattern: string): MaybePromise<void>
  unwatch(pattern: string): void
  /** False while cut off from the backplane. */
  readonly ready: boolean
  /** How the backplane copes, for /metrics; absent on a bus without one. */
  readonly backplane?: BackplaneFigures
  close(): MaybePromise<void>
}

export interface MemoryBusOptions {
  historySize: number
  /** Milliseconds an event stays recoverable. */
  historyTtl: number
}

/** A topic's state: a ring buffer of its most recent events. */
class TopicState {
  seq = 0
  last: BusEvent | undefined = undefined
  readonly epoch = randomBytes(6).toString('hex')
  readonly ring: (BusEvent | undefined)[]
  head = 0 // index of the oldest event
  count = 0

  constructor(capacity: number) {
    this.ring = new Array(capacity)
  }

  push(event: BusEvent): void {
    const capacity = this.ring.length
    if (capacity === 0) return
    if (this.count < capacity) {
      this.ring[(this.head + this.count) % capacity] = event
      this.count++
    } else {
      this.ring[this.head] = event
      this.head = (this.head + 1) % capacity
    }
  }

  /** Drops events older than `oldestTs` so expired history holds no memory. */
  expire(oldestTs: number): void {
    const capacity = this.ring.length
    while (this.count > 0 && this.ring[this.head]!.ts < oldestTs) {
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % capacity
      this.count--
    }
  }

  at(i: number): BusEvent {
    return this.ring[(this.head + i) % this.ring.length]!
  }
}

/** The embedded default: one process, everything in memory, every answer synchronous. */
export class MemoryBus implements Bus {
  onEvent: (event: BusEvent) => void = () => {}
  readonly ready = true
  private readonly state = new Map<string, TopicState>()

  constructor(private readonly options: MemoryBusOptions) {}

  publish(topic: string, data: unknown): BusEvent {
    let state = this.state.get(topic)
    if (state === undefined) {
      state = new TopicState(this.options.historySize)
      this.state.set(topic, state)
    }
    const ts = Date.now()
    const event: BusEvent = { topic, seq: ++state.seq, epoch: state.epoch, ts, data }
    state.last = event
    state.expire(ts - this.options.historyTtl)
    state.push(event)
    this.onEvent(event)
    return event
  }

  last(topic: string): BusEvent | undefined {
    return this.state.get(topic)?.last
  }

  lastMatching(pattern: string): BusEvent[] {
    const found: BusEvent[] = []
    for (const [topic, state] of this.state) if (state.last !== undefined && matches(pattern, topic)) found.push(state.last)
    return found
  }

  since(topic: string, position: Position): BusEvent[] | null {
    const state = this.state.get(topic)
    if (state === undefined || state.epoch !== position.epoch || position.seq > state.seq) return null
    if (position.seq === state.seq) return []
    state.expire(Date.now() - this.options.historyTtl)
    if (state.count === 0) return null
    const oldest = state.at(0).seq
    if (oldest > position.seq + 1) return null
    const events: BusEvent[] = []
    for (let i = position.seq + 1 - oldest; i < state.count; i++) events.push(state.at(i))
    return events
  }

  topics(): TopicInfo[] {
    const out: TopicInfo[] = []
    for (const [topic, state] of this.state) if (state.last !== undefined) out.push({ topic, seq: state.seq, epoch: state.epoch })
    return out
  }

  watch(): void {}
  unwatch(): void {}
  close(): void {}
}
