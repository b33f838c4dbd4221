// One client connection: decodes and dispatches its frames, and owns its send path (corking, slow-consumer policy).
import type { Socket } from 'node:net'
import { encodeEvent, encodeFrame, framePayload, type CodecName } from './codec.js'
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
import type { MaybePromise } from './bus.js'
import { isThenable, type Hub } from './hub.js'
import type { ClientInfo } from '../hooks/registry.js'
import { checkPublish, maySubscribe, type Grants } from './auth.js'
import { Strikes, TokenBucket } from './limits.js'
import type { LiveStats } from './stats.js'

type OutFrameType = keyof LiveStats['framesOut']

/** A replayed event or a snapshot waiting to be written. */
interface Replayed {
  type: 'event' | 'snapshot'
  event: BusEvent
}

/** The part of a `ws` WebSocket that a connection uses; tests pass a fake. */
export interface LiveSocket {
  readonly readyState: number
  readonly bufferedAmount: number
  /** ws's underlying TCP socket: frames are written to it directly; absent on fakes. */
  readonly _socket?: Socket | null
  /** Negotiated extensions; with permessage-deflate frames must go through ws. */
  readonly extensions?: string
  send(data: Uint8Array, options: { binary: boolean }): void
  close(code?: number, reason?: string): void
  terminate(): void
  ping(): void
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): unknown
  on(event: 'close', listener: (code: number) => void): unknown
  on(event: 'pong', listener: () => void): unknown
  on(event: 'error', listener: (err: Error) => void): unknown
}

const OPEN = 1
const BINARY = Object.freeze({ binary: true })
const TEXT = Object.freeze({ binary: false })
// Corking holds a socket's frames until the end of the event-loop turn so they leave in one write;
// these caps bound what one socket holds meanwhile.
const MAX_CORKED_FRAMES = 64
const MAX_CORKED_BYTES = 64 * 1024
// Replies are never conflated; a client that sends requests and never reads is cut off here.
const REPLY_QUEUE_FACTOR = 4
// A consumer closed for being slow is not reading its close frame either: its queue is freed after this.
const SLOW_CLOSE_GRACE_MS = 2000
// The errors that say a frame itself was bad, or a credential was (an `auth` with a bad signature
// costs a verification each time); only these count towards MAX_FRAME_ERRORS.
const MALFORMED: ReadonlySet<string> = new Set([ErrorCode.badRequest, ErrorCode.unknownType, ErrorCode.tooLarge, ErrorCode.unauthorized])
// setTimeout's longest delay; a credential expiring later is checked again when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1

export class LiveConnection implements ClientInfo {
  readonly patterns = new Set<string>()
  readonly binary: boolean
  private readonly sendOptions: { binary: boolean }
  private readonly raw: Socket | null
  private alive = true
  private corked = false
  private corkedFrames = 0
  private corkedBytes = 0
  private replyCorked = false
  /** Latest frame per topic while congested under the conflate policy. */
  private conflated: Map<string, Buffer> | null = null
  /** Live events held while a subscribe waits for the bus: [event, frame, event, frame, ...]. */
  private held: (BusEvent | Buffer)[] | null = null
  private holds = 0
  /**
   * The last event sent per topic by a replay or snapshot read from an asynchronous bus. Live events
   * up to it are duplicates: held ones, and with a backplane also ones that arrive after the read
   * (its pub/sub stream and its history reads travel on different connections). An entry goes at
   * the first newer live event of its topic, the map when it is empty.
   */
  private replayed: Map<string, BusEvent> | null = null
  /** Set while an async step (a hook, a backplane read, a replay being written) runs: later frames wait behind it, in order. */
  private pending: Promise<void> | null = null
  /** Bytes of the frames waiting behind `pending`: a client that sends on and never reads is cut off. */
  private waitingBytes = 0
  /** Replayed events and snapshots not written yet, last first: they go out as the socket drains. */
  private backlog: Replayed[] | null = null
  private backlogDone: (() => void) | null = null
  /** Bytes of the live frames held meanwhile. */
  private heldBytes = 0
  /** Inbound frame rate; null when RATE_LIMIT is 0. */
  private bucket: TokenBucket | null
  private expiry: NodeJS.Timeout | null = null
  /** Bad frames: a connection that keeps sending them is closed rather than answered forever. */
  private readonly frameErrors: Strikes | null

