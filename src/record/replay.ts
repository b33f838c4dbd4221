// Replay = live: a recording's frames go to the same connectors through their transport seam (a
// socket that delivers what was received, REST answers as they came), its client publishes and the
// engine's recorded input times to the same engine, under a virtual clock (market/clock.ts) set to
// each record's time: the connectors' timers fire where the recording's times say (a reconnect's
// backoff opens the next socket before its recorded open, a snapshot's wait sends its request
// before the recorded answer) and their end-of-turn publish runs at each recorded end of turn, so
// no real time and no event-loop turn passes per frame. What comes out is what the live run
// published: same ids, statuses, legs and figures.
import { ArbitrageEngine, type BookData, type EngineOptions, type OpportunityEvent, type Tick } from '../market/arbitrage.js'
import { InstrumentRegistry } from '../market/instruments.js'
import { topicSink, type VenueHealth } from '../market/events.js'
import { healthOf, marketDataError } from '../market/check.js'
import { startFeeds, type Feeds } from '../market/setup.js'
import { VirtualClock } from '../market/clock.js'
import type { Connect, SocketEvents, VenueSocket } from '../market/transport.js'
import type { Exchange } from '../market/venues/index.js'
import { Kind } from './format.js'
import type { RecordingMeta } from './capture.js'
import { RecordCursor, RecordingError, type Damage } from './reader.js'
import { shiftedSink, shiftPublish } from './shift.js'
import { WaitingInputs } from './waiting.js'

/** What a replay's consumer is told: every event the replayed world publishes, with its time. */
export interface ReplaySink {
  /** Opportunities from the engine, and (when wanted) the connectors' books, tickers and venue health. */
  event(topic: string, data: unknown, time: number): void
}

export interface ReplayOptions {
  dir: string
  /** This release (a recording of another format names both). */
  app: string
  /** Events before `from` are replayed at full speed and not reported; replay stops after `to`. */
  from?: number
  to?: number
  /** 'max': as fast as it goes; N: N times the recorded pace. */
  speed: number | 'max'
  /**
   * The engine's settings (a replay's own engine), or a server's engine (REPLAY_DIR: the arbitrage
   * plugin's, whose own calls the replay has taken over), or null when the server runs none.
   */
  engine: EngineOptions | EngineCalls | null
  /**
   * A recording without the engine's inputs (the feeds process's): how often the engine's sweep
   * runs on the recording's clock, as the arbitrage plugin's does (half MAX_TICK_AGE_MS).
   */
  sweepMs?: number
  /**
   * Added to every time the replay publishes (shift.ts): a looped replay moves its times to now.
   * The connectors run on the recorded clock, the engine on the shifted one.
   */
  shift?: number
  /** Stops the replay at the next record. */
  signal?: AbortSignal
  sink: ReplaySink
  /** Connector events (book.>, ticker.>, venue.>) go to the sink too, not only opportunities. */
  market?: boolean
  onDamage?: (damage: Damage) => void
  /** Waits for the pace (tests hand in a virtual one: no real time passes). */
  sleep?: (ms: number) => Promise<void>
  /** The real clock the pace is measured against. */
  realNow?: () => number
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
}

export interface ReplayResult {
  records: number
  frames: number
  /** Opportunity events reported (made from `from` on). */
  opportunities: number
  /**
   * What the replay could not find again (a replay that is not the live run's): engine inputs, and
   * sockets or REST requests the connectors did not make by the time the recording says they were.
   */
  diverged: number
  damage: Damage[]
  first: number | null
  last: number | null
}

/** Book and ticker events held for the engine's markers at most (a replay that diverged drops the oldest). */
const MAX_WAITING_INPUTS = 10_000

/** Records applied between two real event-loop turns at full speed: a served replay leaves room for its clients. */
const RECORDS_PER_YIELD = 2048

/** What a replay calls on an engine. */
export type EngineCalls = Pick<ArbitrageEngine, 'onBook' | 'onTick' | 'onVenue' | 'sweep'>

/** One real event-loop turn: every promise chained on what is in memory (a REST answer's body) settles first. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))
const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A venue socket whose frames come from the recording. */
class ReplaySocket implements VenueSocket {
  open = false
  constructor(readonly events: SocketEvents) {}
  send(): void {}
  ping(): void {}
  /** The connection gave up on it: closing, as ws's is at once; the recording says when its close came. */
  terminate(): void {
    this.open = false
  }
}

