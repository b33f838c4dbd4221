// The hub: every live connection, the subscription index, admission, the one publish path, and
// encode-once fan-out. Connections send through their own send paths; the hub only hands them
// the shared frame of each event.
import { checkData, encodeEvent, FrameDecoder, type CodecName, type DecodeLimits } from './codec.js'
import { LiveConnection, modeKey, type ConnectionHost, type ConnectionOptions, type LiveSocket, type SubscriptionMode } from './connection.js'
import { CloseCode, type LiveError, type BusEvent } from './protocol.js'
import { checkTopic, SubscriptionIndex, type TopicLimits } from './topics.js'
import type { Bus } from './bus.js'
import { isThenable, type MaybePromise } from './maybe.js'
import type { HookRegistry } from './hooks.js'
import { Authenticator, type AuthOptions, type Grants } from './auth.js'
import { Admission, type AdmissionOptions } from './limits.js'
import { LiveFigures } from './figures.js'
import { CorkScheduler } from './send-path.js'
import { registerBuiltInMethods } from './methods.js'
import { FilterTable, type FilterLimits, type HeldFilter } from './filter-table.js'
import { Deltas } from './deltas.js'
import type { Filter } from '../shared/filter.js'

/** What the hub is configured with; the server's Config satisfies it. */
export interface HubOptions extends ConnectionOptions, DecodeLimits, TopicLimits, AdmissionOptions, AuthOptions, FilterLimits {
  /** Milliseconds between WebSocket pings; 0 turns them off. */
  heartbeatInterval: number
  /** MiB all delta state may hold (last encodings per topic, last event sent per connection and topic). */
  deltaMemoryMb: number
}

