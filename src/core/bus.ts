// The bus: where a publish gets its seq, enters history, sets the topic's last value and is handed to delivery.
import { randomBytes } from 'node:crypto'
import { isPattern, TopicTree, Work } from './topics.js'
import { encodeDataShared, StoredEvent } from './codec.js'
import { Tally } from './tally.js'
import type { MaybePromise } from './maybe.js'
import type { JournalRecord } from './journal.js'
import { ErrorCode, LiveError, type BusEvent, type Position } from './protocol.js'

export type BusListener = (event: BusEvent) => void

/** A replay read in pages yields this when it must read its next page: wait for `ready`, then iterate on. */
export class PageRead {
  constructor(readonly ready: Promise<void>) {}
}

/**
 * The events a recovery replays: how many (at most: a filter, or a backplane's door, skips some),
 * and each in turn (with a PageRead between pages read from a backplane).
 */
export interface Replay<T = BusEvent | PageRead> extends Iterable<T> {
  readonly length: number
}

/** A replay read lazily fell behind history: the events it promised are gone. */
export class HistoryOverrun extends Error {}

/** Listeners of a bus: events go to each, in the order they subscribed. */
export class Listeners {
  private list: BusListener[] = []

  add(listener: BusListener): () => void {
    this.list = [...this.list, listener]
    return () => {
      this.list = this.list.filter((l) => l !== listener)
    }
  }

  emit(event: BusEvent): void {
    const list = this.list
    for (let i = 0; i < list.length; i++) list[i](event)
  }
}

export interface TopicInfo {
  topic: string
  seq: number
  epoch: string
}

export interface BackplaneCounters {
  /** Times the subscriber connection came back and caught up. */
  reconnects: number
  /** Seq gaps seen on the pub/sub stream, and the events fetched from history to fill them. */
  gaps: number
  refetched: number
  /** Gaps that history could not fill: clients saw a seq jump. */
  unfilled: number
  /** Messages on the stream that Redis never published (another epoch, a seq beyond the topic's): dropped. */
  refused: number
  /** Events of other processes that this process's admission check refused (Bus.admit): dropped. */
  rejected: number
}

/** Whether an event that came from another process may enter this one (it reads `data` only for the topics it checks). */
export type Admission = (event: BusEvent) => boolean

/**
 * What the connection layer needs from a bus. Methods return plain values where the bus can
 * answer at once (the in-memory bus always does) and promises where it must ask a backplane;
 * callers check for a thenable instead of awaiting, so the in-memory path costs no microtask.
 */
export interface Bus {
  /** Calls `listener` with every committed event, in seq order per topic; returns the function that stops it. */
  subscribe(listener: BusListener): () => void
  /** Assigns the next seq, records the event, and hands it to onEvent. */
  publish(topic: string, data: unknown): MaybePromise<BusEvent>
  /** The topic's last event, if it has one. */
  last(topic: string): MaybePromise<BusEvent | undefined>
  /** The last event of every topic the pattern matches, found through a topic index whose visits are spent from `work`. */
  lastMatching(pattern: string, work?: Work): MaybePromise<BusEvent[]>
  /**
   * Every event after `position`, oldest first, or null when some of them are gone (or the epoch
   * differs). It may be read lazily, as a replay is written: iterating throws HistoryOverrun when
   * history moved past what was not read yet.
   */
  since(topic: string, position: Position): MaybePromise<Replay | null>
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
  readonly backplane?: BackplaneCounters
  /**
   * A backplane's door: events other processes published reach nothing here (clients, in-process
   * subscribers) unless `check` admits them. Absent on a bus without one: all it delivers was
   * published in this process, through the publish hooks.
   */
  admit?(check: Admission): void
  close(): MaybePromise<void>
}