interface RestAnswer {
  status: number
  body: Buffer<ArrayBuffer>
  /** As received (recorded since the connectors read them: Retry-After); absent in older recordings. */
  headers?: Record<string, string>
  error?: string
}

/** One run (a server's start to its stop): its connectors, engine and what the recording says of both. */
class Run {
  /** The connectors' clock: set to each record's recorded time, the timers due on the way fired first. */
  readonly clock: VirtualClock
  /** Added to the recorded clock for the engine and in what is published. */
  private readonly shift: number
  private readonly sockets = new Map<number, ReplaySocket>()
  /** Per venue: sockets the connectors opened and recorded connections not yet paired with them. */
  private readonly unpairedSockets = new Map<string, ReplaySocket[]>()
  private readonly unpairedConns = new Map<string, number[]>()
  private readonly rest = new Map<string, { answers: RestAnswer[]; waiting: ((a: RestAnswer) => void)[] }>()
  /** Book and ticker events waiting for the engine's marker: replayed connectors' and recorded client publishes. */
  private readonly inputs = new WaitingInputs(MAX_WAITING_INPUTS)
  readonly engine: EngineCalls | null
  feeds: Feeds | null = null
  /** Sockets, requests and markers the replay could not find again (the inputs' own are counted there). */
  private missed = 0
  /** Opportunity events the engine made and the sink was given (those before `from` are not). */
  made = 0
  /** The engine's inputs are in the recording; without them it is given what the connectors publish. */
  private readonly markers: boolean

  constructor(
    readonly meta: RecordingMeta,
    start: number,
    private readonly options: ReplayOptions,
    private readonly report: () => boolean
  ) {
    this.clock = new VirtualClock(start)
    this.shift = options.shift ?? 0
    this.markers = meta.engine !== false
    const engine = options.engine
    this.engine = engine === null || 'sweep' in engine ? engine : new ArbitrageEngine(engine)
    // Without its recorded sweeps the engine sweeps on the recording's clock, as the arbitrage plugin's timer does live.
    const sweeping = this.engine
    if (!this.markers && sweeping !== null) this.clock.interval(options.sweepMs ?? 500, () => this.opportunities(sweeping.sweep(this.now())))
  }

  /** What the replay could not find again: sockets, requests, markers and the inputs no marker took. */
  get diverged(): number {
    return this.missed + this.inputs.diverged
  }

  async start(): Promise<void> {
    const registry = new InstrumentRegistry()
    const feeds = new Map<Exchange, string[]>()
    for (const [exchange, instruments] of Object.entries(this.meta.instruments)) {
      registry.add(exchange, { instruments, skipped: 0 })
      feeds.set(
        exchange as Exchange,
        instruments.map((i) => i.symbol)
      )
    }
    this.feeds = await startFeeds({
      feeds,
      registry,
      bookDepth: this.meta.bookDepth,
      clock: this.clock,
      // Venue health goes nowhere in an offline replay whose engine takes the recorded health.
      venueHealth: this.options.market === true || (!this.markers && this.engine !== null),
      transport: (exchange) => ({ connect: this.connect(exchange), fetch: this.fetch(exchange) }),
      sink: this.shift === 0 ? this.publish : shiftedSink(this.publish, this.shift)
    })
  }

  /** The run ends: what its last turn changed is published, as a process's last turn does, then its connectors stop. */
  stop(): void {
    this.clock.runDeferred()
    this.feeds?.stop()
  }

  private connect(venue: string): Connect {
    return (_url, events) => {
      const socket = new ReplaySocket(events)
      const conn = this.unpairedConns.get(venue)?.shift()
      if (conn === undefined) push(this.unpairedSockets, venue, socket)
      else this.sockets.set(conn, socket)
      return socket
    }
  }

