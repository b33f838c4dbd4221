// The client SDK, for Node >= 20 and browsers: one connection that reconnects by itself, requests
// with timeouts, and subscriptions that survive reconnects by resubscribing with `since`, so a
// subscriber either gets every event or is told what it missed (PROTOCOL.md "Delivery").
import { Decoder, Encoder } from '@msgpack/msgpack'
import { isPattern, matches } from '../shared/patterns.js'
import { parseFilter, type Filter } from '../shared/filter.js'
import { applyDelta, applyStringDelta, getDeltaTargetSize, getStringDeltaTargetSize } from 'fossil-delta'
import { SUBPROTOCOL_OF, type Codec } from '../shared/subprotocols.js'
import { scanJsonDepth, scanMsgpack } from '../shared/scan.js'

export type { Codec } from '../shared/subprotocols.js'
export type FrameId = number | string

export interface Position {
  epoch: string
  seq: number
}

/** An event or snapshot as the server sends it. */
export interface LiveEvent<T = unknown> {
  type: 'event' | 'snapshot'
  topic: string
  seq: number
  epoch: string
  ts: number
  data: T
}

export interface AckFrame {
  type: 'ack'
  id?: FrameId
  topics?: string[]
  recovered?: boolean
  seq?: number
  epoch?: string
}
export interface ResponseFrame {
  type: 'response'
  id?: FrameId
  result?: unknown
  timestamp?: number
  serverTime?: number
}
export interface PongFrame {
  type: 'pong'
  id?: FrameId
  serverTime: number
}
export interface ErrorFrame {
  type: 'error'
  id?: FrameId
  code: string
  message: string
}
export type ServerFrame = LiveEvent | AckFrame | ResponseFrame | PongFrame | ErrorFrame

/** An `error` frame, a timeout (`timeout`) or a lost connection (`disconnected`) as a rejection. */
export class LiveClientError extends Error {
  constructor(
    readonly code: string,
    message: string
  ) {
    super(message)
    this.name = 'LiveClientError'
  }
}

/** What a subscriber is told when it may have missed events. */
export interface Gap {
  pattern: string
  /** `not-recovered`: a resubscribe after a reconnect got recovered:false (a snapshot follows).
   *  `seq-jump`: a live event skipped seqs (the server conflated, or a backplane lost them).
   *  `epoch`: the topic's history was reset on the server (a new epoch). */
  reason: 'not-recovered' | 'seq-jump' | 'epoch'
  topic?: string
  /** For seq-jump: the seq expected and the seq received. */
  expected?: number
  received?: number
}

export interface SubscribeOptions {
  /** Send the topic's last value first (default true). */
  snapshot?: boolean
  /**
   * Only events whose data passes this expression (docs/PROTOCOL.md "Filters"), e.g.
   * `netBps >= 10 and symbol in ["BTC-USD"]`. Checked here before it is sent; skipped seqs are by
   * design and are not reported to onGap.
   */
  filter?: string
  /**
   * Events as deltas against the one before (docs/PROTOCOL.md "Deltas"): fewer bytes, applied
   * and verified here, so the handler sees whole events as without.
   */
  delta?: boolean
  /** Told whenever events may have been missed; the next event or snapshot is current. */
  onGap?: (gap: Gap) => void
}

/** The standard WebSocket surface the client uses: browsers', Node 22's and `ws`'s. */
interface SocketLike {
  readonly readyState: number
  readonly protocol: string
  binaryType: string
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
  send(data: string | Uint8Array): void
  close(code?: number, reason?: string): void
}
type SocketConstructor = new (url: string, protocols?: string[]) => SocketLike
/** Browsers' and undici's WebSocket ignore a third argument; ws takes its options there. */
type WsConstructor = new (url: string, protocols: string[], options: { maxPayload: number }) => SocketLike

