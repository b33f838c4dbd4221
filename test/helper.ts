// Test helpers: a live server on an ephemeral port and a `ws` client that decodes frames in its codec.
import { createServer, type AddressInfo } from 'node:net'
import { spawn } from 'node:child_process'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { decode, encode } from '@msgpack/msgpack'
import { buildApp } from '../src/app.ts'
import type { Config } from '../src/config.ts'
import type { Bus } from '../src/core/bus.ts'
import type { FastifyInstance } from 'fastify'

export interface Teardown {
  teardown(fn: () => unknown): void
}

export async function startServer(t: Teardown, overrides: Partial<Config> = {}, bus?: Bus) {
  // A hook budget no stall reaches: the shipped scorer is an ONNX model answering off the event loop,
  // which a loaded machine can delay past the 5 ms default. Budget tests set their own.
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, memoryLimitMb: 0, hookBudget: 60_000, ...overrides }, { bus })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  return { app, port, url: `ws://127.0.0.1:${port}`, http: `http://127.0.0.1:${port}` }
}

export const root = fileURLToPath(new URL('..', import.meta.url))

/** The server as its own process (src/server.ts through tsx), on an ephemeral port of 127.0.0.1. */
export function startProcess(env: Record<string, string>, nodeArgs: string[] = []) {
  const child = spawn(process.execPath, [...nodeArgs, '--import=tsx', 'src/server.ts'], {
    cwd: root,
    // HISTORY_DIR empty: no test shares the process's default ./data journal. MEMORY_LIMIT_MB off
    // as in startServer: run through tsx the idle process alone is ~175 MiB of RSS.
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', HISTORY_DIR: '', MEMORY_LIMIT_MB: '0', ...env }
  })
  let output = ''
  const port = new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      output += chunk
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${output}`)))
  })
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  return { child, port, exited, output: () => output }
}

export type Frame = Record<string, any>

export interface ClientOptions {
  path?: string
  protocols?: string[]
  /** How this client encodes what it sends; replies are decoded by their frame type. */
  codec?: 'msgpack' | 'json'
  headers?: Record<string, string>
  /** Local address to connect from (127.0.0.2 is another loopback client address on Linux). */
  localAddress?: string
  /** For wss://: the certificate authority to trust. */
  ca?: Buffer
}

/** A real ws client that queues decoded frames for `next()`. */
export class TestClient {
  readonly frames: Frame[] = []
  private waiters: ((frame: Frame) => void)[] = []
  readonly closed: Promise<{ code: number; reason: string }>
  binaryFrames = 0
  textFrames = 0

  constructor(
    readonly ws: WebSocket,
    readonly codec: 'msgpack' | 'json'
  ) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) this.binaryFrames++
      else this.textFrames++
      const frame = (isBinary ? decode(data) : JSON.parse(data.toString())) as Frame
      const waiter = this.waiters.shift()
      if (waiter) waiter(frame)
      else this.frames.push(frame)
    })
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  }

  static async open(url: string, options: ClientOptions = {}): Promise<TestClient> {
    const ws = connect(url, options)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return new TestClient(ws, options.codec ?? 'msgpack')
  }

  send(frame: unknown): void {
    if (this.codec === 'msgpack') this.ws.send(encode(frame))
    else this.ws.send(JSON.stringify(frame))
  }

  next(timeoutMs = 5000): Promise<Frame> {
    const queued = this.frames.shift()
    if (queued) return Promise.resolve(queued)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no frame within ${timeoutMs} ms`)), timeoutMs)
      this.waiters.push((frame) => {
        clearTimeout(timer)
        resolve(frame)
      })
    })
  }

  /** Sends a frame and returns the next frame received. */
  async request(frame: unknown): Promise<Frame> {
    this.send(frame)
    return this.next()
  }

  /** Collects `count` frames. */
  async take(count: number, timeoutMs = 10_000): Promise<Frame[]> {
    const out: Frame[] = []
    const deadline = Date.now() + timeoutMs
    while (out.length < count) out.push(await this.next(Math.max(1, deadline - Date.now())))
    return out
  }

  /** Resolves with no frame arriving for `ms`; fails if one does. */
  async quiet(ms = 100): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms))
    if (this.frames.length > 0) throw new Error(`unexpected frame ${JSON.stringify(this.frames[0])}`)
  }

  close(): void {
    this.ws.close()
  }
}

function connect(url: string, { path = '/ws/live', protocols = [], headers, localAddress, ca }: ClientOptions): WebSocket {
  return new WebSocket(url + path, protocols, { headers, localAddress, ca })
}

/** The HTTP status an upgrade gets: 101 when the socket opened (it is closed again at once). */
export function upgradeStatus(url: string, options: ClientOptions = {}): Promise<{ status: number; body: string }> {
  const ws = connect(url, options)
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.close()
      resolve({ status: 101, body: '' })
    })
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    ws.once('error', reject)
  })
}

/** A pino destination that keeps every line, for tests that read the log. */
export function captureLog(): { stream: Writable; text(): string } {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(chunk.toString())
      done()
    }
  })
  return { stream, text: () => lines.join('') }
}

/** Waits (bounded) until `check` holds; for states that settle asynchronously, not for timing. */
export async function until(check: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await sleep(25)
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Publishes `count` events of `size` bytes on each topic while the subscriber reads nothing.
 * With `reader`, each batch waits until that client has read what was sent so far, so on a
 * loaded machine only the paused client falls behind, never the reading one.
 */
export async function flood(app: FastifyInstance, topics: string[], count: number, size: number, reader?: TestClient) {
  const data = 'x'.repeat(size)
  let read = 0
  reader?.ws.on('message', () => {
    read++
  })
  for (let i = 0; i < count; i++) {
    for (const topic of topics) await app.live.publish(topic, { i, data })
    if (i % 20 !== 0) continue
    await sleep(1) // let the event loop flush sockets
    if (reader) await until(() => read >= (i + 1) * topics.length, 'the reading client caught up', 30_000)
  }
}

/** Prometheus text as `name{labels}` → value, labels as printed. */
export async function scrape(http: string): Promise<Map<string, number>> {
  const res = await fetch(`${http}/metrics`)
  const text = await res.text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * Spawns a command without tap's coverage loader (NODE_OPTIONS), which would follow it into the
 * processes it starts (npm, tsc, PM2's daemon) and break them.
 */
export function spawnClean(command: string, args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn('env', ['-u', 'NODE_OPTIONS', command, ...args], { cwd: root, env: { ...process.env, ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (c) => {
    stdout += c
  })
  child.stderr!.on('data', (c) => {
    stderr += c
  })
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
  )
  return { child, done }
}