  private fetch(venue: string): typeof fetch {
    return (input) => {
      const key = restKey(venue, String(input instanceof Request ? input.url : input))
      const entry = this.restEntry(key)
      const answer = entry.answers.shift()
      const pending = answer ? Promise.resolve(answer) : new Promise<RestAnswer>((resolve) => entry.waiting.push(resolve))
      return pending.then((a) => {
        if (a.error !== undefined && a.status === 0) throw new TypeError(a.error)
        return new Response(a.body, { status: a.status, headers: a.headers })
      })
    }
  }

  private restEntry(key: string) {
    const known = this.rest.get(key)
    if (known !== undefined) return known
    const entry = { answers: [] as RestAnswer[], waiting: [] as ((a: RestAnswer) => void)[] }
    this.rest.set(key, entry)
    return entry
  }

  /** The shifted clock: the engine's and what is published. */
  private now(): number {
    return this.clock.now() + this.shift
  }

  /** What the connectors publish (moved by the shift): to the sink when wanted, and as the engine's input. */
  private readonly publish = topicSink((topic, data) => {
    const now = this.now()
    if (this.options.market && this.report()) this.options.sink.event(topic, data, now)
    this.input(topic, data, now)
  })

  /** A book, ticker or venue health the engine gets: when its marker comes, or now without markers. */
  private input(topic: string, data: unknown, now: number): void {
    if (this.engine === null) return
    if (this.markers) {
      if (!topic.startsWith('book.') && !topic.startsWith('ticker.')) return
      // Inputs no marker ever asks for (the live engine never got them) are not held for ever.
      this.inputs.push(topic, data)
      return
    }
    const [kind, exchange, symbol] = splitTopic(topic)
    // Checked where it entered (a connector's parse, or a recorded publish in apply()).
    if (kind === 'book') this.opportunities(this.engine.onBook(data as BookData, now, exchange, symbol))
    else if (kind === 'ticker') this.opportunities(this.engine.onTick(data as Tick, now, exchange, symbol))
    // Venue health whole, as the live engine reads venue.<exchange> (notLive, lastMessageAgeMs).
    else if (kind === 'venue') this.opportunities(this.engine.onVenue(topic.slice(6), data as VenueHealth, now))
  }

  private opportunities(events: OpportunityEvent[] | null): number {
    if (events === null || !this.report()) return 0
    this.made += events.length
    for (const e of events) this.options.sink.event(`opportunities.${e.symbol}`, e, this.now())
    return events.length
  }

  /**
   * One record, at its time: the connectors' timers due by then fire first. Synchronous except for
   * a REST answer, whose body the connector reads through promises. Its bytes are read only by the
   * kinds that have any.
   */
  apply(kind: number, time: number, conn: number, record: RecordCursor): Promise<void> | undefined {
    if (kind === Kind.turn) {
      // The end of the turn: the connectors publish what it changed. Live, the timers due meanwhile
      // fire in the event loop's next timers phase, after this: here at the next record.
      this.clock.setTime(time)
      this.clock.runDeferred()
      return
    }
    this.clock.advanceTo(time)
    const now = time + this.shift
    switch (kind) {
      case Kind.open: {
        const { venue } = JSON.parse(record.text()) as { venue: string }
        const socket = this.unpairedSockets.get(venue)?.shift()
        if (socket === undefined) push(this.unpairedConns, venue, conn)
        else this.sockets.set(conn, socket)
        return
      }
      case Kind.accept:
      case Kind.frame:
      case Kind.binary:
      case Kind.alive:
      case Kind.error:
      case Kind.close: {
        const socket = this.sockets.get(conn)
        // A recorded connection its connector never opened (the virtual clock fired no reconnect
        // for it): what it received cannot reach a connector.
        if (socket === undefined) this.missed++
        else deliver(socket, kind, record)
        return
      }
      case Kind.rest: {
        const body = record.body()
        const nl = body.indexOf(10)
        const head = JSON.parse(body.subarray(0, nl).toString()) as {
          venue: string
          url: string
          status: number
          headers?: Record<string, string>
          error?: string
        }
        const answer: RestAnswer = { status: head.status, body: Buffer.from(body.subarray(nl + 1)), headers: head.headers, error: head.error }
        return this.answer(restKey(head.venue, head.url), answer)
      }
      case Kind.publish: {
        const { topic, data: recorded } = JSON.parse(record.text()) as { topic: string; data: unknown }
        const data = this.shift === 0 ? recorded : shiftPublish(topic, recorded, this.shift)
        if (this.options.market && this.report()) this.options.sink.event(topic, data, now)
        // A recording is where a client's publish enters the replay: the engine takes it only as
        // the live server's door (market/check.ts) would have let it in.
        if (marketDataError(topic, data) === null) this.input(topic, data, now)
        return
      }
      case Kind.engineBook:
      case Kind.engineTicker: {
        if (this.engine === null) return
        const topic = record.text()
        const input = this.inputs.take(topic)
        if (input === undefined) this.missed++
        else this.engineInput(kind, topic, input, now)
        return
      }
      case Kind.engineVenue: {
        if (this.engine === null) return
        const { exchange, state } = JSON.parse(record.text()) as { exchange: unknown; state: unknown }
        const health = healthOf(exchange, state)
        if (health === null)
          throw new Error('a venue marker whose health is not a venue state or the state, notLive and lastMessageAgeMs of a venue.<exchange> event')
        this.opportunities(this.engine.onVenue(exchange as string, health, now))
        return
      }
      case Kind.sweep:
        if (this.engine !== null) this.opportunities(this.engine.sweep(now))
        return
    }
  }