export interface MemoryBusOptions {
  historySize: number
  /** Milliseconds an event stays recoverable. */
  historyTtl: number
  /** Milliseconds a topic with no publish and no subscriber of its own name is kept; then it is freed. */
  topicTtl?: number
  /** Topics held at once; a publish to a new one past this answers `unavailable`. */
  maxTopics?: number
  /** True while the process is at its memory limit: nothing is published then. */
  overMemory?: () => boolean
  /** Bytes of history and last values held in all; past it no new topic, and a publishing topic drops its history. */
  busMemoryBytes?: number
}

// What a topic costs beyond its history and last value (state object, maps, index node), roughly.
const TOPIC_OVERHEAD = 1024

// Idle topics are looked for this often at most (and at least every minute).
const SWEEP_MAX_MS = 60_000

// A topic's history starts this small and doubles as it fills: most topics never need much.
const FIRST_SLOTS = 16
const FIRST_BYTES = 1024

/**
 * A topic's state and its most recent events. The history holds each event's data MessagePack-
 * encoded in one growing byte ring, with its offset, size and time in typed arrays: no JS object
 * per retained event. Retained objects were what every young-generation GC had to copy, and the
 * bulk of its pause at 10,000 ticks/s; a replay decodes the few events it sends.
 */
export class TopicState {
  seq = 0
  /** The newest event that is committed (journaled, delivered): what snapshots and replays go up to. */
  committed = 0
  last: BusEvent | undefined = undefined
  /** Encoded bytes of the last value. */
  lastSize = 0
  /** When it was last published to (ms). */
  touchedAt = 0
  count = 0
  private head = 0 // slot of the oldest event
  private end = 0 // byte position after the newest event; positions grow forever, bytes wrap around
  private offsets: Float64Array
  private sizes: Uint32Array
  private stamps: Float64Array
  private bytes: Uint8Array

  constructor(
    private readonly capacity: number,
    public epoch = randomBytes(6).toString('hex')
  ) {
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

  /** Drops events older than `oldestTs`; a history left empty gives its grown buffers back. */
  expire(oldestTs: number): void {
    while (this.count > 0 && this.stamps[this.head] < oldestTs) this.dropOldest()
    if (this.count === 0 && this.bytes.length > FIRST_BYTES) this.clear()
  }

  /** Forgets the whole history (recovery from before now answers recovered:false) and shrinks to the first size. */
  clear(): void {
    const slots = Math.min(this.capacity, FIRST_SLOTS)
    this.offsets = new Float64Array(slots)
    this.sizes = new Uint32Array(slots)
    this.stamps = new Float64Array(slots)
    this.bytes = new Uint8Array(this.capacity === 0 ? 0 : FIRST_BYTES)
    this.head = 0
    this.end = 0
    this.count = 0
  }

  /** Bytes this topic holds: its history buffers, its last value, and a fixed overhead. */
  get footprint(): number {
    return this.bytes.byteLength + this.offsets.length * 20 + this.lastSize + TOPIC_OVERHEAD
  }

  /** Seq of the oldest event held. */
  get oldestSeq(): number {
    return this.seq - this.count + 1
  }

  /**
   * The i-th oldest event held, with a copy of its bytes (the ring is overwritten as it turns):
   * decoded only if a JSON subscriber or a listener reads it.
   */
  at(topic: string, i: number): BusEvent {
    const slot = (this.head + i) % this.offsets.length
    return new StoredEvent(topic, this.epoch, this.oldestSeq + i, this.stamps[slot], Uint8Array.prototype.slice.call(this.read(slot)))
  }

  /** The events held as journal records, oldest first; their bytes are views, valid until the next push. */
  *records(topic: string): Iterable<JournalRecord> {
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) % this.offsets.length
      yield { topic, epoch: this.epoch, seq: this.oldestSeq + i, ts: this.stamps[slot], data: this.read(slot) }
    }
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

/** Events `from`..`to` of a topic's history, each read (and its bytes copied) when iterated. */
class HistoryRange implements Replay<BusEvent> {
  constructor(
    private readonly state: TopicState,
    private readonly topic: string,
    private readonly from: number,
    private readonly to: number
  ) {}

