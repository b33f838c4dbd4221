// A minimal WebSocket client for the benchmark's subscribers: a raw TCP socket, a hand-made upgrade,
// and a frame scanner that hands out payload views. It costs the load generator far less per frame
// than `ws`, so fan-out measures the server rather than the generator sharing its two cores.
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'

export class LightSocket {
  private pending: Buffer | null = null
  onFrame: (payload: Buffer, opcode: number) => void = () => {}
  onClose: (code: number) => void = () => {}
  private closeCode = 1006

  constructor(
    readonly socket: Socket,
    rest: Buffer
  ) {
    socket.on('data', (chunk: Buffer) => this.scan(chunk))
    socket.on('close', () => this.onClose(this.closeCode))
    socket.on('error', () => {})
    if (rest.length > 0) this.scan(rest)
  }

  static open(port: number, path = '/ws/live'): Promise<LightSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', noDelay: true })
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
        )
      })
      let head = Buffer.alloc(0)
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        socket.off('data', onData)
        if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return reject(new Error(head.subarray(0, end).toString()))
        resolve(new LightSocket(socket, head.subarray(end + 4)))
      }
      socket.on('data', onData)
    })
  }

  private scan(chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    let o = 0
    while (buf.length - o >= 2) {
      const len7 = buf[o + 1] & 0x7f
      const header = len7 < 126 ? 2 : len7 === 126 ? 4 : 10
      if (buf.length - o < header) break
      const length = len7 < 126 ? len7 : len7 === 126 ? buf.readUInt16BE(o + 2) : buf.readUInt32BE(o + 6)
      if (buf.length - o < header + length) break
      const opcode = buf[o] & 0x0f
      const payload = buf.subarray(o + header, o + header + length)
      if (opcode === 0x8) this.closeCode = length >= 2 ? payload.readUInt16BE(0) : 1005
      else if (opcode === 0x9)
        this.write(0x8a, payload) // pong
      else this.onFrame(payload, opcode)
      o += header + length
    }
    this.pending = o === buf.length ? null : buf.subarray(o)
  }

  /** Client frames are masked; a zero mask keeps the payload as is. */
  private write(firstByte: number, payload: Uint8Array): void {
    const n = payload.length
    const header = n < 126 ? 6 : 8
    const frame = Buffer.alloc(header + n)
    frame[0] = firstByte
    if (n < 126) frame[1] = 0x80 | n
    else {
      frame[1] = 0x80 | 126
      frame.writeUInt16BE(n, 2)
    }
    frame.set(payload, header)
    this.socket.write(frame)
  }

  sendBinary(payload: Uint8Array): void {
    this.write(0x82, payload)
  }

  pause(): void {
    this.socket.pause()
  }

  destroy(): void {
    this.socket.destroy()
  }
}
