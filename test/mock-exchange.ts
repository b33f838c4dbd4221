// A local mock of the five markets: per venue one port on 127.0.0.1 serving its REST metadata and
// snapshots and a WebSocket that replays the recorded messages of test/fixtures/venues (SOURCES.md)
// to what a client subscribes. Run alone, it prints the FEEDS_ENDPOINTS to point a feed at it:
//   npx tsx test/mock-exchange.ts
import { createServer, type Server } from 'node:http'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { WebSocketServer, type WebSocket } from 'ws'

const DIR = fileURLToPath(new URL('./fixtures/venues/', import.meta.url))
const read = (path: string) => readFileSync(DIR + path, 'utf8')
const lines = (path: string) => read(path).trim().split('\n')

type Exchange = 'binance' | 'binanceusdm' | 'coinbase' | 'kraken' | 'okx'

export interface MockVenue {
  readonly exchange: Exchange
  readonly port: number
  readonly sockets: Set<WebSocket>
  /** Subscribe messages received (not Binance: it subscribes by URL). */
  readonly received: unknown[]
  /** Stop sending anything and stop answering pings: a silent venue. */
  silent: boolean
  /** Replaces messages before they are sent (planting faults); returning null drops one. */
  rewrite: ((message: string) => string | null) | null
  /** Answers REST requests before the recorded ones (planting faults): 'hang' never answers, null falls through. */
  answer: ((path: string, query: URLSearchParams) => Answer | 'hang' | null) | null
  /** The venue's forced disconnect (Binance closes every connection after 24 h). */
  closeAll(code?: number): void
}

export interface MockExchange {
  venues: Record<Exchange, MockVenue>
  /** FEEDS_ENDPOINTS for these venues. */
  endpoints: string
  close(): Promise<void>
}

/** A REST answer; `chunked` sends the body in 64 KiB pieces with no Content-Length, as a stream. */
export interface Answer {
  status: number
  body: string
  chunked?: boolean
}

interface Handler {
  rest(path: string, query: URLSearchParams): Answer | null
  open(venue: MockVenue, ws: WebSocket, url: URL): void
  message(venue: MockVenue, ws: WebSocket, text: string): void
}

function send(venue: MockVenue, ws: WebSocket, message: string): void {
  if (venue.silent || ws.readyState !== ws.OPEN) return
  const out = venue.rewrite ? venue.rewrite(message) : message
  if (out !== null) ws.send(out)
}

const json = (body: string) => ({ status: 200, body })

function binance(prefix: string, dir: string): Handler {
  const depthFile = readdirSync(DIR + dir).find((f) => f.startsWith('depth-') && f.endsWith('.json'))!
  const depth = JSON.parse(read(`${dir}/${depthFile}`))
  const depthSymbol = depthFile.slice(6, -5)
  const stream = lines(`${dir}/stream.jsonl`)
  return {
    rest(path, query) {
      if (path === `${prefix}/exchangeInfo`) return json(read(`${dir}/exchangeInfo.json`))
      if (path === `${prefix}/depth`)
        return query.get('symbol') === depthSymbol ? json(JSON.stringify(depth)) : { status: 400, body: '{"code":-1121,"msg":"Invalid symbol."}' }
      return null
    },
    open(venue, ws, url) {
      const wanted = new Set((url.searchParams.get('streams') ?? '').split('/'))
      for (const line of stream) if (wanted.has(JSON.parse(line).stream)) send(venue, ws, line)
    },
    message() {}
  }
}

function okx(): Handler {
  // BTC-USDT as OKX sends it now (2026: seqId/prevSeqId, checksum 0); the other instruments from
  // the 2022 session (CRC32 checksums, before seqId).
  const current = lines('okx/books-2026.jsonl')
  const earlier = lines('okx/stream.jsonl').filter((line) => !line.includes('"instId":"BTC-USDT"'))
  const stream = [...current, ...earlier].map((line) => ({ line, m: JSON.parse(line) }))
  return {
    rest(path, query) {
      if (path === '/api/v5/public/instruments') {
        const type = query.get('instType')
        return type === 'SPOT' || type === 'SWAP' || type === 'FUTURES' ? json(read(`okx/instruments-${type}.json`)) : json('{"code":"0","data":[]}')
      }
      return null
    },
    open() {},
    message(venue, ws, text) {
      if (text === 'ping') {
        send(venue, ws, 'pong')
        return
      }
      const request = JSON.parse(text)
      venue.received.push(request)
      if (request.op !== 'subscribe') return
      const wanted = new Set((request.args as { channel: string; instId: string }[]).map((a) => `${a.channel}:${a.instId}`))
      for (const { line, m } of stream) if (m.arg && wanted.has(`${m.arg.channel}:${m.arg.instId}`)) send(venue, ws, line)
    }
  }
}

