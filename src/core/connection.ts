// One client connection, inbound: decodes and dispatches its frames in order, holds its own
// subscriptions, and runs its lifecycle (rate limits, strikes, credential expiry, heartbeat).
// What it sends goes through its send path (send-path.ts); subscribe with recovery through its
// subscribe flow (subscribe-flow.ts). It knows the hub only as the ConnectionHost it declares.
import { encodeFrame, type CodecName, type FrameDecoder } from './codec.js'
import {
  CloseCode,
  ErrorCode,
  FrameError,
  LiveError,
  errorFrame,
  validateFrame,
  type BusEvent,
  type ClientFrame,
  type FrameId,
  type Position,
  type PublishFrame,
  type RequestFrame,
  type SubscribeFrame,
  type UnsubscribeFrame
} from './protocol.js'
import { FRAME_WORK, isPattern, SubscriptionIndex, Work } from './topics.js'
import { PageRead, type Bus, type Replay } from './bus.js'
import { isThenable, type MaybePromise } from './maybe.js'
import type { ClientInfo, HookRegistry } from './hooks.js'
import { checkPublish, maySubscribe, type Grants } from './auth.js'
import { Strikes, TokenBucket, type Admission } from './limits.js'
import type { LiveFigures } from './figures.js'
import { OPEN, REPLY_QUEUE_FACTOR, SendPath, type CorkScheduler, type OutFrameType, type SendSocket } from './send-path.js'
import { SubscribeFlow } from './subscribe-flow.js'
import { FilterError, parseFilter, type Filter } from '../shared/filter.js'

/** The part of a `ws` WebSocket that a connection uses; tests pass a fake. */
export interface LiveSocket extends SendSocket {
  ping(): void
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): unknown
  on(event: 'close', listener: (code: number) => void): unknown
  on(event: 'pong', listener: () => void): unknown
  on(event: 'error', listener: (err: Error) => void): unknown
}

export interface ConnectionOptions {
  maxPayload: number
  maxPublishBytes: number
  maxQueuedBytes: number
  slowConsumer: 'close' | 'conflate'
  maxSubscriptions: number
  /** Field reads per event the distinct filters of one connection may cost. */
  maxFilterCost: number
  rateLimit: number
  publisherRateLimit: number
  rateStrikes: number
  maxFrameErrors: number
}