export interface ClientOptions {
  /** ws:// or wss:// URL of the live endpoint, e.g. ws://localhost:8765/ws/live. */
  url: string
  /** Frame codec (default msgpack), negotiated by subprotocol. */
  codec?: Codec
  /** Credential, sent as ?token= (browsers cannot set headers). A function is asked again on each reconnect. */
  token?: string | (() => string | Promise<string>)
  /** Default timeout of request(), publish() and ping() (default 5000 ms). */
  requestTimeoutMs?: number
  /** Send a ping after this long without a frame from the server (default 5000 ms). */
  heartbeatMs?: number
  /** Drop the connection and reconnect after this long without a frame (default 3 × heartbeatMs). */
  deadAfterMs?: number
  /** Reconnect delays: exponential from minDelayMs to maxDelayMs, each drawn at random in its upper half. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number } | false
  /** A WebSocket implementation; default: the `ws` package in Node, the global one elsewhere. */
  WebSocket?: SocketConstructor
  /**
   * Largest frame taken from the server, and largest event a delta may make (default 4 MiB):
   * larger ones are dropped with an error, before they are decoded or applied. Applying a delta
   * holds about 8 bytes per byte of its result for a moment (fossil-delta builds it in an array).
   */
  maxFrameBytes?: number
  /** Deepest nesting a frame may have (default 128): deeper ones are dropped before they are decoded. */
  maxDepth?: number
}

const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
const DEFAULT_MAX_DEPTH = 128

type ClientEvents = {
  open: () => void
  close: (info: { code: number; reason: string }) => void
  reconnecting: (info: { attempt: number; delayMs: number }) => void
  error: (err: Error) => void
}

interface Pending {
  resolve(frame: ServerFrame): void
  reject(err: Error): void
  timer: ReturnType<typeof setTimeout>
  frame: Record<string, unknown>
  /** Sent on the current connection (else it waits for the next one). */
  sent: boolean
}

const OPEN = 1
// Refusals that pass: the server (or its backplane) is busy or still starting.
const TRANSIENT: ReadonlySet<string> = new Set(['unavailable', 'rate_limited', 'timeout', 'internal'])

export class Subscription {
  /** The last position seen per concrete topic: what a resubscribe asks to recover from. */
  readonly positions = new Map<string, Position>()
  /** Settles with the first ack (or the first refusal). */
  readonly acked: Promise<void>
  settle!: (err?: Error) => void
  isAcked = false
  /** A subscribe frame for it awaits its answer. */
  inFlight = false
  /** Refusals in a row of a subscribe that was held before, and the timer of the next try. */
  refusals = 0
  retry: ReturnType<typeof setTimeout> | null = null
  /** Applied here too: another subscription of this connection may bring events this one filters out. */
  readonly filter: Filter | null

  constructor(
    private readonly client: LiveClient,
    readonly pattern: string,
    readonly handler: (event: LiveEvent) => void,
    readonly options: SubscribeOptions
  ) {
    this.filter = options.filter === undefined ? null : parseFilter(options.filter)
    this.acked = new Promise<void>((resolve, reject) => {
      this.settle = (err) => {
        if (this.isAcked) return
        if (err === undefined) {
          this.isAcked = true
          resolve()
        } else reject(err)
      }
    })
  }

  /** Stops delivery to this handler; the server subscription ends with the last handler of its pattern. */
  unsubscribe(): Promise<void> {
    return this.client.unsubscribe(this)
  }

  /** Delivers an event unless it was already seen; reports jumps. */
  receive(event: LiveEvent): void {
    const known = this.positions.get(event.topic)
    if (known !== undefined && known.epoch === event.epoch) {
      if (event.seq <= known.seq) return // a replay overlapping what was delivered
      if (event.type === 'event' && event.seq !== known.seq + 1 && this.filter === null) {
        this.options.onGap?.({ pattern: this.pattern, reason: 'seq-jump', topic: event.topic, expected: known.seq + 1, received: event.seq })
      }
    } else if (known !== undefined && event.type === 'event') {
      this.options.onGap?.({ pattern: this.pattern, reason: 'epoch', topic: event.topic })
    }
    this.positions.set(event.topic, { epoch: event.epoch, seq: event.seq })
    if (this.filter === null || this.filter.test(event.data)) this.handler(event)
  }