function kraken(): Handler {
  // BTC/USD from a live 2026 session (depth 10, whatever depth is asked); the other symbols from
  // the documentation and earlier recordings.
  const book = [...lines('kraken/book-2026.jsonl'), ...lines('kraken/book-v2.jsonl').filter((line) => !line.includes('"symbol":"BTC/USD"'))].map((line) => ({
    line,
    m: JSON.parse(line)
  }))
  const timers = new WeakMap<WebSocket, NodeJS.Timeout>()
  return {
    rest(path) {
      return path === '/0/public/AssetPairs' ? json(read('kraken/AssetPairs.json')) : null
    },
    open(venue, ws) {
      // Kraken sends a heartbeat every second on a connection with a subscription.
      const timer = setInterval(() => send(venue, ws, '{"channel":"heartbeat"}'), 1000)
      timers.set(ws, timer)
      ws.once('close', () => clearInterval(timer))
    },
    message(venue, ws, text) {
      const request = JSON.parse(text)
      venue.received.push(request)
      if (request.method !== 'subscribe') return
      const wanted = new Set(request.params.symbol as string[])
      // Snapshots, and the recorded updates that follow them (ALGO/USD), in recorded order.
      for (const { line, m } of book) if (m.channel === 'book' && wanted.has(m.data[0].symbol)) send(venue, ws, line)
    }
  }
}

function coinbase(): Handler {
  // A live BTC-USD level2 session (2026: snapshot, updates and its own subscriptions message,
  // numbered together) for level2; nautilus_trader's subscriptions and heartbeats messages for the
  // heartbeats channel.
  const session = lines('coinbase/l2-2026.jsonl')
  const [, subscriptions, heartbeat] = lines('coinbase/l2.jsonl')
  // A connection numbers its messages itself (sequence_num counts per connection, every channel).
  const counters = new WeakMap<WebSocket, number>()
  const numbered = (ws: WebSocket, line: string) => {
    const n = counters.get(ws) ?? 0
    counters.set(ws, n + 1)
    return line.replace(/"sequence_num":\d+/, `"sequence_num":${n}`)
  }
  return {
    rest(path) {
      return path === '/products' ? json(read('coinbase/exchange-products.json')) : null
    },
    open(venue, ws) {
      const timer = setInterval(() => send(venue, ws, numbered(ws, heartbeat)), 1000)
      ws.once('close', () => clearInterval(timer))
    },
    message(venue, ws, text) {
      const request = JSON.parse(text)
      venue.received.push(request)
      if (request.type !== 'subscribe') return
      if (request.channel === 'heartbeats') send(venue, ws, numbered(ws, subscriptions))
      else if (request.channel === 'level2' && (request.product_ids as string[]).includes('BTC-USD')) {
        for (const line of session) send(venue, ws, numbered(ws, line))
      }
    }
  }
}

const HANDLERS: Record<Exchange, () => Handler> = {
  binance: () => binance('/api/v3', 'binance'),
  binanceusdm: () => binance('/fapi/v1', 'binanceusdm'),
  coinbase,
  kraken,
  okx
}

async function startVenue(exchange: Exchange): Promise<{ venue: MockVenue; server: Server }> {
  const handler = HANDLERS[exchange]()
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const planted = venue.answer?.(url.pathname, url.searchParams) ?? null
    if (planted === 'hang') return
    const answer = planted ?? handler.rest(url.pathname, url.searchParams) ?? { status: 404, body: '{"error":"not found"}' }
    if (!answer.chunked) {
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body)
      return
    }
    res.writeHead(answer.status, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
    const body = Buffer.from(answer.body)
    const write = (at: number): void => {
      if (at >= body.length || res.destroyed) {
        res.end()
        return
      }
      if (res.write(body.subarray(at, at + 65536))) setImmediate(write, at + 65536)
      else res.once('drain', () => write(at + 65536))
    }
    write(0)
  })
  const wss = new WebSocketServer({ server, autoPong: false })
  const venue: MockVenue = {
    exchange,
    port: 0,
    sockets: new Set(),
    received: [],
    silent: false,
    rewrite: null,
    answer: null,
    closeAll(code = 1000) {
      for (const ws of venue.sockets) ws.close(code)
    }
  }
  wss.on('connection', (ws, req) => {
    venue.sockets.add(ws)
    ws.on('close', () => venue.sockets.delete(ws))
    ws.on('ping', (data) => {
      if (!venue.silent) ws.pong(data)
    })
    ws.on('message', (data) => {
      try {
        handler.message(venue, ws, data.toString())
      } catch {
        ws.close(1003)
      }
    })
    handler.open(venue, ws, new URL(req.url ?? '/', 'http://localhost'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  Object.assign(venue, { port: (server.address() as { port: number }).port })
  return { venue, server }
}

export async function startMockExchange(): Promise<MockExchange> {
  const started = await Promise.all((Object.keys(HANDLERS) as Exchange[]).map(startVenue))
  const venues = Object.fromEntries(started.map(({ venue }) => [venue.exchange, venue])) as Record<Exchange, MockVenue>
  const endpoints = started
    .map(({ venue }) => {
      const base = `127.0.0.1:${venue.port}`
      const ws = venue.exchange === 'kraken' ? `ws://${base}/v2` : `ws://${base}`
      return `${venue.exchange}=${ws},http://${base}`
    })
    .join(';')
  return {
    venues,
    endpoints,
    async close() {
      for (const { venue, server } of started) {
        for (const ws of venue.sockets) ws.terminate()
        server.closeAllConnections()
        await new Promise((r) => server.close(r))
      }
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const mock = await startMockExchange()
  console.log(`FEEDS_ENDPOINTS='${mock.endpoints}'`)
  console.log(`FEEDS_METADATA=${DIR}  (or leave it empty: the mock serves each venue's metadata too)`)
}