  constructor(
    private readonly hub: Hub,
    readonly socket: LiveSocket,
    readonly id: number,
    readonly codec: CodecName,
    readonly remoteAddress: string | undefined,
    public grants: Grants
  ) {
    this.binary = codec === 'msgpack'
    this.sendOptions = this.binary ? BINARY : TEXT
    this.raw = socket._socket && !socket.extensions ? socket._socket : null
    this.onMessage = this.onMessage.bind(this)
    this.onDrain = this.onDrain.bind(this)
    this.writeBacklog = this.writeBacklog.bind(this)
    this.flushReplies = this.flushReplies.bind(this)
    this.bucket = this.rateBucket()
    this.frameErrors = hub.options.maxFrameErrors > 0 ? new Strikes(hub.options.maxFrameErrors) : null
    this.scheduleExpiry()
    socket.on('message', this.onMessage)
    socket.on('close', (code) => {
      if (this.expiry !== null) clearTimeout(this.expiry)
      hub.remove(this, code)
    })
    socket.on('pong', () => {
      this.alive = true
    })
    // ws emits 'error' for protocol violations (bad UTF-8, oversized frames) and then closes the socket itself.
    socket.on('error', (err) => hub.log.debug({ connection: id, err: err.message }, 'socket error'))
  }

  // ---- inbound ----