export interface ConnectionLogger {
  debug(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

/** What a connection needs from the hub that serves it: declared here, implemented there. */
export interface ConnectionHost {
  readonly options: ConnectionOptions
  readonly figures: LiveFigures
  readonly bus: Bus
  readonly hooks: HookRegistry
  readonly decoder: FrameDecoder
  readonly admission: Admission
  readonly scheduler: CorkScheduler
  readonly log: ConnectionLogger
  checkTopic(topic: string, wildcards: boolean): void
  publish(topic: string, data: unknown): MaybePromise<BusEvent>
  /** The connection now holds this pattern (with this mode): index it, and have the bus deliver it. */
  watch(connection: LiveConnection, pattern: string, mode: SubscriptionMode | null): MaybePromise<void>
  unwatch(connection: LiveConnection, pattern: string, mode: SubscriptionMode | null): void
  /** Why this connection may not start holding `filter` (its address's or the server's filter budget), or null. */
  filterRefusal(connection: LiveConnection, filter: Filter): string | null
  /** The connection starts holding `filter`: the hub's shared, compiled one is returned. */
  holdFilter(connection: LiveConnection, filter: Filter): Filter
  releaseFilter(connection: LiveConnection, filter: Filter): void
  /** The socket closed: forget the connection. */
  closed(connection: LiveConnection, code: number): void
  warnProtocol(connection: LiveConnection, err: LiveError): void
}

// The errors that say a frame itself was bad, or a credential was (an `auth` with a bad signature
// costs a verification each time); only these count towards MAX_FRAME_ERRORS.
const MALFORMED: ReadonlySet<string> = new Set([ErrorCode.badRequest, ErrorCode.unknownType, ErrorCode.tooLarge, ErrorCode.unauthorized])
// setTimeout's longest delay; a credential expiring later is checked again when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1

export class LiveConnection implements ClientInfo {
  readonly binary: boolean
  readonly out: SendPath
  private readonly patterns = new Set<string>()
  /** The modes (filter, deltas) of the patterns subscribed with one. */
  private readonly modes = new Map<string, SubscriptionMode>()
  /** The distinct filters held, with how many patterns hold each; what they cost per event, in field reads. */
  private readonly filters = new Map<string, { filter: Filter; patterns: number }>()
  private filterCost = 0
  /** Patterns held with deltas. */
  private deltaPatterns = 0
  private readonly flow: SubscribeFlow
  private alive = true
  /** Set while an async step (a hook, a backplane read, a replay being written) runs: later frames wait behind it, in order. */
  private pending: Promise<void> | null = null
  /** Bytes of the frames waiting behind `pending`: a client that sends on and never reads is cut off. */
  private waitingBytes = 0
  /** Inbound frame rate; null when RATE_LIMIT is 0. */
  private bucket: TokenBucket | null
  private expiry: NodeJS.Timeout | null = null
  /** Bad frames: a connection that keeps sending them is closed rather than answered forever. */
  private readonly frameErrors: Strikes | null

  constructor(
    private readonly host: ConnectionHost,
    readonly socket: LiveSocket,
    readonly id: number,
    readonly codec: CodecName,
    readonly remoteAddress: string | undefined,
    public grants: Grants
  ) {
    this.binary = codec === 'msgpack'
    const { options } = host
    this.out = new SendPath(socket, this.binary, options, host.figures, host.scheduler, (queued) =>
      host.log.debug({ connection: id, queued }, 'slow consumer closed')
    )
    this.flow = new SubscribeFlow(this.out, codec, options.maxQueuedBytes)
    this.onMessage = this.onMessage.bind(this)
    this.bucket = this.rateBucket()
    this.frameErrors = options.maxFrameErrors > 0 ? new Strikes(options.maxFrameErrors) : null
    this.scheduleExpiry()
    socket.on('message', this.onMessage)
    socket.on('close', (code) => {
      if (this.expiry !== null) clearTimeout(this.expiry)
      host.closed(this, code)
    })
    socket.on('pong', () => {
      this.alive = true
    })
    // ws emits 'error' for protocol violations (bad UTF-8, oversized frames) and then closes the socket itself.
    socket.on('error', (err) => host.log.debug({ connection: id, err: err.message }, 'socket error'))
  }

  /** The patterns this connection holds (the hub reads them; only the connection changes them). */
  get subscriptions(): ReadonlySet<string> {
    return this.patterns
  }

  /** How a held pattern was subscribed: its filter, deltas; null for neither. */
  modeOf(pattern: string): SubscriptionMode | null {
    return this.modes.get(pattern) ?? null
  }

  /** Whether some pattern is held with deltas. */
  get subscribesDeltas(): boolean {
    return this.deltaPatterns > 0
  }

  // ---- inbound ----

  onMessage(data: Buffer, isBinary: boolean): void {
    this.alive = true
    const { host } = this
    host.figures.bytesIn += data.length
    if (this.socket.readyState !== OPEN) return
    if (this.bucket !== null) {
      const verdict = this.bucket.take(Date.now())
      if (verdict !== 'ok') {
        this.refuse(verdict, data, isBinary)
        return
      }
    }
    if (data.length > host.options.maxPayload) {
      // Reached only when a host app registered @fastify/websocket with a larger maxPayload.
      this.close(CloseCode.tooLarge, 'frame too large')
      return
    }
    let frame: ClientFrame
    try {
      frame = validateFrame(host.decoder.decode(data, isBinary))
    } catch (err) {
      host.figures.framesIn.invalid++
      this.fail(err instanceof FrameError ? err.id : undefined, err)
      return
    }
    host.figures.framesIn[frame.type]++
    if (this.pending !== null) {
      const size = data.length
      this.waitingBytes += size
      if (this.waitingBytes > host.options.maxQueuedBytes * REPLY_QUEUE_FACTOR) {
        this.out.closeSlow()
        return
      }
      this.wait(
        this.pending.then(() => {
          this.waitingBytes -= size
          return this.handle(frame, size)
        })
      )
      return
    }
    const step = this.handle(frame, data.length)
    if (step !== undefined) this.wait(step)
  }

  /** A frame over the rate limit gets `rate_limited` (with its id when it has one); sustained abuse closes 4029. */
  private refuse(verdict: 'limited' | 'abuse', data: Buffer, isBinary: boolean): void {
    if (verdict === 'abuse') {
      this.host.log.warn({ connection: this.id, remoteAddress: this.remoteAddress }, 'rate limit exceeded repeatedly: closing')
      this.close(CloseCode.rateLimited, 'rate limit exceeded repeatedly')
      return
    }
    let id: FrameId | undefined
    try {
      const frame = this.host.decoder.decode(data, isBinary) as { id?: unknown }
      if (typeof frame?.id === 'number' || typeof frame?.id === 'string') id = frame.id
    } catch {}
    this.send(errorFrame(id, ErrorCode.rateLimited, 'too many frames per second'))
  }

  /** Inbound hooks, then dispatch; returns a promise only when a hook or verdict went async. */
  private handle(frame: ClientFrame, size: number): Promise<void> | undefined {
    const id = frame.id
    const { hooks } = this.host
    try {
      const hooked = hooks.hasInbound ? hooks.runInbound(frame, this) : frame
      if (isThenable(hooked)) return hooked.then((f) => this.dispatch(f, size)).catch((err) => this.fail(id, err))
      const step = this.dispatch(hooked, size)
      if (step !== undefined) return step.catch((err) => this.fail(id, err))
    } catch (err) {
      this.fail(id, err)
    }
    return undefined
  }

  private wait(step: Promise<void>): void {
    const pending: Promise<void> = step.then(() => {
      if (this.pending === pending) this.pending = null
    })
    this.pending = pending
  }

  private dispatch(frame: ClientFrame, size: number): Promise<void> | undefined {
    switch (frame.type) {
      case 'request':
        this.onRequest(frame)
        return undefined
      case 'ping':
        this.send(frame.id === undefined ? { type: 'pong', serverTime: Date.now() } : { type: 'pong', id: frame.id, serverTime: Date.now() })
        return undefined
      case 'subscribe':
        return this.onSubscribe(frame)
      case 'unsubscribe':
        this.onUnsubscribe(frame)
        return undefined
      case 'publish':
        this.onPublish(frame, size)
        return undefined
    }
  }

  private onRequest(frame: RequestFrame): void {
    if (frame.method === undefined) {
      const reply: Record<string, unknown> = { type: 'response' }
      if (frame.id !== undefined) reply.id = frame.id
      if ('timestamp' in frame) reply.timestamp = frame.timestamp
      reply.serverTime = Date.now()
      this.send(reply)
      return
    }
    const method = this.host.hooks.methods.get(frame.method)
    if (method === undefined) throw new LiveError(ErrorCode.notFound, `unknown method "${frame.method.slice(0, 64)}"`)
    this.settle(frame.id, method(frame.params, this), (result) => this.send({ type: 'response', id: frame.id, result }))
  }

  private onPublish(frame: PublishFrame, frameBytes: number): void {
    checkPublish(this.grants, frame.topic)
    const { maxPublishBytes } = this.host.options
    if (frameBytes > maxPublishBytes) throw new LiveError(ErrorCode.tooLarge, `publish larger than ${maxPublishBytes} bytes`)
    this.settle(frame.id, this.host.publish(frame.topic, frame.data), (event) => this.send({ type: 'ack', id: frame.id, seq: event.seq, epoch: event.epoch }))
  }

  private onUnsubscribe(frame: UnsubscribeFrame): void {
    const patterns = this.patternsOf(frame)
    for (const pattern of patterns) this.drop(pattern)
    this.send({ type: 'ack', id: frame.id, topics: patterns })
  }

  /**
   * Checks the frame, asks the subscribe hooks (which may answer later), then subscribes. Matching
   * its `since` entries and its snapshots is paid from one work budget per frame.
   */
  private onSubscribe(frame: SubscribeFrame): Promise<void> | undefined {
    const patterns = this.patternsOf(frame)
    const denied = patterns.find((p) => !maySubscribe(this.grants, p))
    if (denied !== undefined) throw new LiveError(ErrorCode.forbidden, `no grant to subscribe to "${denied}"`)
    const work = new Work(FRAME_WORK)
    const since = this.sinceOf(frame, patterns, work)
    const filter = frame.filter === undefined ? null : filterOf(frame.filter)
    const mode = filter === null && frame.delta !== true ? null : { filter, delta: frame.delta === true }
    const { hooks } = this.host
    const verdict = hooks.hasSubscribe ? hooks.runSubscribe(patterns, this) : undefined
    if (isThenable(verdict)) return verdict.then(() => this.subscribe(frame, patterns, since, work, mode))
    return this.subscribe(frame, patterns, since, work, mode)
  }

  /**
   * Subscribes and answers. When the bus answers later (a backplane) or the replay waits for the
   * socket, the returned promise makes the connection's later frames wait, so an unsubscribe sent
   * right behind is handled (and acked) after this subscribe, as sent.
   */
  private subscribe(
    frame: SubscribeFrame,
    patterns: string[],
    since: Map<string, Position> | null,
    work: Work,
    asked: SubscriptionMode | null
  ): Promise<void> | undefined {
    // A pattern held with another filter or delta choice is subscribed again with this one.
    const key = modeKey(asked)
    for (const p of patterns) if (this.patterns.has(p) && modeKey(this.modeOf(p)) !== key) this.drop(p)
    const fresh = patterns.filter((p) => !this.patterns.has(p))
    const { options, admission, bus } = this.host
    if (this.patterns.size + fresh.length > options.maxSubscriptions) {
      throw new LiveError(ErrorCode.tooLarge, `more than ${options.maxSubscriptions} subscriptions`)
    }
    const refusal = fresh.length === 0 ? null : admission.subscriptionRefusal(this.remoteAddress, fresh.length)
    if (refusal !== null) throw new LiveError(ErrorCode.unavailable, refusal)
    const mode = asked?.filter && fresh.length > 0 ? { filter: this.holdFilter(asked.filter), delta: asked.delta } : asked
    // Subscribe first (a backplane confirms upstream), then read history: an event published
    // meanwhile is live (held, then deduplicated by seq).
    const watching = fresh.map((pattern) => this.add(pattern, mode)).filter(isThenable)
    const filter = mode?.filter ?? null

    const snapshot = frame.snapshot !== false
    const read = () =>
      [
        since === null ? [] : [...since].map(([t, p]) => bus.since(t, p)),
        snapshot ? patterns.map((p) => (isPattern(p) ? bus.lastMatching(p, work) : bus.last(p))) : []
      ] as [MaybePromise<Replay | null>[], MaybePromise<BusEvent | BusEvent[] | undefined>[]]
    const undo = (err: unknown) => {
      for (const pattern of fresh) this.drop(pattern)
      this.fail(frame.id, err)
    }
    const finish = (recovered: (Replay | null)[], last: (BusEvent | BusEvent[] | undefined)[]) => {
      if (filter === null) return this.flow.answer(frame.id, patterns, since, recovered, last, mode)
      let passed: (BusEvent | BusEvent[] | undefined)[]
      try {
        passed = last.map((l) => passing(l, filter, work))
      } catch (err) {
        undo(err)
        return undefined
      }
      const replays = recovered.map((r) => (r === null ? null : matching(r, filter)))
      return this.flow.answer(frame.id, patterns, since, replays, passed, mode)
    }

    if (watching.length === 0) {
      let reads: ReturnType<typeof read>
      try {
        reads = read()
      } catch (err) {
        undo(err)
        return undefined
      }
      if (!reads[0].some(isThenable) && !reads[1].some(isThenable)) {
        return finish(reads[0] as (Replay | null)[], reads[1] as (BusEvent | BusEvent[] | undefined)[])
      }
      return this.flow.whileHeld(Promise.all([Promise.all(reads[0]), Promise.all(reads[1])]).then(([recovered, last]) => finish(recovered, last), undo))
    }
    return this.flow.whileHeld(
      Promise.all(watching)
        .then(() => {
          const [recoveries, lasts] = read()
          return Promise.all([Promise.all(recoveries), Promise.all(lasts)] as const)
        })
        .then(([recovered, last]) => finish(recovered, last), undo)
    )
  }

  /**
   * The shared filter for a subscribe's `filter`. One this connection does not hold yet is charged
   * to its filter budget (too_large past it), then its address's and the server's (unavailable).
   */
  private holdFilter(filter: Filter): Filter {
    const held = this.filters.get(filter.key)
    if (held !== undefined) return held.filter
    const { maxFilterCost } = this.host.options
    if (this.filterCost + filter.cost > maxFilterCost) {
      throw new LiveError(ErrorCode.tooLarge, `this connection's filters would cost more than ${maxFilterCost} field reads per event`)
    }
    const refusal = this.host.filterRefusal(this, filter)
    if (refusal !== null) throw new LiveError(ErrorCode.unavailable, refusal)
    const shared = this.host.holdFilter(this, filter)
    this.filters.set(filter.key, { filter: shared, patterns: 0 })
    this.filterCost += filter.cost
    return shared
  }

  private add(pattern: string, mode: SubscriptionMode | null): MaybePromise<void> {
    this.patterns.add(pattern)
    if (mode !== null) {
      this.modes.set(pattern, mode)
      if (mode.filter !== null) this.filters.get(mode.filter.key)!.patterns++
      if (mode.delta) this.deltaPatterns++
    }
    return this.host.watch(this, pattern, mode)
  }

  private drop(pattern: string): void {
    if (!this.patterns.delete(pattern)) return
    const mode = this.modeOf(pattern)
    this.modes.delete(pattern)
    if (mode?.delta) this.deltaPatterns--
    this.host.unwatch(this, pattern, mode)
    const held = mode?.filter ? this.filters.get(mode.filter.key) : undefined
    if (held !== undefined && --held.patterns === 0) {
      this.filters.delete(held.filter.key)
      this.filterCost -= held.filter.cost
      this.host.releaseFilter(this, held.filter)
    }
  }

  /** The socket closed: every pattern goes. */
  dropAll(): void {
    for (const pattern of this.patterns) this.drop(pattern)
  }

  /** The patterns a (un)subscribe names, validated and without repeats. */
  private patternsOf(frame: SubscribeFrame | UnsubscribeFrame): string[] {
    if ((frame.topic === undefined) === (frame.topics === undefined)) {
      throw new LiveError(ErrorCode.badRequest, `${frame.type}: give exactly one of "topic" or "topics"`)
    }
    const patterns = frame.topic !== undefined ? [frame.topic] : [...new Set(frame.topics)]
    const { maxSubscriptions } = this.host.options
    if (patterns.length > maxSubscriptions) throw new LiveError(ErrorCode.tooLarge, `more than ${maxSubscriptions} subscriptions`)
    for (const pattern of patterns) this.host.checkTopic(pattern, true)
    return patterns
  }

  /**
   * `since` as a map of concrete topic to position; null when the subscribe asks for no recovery.
   * Each entry is checked against a trie of the frame's patterns: its cost is the topic's tokens,
   * not the number of patterns.
   */
  private sinceOf(frame: SubscribeFrame, patterns: string[], work: Work): Map<string, Position> | null {
    const since = frame.since
    if (since === undefined) return null
    if (typeof since.epoch === 'string') {
      if (frame.topic === undefined || isPattern(frame.topic)) {
        throw new LiveError(ErrorCode.badRequest, 'since {epoch, seq} needs one concrete "topic"; use a map of topics for lists and wildcards')
      }
      return new Map([[frame.topic, since as Position]])
    }
    const map = new Map<string, Position>()
    const subscribed = new SubscriptionIndex<true>()
    for (const pattern of patterns) subscribed.add(pattern, true)
    for (const [topic, position] of Object.entries(since as Record<string, Position>)) {
      this.host.checkTopic(topic, false)
      if (!subscribed.has(topic, work)) {
        throw new LiveError(ErrorCode.badRequest, `since names "${topic}", which no subscribed topic matches`)
      }
      map.set(topic, position)
    }
    return map
  }

  // ---- outbound ----

  /** A live event from the hub; `frame` is the shared encoding, sent as is. */
  deliver(event: BusEvent, frame: Buffer): void {
    if (this.socket.readyState === OPEN) this.flow.live(event, frame)
  }

  /** A reply or per-connection frame, encoded in this connection's codec. */
  send(frame: object): void {
    if (this.socket.readyState !== OPEN) return
    this.out.reply(encodeFrame(this.codec, frame), (frame as { type: OutFrameType }).type)
  }

  // ---- lifecycle ----

  /** Publishers (feeds) get their own, higher frame rate; bursts of up to two seconds' worth. */
  private rateBucket(): TokenBucket | null {
    const { rateLimit, publisherRateLimit, rateStrikes } = this.host.options
    const rate = this.grants.publish.length > 0 ? publisherRateLimit : rateLimit
    return rate > 0 ? new TokenBucket(rate, 2 * rate, rateStrikes, Date.now()) : null
  }

  /** A renewed credential: its grants replace the old ones, and subscriptions they no longer cover end. */
  renew(grants: Grants): void {
    this.grants = grants
    // The new grants may change the rate; they never refill it (else each `auth` frame would buy a burst).
    const previous = this.bucket
    this.bucket = this.rateBucket()
    if (previous !== null) this.bucket?.continueFrom(previous)
    for (const pattern of this.patterns) if (!maySubscribe(grants, pattern)) this.drop(pattern)
    if (this.expiry !== null) clearTimeout(this.expiry)
    this.scheduleExpiry()
  }

  /** Closes with 1008 when the credential expires (docs/PROTOCOL.md: unless renewed with the `auth` method). */
  private scheduleExpiry(): void {
    const expiresAt = this.grants.expiresAt
    this.expiry = null
    if (expiresAt === null) return
    const left = expiresAt - Date.now()
    if (left <= 0) this.close(CloseCode.policyViolation, 'credential expired')
    else this.expiry = setTimeout(() => this.scheduleExpiry(), Math.min(left, MAX_TIMER_MS)).unref()
  }

  /** Sends an error frame for a failed frame; unexpected errors become `internal` and are logged. */
  private fail(id: FrameId | undefined, err: unknown): void {
    if (err instanceof LiveError && MALFORMED.has(err.code) && this.frameErrors?.add(Date.now())) {
      this.host.log.warn({ connection: this.id, remoteAddress: this.remoteAddress }, 'too many bad frames: closing')
      this.close(CloseCode.policyViolation, 'too many bad frames')
      return
    }
    if (err instanceof LiveError) {
      this.host.warnProtocol(this, err)
      this.send(errorFrame(id, err.code, err.message))
    } else {
      this.host.log.warn({ connection: this.id, err }, 'frame handler failed')
      this.send(errorFrame(id, ErrorCode.internal, 'internal error'))
    }
  }

  /** Sends the result of a synchronous or asynchronous step, or its error. */
  private settle<T>(id: FrameId | undefined, result: MaybePromise<T>, reply: (value: T) => void): void {
    if (isThenable(result)) result.then(reply, (err) => this.fail(id, err))
    else reply(result)
  }

  heartbeat(): void {
    // A closing connection is left to finish its close handshake (ws cuts it off after 30 s): cut now,
    // a client still sending would get a reset instead of the close frame that says why.
    if (this.socket.readyState !== OPEN) return
    if (!this.alive) {
      this.socket.terminate()
      return
    }
    this.alive = false
    this.socket.ping()
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === OPEN) this.socket.close(code, reason)
  }
}

/** How a pattern is subscribed beyond plain events: a filter, deltas (docs/PROTOCOL.md "Filters", "Deltas"). */
export interface SubscriptionMode {
  filter: Filter | null
  delta: boolean
}

/** Equal for two subscriptions of the same filter and delta choice (the hub groups by it). */
export const modeKey = (mode: SubscriptionMode | null) => (mode === null ? '' : `${mode.filter?.key ?? ''}\n${mode.delta}`)

/** The snapshots a filter lets through; each evaluation is paid from the frame's work budget, at the filter's cost. */
function passing(last: BusEvent | BusEvent[] | undefined, filter: Filter, work: Work): BusEvent | BusEvent[] | undefined {
  const passes = (event: BusEvent) => {
    work.spend(filter.cost)
    return filter.test(event.data)
  }
  if (Array.isArray(last)) return last.filter(passes)
  return last !== undefined && passes(last) ? last : undefined
}

/** Filter evaluations a replay makes in one turn of the event loop; then other work goes first. */
const REPLAY_FILTER_BATCH = 1000

/**
 * A replay with only the events a filter lets through, read as lazily as the replay itself. Every
 * REPLAY_FILTER_BATCH evaluations it yields the turn (a PageRead that is ready at the next one): a
 * filter that lets nothing through a long replay never holds the event loop for all of it.
 */
export function matching(replay: Replay, filter: Filter): Replay {
  return {
    length: replay.length,
    *[Symbol.iterator]() {
      let evaluated = 0
      for (const event of replay) {
        if (event instanceof PageRead) yield event
        else {
          if (filter.test(event.data)) yield event
          if (++evaluated % REPLAY_FILTER_BATCH === 0) yield new PageRead(new Promise((resolve) => setImmediate(resolve)))
        }
      }
    }
  }
}

/** A subscribe's filter, or bad_request naming where it went wrong. */
function filterOf(text: string): Filter {
  try {
    return parseFilter(text)
  } catch (err) {
    if (err instanceof FilterError) throw new LiveError(ErrorCode.badRequest, err.message)
    throw err
  }
}
