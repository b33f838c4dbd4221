// The load generator, run in its own process by bench/run.ts: real ws clients against one server,
// one workload per run, the result sent back over IPC. Loopback only; every loop is bounded in count and time.
import { WebSocket } from 'ws'
import { decode, Encoder } from '@msgpack/msgpack'
import { Histogram } from '../src/core/histogram.ts'
import { LightSocket } from './light-client.ts'
import { SyntheticFeed, bookAround } from '../src/market/synthetic.ts'
import { books as recordedBooks, tickers } from './streams.ts'

type Args = Record<string, number | string>
const [workload, portText, argsText] = process.argv.slice(2)
const url = `ws://127.0.0.1:${portText}/ws/live`
const args = JSON.parse(argsText ?? '{}') as Args
const now = () => performance.now()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
// One encoder for the generator: @msgpack/msgpack's encode() builds one per call, and the garbage
// (GC pauses in the generator) would be measured as the server's latency.
const encoder = new Encoder()
const encode = (value: unknown) => encoder.encode(value)

function connect(): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

async function connectMany(count: number, batch = 200): Promise<WebSocket[]> {
  const out: WebSocket[] = []
  for (let i = 0; i < count; i += batch) out.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - i) }, connect))))
  return out
}

/** `count` light clients, opened 200 at a time. */
// Subscribers spread round-robin over these servers (the backplane workload: several nodes); the publisher uses the first.
const subscriberPorts = args.subscriberPorts ? String(args.subscriberPorts).split(',').map(Number) : [Number(portText)]

/** Sends a light client its subscribe frame; resolves at the answer, after which `receive` takes its frames. */
function subscribeLight(ws: LightSocket, frame: Record<string, unknown>, receive: (data: Buffer) => void): Promise<void> {
  return new Promise((resolve) => {
    ws.onFrame = () => {
      ws.onFrame = receive
      resolve()
    }
    ws.sendBinary(encode(frame))
  })
}

async function openLight(count: number): Promise<LightSocket[]> {
  const out: LightSocket[] = []
  for (let i = 0; i < count; i += 200) {
    out.push(
      ...(await Promise.all(Array.from({ length: Math.min(200, count - i) }, (_, k) => LightSocket.open(subscriberPorts[(i + k) % subscriberPorts.length]))))
    )
  }
  return out
}

/** Reads `type` and `seq` from an event frame's payload without decoding it: fixmap, then type, topic, seq in that order. */
function readHead(buf: Buffer): { type: string; seq: number } {
  let o = 1
  let type = ''
  let seq = -1
  for (let pair = 0; pair < 3 && o < buf.length; pair++) {
    const [key, afterKey] = readStr(buf, o)
    o = afterKey
    if (key === 'seq') {
      seq = readUint(buf, o)
      break
    }
    const [value, afterValue] = readStr(buf, o)
    o = afterValue
    if (key === 'type') {
      type = value
      if (type !== 'event') break
    }
  }
  return { type, seq }
}

function readStr(buf: Buffer, o: number): [string, number] {
  const b = buf[o]
  if (b >= 0xa0 && b <= 0xbf) return [buf.toString('latin1', o + 1, o + 1 + (b & 0x1f)), o + 1 + (b & 0x1f)]
  if (b === 0xd9) return [buf.toString('latin1', o + 2, o + 2 + buf[o + 1]), o + 2 + buf[o + 1]]
  if (b === 0xda) {
    const n = buf.readUInt16BE(o + 1)
    return [buf.toString('latin1', o + 3, o + 3 + n), o + 3 + n]
  }
  return ['', buf.length]
}

function readUint(buf: Buffer, o: number): number {
  const b = buf[o]
  if (b <= 0x7f) return b
  if (b === 0xcc) return buf[o + 1]
  if (b === 0xcd) return buf.readUInt16BE(o + 1)
  if (b === 0xce) return buf.readUInt32BE(o + 1)
  return -1
}

function cpu(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start)
  return (d.user + d.system) / 1e6
}

/**
 * Send-to-receive latency over the whole run and, with `warmupMs`, over what was sent after the
 * first warmupMs too: the steady state, without JIT warm-up at a new rate.
 */
