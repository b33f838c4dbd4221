// The hub: every live connection, the subscription index, publish, and encode-once fan-out with corking.
import type { Socket } from 'node:net'
import { checkData, encodeEvent, FrameDecoder, type CodecName } from './codec.js'
import { LiveConnection, type LiveSocket } from './connection.js'
import { CloseCode, ErrorCode, LiveError, type BusEvent } from './protocol.js'
import { checkTopic, SubscriptionIndex } from './topics.js'
import type { Bus, MaybePromise } from './bus.js'
import type { HookRegistry, ClientInfo } from '../hooks/registry.js'
import { Authenticator, UNRESTRICTED, maySubscribe, type AuthOptions, type Grants } from './auth.js'
import { Admission } from './limits.js'
import { LiveStats } from './stats.js'
import type { Config } from '../config.js'

export type HubOptions = Pick<
  Config,
  | 'maxPayload'
  | 'maxPublishBytes'
  | 'maxQueuedBytes'
  | 'slowConsumer'
  | 'heartbeatInterval'
  | 'maxSubscriptions'
  | 'maxTopicLength'
  | 'maxTopicTokens'
  | 'rateLimit'
  | 'publisherRateLimit'
  | 'rateStrikes'
  | 'maxFrameErrors'
  | 'decodeMaxDepth'
  | 'decodeMaxItems'
  | 'maxConnections'
  | 'maxConnectionsPerIp'
  | 'maxSubscriptionsPerIp'
  | 'maxSubscriptionsTotal'
  | 'memoryLimitMb'
  | keyof AuthOptions
>

