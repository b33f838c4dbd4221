// The outbound side of a connection: prebuilt frames written straight to its TCP socket, corked
// until the end of the event-loop turn (with caps), replies flushed right after the read that
// caused them, and the slow-consumer policy. It owns its scheduling: the hub hands it frames and
// never corks or flushes anything itself.
import { framePayload } from './codec.js'
import { CloseCode } from './protocol.js'
import type { LiveFigures } from './figures.js'

export type OutFrameType = keyof LiveFigures['framesOut']

/** The part of a TCP socket (net.Socket) the send path writes frames to. */
export interface TcpSink {
  /** A write returned false: 'drain' follows once the queue is empty. */
  readonly writableNeedDrain: boolean
  cork(): void
  uncork(): void
  write(data: Uint8Array): boolean
  once(event: 'drain', listener: () => void): unknown
}

/** The part of a `ws` WebSocket the send path uses; tests pass a fake. */
export interface SendSocket {
  readonly readyState: number
  readonly bufferedAmount: number
  /** ws's underlying TCP socket: frames are written to it directly; absent on some fakes. */
  readonly _socket?: TcpSink | null
  /** Negotiated extensions; with permessage-deflate frames must go through ws. */
  readonly extensions?: string
  send(data: Uint8Array, options: { binary: boolean }): void
  close(code?: number, reason?: string): void
  terminate(): void
}

export interface SendOptions {
  maxQueuedBytes: number
  slowConsumer: 'close' | 'conflate'
}

export const OPEN = 1
const BINARY = Object.freeze({ binary: true })
const TEXT = Object.freeze({ binary: false })
// Corking holds a socket's frames until the end of the event-loop turn so they leave in one write;
// these caps bound what one socket holds meanwhile.
const MAX_CORKED_FRAMES = 64
const MAX_CORKED_BYTES = 64 * 1024
/** Replies are never conflated; a client that sends requests and never reads is cut off at this many times MAX_QUEUED_BYTES. */
export const REPLY_QUEUE_FACTOR = 4
// A consumer closed for being slow is not reading its close frame either: its queue is freed after this.
const SLOW_CLOSE_GRACE_MS = 2000

const noop = () => {}

/** The send paths corked this turn, flushed together when the turn ends. One per hub. */
export class CorkScheduler {
  private corked: SendPath[] = []
  private scheduled = false

  /** `flushed` runs after every flush (the hub times publish-to-send with it). */
  constructor(private readonly flushed: () => void = noop) {
    this.flush = this.flush.bind(this)
  }

  /** True while frames written this turn wait for the flush. */
  get pending(): boolean {
    return this.scheduled
  }

  add(path: SendPath): void {
    this.corked.push(path)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flush)
    }
  }

  private flush(): void {
    this.scheduled = false
    const corked = this.corked
    this.corked = []
    for (let i = 0; i < corked.length; i++) corked[i].uncork()
    this.flushed()
  }
}

export class SendPath {
  private readonly raw: TcpSink | null
  private readonly sendOptions: { binary: boolean }
  private corked = false
  private corkedFrames = 0
  private corkedBytes = 0
  private replyCorked = false
  /** Latest frame per topic while congested under the conflate policy. */
  private conflated: Map<string, Buffer> | null = null

  constructor(
    private readonly socket: SendSocket,
    binary: boolean,
    private readonly options: SendOptions,
    private readonly figures: LiveFigures,
    private readonly scheduler: CorkScheduler,
    private readonly onSlowClose: (queued: number) => void = noop
  ) {
    this.raw = socket._socket && !socket.extensions ? socket._socket : null
    this.sendOptions = binary ? BINARY : TEXT
    this.onDrain = this.onDrain.bind(this)
    this.flushReplies = this.flushReplies.bind(this)
  }

  get open(): boolean {
    return this.socket.readyState === OPEN
  }

  /** Congested under the conflate policy: queued events are replaced by newer ones of their topic. */
  get conflating(): boolean {
    return this.conflated !== null
  }

  /** Bytes written and not yet taken by the kernel (ws's bufferedAmount). */
  get queued(): number {
    return this.socket.bufferedAmount
  }

  /** The TCP socket when frames go to it directly; its 'drain' tells when the queue emptied. */
  get tcp(): TcpSink | null {
    return this.raw
  }

  /** A live event's shared frame: written, or handled by the slow-consumer policy past MAX_QUEUED_BYTES. */
  event(topic: string, frame: Buffer): void {
    const figures = this.figures
    if (this.conflated !== null) {
      this.conflated.set(topic, frame)
      figures.conflatedEvents++
    } else if (this.socket.bufferedAmount > this.options.maxQueuedBytes) {
      this.congested(topic, frame)
    } else {
      this.write(frame)
      figures.framesOut.event++
      figures.bytesOut += frame.length
    }
  }

  /**
   * A frame encoded for this connection alone (a reply, a replayed event, a snapshot). A reply does
   * not wait for the end of the turn (its round trip is what a client measures) unless events
   * corked the socket; the replies to the frames of one read leave in one write, after that read.
   */
  reply(encoded: Buffer, type: OutFrameType): void {
    this.unchecked(encoded, type)
    if (this.socket.bufferedAmount > this.options.maxQueuedBytes * REPLY_QUEUE_FACTOR) this.closeSlow()
  }

  /**
   * A replayed event or snapshot: written as a reply is, without the reply cut-off, because the
   * subscribe flow writes them only while the queue is under its budget (and waits for 'drain').
   */
  replayed(encoded: Buffer, type: 'event' | 'snapshot'): void {
    this.unchecked(encoded, type)
  }

  private unchecked(encoded: Buffer, type: OutFrameType): void {
    if (this.socket.readyState !== OPEN) return
    const figures = this.figures
    figures.framesOut[type]++
    figures.bytesOut += encoded.length
    if (this.corked || this.raw === null) this.write(encoded)
    else {
      if (!this.replyCorked) {
        this.replyCorked = true
        this.raw.cork()
        queueMicrotask(this.flushReplies)
      }
      this.raw.write(encoded)
    }
  }

  /** Closes with 4008 and frees the queue after a grace period (the client is not reading its close frame either). */
  closeSlow(): void {
    if (this.socket.readyState !== OPEN) return
    this.figures.slowClosed++
    this.onSlowClose(this.socket.bufferedAmount)
    this.socket.close(CloseCode.slowConsumer, 'slow consumer')
    setTimeout(() => this.socket.terminate(), SLOW_CLOSE_GRACE_MS).unref()
  }

  /** Called by the scheduler at the end of the event-loop turn. */
  uncork(): void {
    this.corked = false
    this.corkedFrames = 0
    this.corkedBytes = 0
    this.raw?.uncork()
  }

  private flushReplies(): void {
    this.replyCorked = false
    this.raw!.uncork()
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
      raw.cork()
      this.scheduler.add(this)
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

  private congested(topic: string, frame: Buffer): void {
    if (this.options.slowConsumer === 'close' || this.raw === null) {
      this.closeSlow()
      return
    }
    this.figures.slowConflated++
    this.figures.conflatedEvents++
    this.conflated = new Map([[topic, frame]])
    this.raw.once('drain', this.onDrain)
  }

  /** The socket caught up: send the latest event of each topic that changed meanwhile. */
  private onDrain(): void {
    const pending = this.conflated
    this.conflated = null
    if (pending === null || this.socket.readyState !== OPEN) return
    for (const [topic, frame] of pending) this.event(topic, frame)
  }
}
