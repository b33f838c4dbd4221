// The L2 book alone (npm run bench:books): the venues' recorded snapshots and diffs
// (test/fixtures/venues) applied to a book as the connectors apply them (applyPairs), ROUNDS times
// each on a fresh book; µs per diff message, the snapshot's building left out. No socket, no JSON.parse:
// what a change to book.ts costs or saves, per venue. OKX keeps its levels' text (its checksum).
import { readFileSync } from 'node:fs'
import { applyPairs, OrderBook } from '../src/market/book.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 200)
const DIR = new URL('../test/fixtures/venues/', import.meta.url)
const read = (path: string) => readFileSync(new URL(path, DIR), 'utf8')
const lines = (path: string) =>
  read(path)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))

interface Levels {
  bids: unknown
  asks: unknown
}
const binance = (venue: string, symbol: string) => ({
  snapshot: JSON.parse(read(`${venue}/depth-${symbol}.json`)) as Levels,
  diffs: lines(`${venue}/stream.jsonl`)
    .map((m) => m.data ?? m)
    .filter((m) => m.e === 'depthUpdate' && m.s === symbol)
    .map((m): Levels => ({ bids: m.b, asks: m.a }))
})
const okxBooks = lines('okx/stream.jsonl').filter((m) => m.arg?.channel === 'books' && m.arg.instId === 'BTC-USDT' && m.action)
const cases = [
  { name: 'binance NKNUSDT', texts: false, ...binance('binance', 'NKNUSDT') },
  { name: 'binanceusdm SUSHIUSDT', texts: false, ...binance('binanceusdm', 'SUSHIUSDT') },
  {
    name: 'okx BTC-USDT (with texts)',
    texts: true,
    snapshot: okxBooks.find((m) => m.action === 'snapshot').data[0] as Levels,
    diffs: okxBooks.filter((m) => m.action === 'update').map((m) => m.data[0] as Levels)
  }
]
for (const { name, texts, snapshot, diffs } of cases) {
  let best = Number.POSITIVE_INFINITY
  for (let pass = 0; pass < 7; pass++) {
    let ns = 0n
    for (let r = 0; r < ROUNDS; r++) {
      const book = new OrderBook(texts)
      if (!applyPairs(book.bids, snapshot.bids) || !applyPairs(book.asks, snapshot.asks)) throw new Error(`${name}: the snapshot does not apply`)
      const started = process.hrtime.bigint()
      for (const d of diffs) if (!applyPairs(book.bids, d.bids) || !applyPairs(book.asks, d.asks)) throw new Error(`${name}: a diff does not apply`)
      ns += process.hrtime.bigint() - started
    }
    // The first two passes warm up.
    if (pass > 1) best = Math.min(best, Number(ns) / 1000 / (ROUNDS * diffs.length))
  }
  console.log(
    `${name}: ${diffs.length} diffs on a snapshot of ${(snapshot.bids as unknown[]).length}+${(snapshot.asks as unknown[]).length} levels, best ${best.toFixed(3)} us a diff`
  )
}