  /**
   * A REST answer to the request the connector made for it. A request a timer sends (a snapshot's
   * spacing, a resubscribe's backoff) goes out in the promise chain the timer resumed: one real turn
   * lets it. The connector reads and applies the answer through promises on in-memory bytes, so one
   * more turn sees it applied, its publish deferred to the recorded end of turn that follows.
   */
  private async answer(key: string, answer: RestAnswer): Promise<void> {
    const entry = this.restEntry(key)
    if (entry.waiting.length === 0) await turn()
    const waiting = entry.waiting.shift()
    if (waiting === undefined) {
      // Live, the request went out before its answer came: this replay did not make it.
      this.missed++
      entry.answers.push(answer) // answered at once if it is made after all
      return
    }
    waiting(answer)
    await turn()
  }

  private engineInput(kind: number, topic: string, input: { data: unknown }, time: number): void {
    const engine = this.engine as EngineCalls
    const [, exchange, symbol] = splitTopic(topic)
    this.opportunities(
      kind === Kind.engineBook ? engine.onBook(input.data as BookData, time, exchange, symbol) : engine.onTick(input.data as Tick, time, exchange, symbol)
    )
  }
}

/** A REST answer is found again by venue, path and query: the replay's venues are nowhere. */
function restKey(venue: string, url: string): string {
  try {
    const u = new URL(url)
    return `${venue} ${u.pathname}${u.search}`
  } catch {
    return `${venue} ${url}`
  }
}

/** A socket event from the recording, as ws would report it. */
function deliver(socket: ReplaySocket, kind: number, record: RecordCursor): undefined {
  if (kind === Kind.frame || kind === Kind.binary) socket.events.onMessage(record.body(), kind === Kind.binary)
  else if (kind === Kind.accept) {
    socket.open = true
    socket.events.onOpen()
  } else if (kind === Kind.alive) socket.events.onAlive()
  else if (kind === Kind.error) socket.events.onError(new Error(record.text()))
  else if (kind === Kind.close) {
    socket.open = false
    socket.events.onClose()
  }
  return undefined
}

/** A run's meta, its shape checked: what the replay builds the registry and connectors from. */
function parseMeta(text: string): RecordingMeta {
  const meta = JSON.parse(text) as RecordingMeta
  if (typeof meta !== 'object' || meta === null || typeof meta.run !== 'number' || typeof meta.bookDepth !== 'number')
    throw new Error('a meta record without run and bookDepth')
  if (typeof meta.instruments !== 'object' || meta.instruments === null || !Object.values(meta.instruments).every(Array.isArray))
    throw new Error('a meta record whose instruments are not lists')
  return meta
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key)
  if (list) list.push(value)
  else map.set(key, [value])
}

function splitTopic(topic: string): [string, string, string] {
  const a = topic.indexOf('.')
  const b = topic.indexOf('.', a + 1)
  return [topic.slice(0, a), topic.slice(a + 1, b), topic.slice(b + 1)]
}

