// The event streams the delta measurements use (bench/delta.ts, and the deltas workload of
// bench/load.ts): consecutive data per topic, tickers from the demo feed and books from the
// recorded OKX session through the real connector (top 20 a side).
import { readFileSync } from 'node:fs'
import { InstrumentRegistry } from '../src/market/instruments.ts'
import { topicSink } from '../src/market/events.ts'
import { createConnection } from '../src/market/venues/index.ts'
import { liveClockWith } from '../src/market/clock.ts'
import { okxInstruments } from '../src/market/venues/okx.ts'
import { fakeConnect } from '../test/fake-venue.ts'
import { SyntheticFeed } from '../src/market/synthetic.ts'

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** Consecutive data per topic. */
export function tickers(): Map<string, Json[]> {
  const feed = new SyntheticFeed({ seed: 3, symbols: 5, exchanges: 5, dislocationRate: 0.001 })
  const out = new Map<string, Json[]>()
  let at = 1_700_000_000_000
  for (let i = 0; i < 20_000; i++) {
    at += 5
    const tick = feed.next(at)
    const topic = `ticker.${tick.exchange}.${tick.symbol}`
    out.set(topic, [...(out.get(topic) ?? []), { ...tick } as unknown as Json])
  }
  return out
}

export async function books(): Promise<Map<string, Json[]>> {
  const dir = new URL('../test/fixtures/venues/okx/', import.meta.url)
  const registry = new InstrumentRegistry().add(
    'okx',
    okxInstruments(...['SPOT', 'SWAP', 'FUTURES'].map((t) => JSON.parse(readFileSync(new URL(`instruments-${t}.json`, dir), 'utf8'))))
  )
  const out = new Map<string, Json[]>()
  let now = 1_652_459_000_000
  const { connect, sockets } = fakeConnect()
  const feed = createConnection('okx', {
    connect,
    instruments: ['BTC-USDT', 'UNI-USD-INVPERP', 'BTC-USD-INV20220527'].map((s) => registry.topic('okx', s)!),
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: 20,
    clock: liveClockWith(() => now),
    sink: topicSink((topic, data) => {
      if (topic.startsWith('book.')) out.set(topic, [...(out.get(topic) ?? []), structuredClone(data) as Json])
    })
  })
  feed.start()
  // One message per turn, as they came: one book event per update.
  for (const line of readFileSync(new URL('stream.jsonl', dir), 'utf8').trim().split('\n')) {
    now += 10
    sockets[0].deliver(line)
    await new Promise((resolve) => setImmediate(resolve))
  }
  feed.stop()
  return out
}
