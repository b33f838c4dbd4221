// Connector cost (npm run bench:feeds): book updates per second of CPU through the OKX connector
// (JSON parse, sequence and CRC32 checksum, book, publish once per turn), on the 290 recorded
// messages replayed in a loop; the Coinbase connector's CPU per message against JSON.parse alone;
// and socket-to-publish latency: a message's arrival on the
// connector's socket to the publish call, over a real loopback WebSocket from the mock exchange.
import { performance } from 'node:perf_hooks'
import { readFileSync } from 'node:fs'
import { InstrumentRegistry } from '../src/market/instruments.ts'
import { createConnection } from '../src/market/venues/index.ts'
import { coinbaseProducts as parseProducts } from '../src/market/venues/coinbase.ts'
import { okxInstruments } from '../src/market/venues/okx.ts'
import { startFeeds } from '../src/market/setup.ts'
import { liveClockWith } from '../src/market/clock.ts'
import { parseEndpoints } from '../src/market/settings.ts'
import { fakeConnect } from '../test/fake-venue.ts'
import { startMockExchange } from '../test/mock-exchange.ts'

const dir = new URL('../test/fixtures/venues/', import.meta.url)
const registry = new InstrumentRegistry().add(
  'okx',
  okxInstruments(...['SPOT', 'SWAP', 'FUTURES'].map((t) => JSON.parse(readFileSync(new URL(`okx/instruments-${t}.json`, dir), 'utf8'))))
)
const session = readFileSync(new URL('okx/stream.jsonl', dir), 'utf8')
  .trim()
  .split('\n')
  .filter((l) => l.includes('"channel":"books"') && l.includes('"action"'))
let published = 0
const okxSocket = fakeConnect()
const feed = createConnection('okx', {
  connect: okxSocket.connect,
  instruments: ['BTC-USDT', 'UNI-USD-INVPERP', 'BTC-USD-INV20220527'].map((s) => registry.topic('okx', s)!),
  endpoints: { ws: 'ws://unused', rest: 'http://unused' },
  bookDepth: 20,
  sink: { book: () => published++, ticker: () => published++, venue: () => published++ }
})
feed.start()
const receive = (b: Buffer, isBinary: boolean) => okxSocket.sockets[0].deliver(b, isBinary)
const buffers = session.map((l) => Buffer.from(l))
const rounds = Number(process.env.ROUNDS ?? 200)
for (let r = 0; r < 20; r++) for (const b of buffers) receive(b, false) // warm-up
const cpu0 = process.cpuUsage()
const t0 = performance.now()
for (let r = 0; r < rounds; r++) {
  for (const b of buffers) receive(b, false)
  await new Promise((resolve) => setImmediate(resolve)) // one publish per book per turn, as live
}
const wall = performance.now() - t0
const cpu = process.cpuUsage(cpu0)
const updates = rounds * buffers.length
const cpuMs = (cpu.user + cpu.system) / 1000
console.log(
  JSON.stringify({
    connector: 'okx (hand-written)',
    updates,
    checksumFailures: feed.counters.checksumFailures,
    wallMs: Math.round(wall),
    cpuMs: Math.round(cpuMs),
    updatesPerCpuSecond: Math.round(updates / (cpuMs / 1000)),
    usPerUpdate: +((cpuMs * 1000) / updates).toFixed(2),
    published
  })
)

// Coinbase: the live 2026 level2 session (a snapshot, updates, its subscriptions message) replayed
// as one connection numbers it (sequence_num carried on from one replay to the next); the floor is
// JSON.parse of the same messages, in the same invocation.
const coinbaseLines = readFileSync(new URL('coinbase/l2-2026.jsonl', dir), 'utf8').trim().split('\n')
const coinbaseProducts = parseProducts(JSON.parse(readFileSync(new URL('coinbase/exchange-products.json', dir), 'utf8')))
const coinbaseSocket = fakeConnect()
const coinbaseFeed = createConnection('coinbase', {
  connect: coinbaseSocket.connect,
  instruments: [new InstrumentRegistry().add('coinbase', coinbaseProducts).topic('coinbase', 'BTC-USD')!],
  endpoints: { ws: 'ws://unused', rest: 'http://unused' },
  bookDepth: 20,
  sink: { book() {}, ticker() {}, venue() {} }
})
coinbaseFeed.start()
const coinbaseReceive = (b: Buffer, isBinary: boolean) => coinbaseSocket.sockets[0].deliver(b, isBinary)
const numbered = (round: number) =>
  coinbaseLines.map((line, i) => Buffer.from(line.replace(/"sequence_num":\d+/, `"sequence_num":${round * coinbaseLines.length + i}`)))
const warm = 20
const coinbaseRounds = Array.from({ length: warm + rounds * 10 }, (_, r) => numbered(r))
for (const round of coinbaseRounds.slice(0, warm)) for (const b of round) coinbaseReceive(b, false)
const measured = coinbaseRounds.slice(warm)
const cbCpu0 = process.cpuUsage()
for (const round of measured) {
  for (const b of round) coinbaseReceive(b, false)
  await new Promise((resolve) => setImmediate(resolve))
}
const cbCpu = process.cpuUsage(cbCpu0)
const floorCpu0 = process.cpuUsage()
for (const round of measured) {
  for (const b of round) JSON.parse(b.toString())
  await new Promise((resolve) => setImmediate(resolve))
}
const floorCpu = process.cpuUsage(floorCpu0)
const coinbaseMessages = measured.length * coinbaseLines.length
const us = (c: NodeJS.CpuUsage) => +((c.user + c.system) / coinbaseMessages).toFixed(2)
console.log(
  JSON.stringify({
    connector: 'coinbase (hand-written)',
    messages: coinbaseMessages,
    gaps: coinbaseFeed.counters.gaps,
    usPerMessage: us(cbCpu),
    floorUsPerMessage: us(floorCpu),
    ratio: +(us(cbCpu) / us(floorCpu)).toFixed(2)
  })
)

// Socket to publish: the mock replays the session on subscribe; each publish is timed from the
// arrival of the message that made it (the connector stamps receivedAt when the frame arrives).
const mock = await startMockExchange()
const lat: number[] = []
const endpoints = parseEndpoints(mock.endpoints)!
const offset = Date.now() - performance.now()
for (let i = 0; i < 20; i++) {
  const feeds = await startFeeds({
    feeds: new Map([['okx', ['BTC-USDT', 'UNI-USD-INVPERP', 'BTC-USD-INV20220527']]]),
    endpoints,
    metadataDir: new URL('.', dir).pathname,
    bookDepth: 20,
    clock: liveClockWith(() => offset + performance.now()),
    sink: { book: (e) => lat.push(offset + performance.now() - e.receivedAt), ticker() {}, venue() {} }
  })
  await new Promise((r) => setTimeout(r, 300))
  feeds.stop()
}
await mock.close()
lat.sort((a, b) => a - b)
const q = (p: number) => +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3)
console.log(JSON.stringify({ socketToPublishMs: { samples: lat.length, p50: q(0.5), p99: q(0.99), max: q(1) } }))
process.exit(0)