  onMessage(data: Buffer, isBinary: boolean): void {
    this.alive = true
    this.hub.stats.bytesIn += data.length
    if (this.socket.readyState !== OPEN) return
    if (this.bucket !== null) {
      const verdict = this.bucket.take(Date.now())
      if (verdict !== 'ok') {
        this.refuse(verdict, data, isBinary)
        return
      }
    }
    if (data.length > this.hub.options.maxPayload) {
      // Reached only when a host app registered @fastify/websocket with a larger maxPayload.
      this.close(CloseCode.tooLarge, 'frame too large')
      return
    }
    let frame: ClientFrame
    try {
      frame = validateFrame(this.hub.decoder.decode(data, isBinary))
    } catch (err) {
      this.hub.stats.framesIn.invalid++
      this.fail(err instanceof FrameError ? err.id : undefined, err)
      return
    }
    this.hub.stats.framesIn[frame.type]++
    if (this.pending !== null) {
      const size = data.length
      this.waitingBytes += size
      if (this.waitingBytes > this.hub.options.maxQueuedBytes * REPLY_QUEUE_FACTOR) {
        this.closeSlow()
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
      this.hub.log.warn({ connection: this.id, remoteAddress: this.remoteAddress }, 'rate limit exceeded repeatedly: closing')
      this.close(CloseCode.rateLimited, 'rate limit exceeded repeatedly')
      return
    }
    let id: FrameId | undefined
    try {
      const frame = this.hub.decoder.decode(data, isBinary) as { id?: unknown }
      if (typeof frame?.id === 'number' || typeof frame?.id === 'string') id = frame.id
    } catch {}
    this.send(errorFrame(id, ErrorCode.rateLimited, 'too many frames per second'))
  }

  /** Inbound hooks, then dispatch; returns a promise only when a hook or verdict went async. */
  private handle(frame: ClientFrame, size: number): Promise<void> | void {
    const id = frame.id
    try {
      const hooked = this.hub.hooks.hasInbound ? this.hub.hooks.runInbound(frame, this) : frame
      if (isThenable(hooked)) return hooked.then((f) => this.dispatch(f, size)).catch((err) => this.fail(id, err))
      const step = this.dispatch(hooked, size)
      if (step !== undefined) return step.catch((err) => this.fail(id, err))
    } catch (err) {
      this.fail(id, err)
    }
  }

  private wait(step: Promise<void>): void {
    const pending: Promise<void> = step.then(() => {
      if (this.pending === pending) this.pending = null
    })
    this.pending = pending
  }

  private dispatch(frame: ClientFrame, size: number): Promise<void> | void {
    switch (frame.type) {
      case 'request':
        return this.onRequest(frame)
      case 'ping':
        return this.send(frame.id === undefined ? { type: 'pong', serverTime: Date.now() } : { type: 'pong', id: frame.id, serverTime: Date.now() })
      case 'subscribe':
        return this.onSubscribe(frame)
      case 'unsubscribe':
        return this.onUnsubscribe(frame)
      case 'publish':
        return this.onPublish(frame, size)
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
    const method = this.hub.hooks.methods.get(frame.method)
    if (method === undefined) throw new LiveError(ErrorCode.notFound, `unknown method "${frame.method.slice(0, 64)}"`)
    this.settle(frame.id, method(frame.params, this), (result) => this.send({ type: 'response', id: frame.id, result }))
  }

  private onPublish(frame: PublishFrame, frameBytes: number): void {
    checkPublish(this.grants, frame.topic)
    if (frameBytes > this.hub.options.maxPublishBytes) {
      throw new LiveError(ErrorCode.tooLarge, `publish larger than ${this.hub.options.maxPublishBytes} bytes`)
    }
    this.settle(frame.id, this.hub.publish(frame.topic, frame.data), (event) => this.send({ type: 'ack', id: frame.id, seq: event.seq, epoch: event.epoch }))
  }

  private onUnsubscribe(frame: UnsubscribeFrame): void {
    const patterns = this.patternsOf(frame)
    for (const pattern of patterns) this.hub.unsubscribe(this, pattern)
    this.send({ type: 'ack', id: frame.id, topics: patterns })
  }

  /**
   * Checks the frame, asks the subscribe hooks (which may answer later), then subscribes. Matching
   * its `since` entries and its snapshots is paid from one work budget per frame.
   */
  private onSubscribe(frame: SubscribeFrame): Promise<void> | void {
    const patterns = this.patternsOf(frame)
    const denied = patterns.find((p) => !maySubscribe(this.grants, p))
    if (denied !== undefined) throw new LiveError(ErrorCode.forbidden, `no grant to subscribe to "${denied}"`)
    const work = new Work(FRAME_WORK)
    const since = this.sinceOf(frame, patterns, work)
    const verdict = this.hub.hooks.hasSubscribe ? this.hub.hooks.runSubscribe(patterns, this) : undefined
    if (isThenable(verdict)) return verdict.then(() => this.subscribe(frame, patterns, since, work))
    return this.subscribe(frame, patterns, since, work)
  }

  /**
   * Subscribes and answers. When the bus answers later (a backplane), the returned promise makes
   * the connection's later frames wait, so an unsubscribe sent right behind is handled (and
   * acked) after this subscribe, as sent.
   */
  private subscribe(frame: SubscribeFrame, patterns: string[], since: Map<string, Position> | null, work: Work): Promise<void> | void {
    const fresh = patterns.filter((p) => !this.patterns.has(p))
    if (this.patterns.size + fresh.length > this.hub.options.maxSubscriptions) {
      throw new LiveError(ErrorCode.tooLarge, `more than ${this.hub.options.maxSubscriptions} subscriptions`)
    }
    const refusal = fresh.length === 0 ? null : this.hub.admission.subscriptionRefusal(this.remoteAddress, fresh.length)
    if (refusal !== null) throw new LiveError(ErrorCode.unavailable, refusal)
    // Subscribe first (a backplane confirms upstream), then read history: an event published
    // meanwhile is live (held, then deduplicated by seq).
    const watching = patterns.map((pattern) => this.hub.subscribe(this, pattern)).filter(isThenable)

    const bus = this.hub.bus
    const snapshot = frame.snapshot !== false
    const read = () =>
      [
        since === null ? [] : [...since].map(([t, p]) => bus.since(t, p)),
        snapshot ? patterns.map((p) => (isPattern(p) ? bus.lastMatching(p, work) : bus.last(p))) : []
      ] as [MaybePromise<BusEvent[] | null>[], MaybePromise<BusEvent | BusEvent[] | undefined>[]]
    const finish = (recovered: (BusEvent[] | null)[], last: (BusEvent | BusEvent[] | undefined)[]) =>
      this.sendSubscribed(frame.id, patterns, since, recovered, last)
    const undo = (err: unknown) => {
      for (const pattern of fresh) this.hub.unsubscribe(this, pattern)
      this.fail(frame.id, err)
    }

    if (watching.length === 0) {
      let reads: ReturnType<typeof read>
      try {
        reads = read()
      } catch (err) {
        return undo(err)
      }
      if (!reads[0].some(isThenable) && !reads[1].some(isThenable)) {
        return finish(reads[0] as (BusEvent[] | null)[], reads[1] as (BusEvent | BusEvent[] | undefined)[])
      }
      return this.whileHeld(Promise.all([Promise.all(reads[0]), Promise.all(reads[1])]).then(([recovered, last]) => finish(recovered, last), undo))
    }
    return this.whileHeld(
      Promise.all(watching)
        .then(() => {
          const [recoveries, lasts] = read()
          return Promise.all([Promise.all(recoveries), Promise.all(lasts)] as const)
        })
        .then(([recovered, last]) => finish(recovered, last), undo)
    )
  }

  /** Holds live events until `step` (a read and the writing of what it found) is done. */
  private whileHeld(step: Promise<void>): Promise<void> {
    this.hold()
    return step.finally(() => this.release())
  }

  /**
   * ack, then per topic the replayed events or a snapshot (PROTOCOL.md "Delivery"). Those are
   * written as the socket drains, never more than the slow-consumer budget at a time, with live
   * events held behind them; the promise (when they did not all fit at once) resolves when the
   * last is written, and the connection's later frames wait for it.
   */
  private sendSubscribed(
    id: FrameId | undefined,
    patterns: string[],
    since: Map<string, Position> | null,
    recovered: (BusEvent[] | null)[],
    last: (BusEvent | BusEvent[] | undefined)[]
  ): Promise<void> | void {
    const ack: Record<string, unknown> = { type: 'ack', id, topics: patterns }
    if (since !== null) ack.recovered = recovered.every((events) => events !== null)
    this.send(ack)
    const snapshots = new Map<string, BusEvent>()
    for (const entry of last) {
      if (Array.isArray(entry)) for (const e of entry) snapshots.set(e.topic, e)
      else if (entry !== undefined) snapshots.set(entry.topic, entry)
    }
    const backlog: Replayed[] = []
    if (since !== null) {
      let i = 0
      for (const topic of since.keys()) {
        const events = recovered[i++]
        if (events === null) continue // not recovered: its snapshot (if any) follows
        snapshots.delete(topic)
        for (const e of events) backlog.push({ type: 'event', event: e })
      }
    }
    for (const e of snapshots.values()) backlog.push({ type: 'snapshot', event: e })
    if (backlog.length === 0) return
    this.hold()
    this.backlog = backlog.reverse() // written from the end: pop() is O(1)
    return new Promise<void>((resolve) => {
      this.backlogDone = resolve
      this.writeBacklog()
    })
  }

  /** Writes replayed frames while the socket takes them; past the slow-consumer budget, waits for 'drain'. */
  private writeBacklog(): void {
    const backlog = this.backlog!
    const raw = this.raw
    // Past the high-water mark a write has returned false, so 'drain' is sure to follow.
    const budget = raw === null ? Infinity : Math.max(this.hub.options.maxQueuedBytes, raw.writableHighWaterMark)
    while (backlog.length > 0 && this.socket.readyState === OPEN) {
      if (this.socket.bufferedAmount > budget) {
        raw!.once('drain', this.writeBacklog)
        return
      }
      const { type, event } = backlog.pop()!
      this.sendReplayed(type, event)
    }
    this.backlog = null
    this.backlogDone!()
    this.backlogDone = null
    this.release()
  }

  private sendReplayed(type: 'event' | 'snapshot', e: BusEvent): void {
    if (this.replayed !== null && !(e.seq <= (this.replayed.get(e.topic)?.seq ?? 0))) this.replayed.set(e.topic, e)
    this.sendBytes(encodeEvent(this.codec, type, e), type)
  }

  /** The patterns a (un)subscribe names, validated and without repeats. */
  private patternsOf(frame: SubscribeFrame | UnsubscribeFrame): string[] {
    if ((frame.topic === undefined) === (frame.topics === undefined)) {
      throw new LiveError(ErrorCode.badRequest, `${frame.type}: give exactly one of "topic" or "topics"`)
    }
    const patterns = frame.topic !== undefined ? [frame.topic] : [...new Set(frame.topics)]
    if (patterns.length > this.hub.options.maxSubscriptions) {
      throw new LiveError(ErrorCode.tooLarge, `more than ${this.hub.options.maxSubscriptions} subscriptions`)
    }
    for (const pattern of patterns) this.hub.checkTopic(pattern, true)
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
      this.hub.checkTopic(topic, false)
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
    if (this.socket.readyState !== OPEN) return
    if (this.held !== null) {
      this.held.push(event, frame)
      this.heldBytes += frame.length
      // Held behind a replay the client is slow to read: the same budget as for queued replies.
      if (this.heldBytes > this.hub.options.maxQueuedBytes * REPLY_QUEUE_FACTOR) this.closeSlow()
    } else if (this.replayed === null || !this.alreadySent(event)) this.enqueue(event.topic, frame)
  }

  /** Writes an event frame, or applies the slow-consumer policy when too much is queued. */
  private enqueue(topic: string, frame: Buffer): void {
    const stats = this.hub.stats
    if (this.conflated !== null) {
      this.conflated.set(topic, frame)
      stats.conflatedEvents++
    } else if (this.socket.bufferedAmount > this.hub.options.maxQueuedBytes) {
      this.congested(topic, frame)
    } else {
      this.write(frame)
      stats.framesOut.event++
      stats.bytesOut += frame.length
    }
  }

  /**
   * A reply or per-connection frame, encoded in this connection's codec. A reply does not wait for
   * the end of the turn (its round trip is what a client measures) unless events corked the socket.
   */
  send(frame: object): void {
    if (this.socket.readyState !== OPEN) return
    this.sendBytes(encodeFrame(this.codec, frame), (frame as { type: OutFrameType }).type)
  }

  /** A frame already encoded in this connection's codec; replies and replayed frames take this path. */
  private sendBytes(encoded: Buffer, type: OutFrameType): void {
    if (this.socket.readyState !== OPEN) return
    const stats = this.hub.stats
    stats.framesOut[type]++
    stats.bytesOut += encoded.length
    if (this.corked || this.raw === null) {
      this.write(encoded)
      this.checkReplyQueue()
      return
    }
    // Replies to the frames of one read (pipelined publishes, say) leave in one write, right after
    // that read is handled: a microtask, not the end of the event-loop turn.
    if (!this.replyCorked) {
      this.replyCorked = true
      this.raw.cork()
      queueMicrotask(this.flushReplies)
    }
    this.raw.write(encoded)
    this.checkReplyQueue()
  }

  private flushReplies(): void {
    this.replyCorked = false
    this.raw!.uncork()
  }

  private checkReplyQueue(): void {
    if (this.socket.bufferedAmount > this.hub.options.maxQueuedBytes * REPLY_QUEUE_FACTOR) this.closeSlow()
  }

  /** Writes a complete frame to the TCP socket (ws's sender is idle: no compression, no queue). */
  private write(frame: Buffer): void {
    const raw = this.raw
    if (raw === null) {
      this.socket.send(framePayload(frame), this.sendOptions)
      return
    }
    if (!this.corked) {
      this.corked = true
      this.hub.cork(this, raw)
    }
    raw.write(frame)
    this.corkedBytes += frame.length
    if (++this.corkedFrames >= MAX_CORKED_FRAMES || this.corkedBytes >= MAX_CORKED_BYTES) {
      this.corkedFrames = 0
      this.corkedBytes = 0
      raw.uncork()
      raw.cork()
    }
  }

  /** Called by the hub at the end of the event-loop turn. */
  uncork(): void {
    this.corked = false
    this.corkedFrames = 0
    this.corkedBytes = 0
    this.raw?.uncork()
  }

  private congested(topic: string, frame: Buffer): void {
    if (this.hub.options.slowConsumer === 'close' || this.raw === null) {
      this.closeSlow()
      return
    }
    this.hub.stats.slowConflated++
    this.hub.stats.conflatedEvents++
    this.conflated = new Map([[topic, frame]])
    this.raw.once('drain', this.onDrain)
  }

  /** The socket caught up: send the latest event of each topic that changed meanwhile. */
  onDrain(): void {
    const pending = this.conflated
    this.conflated = null
    if (pending === null || this.socket.readyState !== OPEN) return
    for (const [topic, frame] of pending) this.enqueue(topic, frame)
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
    for (let i = 0; i < held.length; i += 2) this.deliver(held[i] as BusEvent, held[i + 1] as Buffer)
  }

  // ---- lifecycle ----

  /** Publishers (feeds) get their own, higher frame rate; bursts of up to two seconds' worth. */
  private rateBucket(): TokenBucket | null {
    const { rateLimit, publisherRateLimit, rateStrikes } = this.hub.options
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
    for (const pattern of this.patterns) if (!maySubscribe(grants, pattern)) this.hub.unsubscribe(this, pattern)
    if (this.expiry !== null) clearTimeout(this.expiry)
    this.scheduleExpiry()
  }

  /** Closes with 1008 when the credential expires (PROTOCOL.md: unless renewed with the `auth` method). */
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
      this.hub.log.warn({ connection: this.id, remoteAddress: this.remoteAddress }, 'too many bad frames: closing')
      this.close(CloseCode.policyViolation, 'too many bad frames')
      return
    }
    if (err instanceof LiveError) {
      this.hub.warnProtocol(this, err)
      this.send(errorFrame(id, err.code, err.message))
    } else {
      this.hub.log.warn({ connection: this.id, err }, 'frame handler failed')
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

  private closeSlow(): void {
    if (this.socket.readyState !== OPEN) return
    this.hub.stats.slowClosed++
    this.hub.log.debug({ connection: this.id, queued: this.socket.bufferedAmount }, 'slow consumer closed')
    this.close(CloseCode.slowConsumer, 'slow consumer')
    setTimeout(() => this.socket.terminate(), SLOW_CLOSE_GRACE_MS).unref()
  }
}