class Latencies {
  private readonly all = new Histogram()
  private readonly steady = new Histogram()
  private steadyFrom = Infinity
  constructor(private readonly warmupMs: number) {}

  /** The clock (the one sentAt uses) when sending starts. */
  start(at: number): void {
    if (this.warmupMs > 0) this.steadyFrom = at + this.warmupMs
  }

  record(sentAt: number, receivedAt: number): void {
    this.all.record(receivedAt - sentAt)
    if (sentAt >= this.steadyFrom) this.steady.record(receivedAt - sentAt)
  }

  summary() {
    return { latency: this.all.summary(), ...(this.warmupMs > 0 ? { steadyLatency: this.steady.summary() } : {}) }
  }
}

/**
 * Request/response round trips: one connection in sequence, or many at a fixed rate each. Light
 * clients, and each client's sends on its own 1 ms slot, so the generator adds little of its own.
 */
async function probe() {
  const connections = Number(args.connections)
  const hist = new Histogram()
  const started = process.cpuUsage()
  const clients = await openLight(connections)
  const request = encode({ type: 'request', id: 1, timestamp: 1 })
  let late = 0
  if (connections === 1) {
    const ws = clients[0]
    const count = Number(args.count ?? 5000)
    let resolve: () => void = () => {}
    ws.onFrame = () => resolve()
    for (let i = 0; i < count + 500; i++) {
      const t0 = now()
      await new Promise<void>((r) => {
        resolve = r
        ws.sendBinary(request)
      })
      if (i >= 500) hist.record(now() - t0) // the first 500 warm the JIT
    }
  } else {
    const perSecond = Number(args.rate)
    const periodMs = 1000 / perSecond
    const sentAt = new Float64Array(connections)
    const recordFrom = now() + 1000 // the first second warms the JIT on both sides
    const stopAt = recordFrom + Number(args.durationMs)
    clients.forEach((ws, i) => {
      ws.onFrame = () => {
        if (sentAt[i] >= recordFrom) hist.record(now() - sentAt[i])
        sentAt[i] = 0
      }
    })
    // Client i sends when (elapsed mod period) passes its offset: the load is spread evenly over each period.
    const t0 = now()
    const nextAt = Float64Array.from({ length: connections }, (_, i) => t0 + (i / connections) * periodMs)
    while (now() < stopAt) {
      const t = now()
      for (let i = 0; i < connections; i++) {
        if (nextAt[i] > t) continue
        nextAt[i] += periodMs
        if (sentAt[i] !== 0) {
          late++
          continue
        }
        sentAt[i] = now()
        clients[i].sendBinary(request)
      }
      await sleep(1)
    }
    await sleep(200) // the last replies
  }
  for (const ws of clients) ws.destroy()
  return { ...hist.summary(), late, generatorCpu: cpu(started) }
}

/**
 * One publisher at a fixed rate, N subscribers: deliveries, loss, order and publish-to-receive latency.
 * Subscribers are light clients (bench/light-client.ts) so the generator is not the bottleneck.
 */
