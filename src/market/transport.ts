// The seams between a venue connection and the world: its WebSocket and its REST access are handed
// in, as its clock is (clock.ts). Live by default (ws, fetch); tests hand in fakes, and a recording
// can hand in its frames and its answers.
import { WebSocket } from 'ws'

/** What a connection does with its socket. */
export interface VenueSocket {
  /** Open and not closing: what is sent now is sent. */
  readonly open: boolean
  send(text: string): void
  ping(): void
  /** Closes at once; `onClose` follows. */
  terminate(): void
}

/** What a socket tells its connection. */
export interface SocketEvents {
  onOpen(): void
  onMessage(data: Buffer, isBinary: boolean): void
  /** A ping or pong from the venue: the socket is alive. */
  onAlive(): void
  onError(err: Error): void
  onClose(): void
}

/** Opens a socket to `url` reporting to `events`. */
export type Connect = (url: string, events: SocketEvents) => VenueSocket

/** Largest message a venue may send (a whole-book snapshot on Coinbase is a few MiB); more closes the socket. */
export const MAX_VENUE_MESSAGE = 16 * 1024 * 1024

/** The live socket: ws, with a handshake timeout and a message size limit. */
export const connectWebSocket: Connect = (url, events) => {
  const ws = new WebSocket(url, { maxPayload: MAX_VENUE_MESSAGE, handshakeTimeout: 10_000 })
  ws.on('open', () => events.onOpen())
  ws.on('message', (data: Buffer, isBinary: boolean) => events.onMessage(data, isBinary))
  ws.on('pong', () => events.onAlive())
  ws.on('ping', () => events.onAlive())
  ws.on('error', (err) => events.onError(err))
  ws.on('close', () => events.onClose())
  return {
    get open() {
      return ws.readyState === WebSocket.OPEN
    },
    send: (text) => ws.send(text),
    ping: () => ws.ping(),
    terminate: () => ws.terminate()
  }
}