  get length(): number {
    return this.to - this.from + 1
  }

  *[Symbol.iterator](): Iterator<BusEvent> {
    const { state } = this
    for (let seq = this.from; seq <= this.to; seq++) {
      // Expiry or the history's cap may have dropped it while the replay waited for the socket.
      if (seq < state.oldestSeq || seq > state.seq) throw new HistoryOverrun(`history of "${this.topic}" moved past seq ${seq}`)
      yield state.at(this.topic, seq - state.oldestSeq)
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

/**
 * What the in-memory bus and its journaled form share: topics, their seqs, histories and last
 * values, in this process. A topic lives while it is published to or subscribed by name;
 * TOPIC_TTL after the last of both it is freed with its history and last value, so topics cannot
 * pile up for ever.
 */
export abstract class LocalBus implements Bus {
  protected readonly listeners = new Listeners()
  protected readonly state = new Map<string, TopicState>()
  private readonly index = new TopicTree()
  /** Subscriptions by exact topic name: such a topic is kept however long it is idle. */
  private readonly pinned = new Tally<string>()
  private readonly topicTtl: number
  protected readonly maxTopics: number
  private readonly busMemory: number
  /** Bytes held by every topic's history and last value (their footprints). */
  protected retained = 0
  private readonly sweeper: NodeJS.Timeout
  /** The encoding of the event stage() staged last: a view of the shared encoder's buffer. */
  protected staged: Uint8Array = new Uint8Array(0)

  constructor(protected readonly options: MemoryBusOptions) {
    this.topicTtl = options.topicTtl ?? 3_600_000
    this.maxTopics = options.maxTopics ?? Infinity
    this.busMemory = options.busMemoryBytes ?? Infinity
    const every = Math.max(1000, Math.min(SWEEP_MAX_MS, this.topicTtl / 4, options.historyTtl / 4))
    this.sweeper = setInterval(() => this.sweep(Date.now()), every).unref()
  }

  /** Publishes: seq, history and last value; the subclass says when it is committed and delivered. */
  abstract publish(topic: string, data: unknown): MaybePromise<BusEvent>

  /**
   * The part of a publish every local bus shares: the topic's next seq, its history and touch
   * time. Returns the topic's state; the event's encoding is `this.staged` until the next encode.
   */
  protected stage(topic: string, data: unknown): TopicState {
    // Past MEMORY_LIMIT_MB a publish is refused before it is acked: PM2 restarting the process
    // over its limit would lose it (and everything else the process held).
    if (this.options.overMemory?.() === true) throw new LiveError(ErrorCode.unavailable, 'the server is at its memory limit')
    // A view of the shared encoder's buffer: used before anything else encodes.
    const encoded = encodeDataShared(data)
    let state = this.state.get(topic)
    if (state === undefined) state = this.create(topic, encoded.length)
    this.record(state, state.seq + 1, Date.now(), encoded)
    this.staged = encoded
    return state
  }

  /** Sets the topic's seq to `seq` and records the event in its history, within BUS_MEMORY_MB. */
  protected record(state: TopicState, seq: number, ts: number, encoded: Uint8Array): void {
    const before = state.footprint
    // A seq that does not follow (a journal with a damaged part) starts the history afresh.
    if (seq !== state.seq + 1) state.clear()
    state.seq = seq
    state.lastSize = encoded.length
    state.touchedAt = ts
    state.expire(ts - this.options.historyTtl)
    if (this.options.historySize > 0) state.push(ts, encoded)
    this.retained += state.footprint - before
    // Over BUS_MEMORY_MB the topic that publishes gives up its history (clients recovering from
    // before it answer recovered:false): it can never hold the process past its memory limit.
    if (this.retained > this.busMemory && state.count > 1) {
      const full = state.footprint
      state.clear()
      state.push(ts, encoded)
      this.retained += state.footprint - full
    }
  }

  subscribe(listener: BusListener): () => void {
    return this.listeners.add(listener)
  }

  private create(topic: string, size: number): TopicState {
    if (this.state.size >= this.maxTopics) throw new LiveError(ErrorCode.unavailable, `the server holds its maximum of ${this.maxTopics} topics`)
    if (this.retained + TOPIC_OVERHEAD + 2 * size > this.busMemory) {
      throw new LiveError(ErrorCode.unavailable, 'the server is at its memory limit: no new topics')
    }
    return this.add(topic, new TopicState(this.options.historySize))
  }

  protected add(topic: string, state: TopicState): TopicState {
    this.state.set(topic, state)
    this.index.add(topic)
    this.retained += state.footprint
    return state
  }

  protected drop(topic: string, state: TopicState): void {
    this.state.delete(topic)
    this.index.remove(topic)
    this.retained -= state.footprint
  }

  /**
   * Frees topics idle for TOPIC_TTL (no publish, no subscriber of their own name) and expired
   * history of the rest: run on a timer, so memory is given back without waiting for a publish.
   */
  sweep(now: number): void {
    const idleBefore = now - this.topicTtl
    const oldest = now - this.options.historyTtl
    for (const [topic, state] of this.state) {
      const before = state.footprint
      if (state.touchedAt < idleBefore && !this.pinned.has(topic)) this.drop(topic, state)
      else {
        state.expire(oldest)
        this.retained += state.footprint - before
      }
    }
  }

  last(topic: string): BusEvent | undefined {
    return this.state.get(topic)?.last
  }

  lastMatching(pattern: string, work = Work.unlimited()): BusEvent[] {
    const out: BusEvent[] = []
    // A topic whose first event waits for its group commit has no last value yet.
    for (const topic of this.index.matching(pattern, work)) {
      const last = this.state.get(topic)!.last
      if (last !== undefined) out.push(last)
    }
    return out
  }

  /**
   * The events after `position` as a range over the topic's history, read as it is iterated: a
   * replay waiting for a slow socket holds a cursor, not a copy of every event it will send.
   */
  since(topic: string, position: Position): Replay<BusEvent> | null {
    const state = this.state.get(topic)
    if (state === undefined || state.epoch !== position.epoch || position.seq > state.committed) return null
    if (position.seq === state.committed) return []
    state.expire(Date.now() - this.options.historyTtl)
    if (state.count === 0 || state.oldestSeq > position.seq + 1) return null
    return new HistoryRange(state, topic, position.seq + 1, state.committed)
  }

  topics(): TopicInfo[] {
    const out: TopicInfo[] = []
    for (const [topic, state] of this.state) if (state.last !== undefined) out.push({ topic, seq: state.committed, epoch: state.epoch })
    return out
  }

  /** Topics held now. */
  get size(): number {
    return this.state.size
  }

  /** Bytes held in history and last values (what BUS_MEMORY_MB bounds). */
  get retainedBytes(): number {
    return this.retained
  }

  watch(pattern: string): void {
    if (!isPattern(pattern)) this.pinned.add(pattern, 1)
  }

  unwatch(pattern: string): void {
    if (!isPattern(pattern)) this.pinned.add(pattern, -1)
  }

  get ready(): boolean {
    return true
  }

  close(): void {
    clearInterval(this.sweeper)
  }
}

/**
 * The embedded default: one process, everything in memory, every answer synchronous. A topic
 * lives while it is published to or subscribed by name; TOPIC_TTL after the last of both it is
 * freed with its history and last value, so topics cannot pile up for ever.
 */
export class MemoryBus extends LocalBus {
  publish(topic: string, data: unknown): BusEvent {
    const state = this.stage(topic, data)
    const event: BusEvent = { topic, seq: state.seq, epoch: state.epoch, ts: state.touchedAt, data }
    state.last = event
    state.committed = state.seq
    this.listeners.emit(event)
    return event
  }
}
