// The bus: where a publish gets its seq, enters history, sets the topic's last value and is handed to delivery.
import { randomBytes } from 'node:crypto'
import { matches } from './topics.ts'
import { decodeData, encodeDataShared } from './codec.ts'
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

// A topic's history starts this small and doubles as it fills: most topics never need much.
const FIRST_SLOTS = 16
const FIRST_BYTES = 1024

/**
 * A topic's state and its most recent events. The history holds each event's data MessagePack-
 * encoded in one growing byte ring, with its offset, size and time in typed arrays: no JS object
 * per retained event. Retained objects were what every young-generation GC had to copy, and the
 * bulk of its pause at 10,000 ticks/s; a replay decodes the few events it sends.
 */
class TopicState {
  seq = 0
  last: BusEvent | undefined = undefined
  readonly epoch = randomBytes(6).toString('hex')
  count = 0
  private head = 0 // slot of the oldest event
  private end = 0 // byte position after the newest event; positions grow forever, bytes wrap around
  private offsets: Float64Array
  private sizes: Uint32Array
  private stamps: Float64Array
  private bytes: Uint8Array

  constructor(private readonly capacity: number) {
    const slots = Math.min(capacity, FIRST_SLOTS)
    this.offsets = new Float64Array(slots)
    this.sizes = new Uint32Array(slots)
    this.stamps = new Float64Array(slots)
    this.bytes = new Uint8Array(capacity === 0 ? 0 : FIRST_BYTES)
  }

  /** Appends the newest event (seq is already this.seq; capacity > 0); `data` is only read during the call. */
  push(ts: number, data: Uint8Array): void {
    if (this.count === this.capacity) this.dropOldest()
    if (this.count === this.offsets.length || this.liveBytes() + data.length > this.bytes.length) this.grow(data.length)
    const slot = (this.head + this.count) % this.offsets.length
    this.offsets[slot] = this.end
    this.sizes[slot] = data.length
    this.stamps[slot] = ts
    this.write(this.end, data)
    this.end += data.length
    this.count++
  }

  /** Drops events older than `oldestTs` so expired history holds no memory. */
  expire(oldestTs: number): void {
    while (this.count > 0 && this.stamps[this.head] < oldestTs) this.dropOldest()
  }

  /** Seq of the oldest event held. */
  get oldestSeq(): number {
    return this.seq - this.count + 1
  }

  /** The i-th oldest event held, decoded. */
  at(topic: string, i: number): BusEvent {
    const slot = (this.head + i) % this.offsets.length
    return { topic, seq: this.oldestSeq + i, epoch: this.epoch, ts: this.stamps[slot], data: decodeData(this.read(slot)) }
  }

  private dropOldest(): void {
    this.head = (this.head + 1) % this.offsets.length
    this.count--
  }

  private liveBytes(): number {
    return this.count === 0 ? 0 : this.end - this.offsets[this.head]
  }

  /** Copies into the ring at a byte position, in two parts when it wraps. */
  private write(position: number, data: Uint8Array): void {
    const at = position % this.bytes.length
    const first = Math.min(data.length, this.bytes.length - at)
    if (first === data.length) this.bytes.set(data, at)
    else {
      this.bytes.set(data.subarray(0, first), at)
      this.bytes.set(data.subarray(first), 0)
    }
  }

  private read(slot: number): Uint8Array {
    return ringSlice(this.bytes, this.offsets[slot], this.sizes[slot])
  }

  /** Doubles what is full (slots, bytes or both) and lays the events out again from the start. */
  private grow(incoming: number): void {
    const { offsets, sizes, stamps, bytes, head, count } = this
    const slots = count === offsets.length ? Math.min(this.capacity, offsets.length * 2) : offsets.length
    let byteLength = bytes.length
    while (this.liveBytes() + incoming > byteLength) byteLength *= 2
    this.offsets = new Float64Array(slots)
    this.sizes = new Uint32Array(slots)
    this.stamps = new Float64Array(slots)
    this.bytes = new Uint8Array(byteLength)
    this.head = 0
    this.end = 0
    for (let i = 0; i < count; i++) {
      const slot = (head + i) % offsets.length
      this.offsets[i] = this.end
      this.sizes[i] = sizes[slot]
      this.stamps[i] = stamps[slot]
      this.bytes.set(ringSlice(bytes, offsets[slot], sizes[slot]), this.end)
      this.end += sizes[slot]
    }
  }
}

/** `size` bytes at a position of a ring: a view, or a copy when they wrap around its end. */
function ringSlice(bytes: Uint8Array, position: number, size: number): Uint8Array {
  const at = position % bytes.length
  if (at + size <= bytes.length) return bytes.subarray(at, at + size)
  const joined = new Uint8Array(size)
  joined.set(bytes.subarray(at))
  joined.set(bytes.subarray(0, size - (bytes.length - at)), bytes.length - at)
  return joined
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
    if (this.options.historySize > 0) state.push(ts, encodeDataShared(data))
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
    const oldest = state.oldestSeq
    if (oldest > position.seq + 1) return null
    const events: BusEvent[] = []
    for (let i = position.seq + 1 - oldest; i < state.count; i++) events.push(state.at(topic, i))
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
