// The hub: every live connection, the subscription index, admission, the one publish path, and
// encode-once fan-out. Connections send through their own send paths; the hub only hands them
// the shared frame of each event.
import { checkData, encodeData, encodeEvent, encodeFrame, FrameDecoder, type CodecName, type DecodeLimits } from './codec.js'
import { LiveConnection, modeKey, type ConnectionHost, type ConnectionOptions, type LiveSocket, type SubscriptionMode } from './connection.js'
import { CloseCode, type LiveError, type BusEvent } from './protocol.js'
import { checkTopic, SubscriptionIndex, type TopicLimits } from './topics.js'
import { createDelta, createStringDelta } from 'fossil-delta'
import type { Bus } from './bus.js'
import { isThenable, type MaybePromise } from './maybe.js'
import type { HookRegistry } from './hooks.js'
import { Authenticator, type AuthOptions, type Grants } from './auth.js'
import { Admission, type AdmissionOptions } from './limits.js'
import { LiveStats } from './stats.js'
import { CorkScheduler } from './send-path.js'
import { registerBuiltInMethods } from './methods.js'

/** What the hub is configured with; the server's Config satisfies it. */
export interface HubOptions extends ConnectionOptions, DecodeLimits, TopicLimits, AdmissionOptions, AuthOptions {
  /** Milliseconds between WebSocket pings; 0 turns them off. */
  heartbeatInterval: number
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
  /** What all delta groups hold of the topics' last encodings, against one budget. */
  private readonly deltaMemory = { used: 0, limit: DELTA_MEMORY_BYTES }
  private readonly listeners = new SubscriptionIndex<EventListener>()
  readonly decoder: FrameDecoder
  readonly auth: Authenticator
  readonly admission: Admission
  readonly stats = new LiveStats()
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
    this.stats.connects++
    this.admission.opened(remoteAddress)
    this.log.debug({ connection: connection.id, codec, remoteAddress, subject: grants.subject }, 'connection open')
    return connection
  }

  /** A connection's socket closed: forget it and what it subscribed. */
  closed(connection: LiveConnection, code: number): void {
    if (!this.connections.delete(connection)) return
    this.stats.disconnected(code)
    this.admission.closed(connection.remoteAddress)
    for (const pattern of connection.subscriptions) this.unwatch(connection, pattern, connection.modeOf(pattern))
    this.log.debug({ connection: connection.id, code }, 'connection closed')
  }

  checkTopic(topic: string, wildcards: boolean): void {
    checkTopic(topic, this.options, wildcards)
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
    this.stats.subscriptions++
    this.admission.subscribed(connection.remoteAddress, 1)
    if (mode === null) this.index.add(pattern, connection)
    else {
      const key = groupKey(pattern, mode)
      let group = this.groups.get(key)
      if (group === undefined) {
        group = new SubscriptionGroup(mode, this.deltaMemory)
        this.groups.set(key, group)
        this.index.add(pattern, group)
      }
      group.connections.add(connection)
    }
    return this.bus.watch(pattern)
  }

  unwatch(connection: LiveConnection, pattern: string, mode: SubscriptionMode | null): void {
    this.stats.subscriptions--
    this.admission.subscribed(connection.remoteAddress, -1)
    if (mode === null) this.index.remove(pattern, connection)
    else {
      const key = groupKey(pattern, mode)
      const group = this.groups.get(key)
      if (group?.connections.delete(connection) && group.connections.size === 0) {
        group.release()
        this.groups.delete(key)
        this.index.remove(pattern, group)
      }
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
    else this.stats.publishToSend.record(performance.now() - start)
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
   * With grouped subscriptions (a filter, deltas): each distinct filter runs once for the event, a
   * group's delta is made once per codec, its connections share the encoded frames, and a
   * connection that two subscriptions match gets the event once.
   */
  private sendGrouped(event: BusEvent, subscribers: readonly (LiveConnection | SubscriptionGroup)[]): void {
    let msgpack: Buffer | undefined
    let json: Buffer | undefined
    const full = (binary: boolean) =>
      // biome-ignore lint/suspicious/noAssignInExpressions: each codec's frame is encoded once, when its first subscriber needs it
      binary ? (msgpack ??= encodeEvent('msgpack', 'event', event)) : (json ??= encodeEvent('json', 'event', event))
    const sent = new Set<LiveConnection>()
    const verdicts = new Map<string, boolean>()
    for (let i = 0; i < subscribers.length; i++) {
      const s = subscribers[i]
      if (!(s instanceof SubscriptionGroup)) {
        if (!sent.has(s)) {
          sent.add(s)
          s.deliver(event, full(s.binary))
        }
        continue
      }
      const filter = s.mode.filter
      if (filter !== null) {
        let pass = verdicts.get(filter.key)
        if (pass === undefined) {
          pass = filter.test(event.data)
          verdicts.set(filter.key, pass)
        }
        if (!pass) continue
      }
      if (!s.mode.delta) {
        for (const connection of s.connections)
          if (!sent.has(connection)) {
            sent.add(connection)
            connection.deliver(event, full(connection.binary))
          }
        continue
      }
      const delta = s.deltaFrames(event)
      for (const connection of s.connections) {
        if (sent.has(connection)) continue
        sent.add(connection)
        // A delta when this connection holds the event it is against; else the whole event.
        connection.deliver(event, delta(connection.binary, connection.deltaBase(event.topic)) ?? full(connection.binary))
        connection.deltaSent(event.topic, event.seq)
      }
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

  /** Stops taking connections and closes every open one with 1001. Idempotent. */
  drain(): void {
    this.draining = true
    for (const connection of this.connections) connection.close(1001, 'server shutting down')
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

/** The hub behind that API object: for this package's own plugins and tests, not part of the public API. */
export function hubOf(api: object): Hub {
  const hub = byApi.get(api)
  if (hub === undefined) throw new Error('no live hub behind this object: is the live plugin registered?')
  return hub
}

/** A whole event every this many of a topic, so a receiver that lost its way is back within it. */
export const DELTA_FULL_EVERY = 32
/** Topics a delta group keeps the last encoding of; past it, it starts over (whole events). */
const DELTA_TOPICS = 10_000
/**
 * Bytes all delta groups together keep of last encodings (the bases of the next deltas): a client
 * cannot make the server hold more by subscribing with many filters. Past it, a group starts
 * over, and what does not fit goes whole.
 */
export const DELTA_MEMORY_BYTES = 64 * 1024 * 1024

interface DeltaState {
  seq: number
  count: number
  msgpack?: Uint8Array
  json?: string
}

/**
 * Subscriptions of one pattern with one filter (or none) and one delta choice: the filter runs once
 * per event for all of them; with deltas, the group keeps each topic's last encoding and makes the
 * delta (Fossil, docs/PROTOCOL.md "Deltas") once per event and codec for all of them.
 */
export class SubscriptionGroup {
  readonly connections = new Set<LiveConnection>()
  private readonly last = new Map<string, DeltaState>()
  private held = 0
  constructor(
    readonly mode: SubscriptionMode,
    private readonly memory: { used: number; limit: number }
  ) {}

  /** Gives back what the group held (its last subscription went). */
  release(): void {
    this.memory.used -= this.held
    this.held = 0
    this.last.clear()
  }

  /** Counts `bytes` of `topic`'s encoding against the budget; false (and nothing kept) when they do not fit. */
  private keep(bytes: number, topic: string, state: DeltaState): boolean {
    if (this.memory.used + bytes > this.memory.limit) {
      this.release() // this group starts over; the event at hand stays its topic's last
      this.last.set(topic, state)
    }
    if (this.memory.used + bytes > this.memory.limit) return false
    this.memory.used += bytes
    this.held += bytes
    return true
  }

  private forget(state: DeltaState | undefined): void {
    if (state === undefined) return
    const bytes = (state.msgpack?.length ?? 0) + (state.json?.length ?? 0)
    this.memory.used -= bytes
    this.held -= bytes
  }

  /**
   * This event for the group: frame(binary, base) is its delta frame for a connection that holds
   * the event `base` (made once per codec), or null when that connection needs the whole event (it
   * holds another, or a whole one is due). Every codec's encoding is kept for the next event.
   */
  deltaFrames(event: BusEvent): (binary: boolean, base: number | undefined) => Buffer | null {
    const previous = this.last.get(event.topic)
    const state: DeltaState = { seq: event.seq, count: (previous?.count ?? 0) + 1 }
    if (previous === undefined && this.last.size >= DELTA_TOPICS) this.release()
    this.forget(previous)
    this.last.set(event.topic, state)
    const due = previous === undefined || previous.seq >= event.seq || state.count % DELTA_FULL_EVERY === 0
    let msgpack: Buffer | null | undefined
    let json: Buffer | null | undefined
    const head = (delta: Uint8Array | string) => ({
      type: 'event',
      topic: event.topic,
      seq: event.seq,
      epoch: event.epoch,
      ts: event.ts,
      base: previous!.seq,
      delta
    })
    return (binary, base) => {
      if (binary) {
        if (msgpack === undefined) {
          // The bytes a whole event carries as its data: the client encodes what it decoded the same way.
          const bytes = event.encoded ?? encodeData(event.data)
          if (this.keep(bytes.length, event.topic, state)) state.msgpack = bytes
          msgpack = due || previous.msgpack === undefined ? null : encodeFrame('msgpack', head(createDelta(previous.msgpack, bytes)))
        }
        return base === previous?.seq ? msgpack : null
      }
      if (json === undefined) {
        const text = JSON.stringify(event.data)
        if (this.keep(text.length, event.topic, state)) state.json = text
        json = due || previous.json === undefined ? null : encodeFrame('json', head(createStringDelta(previous.json, text)))
      }
      return base === previous?.seq ? json : null
    }
  }
}

function groupKey(pattern: string, mode: SubscriptionMode): string {
  return `${pattern}\n${modeKey(mode)}`
}

/** Whether a topic's subscribers include a group (else no filter runs and no dedupe is needed). */
function hasGroup(subscribers: readonly (LiveConnection | SubscriptionGroup)[]): boolean {
  for (let i = 0; i < subscribers.length; i++) if (subscribers[i] instanceof SubscriptionGroup) return true
  return false
}