async function fanout() {
  const subscribers = Number(args.subscribers)
  const rate = Number(args.rate)
  const durationMs = Number(args.durationMs)
  const paused = Number(args.paused ?? 0)
  const topic = String(args.topic)
  const total = Math.floor((rate * durationMs) / 1000)
  const sentAt = new Float64Array(total + 1)
  // ~200-byte payloads: a tick, or an opportunity (what the scorer hook scores).
  const payload: Record<string, unknown> =
    args.payload === 'opportunity'
      ? {
          id: 'BTC-USDT:a:b',
          status: 'open',
          symbol: 'BTC-USDT',
          buy: { exchange: 'a', price: 67000, size: 0.5 },
          sell: { exchange: 'b', price: 67100, size: 1 },
          size: 0.5,
          grossBps: 14.9,
          netBps: 9.9,
          profit: 33.2,
          detectedAt: Date.now(),
          maxTickAgeMs: 12,
          ts: 0
        }
      : { exchange: 'binance', symbol: 'BTC-USDT', bid: 67012.5, ask: 67013.1, bidSize: 1.25, askSize: 0.8, ts: Date.now(), note: 'x'.repeat(60) }
  const latencies = new Latencies(Number(args.warmupMs ?? 0))
  const clients = await openLight(subscribers)
  const expected = new Int32Array(subscribers).fill(1)
  const open = new Uint8Array(subscribers).fill(1)
  let delivered = 0
  let lost = 0
  let reordered = 0
  let lastDeliveryAt = 0
  const closes: Record<string, number> = {}
  await Promise.all(
    clients.map((ws, i) => {
      ws.onClose = (code) => {
        open[i] = 0
        closes[code] = (closes[code] ?? 0) + 1
      }
      // With `filters`: subscriber i's filter is one of that many distinct ones, each passing every event here.
      const filter = args.filters ? { filter: `bid >= ${i % Number(args.filters)}` } : {}
      return subscribeLight(ws, { type: 'subscribe', id: 0, topic, snapshot: false, ...filter }, (data) => {
        const { type, seq } = readHead(data)
        if (type !== 'event') return
        if (seq === expected[i]) expected[i]++
        else if (seq > expected[i]) {
          lost += seq - expected[i]
          expected[i] = seq + 1
        } else reordered++
        delivered++
        lastDeliveryAt = now()
        latencies.record(sentAt[seq], lastDeliveryAt)
      })
    })
  )
  for (let i = 0; i < paused; i++) clients[i].pause() // these never read again
  const publisher = await connect()
  const started = process.cpuUsage()
  const t0 = now()
  latencies.start(t0)
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - t0) * rate) / 1000))
    while (sent < due) {
      sent++
      sentAt[sent] = now()
      payload.ts = sent
      publisher.send(encode({ type: 'publish', topic, data: payload }))
    }
    await sleep(1)
  }
  const publishedAt = now()
  const expectedDeliveries = total * (subscribers - paused)
  const graceEnd = publishedAt + Number(args.graceMs ?? 2000)
  while (delivered < expectedDeliveries && now() < graceEnd) await sleep(5)
  const generatorCpu = cpu(started)
  const elapsed = (Math.max(lastDeliveryAt, publishedAt) - t0) / 1000
  for (let i = paused; i < subscribers; i++) if (expected[i] <= total && open[i] === 1) lost += total + 1 - expected[i]
  const lagMs = delivered >= expectedDeliveries ? Math.max(0, lastDeliveryAt - publishedAt) : Infinity
  for (const ws of clients) ws.destroy()
  publisher.terminate()
  return {
    rate,
    subscribers,
    paused,
    published: total,
    expectedDeliveries,
    delivered,
    lost,
    reordered,
    closes,
    lagMs: Number.isFinite(lagMs) ? Math.round(lagMs) : null,
    deliveredPerSecond: Math.round(delivered / elapsed),
    ...latencies.summary(),
    generatorCpu
  }
}

/** Calls `send(i, date)` `rate` times a second until `total`, from now; 1 ms slots. */
async function paced(rate: number, total: number, send: (i: number, date: number) => void): Promise<void> {
  const t0 = now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - t0) * rate) / 1000))
    const date = Date.now()
    for (; sent < due; sent++) send(sent, date)
    await sleep(1)
  }
}

/**
 * The subscriber's frames in the tick and book workloads. Baseline (`sentField`): each event of its
 * one topic, timed from that field of its data. Otherwise opportunities: each open counted, and
 * timed when it opens in a class with none open (openedAlone).
 */
function timed(latencies: Latencies, sentField: 'ts' | 'exchangeTime' | null, opened: () => void): (payload: Buffer) => void {
  const alone = openedAlone()
  return (payload) => {
    const frame = decode(payload) as { type: string; data: any }
    if (frame.type !== 'event') return
    if (sentField !== null) return latencies.record(frame.data[sentField], wall())
    if (frame.data.status === 'open') opened()
    if (alone(frame.data)) latencies.record(Math.max(frame.data.buy.ts, frame.data.sell.ts), wall())
  }
}

/**
 * Tracks what is open per class; true for an `open` in a class with none open. Before the update
 * that caused it no pairing paid, so every paying pairing, the best first, has the updated quote as
 * a leg: its newer leg's time is the cause's send. (A second pairing, or an update, may come from a
 * third venue's quote, which no leg's time tells.)
 */
