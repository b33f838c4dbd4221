// The engine alone (npm run bench, 'books'): CPU per book update at 10, 50 and 200 instruments × 5
// venues, in process, no sockets: the same synthetic 20-level books as the socket workload, built
// before timing, then fed through ArbitrageEngine.onBook in order; median of 5 runs. Then the
// entry check a client-published book passes once before the engine (market/check.ts) on the same books.
import { ArbitrageEngine, type BookData } from '../src/market/arbitrage.ts'
import { SyntheticFeed, bookAround } from '../src/market/synthetic.ts'
import { marketDataError } from '../src/market/check.ts'

const UPDATES = 100_000

function updates(instruments: number): { exchange: string; symbol: string; book: BookData; at: number }[] {
  const feeds = Array.from({ length: Math.ceil(instruments / 20) }, (_, g) => ({
    g,
    feed: new SyntheticFeed({ seed: 11 + g, symbols: Math.min(20, instruments - g * 20), exchanges: 5, dislocationRate: 0.0005 })
  }))
  const out = []
  let at = 1_700_000_000_000
  for (let n = 0; n < UPDATES; n++) {
    at += 0.2 // 5,000 updates a second, as over the socket
    const { g, feed } = feeds[n % feeds.length]
    const tick = feed.next(Math.floor(at))
    out.push({ exchange: tick.exchange, symbol: tick.symbol.replace('-', `${g}-`), book: { ...bookAround(tick), exchangeTime: at }, at })
  }
  return out
}

const rows: string[] = [
  '| instruments × venues | µs CPU per book update (median of 5) | book updates per CPU second | opportunity events |',
  '|---|---|---|---|'
]
for (const instruments of [10, 50, 200]) {
  const input = updates(instruments)
  const runs: { us: number; events: number }[] = []
  for (let run = 0; run < 6; run++) {
    const engine = new ArbitrageEngine({ minNetBps: 5, maxTickAgeMs: 1000, updateBps: 1, fees: {}, defaultFee: 0.001 })
    let events = 0
    const cpu0 = process.cpuUsage()
    for (const u of input) events += engine.onBook(u.book, u.at, u.exchange, u.symbol)?.length ?? 0
    const cpu = process.cpuUsage(cpu0)
    if (run > 0) runs.push({ us: (cpu.user + cpu.system) / input.length, events }) // run 0 warms up
  }
  runs.sort((a, b) => a.us - b.us)
  const median = runs[2]
  rows.push(`| ${instruments} × 5 | ${median.us.toFixed(2)} | ${Math.round(1e6 / median.us).toLocaleString('en')} | ${median.events} |`)
}
console.log(rows.join('\n'))

// The entry check on the same 50-instrument books, as their topics' publishes (no engine, no socket).
const input = updates(50).map((u) => ({ topic: `book.${u.exchange}.${u.symbol}`, book: u.book }))
const checks: number[] = []
for (let run = 0; run < 6; run++) {
  let refused = 0
  const cpu0 = process.cpuUsage()
  for (const u of input) if (marketDataError(u.topic, u.book) !== null) refused++
  const cpu = process.cpuUsage(cpu0)
  if (refused !== 0) throw new Error(`${refused} synthetic books refused`)
  if (run > 0) checks.push((cpu.user + cpu.system) / input.length)
}
checks.sort((a, b) => a - b)
console.log(`\nentry check (market/check.ts), 50 × 5 books of 20 levels: ${checks[2].toFixed(2)} µs CPU per book (median of 5)`)