export interface HubLogger {
  debug(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

// Protocol warnings: at most this many per window, then one line counting the rest.
const WARN_WINDOW_MS = 10_000
const WARNS_PER_WINDOW = 20

/** An in-process subscriber: called with every matching event after the sockets got theirs. */
export type EventListener = (event: BusEvent) => void

export class Hub {
  readonly connections = new Set<LiveConnection>()
  readonly index = new SubscriptionIndex<LiveConnection>()
  private readonly listeners = new SubscriptionIndex<EventListener>()
  readonly decoder: FrameDecoder
  readonly auth: Authenticator
  readonly admission: Admission
  readonly stats = new LiveStats()
  draining = false
  /** Per topic, the last publish still waiting for async hooks: later ones queue behind it to keep seq order. */
  private readonly publishTails = new Map<string, Promise<unknown>>()
  private nextId = 1
  private corked: LiveConnection[] = []
  private flushScheduled = false
  /** When each event fanned out this turn reached delivery; its frames leave at the flush. */
  private deliveredAt = new Float64Array(1024)
  private deliveredCount = 0
  private readonly heartbeat: NodeJS.Timeout | null
  private warnWindowStart = 0
  private warnsInWindow = 0

  constructor(
    readonly bus: Bus,
    readonly options: HubOptions,
    readonly log: HubLogger,
    readonly hooks: HookRegistry
  ) {
    this.decoder = new FrameDecoder(options)
    this.auth = new Authenticator(options)
    this.admission = new Admission(options)
    this.flush = this.flush.bind(this)
    bus.onEvent = this.deliver.bind(this)
    this.heartbeat = options.heartbeatInterval > 0 ? setInterval(() => this.beat(), options.heartbeatInterval).unref() : null
    const methods = hooks.methods
    methods.set('time', () => ({ serverTime: Date.now() }))
    methods.set('topics', (_params, client) =>
      then(bus.topics(), (topics) =>
        topics
          .filter((t) => maySubscribe(callerGrants(client), t.topic))
          .map((t) => ({ topic: t.topic, seq: t.seq, epoch: t.epoch, subscribers: this.index.match(t.topic).length }))
      )
    )
    methods.set('hooks', () => hooks.figures())
    methods.set('snapshot', (params, client) => {
      const topic = (params as { topic?: unknown } | null)?.topic
      if (typeof topic !== 'string') throw new LiveError(ErrorCode.badRequest, 'snapshot: params.topic must be a string')
      this.checkTopic(topic, false)
      if (!maySubscribe(callerGrants(client), topic)) throw new LiveError(ErrorCode.forbidden, `no grant to read "${topic}"`)
      return then(bus.last(topic), (e) => {
        if (e === undefined) throw new LiveError(ErrorCode.notFound, `topic "${topic}" has no value`)
        return { topic: e.topic, seq: e.seq, epoch: e.epoch, ts: e.ts, data: e.data }
      })
    })
    // Renews a connection's credential before it expires: its grants become the new token's.
    methods.set('auth', (params, client) => {
      const token = (params as { token?: unknown } | null)?.token
      if (typeof token !== 'string' || token === '') throw new LiveError(ErrorCode.badRequest, 'auth: params.token must be a non-empty string')
      const grants = this.auth.verify(token)
      ;(client as LiveConnection).renew(grants)
      return { subject: grants.subject, expiresAt: grants.expiresAt, subscribe: grants.subscribe, publish: grants.publish }
    })
  }

  /**
   * Starts serving a socket that just opened. Attaches its listeners synchronously: no frame is missed.
   * The upgrade was admitted, but upgrades racing each other can overshoot a limit: those close with 1013.
   */
  accept(socket: LiveSocket, codec: CodecName, remoteAddress: string | undefined, grants: Grants): LiveConnection | null {
    const refusal = this.admission.refusal(remoteAddress)
    if (refusal !== null) {
      socket.close(CloseCode.overloaded, refusal.slice(0, 120))
      return null
    }
    const connection = new LiveConnection(this, socket, this.nextId++, codec, remoteAddress, grants)
    this.connections.add(connection)
    this.stats.connects++
    this.admission.opened(remoteAddress)
    this.log.debug({ connection: connection.id, codec, remoteAddress, subject: grants.subject }, 'connection open')
    return connection
  }

  /** Forgets a closed connection and its subscriptions. */
  remove(connection: LiveConnection, code: number): void {
    if (!this.connections.delete(connection)) return
    this.stats.disconnected(code)
    this.admission.closed(connection.remoteAddress)
    for (const pattern of connection.patterns) this.unsubscribe(connection, pattern)
    this.log.debug({ connection: connection.id, code }, 'connection closed')
  }

  checkTopic(topic: string, wildcards: boolean): void {
    checkTopic(topic, this.options, wildcards)
  }

  /**
   * The one publish path behind the frame, POST /publish and the in-process API: publish hooks,
   * then the bus. With no hooks, or only synchronous ones, it stays synchronous. An event whose
   * hooks are still running holds back later events of its topic only, so seq order follows
   * publish order on each topic while other topics go on.
   */
  publish(topic: string, data: unknown): MaybePromise<BusEvent> {
    this.checkTopic(topic, false)
    checkData(data, this.options.decodeMaxDepth)
    if (!this.hooks.hasPublish) return this.bus.publish(topic, data)
    const enriched = this.hooks.runPublish(topic, data)
    const tail = this.publishTails.get(topic)
    if (tail === undefined && !isThenable(enriched)) return this.bus.publish(topic, enriched)
    if (isThenable(enriched)) enriched.catch(noop) // a drop is reported through `published`, not as unhandled
    const published = (tail ?? Promise.resolve()).then(() => enriched).then((d) => this.bus.publish(topic, d))
    const settled = published.then(noop, noop)
    this.publishTails.set(topic, settled)
    settled.then(() => {
      if (this.publishTails.get(topic) === settled) this.publishTails.delete(topic)
    })
    return published
  }

  /** Adds a pattern; a promise when the bus confirms its upstream subscription later. */
  subscribe(connection: LiveConnection, pattern: string): MaybePromise<void> {
    if (connection.patterns.has(pattern)) return
    connection.patterns.add(pattern)
    this.stats.subscriptions++
    this.admission.subscribed(connection.remoteAddress, 1)
    this.index.add(pattern, connection)
    return this.bus.watch(pattern)
  }

  unsubscribe(connection: LiveConnection, pattern: string): void {
    if (!connection.patterns.delete(pattern)) return
    this.stats.subscriptions--
    this.admission.subscribed(connection.remoteAddress, -1)
    this.index.remove(pattern, connection)
    this.bus.unwatch(pattern)
  }

  /** Subscribes in process (the arbitrage engine, an embedding app); returns the unsubscribe function. */
  listen(pattern: string, listener: EventListener): () => void {
    this.checkTopic(pattern, true)
    this.listeners.add(pattern, listener)
    // A bus that is not connected yet (start-up) watches the pattern once it is: nothing to report.
    const watching = this.bus.watch(pattern)
    if (isThenable(watching)) watching.catch(noop)
    return () => {
      this.listeners.remove(pattern, listener)
      this.bus.unwatch(pattern)
    }
  }

  /** Fan-out: encode the event once per codec in use and send those same bytes to every subscriber. */
  deliver(event: BusEvent): void {
    const subscribers = this.index.match(event.topic)
    // One event that cannot be encoded (data another writer put on the backplane) is logged and
    // skipped: it never throws out of the bus's handler. Its subscribers see the seq jump.
    if (subscribers.length !== 0) {
      try {
        this.fanOut(event, subscribers)
      } catch (err) {
        this.log.warn({ err, topic: event.topic, seq: event.seq }, 'event could not be delivered')
      }
    }
    const listeners = this.listeners.match(event.topic)
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i](event)
      } catch (err) {
        this.log.warn({ err, topic: event.topic }, 'in-process subscriber failed')
      }
    }
  }

  private fanOut(event: BusEvent, subscribers: readonly LiveConnection[]): void {
    const start = performance.now()
    let msgpack: Buffer | undefined
    let json: Buffer | undefined
    for (let i = 0; i < subscribers.length; i++) {
      const connection = subscribers[i]
      // biome-ignore lint/suspicious/noAssignInExpressions: each codec's frame is encoded once, when its first subscriber needs it
      const frame = connection.binary ? (msgpack ??= encodeEvent('msgpack', 'event', event)) : (json ??= encodeEvent('json', 'event', event))
      connection.deliver(event, frame)
    }
    if (this.flushScheduled) this.deliveredUntilFlush(start)
    else this.stats.publishToSend.record(performance.now() - start)
  }

  private deliveredUntilFlush(start: number): void {
    if (this.deliveredCount === this.deliveredAt.length) {
      const grown = new Float64Array(this.deliveredAt.length * 2)
      grown.set(this.deliveredAt)
      this.deliveredAt = grown
    }
    this.deliveredAt[this.deliveredCount++] = start
  }

  /** Holds a socket's writes until the end of this event-loop turn (or until the caps are reached). */
  cork(connection: LiveConnection, raw: Socket): void {
    raw.cork()
    this.corked.push(connection)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(this.flush)
    }
  }

  private flush(): void {
    this.flushScheduled = false
    const corked = this.corked
    this.corked = []
    for (let i = 0; i < corked.length; i++) corked[i].uncork()
    const sent = performance.now()
    for (let i = 0; i < this.deliveredCount; i++) this.stats.publishToSend.record(sent - this.deliveredAt[i])
    this.deliveredCount = 0
  }

  private beat(): void {
    for (const connection of this.connections) connection.heartbeat()
  }

  /** Protocol errors are logged at warn, rate-limited so a misbehaving client cannot flood the log. */
  warnProtocol(connection: LiveConnection, err: LiveError): void {
    const now = Date.now()
    if (now - this.warnWindowStart > WARN_WINDOW_MS) {
      if (this.warnsInWindow > WARNS_PER_WINDOW) {
        this.log.warn({ suppressed: this.warnsInWindow - WARNS_PER_WINDOW }, 'protocol warnings suppressed')
      }
      this.warnWindowStart = now
      this.warnsInWindow = 0
    }
    if (++this.warnsInWindow <= WARNS_PER_WINDOW) {
      this.log.warn({ connection: connection.id, code: err.code }, err.message)
    }
  }

  /** Stops taking connections and closes every open one with 1001. */
  drain(): void {
    this.draining = true
    for (const connection of this.connections) connection.close(1001, 'server shutting down')
  }

  close(): void {
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    this.drain()
  }
}

/** Applies `fn` to a value or a promise of one, staying synchronous for plain values. */
export function then<T, R>(value: MaybePromise<T>, fn: (value: T) => R): MaybePromise<Awaited<R>> | R {
  return isThenable(value) ? (value.then(fn) as Promise<Awaited<R>>) : fn(value)
}

const noop = () => {}

/** The grants of a method's caller: a live connection's, or everything for in-process callers. */
const callerGrants = (client: ClientInfo): Grants => (client as Partial<LiveConnection>).grants ?? UNRESTRICTED

export const isThenable = <T>(value: MaybePromise<T>): value is Promise<T> => typeof (value as Promise<T> | null)?.then === 'function'
