// A venue cannot make the server hold its memory (issue #26, item 3; SECURITY.md "Venues"): diffs
// kept for books waiting for a snapshot are capped in bytes per connection (VENUE_BUFFER_MB), REST
// answers are read with a byte limit and cut off as they stream (depth snapshots at VENUE_BUFFER_MB,
// instrument lists at VENUE_METADATA_MB), and every refusal is counted in the venue's overflows.
// The attacks run against the mock exchange with the recorded messages as their base.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { loadRegistry, startFeeds, VENUE_ENDPOINTS } from '../src/market/setup.ts'
import { parseEndpoints } from '../src/market/settings.ts'
import { readJson, TooLargeError } from '../src/market/rest.ts'
import { VirtualClock } from '../src/market/clock.ts'
import { startMockExchange } from './mock-exchange.ts'
import { until } from './helper.ts'

const DIR = fileURLToPath(new URL('./fixtures/venues/', import.meta.url))
const MiB = 1024 * 1024

/** The recorded NKNUSDT diffs the mock replays to a new socket. */
const recorded = readFileSync(`${DIR}binance/stream.jsonl`, 'utf8')
  .trim()
  .split('\n')
  .filter((line) => line.startsWith('{"stream":"nknusdt@depth@100ms"'))

/**
 * A recorded diff grown to exactly `bytes` of text (the planted attack): padding in its stream name,
 * so its levels stay few and only the connection's byte limit stops it (MAX_PENDING_LEVELS would not).
 */
function grownDiff(bytes: number, n: number): string {
  const m = JSON.parse(recorded[0])
  m.data.U = 600_000_000 + n
  m.data.u = 600_000_000 + n
  const text = JSON.stringify(m)
  return text.replace('"stream":"nknusdt@depth@100ms"', `"stream":"nknusdt@depth@100ms${' '.repeat(bytes - text.length)}"`)
}

t.test('a venue that never answers the snapshot and sends huge diffs: the connection holds at most VENUE_BUFFER_MB', async (t) => {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  mock.venues.binance.answer = (path) => (path.endsWith('/depth') ? 'hang' : null)
  const feeds = await startFeeds({
    feeds: new Map([['binance', ['NKN-USDT']]]),
    endpoints: parseEndpoints(mock.endpoints)!,
    bookDepth: 5,
    bufferBytes: 4 * MiB,
    sink: { book() {}, ticker() {}, venue() {} }
  })
  t.teardown(() => feeds.stop())
  const health = () => feeds.health()[0]
  await until(() => health().messages === recorded.length, 'the recorded diffs held')
  const recordedBytes = recorded.reduce((n, line) => n + line.length, 0)
  t.equal(health().heldBytes, recordedBytes, 'every diff kept while the snapshot is on its way, counted by its text')

  // 31 diffs of 1.5 MiB: two fit beside what is held, the third passes 4 MiB and the book drops
  // what it held and resyncs, and so on: 10 overflows, the last diff held alone.
  const diff = 1.5 * MiB
  const socket = [...mock.venues.binance.sockets][0]
  for (let n = 0; n < 31; n++) socket.send(grownDiff(diff, n))
  await until(() => health().messages === recorded.length + 31, 'every planted diff received')
  t.match(health(), { heldBytes: diff, overflows: 10, booksLive: 0, notLive: ['NKN-USDT'], state: 'up' })
  t.ok(health().resyncs >= 10, 'each overflow resyncs the book')
  t.equal(health().invalid, 0, 'the diffs are valid: only their bytes were too many')
})

t.test('a depth snapshot larger than VENUE_BUFFER_MB is refused as it streams and counted; the book comes back with a real one', async (t) => {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const snapshot = JSON.parse(readFileSync(`${DIR}binance/depth-NKNUSDT.json`, 'utf8'))
  const huge = JSON.stringify({ ...snapshot, bids: new Array(80_000).fill(snapshot.bids[0]) })
  t.ok(huge.length > 2 * MiB)
  let asked = 0
  mock.venues.binance.answer = (path) => {
    if (!path.endsWith('/depth')) return null
    asked++
    // First with its length declared (refused before the body), then as a stream with none (cut).
    return asked === 1 ? { status: 200, body: huge } : asked === 2 ? { status: 200, body: huge, chunked: true } : null
  }
  // The backoffs run on a virtual clock: the test moves it, nothing waits for them in real time.
  const clock = new VirtualClock(Date.now())
  const feeds = await startFeeds({
    feeds: new Map([['binance', ['NKN-USDT']]]),
    endpoints: parseEndpoints(mock.endpoints)!,
    bookDepth: 5,
    bufferBytes: MiB,
    clock,
    sink: { book() {}, ticker() {}, venue() {} }
  })
  t.teardown(() => feeds.stop())
  const health = () => feeds.health()[0]
  await until(() => health().overflows === 1, 'the first oversized snapshot refused')
  clock.advance(1000)
  await until(() => health().overflows === 2, 'the second, asked for after 1 s, refused')
  t.match(health(), { booksLive: 0, errors: 0 })
  clock.advance(1999)
  t.equal(asked, 2, 'the third waits 2 s')
  clock.advance(1)
  await until(() => health().booksLive === 1, 'the recorded snapshot, asked for after the backoff, makes the book live')
  t.equal(asked, 3)
  t.match(health(), { overflows: 2, heldBytes: 0, state: 'up' })
})

t.test('an instrument list larger than VENUE_METADATA_MB stops start-up naming the venue and the setting', async (t) => {
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const products = JSON.parse(readFileSync(`${DIR}coinbase/exchange-products.json`, 'utf8'))
  const huge = JSON.stringify(new Array(Math.ceil((3 * MiB) / JSON.stringify(products[0]).length)).fill(products[0]))
  const endpoints = { ...VENUE_ENDPOINTS, ...parseEndpoints(mock.endpoints)! }
  for (const chunked of [false, true]) {
    mock.venues.coinbase.answer = (path) => (path === '/products' ? { status: 200, body: huge, chunked } : null)
    await t.rejects(
      loadRegistry(['coinbase'], { endpoints, metadataBytes: MiB }),
      /^coinbase: cannot read instruments from http:\/\/127\.0\.0\.1:\d+\/products: answer larger than 1048576 bytes \(VENUE_METADATA_MB\)$/,
      chunked ? 'a stream with no length is cut at the limit' : 'a declared length past the limit is refused before the body'
    )
  }
  mock.venues.coinbase.answer = null
  const registry = await loadRegistry(['coinbase'], { endpoints, metadataBytes: MiB })
  t.ok(registry.topic('coinbase', 'BTC-USD'), 'the recorded list, under the limit, loads')
})

t.test('readJson reads no more than its limit of an endless body', async (t) => {
  let pulled = 0
  const chunk = new Uint8Array(64 * 1024).fill(0x20)
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++
      controller.enqueue(chunk)
    }
  })
  const error = await readJson(new Response(endless), MiB, 'VENUE_BUFFER_MB').catch((err) => err)
  t.ok(error instanceof TooLargeError && error.limitBytes === MiB, 'refused at the limit')
  t.ok(pulled <= MiB / chunk.length + 3, `pulled ${pulled} chunks of 64 KiB for a 1 MiB limit`)
  t.same(await readJson(new Response('{"a":[1,2]}'), 11, 'X'), { a: [1, 2] }, 'exactly the limit is read')
  await t.rejects(readJson(new Response('{"a":[1,2]}'), 10, 'X'), /answer larger than 10 bytes \(X\)/)
})
