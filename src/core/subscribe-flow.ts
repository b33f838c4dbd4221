// The inbound side's subscribe with recovery, as the client sees it (docs/PROTOCOL.md, "Delivery"):
// the ack, then per topic the replayed events or a snapshot, then live events with no gap and no
// duplicate. Live events are held while a read or a replay is under way, replays are written as
// the socket drains, and events the replay already covered are dropped.
import { encodeEvent, encodeFrame, type CodecName } from './codec.js'
import type { BusEvent, FrameId, Position } from './protocol.js'
import { PageRead, type Replay } from './bus.js'
import { REPLY_QUEUE_FACTOR, type SendPath } from './send-path.js'

// Under the high-water mark no write returned false, so no 'drain' will come: look again after this.
const ROOM_POLL_MS = 10

/** Replayed events or snapshots waiting to be written, read one at a time as the socket takes them. */
interface Source {
  type: 'event' | 'snapshot'
  events: Iterator<BusEvent | PageRead>
}

export class SubscribeFlow {
  /** Live events held while a subscribe waits for the bus or its replay: [event, frame, event, frame, ...]. */
  private held: (BusEvent | Buffer)[] | null = null
  private heldBytes = 0
  private holds = 0
  /**
   * The last event sent per topic by a replay or snapshot. Live events up to it are duplicates:
   * held ones, and with a backplane also ones that arrive after the read (its pub/sub stream and
   * its history reads travel on different connections). An entry goes at the first newer live
   * event of its topic, the map when it is empty.
   */
  private replayed: Map<string, BusEvent> | null = null
  /** Replays and snapshots not written yet, in order: they go out as the socket drains. */
  private backlog: Source[] | null = null
  private sourceAt = 0
  private backlogDone: (() => void) | null = null

  constructor(
    private readonly out: SendPath,
    private readonly codec: CodecName,
    private readonly maxQueuedBytes: number
  ) {
    this.writeBacklog = this.writeBacklog.bind(this)
  }

  /** A live event from the hub: held, dropped as already replayed, or sent. */
  live(event: BusEvent, frame: Buffer): void {
    if (this.held !== null) {
      this.held.push(event, frame)
      this.heldBytes += frame.length
      // Held behind a replay the client is slow to read: the same budget as for queued replies.
      if (this.heldBytes > this.maxQueuedBytes * REPLY_QUEUE_FACTOR) this.out.closeSlow()
    } else if (this.replayed === null || !this.alreadySent(event)) this.out.event(event.topic, frame)
  }

  /** Holds live events until `step` (a read and the writing of what it found) is done. */
  whileHeld(step: Promise<void>): Promise<void> {
    this.hold()
    return step.finally(() => this.release())
  }

  /**
   * ack, then per topic the replayed events or a snapshot. Those are written as the socket drains,
   * never more than the slow-consumer budget at a time, with live events held behind them; the
   * promise (when they did not all fit at once) resolves when the last is written.
   */
  answer(
    id: FrameId | undefined,
    patterns: string[],
    since: Map<string, Position> | null,
    recovered: (Replay | null)[],
    last: (BusEvent | BusEvent[] | undefined)[],
    mode: { filter: { key: string } | null; delta: boolean } | null
  ): Promise<void> | undefined {
    const ack: Record<string, unknown> = { type: 'ack', id, topics: patterns }
    if (mode?.filter) ack.filter = mode.filter.key // its events skip seqs by design
    if (mode?.delta) ack.delta = true
    if (since !== null) ack.recovered = recovered.every((events) => events !== null)
    this.out.reply(encodeFrame(this.codec, ack), 'ack')
    const snapshots = new Map<string, BusEvent>()
    for (const entry of last) {
      if (Array.isArray(entry)) for (const e of entry) snapshots.set(e.topic, e)
      else if (entry !== undefined) snapshots.set(entry.topic, entry)
    }
    const backlog: Source[] = []
    if (since !== null) {
      let i = 0
      for (const topic of since.keys()) {
        const events = recovered[i++]
        if (events === null) continue // not recovered: its snapshot (if any) follows
        snapshots.delete(topic)
        if (events.length > 0) backlog.push({ type: 'event', events: events[Symbol.iterator]() })
      }
    }
    if (snapshots.size > 0) backlog.push({ type: 'snapshot', events: snapshots.values() })
    if (backlog.length === 0) return undefined
    this.hold()
    this.backlog = backlog
    return new Promise<void>((resolve) => {
      this.backlogDone = resolve
      this.writeBacklog()
    })
  }

  /**
   * Writes replayed frames while the queue is within MAX_QUEUED_BYTES, then waits for room. The
   * replay is done only when the queue is back within it too: the live events held behind it must
   * not find it full (they would trip the slow-consumer policy on the replay's bytes).
   */
  private writeBacklog(): void {
    const backlog = this.backlog!
    const full = () => this.out.tcp !== null && this.out.queued > this.maxQueuedBytes
    while (this.sourceAt < backlog.length && this.out.open) {
      if (full()) {
        this.waitForRoom()
        return
      }
      const { type, events } = backlog[this.sourceAt]
      let next: IteratorResult<BusEvent | PageRead>
      try {
        next = events.next()
      } catch {
        // HistoryOverrun, the one error a replay raises: history moved past a reader this slow, so
        // the events it was promised are gone; it is closed as the slow consumer it is (4008).
        this.out.closeSlow()
        break
      }
      if (next.done === true) {
        this.sourceAt++
        continue
      }
      const event = next.value
      if (event instanceof PageRead) {
        // A backplane reads the next page: writing goes on when it is here.
        event.ready.then(this.writeBacklog)
        return
      }
      if (this.replayed !== null && !(event.seq <= (this.replayed.get(event.topic)?.seq ?? 0))) this.replayed.set(event.topic, event)
      this.out.replayed(encodeEvent(this.codec, type, event), type)
    }
    if (this.out.open && full()) {
      this.waitForRoom()
      return
    }
    this.backlog = null
    this.sourceAt = 0
    this.backlogDone!()
    this.backlogDone = null
    this.release()
  }

  private waitForRoom(): void {
    const tcp = this.out.tcp!
    if (tcp.writableNeedDrain) tcp.once('drain', this.writeBacklog)
    else setTimeout(this.writeBacklog, ROOM_POLL_MS).unref()
  }

  private alreadySent(event: BusEvent): boolean {
    const replayed = this.replayed!
    const last = replayed.get(event.topic)
    if (last === undefined) return false
    if (last.epoch === event.epoch && event.seq <= last.seq) return true
    replayed.delete(event.topic)
    if (replayed.size === 0) this.replayed = null
    return false
  }

  private hold(): void {
    this.holds++
    this.held ??= []
    this.replayed ??= new Map()
  }

  private release(): void {
    if (--this.holds > 0) return
    const held = this.held!
    this.held = null
    this.heldBytes = 0
    if (this.replayed!.size === 0) this.replayed = null
    if (!this.out.open) return // closed meanwhile (a slow consumer): nothing more is written
    for (let i = 0; i < held.length; i += 2) this.live(held[i] as BusEvent, held[i + 1] as Buffer)
  }
}