function openedAlone() {
  const openIn = new Map<string, Set<string>>()
  return (o: { id: string; status: string; symbol: string }) => {
    const open = openIn.get(o.symbol) ?? new Set<string>()
    openIn.set(o.symbol, open)
    if (o.status === 'closed') open.delete(o.id)
    const alone = o.status === 'open' && open.size === 0
    if (o.status !== 'closed') open.add(o.id)
    return alone
  }
}

/**
 * Tick to opportunity: synthetic ticks (20 symbols × 5 exchanges) published over WebSocket at a
 * fixed rate, each stamped with its send time as its exchange time; a subscriber of
 * opportunities.> measures receive time minus the newer leg's stamp, i.e. from the tick that
 * triggered it. With `baseline`, the subscriber takes one ticker topic instead and measures the
 * ticks themselves: what publish-to-receive costs with no engine (the raw server has none).
 */
async function arbitrage() {
  const rate = Number(args.rate)
  const baseline = Boolean(args.baseline)
  const feed = new SyntheticFeed({ seed: 11, symbols: 20, exchanges: 5, dislocationRate: Number(args.dislocationRate ?? 0.0005) })
  const total = Math.floor((rate * Number(args.durationMs)) / 1000)
  const run = await publishAndReceive(baseline ? 'ticker.binance.BTC-USDT' : 'opportunities.>', baseline ? 'ts' : null, rate, total, (_, date) => {
    const tick = feed.next(date)
    tick.ts = wall()
    return { type: 'publish', topic: `ticker.${tick.exchange}.${tick.symbol}`, data: tick }
  })
  return { rate, ticks: total, acks: run.acks, opportunities: run.received, dislocations: feed.planted.length, ...run.latency }
}

const wall = () => performance.timeOrigin + performance.now()

/**
 * The tick and book workloads' run: one publisher and one subscriber of `topic` (timed as
 * `timed` says), `total` publishes at `rate` a second (`next(i, date)` gives each publish frame), then the acks awaited (2 s at most).
 */
async function publishAndReceive(
  topic: string,
  sentField: 'ts' | 'exchangeTime' | null,
  rate: number,
  total: number,
  next: (i: number, date: number) => { type: 'publish'; topic: string; data: unknown }
) {
  const latencies = new Latencies(Number(args.warmupMs ?? 0))
  const [publisher, subscriber] = await openLight(2)
  let acks = 0
  let received = 0
  publisher.onFrame = () => {
    acks++
  }
  await subscribeLight(
    subscriber,
    { type: 'subscribe', topic, snapshot: false },
    timed(latencies, sentField, () => received++)
  )
  const started = process.cpuUsage()
  latencies.start(wall())
  await paced(rate, total, (i, date) => publisher.sendBinary(encode(next(i, date))))
  const deadline = now() + 2000
  while (acks < total && now() < deadline) await sleep(5)
  await sleep(100)
  publisher.destroy()
  subscriber.destroy()
  return { acks, received, latency: { ...latencies.summary(), generatorCpu: cpu(started) } }
}

/**
 * Book updates to opportunities: `instruments` symbols × 5 venues of synthetic books (20 levels a
 * side, built around SyntheticFeed's quotes, one SyntheticFeed per 20 symbols), published on
 * book.<venue>.<symbol> at `rate` per second. Latency: a book's exchangeTime (stamped at send) to
 * the opportunity event it caused; baseline: the same publishes to a subscriber of one book topic.
 */
async function books() {
  const rate = Number(args.rate)
  const instruments = Number(args.instruments)
  const baseline = Boolean(args.baseline)
  const feeds = Array.from({ length: Math.ceil(instruments / 20) }, (_, g) => ({
    g,
    feed: new SyntheticFeed({ seed: 11 + g, symbols: Math.min(20, instruments - g * 20), exchanges: 5, dislocationRate: Number(args.dislocationRate ?? 0.002) })
  }))
  // The first group's first symbol on the first venue: what the baseline subscriber watches.
  const first = feeds[0].feed.symbols[0][0].replace('-', '0-')
  const total = Math.floor((rate * Number(args.durationMs)) / 1000)
  const topic = baseline ? `book.${feeds[0].feed.exchanges[0][0]}.${first}` : 'opportunities.>'
  const run = await publishAndReceive(topic, baseline ? 'exchangeTime' : null, rate, total, (i, date) => {
    const { g, feed } = feeds[i % feeds.length]
    const tick = feed.next(date)
    const symbol = tick.symbol.replace('-', `${g}-`)
    return { type: 'publish', topic: `book.${tick.exchange}.${symbol}`, data: { ...bookAround(tick), exchangeTime: wall() } }
  })
  return { rate, instruments, books: total, acks: run.acks, opportunities: run.received, ...run.latency }
}

