// The recorded venue sessions as test/venue-feeds.test.ts's connectors get them from the mock exchange:
// per venue, the instruments of its FEEDS, the frames the mock sends each connection and the depth
// snapshots it answers. The golden pipeline test and the demo recording (demo/make-venues.ts) run them.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Exchange } from '../src/market/venues/index.ts'

export const DIR = fileURLToPath(new URL('./fixtures/venues/', import.meta.url))
const lines = (path: string) =>
  readFileSync(DIR + path, 'utf8')
    .trim()
    .split('\n')

/** The instruments of test/venue-feeds.test.ts's FEEDS, by venue, and the frames the mock sends each connection. */
export const SESSIONS: Partial<Record<Exchange, { symbols: string[]; frames: () => string[]; depth?: Record<string, string> }>> = {
  binance: {
    symbols: ['NKN-USDT'],
    frames: () => lines('binance/stream.jsonl').filter((l) => JSON.parse(l).stream === 'nknusdt@depth@100ms'),
    depth: { NKNUSDT: 'binance/depth-NKNUSDT.json' }
  },
  binanceusdm: {
    symbols: ['SUSHI-USDT-PERP'],
    frames: () => lines('binanceusdm/stream.jsonl').filter((l) => JSON.parse(l).stream === 'sushiusdt@depth@100ms'),
    depth: { SUSHIUSDT: 'binanceusdm/depth-SUSHIUSDT.json' }
  },
  coinbase: {
    symbols: ['BTC-USD'],
    // The level2 session, then the heartbeats subscription's answer; one sequence per connection.
    frames: () => [...lines('coinbase/l2-2026.jsonl'), lines('coinbase/l2.jsonl')[1]].map((l, n) => l.replace(/"sequence_num":\d+/, `"sequence_num":${n}`))
  },
  kraken: {
    symbols: ['BTC-USD', 'BTC-USDT', 'ALGO-USD'],
    frames: () =>
      [...lines('kraken/book-2026.jsonl'), ...lines('kraken/book-v2.jsonl').filter((l) => !l.includes('"symbol":"BTC/USD"'))].filter((l) => {
        const m = JSON.parse(l)
        return m.channel === 'book' && ['BTC/USD', 'BTC/USDT', 'ALGO/USD'].includes(m.data[0].symbol)
      })
  },
  okx: {
    symbols: ['BTC-USDT', 'UNI-USD-INVPERP'],
    frames: () =>
      [...lines('okx/books-2026.jsonl'), ...lines('okx/stream.jsonl').filter((l) => !l.includes('"instId":"BTC-USDT"'))].filter((l) => {
        const m = JSON.parse(l)
        return m.arg?.channel === 'books' && ['BTC-USDT', 'UNI-USD-SWAP'].includes(m.arg.instId)
      })
  }
}