/** First and last record time (a pass over the recording). */
function recordingRange(dir: string, app: string): { first: number; last: number } | null {
  let first: number | null = null
  let last = 0
  const r = new RecordCursor(dir, app, () => {})
  while (r.next()) {
    if (!Number.isFinite(r.time)) continue // unusable: the replay reports it
    if (first === null) first = r.time
    last = r.time
  }
  return first === null ? null : { first, last }
}

export async function replay(options: ReplayOptions): Promise<ReplayResult> {
  const damage: Damage[] = []
  const result: ReplayResult = { records: 0, frames: 0, opportunities: 0, diverged: 0, damage, first: null, last: null }
  if (options.from !== undefined || options.to !== undefined) {
    const range = recordingRange(options.dir, options.app)
    const from = options.from ?? Number.NEGATIVE_INFINITY
    const to = options.to ?? Number.POSITIVE_INFINITY
    if (range === null || from > range.last || to < range.first || from > to)
      throw new RecordingError(
        range === null
          ? `${options.dir}: the recording holds no records`
          : `--from/--to select nothing: the recording runs from ${new Date(range.first).toISOString()} to ${new Date(range.last).toISOString()}`
      )
  }
  const sleep = options.sleep ?? realSleep
  const realNow = options.realNow ?? performance.now.bind(performance)
  let run: Run | null = null
  let time = 0
  const shift = options.shift ?? 0
  let recorded = 0
  const reporting = () => options.from === undefined || recorded >= options.from
  let paceStart: { record: number; real: number } | null = null
  let sinceYield = 0
  const pace = async (at: number) => {
    if (options.speed === 'max') return
    if (paceStart === null) paceStart = { record: at, real: realNow() }
    const due = paceStart.real + (at - paceStart.record) / options.speed - realNow()
    if (due >= 1) await sleep(due)
  }
  const unusable = (r: RecordCursor, err: unknown) => {
    const d = { file: r.file, offset: r.offset, reason: `record of kind ${r.kind} unusable: ${(err as Error).message}` }
    damage.push(d)
    options.onDamage?.(d)
  }
  try {
    const r = new RecordCursor(
      options.dir,
      options.app,
      (d) => {
        damage.push(d)
        options.onDamage?.(d)
      },
      true
    )
    while (r.next() || (await r.more())) {
      if (!Number.isFinite(r.time)) {
        // Not a time a clock gave (a crafted or damaged record): run to, the virtual clock would fire its intervals for ever.
        unusable(r, new Error('its time is not a finite number'))
        continue
      }
      if ((options.to !== undefined && r.time > options.to) || options.signal?.aborted) break
      recorded = r.time
      time = r.time + shift
      result.records++
      if (result.first === null) result.first = time
      result.last = time
      // The connectors publish at the recorded ends of turns whatever real time passes between
      // records, so the pace may wait before any of them.
      if (options.speed !== 'max' && reporting()) await pace(time)
      else if (++sinceYield === RECORDS_PER_YIELD) {
        sinceYield = 0
        await turn()
      }
      if (r.kind === Kind.meta) {
        let meta: RecordingMeta
        try {
          meta = parseMeta(r.text())
        } catch (err) {
          unusable(r, err)
          continue
        }
        if (run !== null && run.meta.run === meta.run) continue // the same run, said again at a segment's start
        if (run !== null) {
          result.diverged += run.diverged
          result.opportunities += run.made
          run.stop()
        }
        run = new Run(meta, r.time, options, reporting)
        try {
          await run.start()
        } catch (err) {
          unusable(r, err)
          run = null
        }
        continue
      }
      if (run === null) continue // frames before the first meta belong to a run whose start was cut off
      if (r.kind === Kind.frame || r.kind === Kind.binary) result.frames++
      // A record that passed its block's checksum yet cannot be used (written by something else, or
      // damaged before it was written) is reported like damage, and the replay goes on.
      try {
        const waiting = run.apply(r.kind, r.time, r.conn, r)
        if (waiting !== undefined) await waiting
      } catch (err) {
        unusable(r, err)
      }
    }
    if (!options.signal?.aborted && result.last !== null) await pace(result.last) // to the recording's end
  } finally {
    if (run !== null) {
      result.diverged += run.diverged
      result.opportunities += run.made
      run.stop()
    }
  }
  return result
}
