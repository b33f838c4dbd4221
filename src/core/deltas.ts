// Delta frames (docs/PROTOCOL.md "Deltas"): per topic, the last event sent to delta subscribers,
// encoded per codec, and per connection the last event of each topic it was sent. An event's delta
// is made at most once per codec, against its topic's last event, and shared by every connection
// that holds that event (with or without a filter); any other connection gets the whole event.
// Every byte of this state is counted against one budget.
import { createDelta, createStringDelta } from 'fossil-delta'
import { encodeData, encodeFrame } from './codec.js'
import type { BusEvent } from './protocol.js'

/** A whole event every this many of a topic, so a receiver that lost its way is back within it. */
export const DELTA_FULL_EVERY = 32
/** Topics one connection remembers the last event of; past it, its events of other topics go whole. */
const TOPICS_PER_RECEIVER = 10_000
// Bytes counted for what holds a topic's state or a connection's entry besides the encodings and
// the topic name: the objects and map entries (measured on Node 20: ~120 and ~30 bytes of heap).
const TOPIC_OVERHEAD = 160
const ENTRY_OVERHEAD = 64

interface TopicState {
  /** Names this event among all the deltas' events: a connection holds it when its entry says this id. */
  id: number
  seq: number
  epoch: string
  count: number
  msgpack: Uint8Array | null
  json: string | null
  bytes: number
}

export class Deltas<R extends object> {
  /** Per topic its last event; the map's order is the order of their last events (the oldest goes first). */
  private readonly topics = new Map<string, TopicState>()
  /** Per connection, per topic, the id of the last event sent to it through a delta subscription. */
  private readonly sent = new Map<R, Map<string, number>>()
  private nextId = 1
  /** Bytes counted now, of `limit`. */
  used = 0
  /** Deltas made since start (one per event and codec at most). */
  made = 0
  // The event being delivered (between begin and end) and what is made of it.
  private event: BusEvent | null = null
  private previous: TopicState | undefined = undefined
  private state: TopicState | null = null
  private due = true
  private msgpackFrame: Buffer | null | undefined = undefined
  private jsonFrame: Buffer | null | undefined = undefined

  constructor(readonly limit: number) {}

  /** Topics and connections remembered (for tests and /metrics). */
  get size(): { topics: number; receivers: number } {
    return { topics: this.topics.size, receivers: this.sent.size }
  }

  /** An event some delta subscription delivers: it becomes its topic's last. */
  begin(event: BusEvent): void {
    const previous = this.topics.get(event.topic)
    if (previous !== undefined) this.drop(event.topic, previous)
    const count = (previous?.count ?? 0) + 1
    const state: TopicState = { id: this.nextId++, seq: event.seq, epoch: event.epoch, count, msgpack: null, json: null, bytes: 0 }
    this.event = event
    this.previous = previous
    this.state = this.fits(TOPIC_OVERHEAD + event.topic.length) ? state : null
    if (this.state !== null) {
      state.bytes = TOPIC_OVERHEAD + event.topic.length
      this.used += state.bytes
      this.topics.set(event.topic, state)
    }
    this.due = previous === undefined || previous.epoch !== event.epoch || previous.seq >= event.seq || count % DELTA_FULL_EVERY === 0
    this.msgpackFrame = undefined
    this.jsonFrame = undefined
  }

  /**
   * The event for one connection: its delta frame when the connection holds the topic's previous
   * event and a delta is due, else null (send it whole). Either way the connection now holds this
   * event, and its encoding is kept as the next delta's base. `whole`: it goes whole regardless
   * (the connection's queue conflates).
   */
  frame(binary: boolean, receiver: R, whole: boolean): Buffer | null {
    const event = this.event!
    const held = this.sent.get(receiver)?.get(event.topic)
    const delta = binary ? this.msgpackDelta(event) : this.jsonDelta(event)
    this.record(receiver, event.topic)
    return !whole && delta !== null && held === this.previous!.id ? delta : null
  }