/**
 * Delta frames on the wire: `subscribers` light clients of one topic, with `delta` or without,
 * while one publisher sends `rate` events a second of `kind`: the demo feed's ticks of one
 * instrument, or the recorded OKX BTC-USDT book (bench/streams.ts), cycled. Bytes per delivery
 * are the frames' payloads as received.
 */
async function deltas() {
  const subscribers = Number(args.subscribers)
  const rate = Number(args.rate)
  const durationMs = Number(args.durationMs)
  const kind = String(args.kind)
  const all = kind === 'book' ? await recordedBooks() : tickers()
  const [topic, stream] = kind === 'book' ? ['bench.book', all.get('book.okx.BTC-USDT')!] : ['bench.ticker', [...all.values()][0]]
  const clients = await openLight(subscribers)
  let delivered = 0
  let bytes = 0
  let deltaFrames = 0
  await Promise.all(
    clients.map((ws, i) => {
      const filter = args.filters ? { filter: `ts >= ${i % Number(args.filters)}` } : {}
      return subscribeLight(ws, { type: 'subscribe', topic, snapshot: false, ...(args.delta ? { delta: true } : {}), ...filter }, (data) => {
        delivered++
        bytes += data.length
        if (data.includes(DELTA_KEY)) deltaFrames++
      })
    })
  )
  const [publisher] = await openLight(1)
  publisher.onFrame = () => {}
  const total = Math.floor((rate * durationMs) / 1000)
  const started = process.cpuUsage()
  await paced(rate, total, (i) => publisher.sendBinary(encode({ type: 'publish', topic, data: stream[i % stream.length] })))
  const deadline = now() + 3000
  while (delivered < total * subscribers && now() < deadline) await sleep(10)
  for (const c of [...clients, publisher]) c.destroy()
  return {
    kind,
    delta: Boolean(args.delta),
    subscribers,
    published: total,
    delivered,
    deltaFrames,
    bytesPerDelivery: +(bytes / delivered).toFixed(1),
    generatorCpu: cpu(started)
  }
}
const DELTA_KEY = Buffer.from([0xa5, 0x64, 0x65, 0x6c, 0x74, 0x61]) // "delta" as a MessagePack fixstr

/** Many connected, subscribed, silent clients; holds them until told to let go. */
async function idle() {
  const connections = Number(args.connections)
  const clients = await connectMany(connections, 250)
  await Promise.all(
    clients.map(
      (ws, i) =>
        new Promise<void>((resolve) => {
          ws.once('message', () => resolve())
          ws.send(encode({ type: 'subscribe', topic: `idle.${i % 100}`, snapshot: false }))
        })
    )
  )
  report({ held: clients.length }, () => {})
  await new Promise((resolve) => process.once('message', resolve))
  for (const ws of clients) ws.terminate()
  return { connections: clients.length }
}

const workloads: Record<string, () => Promise<object>> = { probe, fanout, idle, arbitrage, books, deltas }
const run = workloads[workload]
if (!run) throw new Error(`unknown workload ${workload}`)
// Reports over IPC when run by bench/run.ts, on stdout when run by hand.
function report(msg: object, then: () => void): void {
  if (process.send) process.send(msg, then)
  else {
    console.log(JSON.stringify(msg))
    then()
  }
}
const timer = setTimeout(() => report({ error: 'generator timed out' }, () => process.exit(2)), Number(args.timeoutMs ?? 300_000))
run().then(
  (result) => {
    clearTimeout(timer)
    report({ result }, () => process.exit(0))
  },
  (err) => {
    report({ error: String(err?.stack ?? err) }, () => process.exit(1))
  }
)
