// The in-memory bus with its journal (HISTORY_DIR): the same topics, seqs and history, every
// event written to the journal by the turn's group commit before it is acked or delivered, and
// all of it loaded back at start-up, epochs and seqs included.
import { randomBytes } from 'node:crypto'
import { encodeDataShared, StoredEvent } from './codec.js'
import { LocalBus, TopicState, type MemoryBusOptions } from './bus.js'
import { ErrorCode, LiveError, type BusEvent } from './protocol.js'
import type { Journal, JournalRecord, LoadReport } from './journal.js'

export class JournaledBus extends LocalBus {
  /** Published this turn, waiting for the group commit, and their acks. */
  private uncommitted: BusEvent[] = []
  private waiting: ((event: BusEvent) => void)[] = []
  /** Set while the journal cannot be written. */
  private journalError: Error | undefined = undefined
  private retry: NodeJS.Timeout | undefined = undefined

  constructor(
    options: MemoryBusOptions,
    private readonly journal: Journal,
    /** Told when the journal cannot be written (an error), and when it can again (undefined). */
    private readonly onJournalError?: (err: Error | undefined) => void
  ) {
    super(options)
  }

  publish(topic: string, data: unknown): Promise<BusEvent> {
    if (this.journalError !== undefined) throw new LiveError(ErrorCode.unavailable, 'the history journal cannot be written')
    const state = this.stage(topic, data)
    const event: BusEvent = { topic, seq: state.seq, epoch: state.epoch, ts: state.touchedAt, data }
    // Acked and delivered once the turn's group commit has written it (commit()).
    this.journal.append(topic, state.epoch, state.seq, state.touchedAt, this.staged)
    if (this.uncommitted.length === 0) setImmediate(this.commit)
    this.uncommitted.push(event)
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  /**
   * The group commit: one write of every event published this turn, then their acks and their
   * delivery, in publish order. A failed write holds them (and refuses new publishes, /ready 503)
   * and is tried again every second: nothing is acked that is not written.
   */
  private readonly commit = (): void => {
    try {
      this.journal.flush()
    } catch (err) {
      if (this.journalError === undefined) this.onJournalError?.(err as Error)
      this.journalError = err as Error
      // Not unref'd: acks are waiting on it.
      this.retry = setTimeout(this.commit, 1000)
      return
    }
    if (this.journalError !== undefined) this.onJournalError?.(undefined)
    this.journalError = undefined
    const events = this.uncommitted
    const waiting = this.waiting
    this.uncommitted = []
    this.waiting = []
    for (let i = 0; i < events.length; i++) {
      const event = events[i]
      const state = this.state.get(event.topic)
      if (state !== undefined && state.epoch === event.epoch) {
        state.last = event
        state.committed = event.seq
      }
      waiting[i](event)
      this.listeners.emit(event)
    }
    if (this.journal.due(this.retained)) this.compact()
  }

  /** Rewrites the journal as what is held now (every topic's history, or its last value) and drops the rest. */
  private compact(): void {
    const states = this.state
    function* live(): Iterable<JournalRecord> {
      for (const [topic, state] of states) {
        if (state.count > 0) yield* state.records(topic)
        else if (state.last !== undefined) {
          const { epoch, seq, ts } = state.last
          yield { topic, epoch, seq, ts, data: state.last.encoded ?? encodeDataShared(state.last.data) }
        }
      }
    }
    this.journal.compact(live())
  }

  /**
   * Loads the journal (HISTORY_DIR): every topic comes back with its epoch, seq, history and last
   * value, within HISTORY_SIZE, HISTORY_TTL, TOPIC_TTL, MAX_TOPICS and BUS_MEMORY_MB. After a
   * machine restart without a clean close, what was not synced may be missing: unless every
   * commit was synced (HISTORY_FSYNC=always), topics take new epochs, so a client that saw a lost
   * event is told recovered:false rather than handed a reissued seq.
   */
  restore(): LoadReport & { topics: number; refused: number } {
    const journal = this.journal
    let refused = 0
    const report = journal.open((r) => {
      let state = this.state.get(r.topic)
      if (state !== undefined && state.epoch !== r.epoch) {
        this.drop(r.topic, state)
        state = undefined
      }
      if (state === undefined) {
        if (this.state.size >= this.maxTopics) {
          refused++
          return
        }
        state = this.add(r.topic, new TopicState(this.options.historySize, r.epoch))
      }
      if (r.seq <= state.seq) return // already loaded (a compaction's copy)
      this.record(state, r.seq, r.ts, r.data)
      // The last value: read back from history at the end, kept here only when there is none.
      state.last = state.count > 0 ? undefined : new StoredEvent(r.topic, r.epoch, r.seq, r.ts, Uint8Array.prototype.slice.call(r.data))
    })
    for (const [topic, state] of this.state) {
      if (state.last === undefined) state.last = state.at(topic, state.count - 1)
      state.committed = state.seq
    }
    this.sweep(Date.now())
    if (report.uncleanReboot && journal.fsync !== 'always') {
      for (const [topic, state] of this.state) {
        state.epoch = randomBytes(6).toString('hex')
        const last = state.last!
        state.last = new StoredEvent(topic, state.epoch, last.seq, last.ts, last.encoded ?? encodeDataShared(last.data).slice())
      }
      this.compact()
    } else if (journal.due(this.retained)) this.compact()
    return { ...report, topics: this.state.size, refused }
  }

  /** False while the journal cannot be written. */
  override get ready(): boolean {
    return this.journalError === undefined
  }

  override close(): void {
    super.close()
    clearTimeout(this.retry)
    if (this.uncommitted.length > 0 && this.journalError === undefined) this.commit()
    try {
      this.journal.close()
    } catch (err) {
      this.onJournalError?.(err as Error) // what it held unwritten was never acked
    }
  }
}