  /** This event's MessagePack delta (made once), null when none is due; its encoding is kept either way. */
  private msgpackDelta(event: BusEvent): Buffer | null {
    if (this.msgpackFrame === undefined) {
      const bytes = copied(event.encoded ?? encodeData(event.data))
      if (this.keep(bytes.length)) this.state!.msgpack = bytes
      const previous = this.previous
      this.msgpackFrame = this.due || previous === undefined || previous.msgpack === null ? null : this.delta('msgpack', createDelta(previous.msgpack, bytes))
    }
    return this.msgpackFrame
  }

  /** The same for JSON: a string delta of the data's JSON text. */
  private jsonDelta(event: BusEvent): Buffer | null {
    if (this.jsonFrame === undefined) {
      const text = JSON.stringify(event.data)
      if (this.keep(text.length * 2)) this.state!.json = text // counted at two bytes a character
      const previous = this.previous
      this.jsonFrame = this.due || previous === undefined || previous.json === null ? null : this.delta('json', createStringDelta(previous.json, text))
    }
    return this.jsonFrame
  }

  /** The event is delivered: nothing of it is held but what was kept. */
  end(): void {
    this.event = null
    this.previous = undefined
    this.state = null
    this.msgpackFrame = undefined
    this.jsonFrame = undefined
  }

  /** A connection no longer subscribes with deltas (or closed): its entries go. */
  forget(receiver: R): void {
    const topics = this.sent.get(receiver)
    if (topics === undefined) return
    for (const topic of topics.keys()) this.used -= ENTRY_OVERHEAD + topic.length
    this.used -= ENTRY_OVERHEAD
    this.sent.delete(receiver)
  }

  /** No delta subscription is left: everything goes. */
  clear(): void {
    this.topics.clear()
    this.sent.clear()
    this.used = 0
  }

  private delta(codec: 'msgpack' | 'json', delta: Uint8Array | string): Buffer {
    const event = this.event!
    this.made++
    return encodeFrame(codec, { type: 'event', topic: event.topic, seq: event.seq, epoch: event.epoch, ts: event.ts, base: this.previous!.seq, delta })
  }

  /** Counts `bytes` more of this event's state when they fit (older topics make room); else its topic starts over (the next event goes whole). */
  private keep(bytes: number): boolean {
    const state = this.state
    if (state === null) return false
    if (!this.fits(bytes)) {
      this.drop(this.event!.topic, state)
      this.state = null
      return false
    }
    state.bytes += bytes
    this.used += bytes
    return true
  }

  /** Whether `bytes` more fit, once the topics with the oldest last events (not the current one) are let go. */
  private fits(bytes: number): boolean {
    if (bytes > this.limit) return false
    for (const [topic, state] of this.topics) {
      if (this.used + bytes <= this.limit || state === this.state) break
      this.drop(topic, state)
    }
    return this.used + bytes <= this.limit
  }

  private drop(topic: string, state: TopicState): void {
    this.topics.delete(topic)
    this.used -= state.bytes
  }

  /** The receiver now holds this event (when its state is kept: else it holds nothing a delta could be against). */
  private record(receiver: R, topic: string): void {
    let topics = this.sent.get(receiver)
    const id = this.state?.id
    if (topics?.has(topic)) {
      if (id !== undefined) topics.set(topic, id)
      else {
        topics.delete(topic)
        this.used -= ENTRY_OVERHEAD + topic.length
      }
      return
    }
    if (id === undefined) return
    if (topics === undefined) {
      if (this.used + 2 * ENTRY_OVERHEAD + topic.length > this.limit) return
      topics = new Map()
      this.sent.set(receiver, topics)
      this.used += ENTRY_OVERHEAD
    }
    if (topics.size >= TOPICS_PER_RECEIVER || this.used + ENTRY_OVERHEAD + topic.length > this.limit) return
    topics.set(topic, id)
    this.used += ENTRY_OVERHEAD + topic.length
  }
}

/** A view of a larger buffer (a Redis reply) would keep all of it: the bytes are copied out. */
const copied = (bytes: Uint8Array): Uint8Array => (bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice())