  /** The subscribe frame: with `since` for every topic already seen, so a resubscribe recovers them. */
  frame(): Record<string, unknown> {
    const frame: Record<string, unknown> = { type: 'subscribe', topic: this.pattern }
    if (this.options.snapshot === false) frame.snapshot = false
    if (this.options.filter !== undefined) frame.filter = this.options.filter
    if (this.options.delta === true) frame.delta = true
    if (this.positions.size === 0) return frame
    if (!isPattern(this.pattern)) frame.since = this.positions.get(this.pattern)
    else frame.since = Object.fromEntries(this.positions)
    return frame
  }
}

export class LiveClient {
  readonly codec: Codec
  private socket: SocketLike | null = null
  private readonly pending = new Map<FrameId, Pending>()
  private readonly subscriptions = new Set<Subscription>()
  private readonly listeners: { [K in keyof ClientEvents]: ClientEvents[K][] } = { open: [], close: [], reconnecting: [], error: [] }
  private nextId = 1
  private attempt = 0
  private closed = false
  private lastFrameAt = 0
  private pingedAt = 0
  private watchdog: ReturnType<typeof setInterval> | null = null
  private retry: ReturnType<typeof setTimeout> | null = null
  private readonly encoder = new Encoder()
  private readonly decoder: Decoder
  /** What a hostile server can make this client hold or walk: checked on the bytes, before any decoding. */
  private readonly maxFrameBytes: number
  private readonly maxDepth: number
  private readonly scanStack: Float64Array
  /** Encodes data as the server does (ignoreUndefined): a delta applies to those exact bytes. */
  private readonly dataEncoder = new Encoder({ ignoreUndefined: true })
  /** Subscriptions with delta: true held now. */
  private deltaSubscriptions = 0
  /** Per topic, the last whole data as the server encoded it: what its next delta applies to. */
  private readonly deltaBases = new Map<string, { epoch: string; seq: number; bytes?: Uint8Array; text?: string }>()
  private readonly opened: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void }

  constructor(readonly options: ClientOptions) {
    this.codec = options.codec ?? 'msgpack'
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH
    this.scanStack = new Float64Array(this.maxDepth + 1)
    const max = this.maxFrameBytes
    // A container's every element takes a byte at least: no declared length past the frame is believed.
    this.decoder = new Decoder({ maxStrLength: max, maxBinLength: max, maxArrayLength: max, maxMapLength: max, maxExtLength: max })
    let resolve!: () => void
    let reject!: (err: Error) => void
    this.opened = {
      promise: new Promise<void>((res, rej) => {
        resolve = res
        reject = rej
      }),
      resolve,
      reject
    }
    this.opened.promise.catch(ignore) // rejected only by close(); not an unhandled rejection when nobody waits
    void this.open()
  }

  /** Connects (and keeps reconnecting); resolves once the first connection is open. */
  static async connect(options: ClientOptions): Promise<LiveClient> {
    const client = new LiveClient(options)
    await client.ready()
    return client
  }

  /** Resolves once the first connection opened; rejects if the client is closed before that. */
  ready(): Promise<void> {
    return this.opened.promise
  }

  get connected(): boolean {
    return this.socket?.readyState === OPEN
  }

  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
    this.listeners[event].push(listener)
    return () => {
      const list = this.listeners[event]
      const at = list.indexOf(listener)
      if (at !== -1) list.splice(at, 1)
    }
  }

  /** Calls a request method (`time`, `topics`, `snapshot`, ...); rejects with the server's error code, or `timeout`. */
  async request<T = unknown>(method: string, params?: unknown, timeoutMs?: number): Promise<T> {
    const frame: Record<string, unknown> = { type: 'request', method }
    if (params !== undefined) frame.params = params
    return ((await this.call(frame, timeoutMs)) as ResponseFrame).result as T
  }

  /** Publishes one event; resolves with its seq and epoch once the server acked it. */
  async publish(topic: string, data: unknown, timeoutMs?: number): Promise<Position> {
    const ack = (await this.call({ type: 'publish', topic, data }, timeoutMs)) as AckFrame
    return { seq: ack.seq!, epoch: ack.epoch! }
  }

  /** A latency probe: the round trip of a `request` carrying a timestamp, in ms. */
  async probe(timeoutMs?: number): Promise<number> {
    const start = performance.now()
    await this.call({ type: 'request', timestamp: Date.now() }, timeoutMs)
    return performance.now() - start
  }

  /**
   * Calls `handler` with each event (and the snapshot) of topics matching `pattern`, across
   * reconnects: it resubscribes with the last seq seen per topic and gets exactly what it missed,
   * or `options.onGap` hears that it could not. Resolves once the server acknowledged (after the
   * next connect when there is no connection now); rejects when the server refuses.
   */
  async subscribe<T = unknown>(pattern: string, handler: (event: LiveEvent<T>) => void, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.closed) throw new LiveClientError('disconnected', 'the client is closed')
    let subscription: Subscription
    try {
      subscription = new Subscription(this, pattern, handler as (event: LiveEvent) => void, options)
    } catch (err) {
      throw new LiveClientError('bad_request', (err as Error).message) // a filter that does not parse
    }
    // The server holds one filter per pattern and connection: a second one would replace the first.
    for (const other of this.subscriptions)
      if (other.pattern === pattern && other.filter?.key !== subscription.filter?.key)
        throw new LiveClientError('bad_request', `"${pattern}" is subscribed with another filter on this client; use another client or one filter`)
    this.subscriptions.add(subscription)
    if (subscription.options.delta) this.deltaSubscriptions++
    if (this.connected) this.resubscribe(subscription)
    await subscription.acked
    return subscription
  }

  private resubscribe(subscription: Subscription): void {
    const again = subscription.isAcked
    subscription.inFlight = true
    this.call(subscription.frame()).then(
      (ack) => {
        subscription.inFlight = false
        subscription.refusals = 0
        if (again && (ack as AckFrame).recovered === false) subscription.options.onGap?.({ pattern: subscription.pattern, reason: 'not-recovered' })
        subscription.settle()
      },
      (err: LiveClientError) => {
        subscription.inFlight = false
        if (err.code === 'disconnected' && !this.closed) return // the next connection subscribes again
        if (!subscription.isAcked || this.closed) {
          this.forget(subscription)
          return subscription.settle(err)
        }
        if (TRANSIENT.has(err.code)) {
          // Held before, refused now (a node still reaching its backplane, say): try again with backoff.
          this.emit('error', err)
          subscription.retry = setTimeout(
            () => {
              subscription.retry = null
              if (this.connected && this.subscriptions.has(subscription) && !subscription.inFlight) this.resubscribe(subscription)
            },
            this.backoff(subscription.refusals++)
          )
          return
        }
        // Refused for good (its grant was withdrawn, say): it ends, and the caller hears so.
        this.forget(subscription)
        this.emit('error', new LiveClientError(err.code, `subscription to "${subscription.pattern}" ended: ${err.message}`))
      }
    )
  }

  async unsubscribe(subscription: Subscription): Promise<void> {
    if (subscription.retry !== null) clearTimeout(subscription.retry)
    if (!this.forget(subscription)) return
    const stillWanted = [...this.subscriptions].some((s) => s.pattern === subscription.pattern)
    if (!stillWanted && this.connected) await this.call({ type: 'unsubscribe', topic: subscription.pattern })
  }

  /** Closes the connection for good: no reconnect; pending calls reject with `disconnected`. */
  close(): void {
    this.closed = true
    if (this.retry !== null) clearTimeout(this.retry)
    const socket = this.socket
    this.dropSocket()
    socket?.close(1000, 'client closed')
    this.opened.reject(new LiveClientError('disconnected', 'the client was closed before it connected'))
    this.failPending('client closed')
    // Those waiting for a connection; those in flight settle with their call (rejected, or acked just now).
    for (const subscription of this.subscriptions) {
      if (subscription.retry !== null) clearTimeout(subscription.retry)
      if (!subscription.inFlight) subscription.settle(new LiveClientError('disconnected', 'client closed'))
    }
  }

  // ---- connection ----

  private async open(): Promise<void> {
    if (this.closed) return
    let socket: SocketLike
    try {
      const WebSocketImpl = this.options.WebSocket ?? (await defaultWebSocket())
      const url = await this.endpoint()
      if (this.closed) return // closed while the token or the ws package was loading
      // ws (Node 20) refuses a larger frame before buffering it; other implementations hand it over and it is dropped here.
      socket = new (WebSocketImpl as WsConstructor)(url, [SUBPROTOCOL_OF[this.codec]], { maxPayload: this.maxFrameBytes })
    } catch (err) {
      this.emit('error', err as Error)
      this.scheduleReconnect()
      return
    }
    socket.binaryType = 'arraybuffer'
    this.socket = socket
    // The watchdog also bounds the handshake: a server that accepts TCP but never answers the upgrade.
    this.lastFrameAt = Date.now()
    const heartbeat = this.options.heartbeatMs ?? 5000
    this.watchdog = setInterval(() => this.checkAlive(heartbeat), Math.max(50, heartbeat / 2))
    socket.onopen = () => this.onOpen()
    socket.onmessage = (ev) => {
      try {
        this.onFrame(ev.data)
      } catch (err) {
        // A frame of a shape no server sends: reported, never thrown into the socket's event loop.
        this.emit('error', new LiveClientError('bad_frame', `frame from the server not handled: ${(err as Error).message}`))
      }
    }
    socket.onerror = (ev) => {
      const why = (ev as { message?: unknown }).message
      this.emit('error', new LiveClientError('unavailable', `cannot reach ${this.options.url}${typeof why === 'string' && why !== '' ? `: ${why}` : ''}`))
    }
    socket.onclose = (ev) => {
      if (this.socket !== socket) return
      this.dropSocket()
      this.emit('close', { code: ev.code, reason: ev.reason })
      this.scheduleReconnect()
    }
  }

  private async endpoint(): Promise<string> {
    const token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token
    if (token === undefined) return this.options.url
    const url = new URL(this.options.url)
    url.searchParams.set('token', token)
    return url.toString()
  }

  private onOpen(): void {
    this.attempt = 0
    this.lastFrameAt = Date.now()
    this.pingedAt = 0
    // Resubscribe first (with since), then whatever calls waited for this connection.
    for (const subscription of this.subscriptions) this.resubscribe(subscription)
    for (const pending of this.pending.values()) if (!pending.sent) this.transmit(pending)
    this.emit('open')
    this.opened.resolve()
  }

  /** No frame for heartbeatMs: ping. None (or no handshake) for deadAfterMs: the server or the path is gone; reconnect. */
  private checkAlive(heartbeat: number): void {
    const now = Date.now()
    const silent = now - this.lastFrameAt
    if (silent >= (this.options.deadAfterMs ?? 3 * heartbeat)) {
      const socket = this.socket
      const what = this.connected ? 'no frame from the server' : 'no answer to the upgrade'
      this.dropSocket()
      const ws = socket as SocketLike & { terminate?: () => void }
      if (typeof ws?.terminate === 'function') ws.terminate()
      else socket?.close(4000, what)
      this.emit('close', { code: 1006, reason: `${what} for ${silent} ms` })
      this.scheduleReconnect()
    } else if (this.connected && silent >= heartbeat && now - this.pingedAt >= heartbeat) {
      this.pingedAt = now
      this.sendFrame({ type: 'ping' })
    }
  }

  private dropSocket(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog)
    this.watchdog = null
    const socket = this.socket
    this.socket = null
    if (socket !== null) {
      socket.onmessage = null
      socket.onclose = null
      socket.onopen = null
      socket.onerror = ignore // ws reports an aborted handshake as an error event
    }
    // Calls sent on the lost connection cannot be answered: a publish may or may not have landed.
    for (const [id, pending] of this.pending) {
      if (!pending.sent) continue
      this.pending.delete(id)
      clearTimeout(pending.timer)
      pending.reject(new LiveClientError('disconnected', 'the connection closed before the answer'))
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.options.reconnect === false) return
    const delayMs = this.backoff(this.attempt++)
    this.emit('reconnecting', { attempt: this.attempt, delayMs })
    this.retry = setTimeout(() => {
      this.retry = null
      void this.open()
    }, delayMs)
  }

  /** The delay before try `attempt` (from 0): exponential up to maxDelayMs, drawn in the upper half of its step. */
  private backoff(attempt: number): number {
    const { minDelayMs = 250, maxDelayMs = 10_000 } = this.options.reconnect || {}
    const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** attempt)
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2))
  }

  // ---- frames ----

  private call(frame: Record<string, unknown>, timeoutMs = this.options.requestTimeoutMs ?? 5000): Promise<ServerFrame> {
    if (this.closed) return Promise.reject(new LiveClientError('disconnected', 'the client is closed'))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new LiveClientError('timeout', `no answer to ${String(frame.type)} within ${timeoutMs} ms`))
      }, timeoutMs)
      const pending: Pending = { resolve, reject, timer, frame: { ...frame, id }, sent: false }
      this.pending.set(id, pending)
      if (this.connected) this.transmit(pending)
    })
  }

  private transmit(pending: Pending): void {
    pending.sent = true
    this.sendFrame(pending.frame)
  }

  private sendFrame(frame: Record<string, unknown>): void {
    this.socket!.send(this.codec === 'msgpack' ? this.encoder.encode(frame) : JSON.stringify(frame))
  }

  private onFrame(data: unknown): void {
    this.lastFrameAt = Date.now()
    let frame: ServerFrame
    try {
      frame = this.decode(typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer)) as ServerFrame
    } catch (err) {
      this.emit('error', new LiveClientError('bad_frame', `undecodable frame from the server: ${(err as Error).message}`))
      return
    }
    if (frame.type === 'event' || frame.type === 'snapshot') {
      if (typeof frame.topic !== 'string' || typeof frame.epoch !== 'string' || !Number.isSafeInteger(frame.seq)) {
        this.emit('error', new LiveClientError('bad_frame', 'an event without a topic, epoch or seq: dropped'))
        return
      }
      const event = 'delta' in frame ? this.undelta(frame as unknown as DeltaFrame) : (frame as LiveEvent)
      if (event === null) return
      // Only a client with a delta subscription keeps bases (no scan of the subscriptions otherwise).
      if (this.deltaSubscriptions > 0 && !('delta' in frame)) this.keepBase(event)
      this.dispatch(event)
      return
    }
    const reply = frame as Exclude<ServerFrame, LiveEvent>
    const pending = reply.id === undefined ? undefined : this.pending.get(reply.id)
    if (pending === undefined) {
      if (reply.type === 'error') this.emit('error', new LiveClientError(reply.code, reply.message))
      return
    }
    this.pending.delete(reply.id!)
    clearTimeout(pending.timer)
    if (reply.type === 'error') pending.reject(new LiveClientError(reply.code, reply.message))
    else pending.resolve(reply)
  }

  /** A frame (or a delta's result) decoded once its size and depth passed, checked on the bytes. */
  private decode(encoded: string | Uint8Array): unknown {
    if (encoded.length > this.maxFrameBytes) throw new Error(`${encoded.length} bytes, more than maxFrameBytes ${this.maxFrameBytes}`)
    const refused = typeof encoded === 'string' ? scanJsonDepth(encoded, this.maxDepth) : scanMsgpack(encoded, this.maxDepth, Infinity, this.scanStack)
    if (refused !== null) throw new Error(refused.message)
    return typeof encoded === 'string' ? JSON.parse(encoded) : this.decoder.decode(encoded)
  }

  /** Drops a subscription from the client's set; false when it was not there. */
  private forget(subscription: Subscription): boolean {
    if (!this.subscriptions.delete(subscription)) return false
    if (subscription.options.delta) this.deltaSubscriptions--
    return true
  }

  /** A delta frame made whole again, verified (base seq, Fossil's checksum); null when it cannot be. */
  private undelta(frame: DeltaFrame): LiveEvent | null {
    const base = this.deltaBases.get(frame.topic)
    try {
      // The size a delta declares bounds what applying it makes (the applier stops past it).
      const size = typeof frame.delta === 'string' ? getStringDeltaTargetSize(frame.delta) : getDeltaTargetSize(frame.delta)
      if (!(size <= this.maxFrameBytes)) throw new Error(`it declares ${size} bytes, more than maxFrameBytes ${this.maxFrameBytes}`)
      if (base === undefined || base.epoch !== frame.epoch || base.seq !== frame.base) throw new Error(`no event #${frame.base} to apply it to`)
      let data: unknown
      if (typeof frame.delta === 'string') {
        const text = applyStringDelta(base.text!, frame.delta)
        data = this.decode(text)
        this.deltaBases.set(frame.topic, { epoch: frame.epoch, seq: frame.seq, text })
      } else {
        const bytes = applyDelta(base.bytes!, frame.delta as Uint8Array)
        data = this.decode(bytes)
        this.deltaBases.set(frame.topic, { epoch: frame.epoch, seq: frame.seq, bytes })
      }
      return { type: 'event', topic: frame.topic, seq: frame.seq, epoch: frame.epoch, ts: frame.ts, data }
    } catch (err) {
      // Lost its way (a conflated queue, a base it never had): recover what it missed through since.
      this.deltaBases.delete(frame.topic)
      this.emit('error', new LiveClientError('bad_frame', `delta on ${frame.topic} #${frame.seq} not applied (${(err as Error).message}): recovering`))
      for (const subscription of this.subscriptions)
        if (subscription.options.delta && matchesTopic(subscription.pattern, frame.topic) && !subscription.inFlight) this.resubscribe(subscription)
      return null
    }
  }

  /** A whole event of a topic a delta subscription matches: its data as the server encoded it. */
  private keepBase(event: LiveEvent): void {
    let wanted = false
    for (const s of this.subscriptions)
      if (s.options.delta && matchesTopic(s.pattern, event.topic)) {
        wanted = true
        break
      }
    if (!wanted) return
    if (this.codec === 'msgpack') this.deltaBases.set(event.topic, { epoch: event.epoch, seq: event.seq, bytes: this.dataEncoder.encode(event.data) })
    else this.deltaBases.set(event.topic, { epoch: event.epoch, seq: event.seq, text: JSON.stringify(event.data) })
  }

  private dispatch(event: LiveEvent): void {
    for (const subscription of this.subscriptions) {
      if (!matchesTopic(subscription.pattern, event.topic)) continue
      try {
        subscription.receive(event)
      } catch (err) {
        this.emit('error', err as Error)
      }
    }
  }

  private failPending(reason: string): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(new LiveClientError('disconnected', reason))
    }
    this.pending.clear()
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>): void {
    for (const listener of [...this.listeners[event]]) (listener as (...a: unknown[]) => void)(...args)
  }
}

const ignore = () => {}

/**
 * In Node the `ws` package, whose maxPayload refuses a frame past maxFrameBytes before it is
 * buffered (Node 22's global WebSocket takes it whole first); elsewhere, or without `ws`, the
 * global WebSocket. A browser never loads `ws`.
 */
async function defaultWebSocket(): Promise<SocketConstructor> {
  const global = (globalThis as { WebSocket?: SocketConstructor }).WebSocket
  const node = typeof (globalThis as { process?: { versions?: { node?: unknown } } }).process?.versions?.node === 'string'
  if (!node && global !== undefined) return global
  try {
    const module = 'ws'
    return ((await import(module)) as { WebSocket: SocketConstructor }).WebSocket
  } catch (err) {
    if (global === undefined) throw err
    return global
  }
}

/** An event frame of a delta subscription: `delta` against the event `base` of the same topic. */
interface DeltaFrame {
  type: 'event'
  topic: string
  seq: number
  epoch: string
  ts: number
  base: number
  delta: Uint8Array | string
}

const matchesTopic = (pattern: string, topic: string) => pattern === topic || (isPattern(pattern) && matches(pattern, topic))