export interface HubLogger {
  debug(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

// Protocol warnings: at most this many per window, then one line counting the rest.
const WARN_WINDOW_MS = 10_000
const WARNS_PER_WINDOW = 20

/** An in-process subscriber: called with every matching event after the sockets got theirs. */
export type EventListener = (event: BusEvent) => void

export class Hub implements ConnectionHost {
  readonly connections = new Set<LiveConnection>()
  /** Subscribers per pattern: connections, and groups of connections sharing one filter. */
  readonly index = new SubscriptionIndex<LiveConnection | SubscriptionGroup>()
  /** Groups by pattern, filter and delta. */
  private readonly groups = new Map<string, SubscriptionGroup>()
  /** The distinct filters held, compiled once, evaluated once per event, their cost budgeted. */
  readonly filters: FilterTable
  /** What delta frames are made against, for every delta subscription, against one memory budget. */
  readonly deltas: Deltas<LiveConnection>
  private deltaGroups = 0
  private readonly listeners = new SubscriptionIndex<EventListener>()
  readonly decoder: FrameDecoder
  readonly auth: Authenticator
  readonly admission: Admission
  readonly figures = new LiveFigures()
  readonly scheduler: CorkScheduler
  draining = false
  /** Per topic, the last publish still waiting for async hooks: later ones queue behind it to keep seq order. */
  private readonly publishTails = new Map<string, Promise<unknown>>()
  private nextId = 1
  /** When each event fanned out this turn reached delivery; its frames leave at the flush. */
  private deliveredAt = new Float64Array(1024)
  private deliveredCount = 0
  private readonly heartbeat: NodeJS.Timeout | null
  private readonly stopListening: () => void
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
    this.filters = new FilterTable(options)
    this.deltas = new Deltas(options.deltaMemoryMb * 1024 * 1024)
    this.scheduler = new CorkScheduler(() => this.flushed())
    this.stopListening = bus.subscribe((event) => this.deliver(event))
    this.heartbeat = options.heartbeatInterval > 0 ? setInterval(() => this.beat(), options.heartbeatInterval).unref() : null
    registerBuiltInMethods(this)
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
    this.figures.connects++
    this.admission.opened(remoteAddress)
    this.log.debug({ connection: connection.id, codec, remoteAddress, subject: grants.subject }, 'connection open')
    return connection
  }

  /** A connection's socket closed: forget it and what it subscribed. */
  closed(connection: LiveConnection, code: number): void {
    if (!this.connections.delete(connection)) return
    this.figures.disconnected(code)
    this.admission.closed(connection.remoteAddress)
    connection.dropAll()
    this.log.debug({ connection: connection.id, code }, 'connection closed')
  }

  checkTopic(topic: string, wildcards: boolean): void {
    checkTopic(topic, this.options, wildcards)
  }

  filterRefusal(connection: LiveConnection, filter: Filter): string | null {
    return this.filters.refusal(connection.remoteAddress, filter)
  }

  holdFilter(connection: LiveConnection, filter: Filter): HeldFilter {
    return this.filters.hold(connection.remoteAddress, filter)
  }

  releaseFilter(connection: LiveConnection, filter: HeldFilter): void {
    this.filters.release(connection.remoteAddress, filter)
  }

  /** Subscriptions whose patterns match a concrete topic (a filtered one counts whatever its filter says). */
  subscribers(topic: string): number {
    let n = 0
    for (const s of this.index.match(topic)) n += s instanceof SubscriptionGroup ? s.connections.size : 1
    return n
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

  /**
   * publish() for in-process producers that do not wait for the answer (the engine, the feeds):
   * a refusal, synchronous or not, is reported to `failed` instead of thrown or left unhandled.
   */
  publishDetached(topic: string, data: unknown, failed: () => void): void {
    try {
      const result = this.publish(topic, data)
      if (isThenable(result)) result.catch(failed)
    } catch {
      failed() // a hook dropped it, or the bus is down
    }
  }

  /** A connection holds a new pattern: it is indexed, and the bus delivers it (a promise when a backplane confirms later). */
  watch(connection: LiveConnection, pattern: string, mode: SubscriptionMode | null): MaybePromise<void> {
    this.figures.subscriptions++
    this.admission.subscribed(connection.remoteAddress, 1)
    if (mode === null) this.index.add(pattern, connection)
    else {
      const key = groupKey(pattern, mode)
      let group = this.groups.get(key)
      if (group === undefined) {
        group = new SubscriptionGroup(mode)
        this.groups.set(key, group)
        this.index.add(pattern, group)
        if (mode.delta) this.deltaGroups++
      }
      group.connections.add(connection)
    }
    return this.bus.watch(pattern)
  }

  unwatch(connection: LiveConnection, pattern: string, mode: SubscriptionMode | null): void {
    this.figures.subscriptions--
    this.admission.subscribed(connection.remoteAddress, -1)
    if (mode === null) this.index.remove(pattern, connection)
    else {
      const key = groupKey(pattern, mode)
      const group = this.groups.get(key)
      if (group?.connections.delete(connection) && group.connections.size === 0) {
        this.groups.delete(key)
        this.index.remove(pattern, group)
        if (mode.delta && --this.deltaGroups === 0) this.deltas.clear()
      }
      if (mode.delta && !connection.subscribesDeltas) this.deltas.forget(connection)
    }
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

  /** Fan-out: encode the event once per codec in use and hand those same bytes to every subscriber. */
  private deliver(event: BusEvent): void {
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

  private fanOut(event: BusEvent, subscribers: readonly (LiveConnection | SubscriptionGroup)[]): void {
    const start = performance.now()
    if (this.groups.size === 0 || !hasGroup(subscribers)) this.sendToAll(event, subscribers as readonly LiveConnection[])
    else this.sendGrouped(event, subscribers)
    if (this.scheduler.pending) this.deliveredUntilFlush(start)
    else this.figures.publishToSend.record(performance.now() - start)
  }

  private sendToAll(event: BusEvent, subscribers: readonly LiveConnection[]): void {
    let msgpack: Buffer | undefined
    let json: Buffer | undefined
    for (let i = 0; i < subscribers.length; i++) {
      const connection = subscribers[i]
      // biome-ignore lint/suspicious/noAssignInExpressions: each codec's frame is encoded once, when its first subscriber needs it
      const frame = connection.binary ? (msgpack ??= encodeEvent('msgpack', 'event', event)) : (json ??= encodeEvent('json', 'event', event))
      connection.deliver(event, frame)
    }
  }

  /**
   * With grouped subscriptions (a filter, deltas): each distinct filter runs once for the event, its
   * delta is made once per codec for every connection that holds the topic's previous event, the
   * connections share the encoded frames, and a connection that two subscriptions match gets the
   * event once.
   */
  private sendGrouped(event: BusEvent, subscribers: readonly (LiveConnection | SubscriptionGroup)[]): void {
    let msgpack: Buffer | undefined
    let json: Buffer | undefined
    const full = (binary: boolean) =>
      // biome-ignore lint/suspicious/noAssignInExpressions: each codec's frame is encoded once, when its first subscriber needs it
      binary ? (msgpack ??= encodeEvent('msgpack', 'event', event)) : (json ??= encodeEvent('json', 'event', event))
    const sent = new Set<LiveConnection>()
    const { filters, deltas } = this
    filters.nextEvent()
    let delta = false
    try {
      for (let i = 0; i < subscribers.length; i++) {
        const s = subscribers[i]
        if (!(s instanceof SubscriptionGroup)) {
          if (!sent.has(s)) {
            sent.add(s)
            s.deliver(event, full(s.binary))
          }
          continue
        }
        const filter = s.mode.filter as HeldFilter | null
        if (filter !== null && !filters.passes(filter, event.data)) continue
        if (s.mode.delta && !delta) {
          deltas.begin(event)
          delta = true
        }
        for (const connection of s.connections) {
          if (sent.has(connection)) continue
          sent.add(connection)
          const { binary } = connection
          // A delta when this connection holds the event it is against; else the whole event.
          const frame = s.mode.delta ? (deltas.frame(binary, connection, connection.out.conflating) ?? full(binary)) : full(binary)
          connection.deliver(event, frame)
        }
      }
    } finally {
      if (delta) deltas.end()
    }
  }

  private deliveredUntilFlush(start: number): void {
    if (this.deliveredCount === this.deliveredAt.length) {
      const grown = new Float64Array(this.deliveredAt.length * 2)
      grown.set(this.deliveredAt)
      this.deliveredAt = grown
    }
    this.deliveredAt[this.deliveredCount++] = start
  }

  /** The end-of-turn flush wrote this turn's frames: their events' publish-to-send times are known. */
  private flushed(): void {
    const sent = performance.now()
    for (let i = 0; i < this.deliveredCount; i++) this.figures.publishToSend.record(sent - this.deliveredAt[i])
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

  /** Stops taking connections and closes every open one with 1001. Idempotent. */
  drain(): void {
    this.draining = true
    for (const connection of this.connections) connection.close(CloseCode.goingAway, 'server shutting down')
  }

  /** Stops the heartbeat and stops receiving the bus's events (after drain). */
  close(): void {
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    this.stopListening()
  }
}

const noop = () => {}

const byApi = new WeakMap<object, Hub>()

/** Ties a hub to the API object an embedder holds (the live plugin's `app.live`), which does not expose it. */
export const attachHub = (api: object, hub: Hub): void => {
  byApi.set(api, hub)
}

/** The hub behind that API object: the one test-only way into the hub (tests and benches), not part of the public API; plugins use the API. */
export function hubOf(api: object): Hub {
  const hub = byApi.get(api)
  if (hub === undefined) throw new Error('no live hub behind this object: is the live plugin registered?')
  return hub
}

/** Subscriptions of one pattern with one filter (or none) and one delta choice: the filter runs once per event for all of them. */
export class SubscriptionGroup {
  readonly connections = new Set<LiveConnection>()
  constructor(readonly mode: SubscriptionMode) {}
}

function groupKey(pattern: string, mode: SubscriptionMode): string {
  return `${pattern}\n${modeKey(mode)}`
}

/** Whether a topic's subscribers include a group (else no filter runs and no dedupe is needed). */
function hasGroup(subscribers: readonly (LiveConnection | SubscriptionGroup)[]): boolean {
  for (let i = 0; i < subscribers.length; i++) if (subscribers[i] instanceof SubscriptionGroup) return true
  return false
}
