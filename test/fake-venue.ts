// A venue socket in a test's hands, handed to connections through their `connect` seam
// (src/market/transport.ts): what the connection sends is kept, what the test delivers arrives as
// the venue's frames, and nothing touches the network.
import type { Connect, SocketEvents, VenueSocket } from '../src/market/transport.ts'

export class FakeSocket implements VenueSocket {
  open = false
  /** JSON the connection sent, parsed. */
  readonly sent: unknown[] = []
  /** Text that is not JSON (application pings). */
  readonly texts: string[] = []
  pings = 0
  /** terminate() calls; the close they cause arrives when the test calls close(). */
  terminated = 0

  constructor(
    readonly url: string,
    private readonly events: SocketEvents
  ) {}

  send(text: string): void {
    try {
      this.sent.push(JSON.parse(text))
    } catch {
      this.texts.push(text)
    }
  }

  ping(): void {
    this.pings++
  }

  terminate(): void {
    this.terminated++
    this.open = false
  }

  /** The venue accepts the connection. */
  accept(): void {
    this.open = true
    this.events.onOpen()
  }

  /** One frame from the venue. */
  deliver(frame: string | Buffer, isBinary = false): void {
    this.events.onMessage(typeof frame === 'string' ? Buffer.from(frame) : frame, isBinary)
  }

  /** The socket's close arrives. */
  close(): void {
    this.open = false
    this.events.onClose()
  }
}

/** A connect seam whose sockets are FakeSockets, newest last. */
export function fakeConnect(): { connect: Connect; sockets: FakeSocket[] } {
  const sockets: FakeSocket[] = []
  return {
    sockets,
    connect: (url, events) => {
      const socket = new FakeSocket(url, events)
      sockets.push(socket)
      return socket
    }
  }
}
