// Filter evaluation in process, no sockets: nanoseconds per evaluation of one filter on a ticker's
// data, and what one published event costs the hub per distinct filter its subscribers hold (10 and
// 1,000 distinct filters that never pass, each on its own connection), against the same event to
// one unfiltered subscriber. Run: node --import=tsx bench/filters.ts
import { EventEmitter } from 'node:events'
import { parseFilter } from '../src/shared/filter.ts'
import { Hub } from '../src/core/hub.ts'
import { MemoryBus } from '../src/core/bus.ts'
import { HookRegistry } from '../src/core/hooks.ts'
import { UNRESTRICTED } from '../src/core/auth.ts'
import { loadConfig } from '../src/config.ts'

const ticker = { exchange: 'binance', symbol: 'BTC-USDT', bid: 67012.5, ask: 67013.1, bidSize: 1.25, askSize: 0.8, ts: 1, buy: { exchange: 'okx' } }

/** The best of 9 runs (after 2 warm-up runs) of `n` calls of `fn`, in ns per call: on a shared machine the least disturbed. */
function nsPer(n: number, fn: (i: number) => void): number {
  let best = Infinity
  for (let rep = 0; rep < 11; rep++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) fn(i)
    if (rep >= 2) best = Math.min(best, Number(process.hrtime.bigint() - t0) / n)
  }
  return best
}

const evaluations: [string, string][] = [
  ['one comparison', 'bid >= 1'],
  ['the PROTOCOL example (3 comparisons, a list)', 'bid >= 10 and symbol in ["BTC-USDT", "ETH-USDT"] and not buy.exchange == "kraken"'],
  ['32 comparisons, none passes', Array.from({ length: 32 }, (_, i) => `bid < ${-i}`).join(' or ')]
]
console.log('| filter | passes | ns per evaluation |\n|---|---|---|')
for (const [label, text] of evaluations) {
  const filter = parseFilter(text)
  let passed = 0
  const ns = nsPer(200_000, () => {
    if (filter.test(ticker)) passed++
  })
  console.log(`| ${label} | ${passed > 0 ? 'yes' : 'no'} | ${ns.toFixed(1)} |`)
}

// A WebSocket that takes frames and drops them: the hub's own work is what is timed.
class NullSocket extends EventEmitter {
  readyState = 1
  bufferedAmount = 0
  send() {}
  close() {}
  terminate() {}
  ping() {}
}

const silent = { debug() {}, warn() {} }
// Limits on filters (where this build has them) raised so the bench can hold 1,000 distinct ones.
const env = { MAX_FILTER_COST: '100000', MAX_FILTER_COST_PER_IP: '100000', MAX_FILTER_COST_TOTAL: '100000' }

/** ns per published event with `distinct` never-passing filters (one connection each) plus one unfiltered subscriber. */
function perEvent(distinct: number): number {
  const options = loadConfig(env, { heartbeatInterval: 0, memoryLimitMb: 0 })
  const bus = new MemoryBus({ historySize: 10, historyTtl: 60_000 })
  const hub = new Hub(bus, options, silent, new HookRegistry(options, silent))
  const sockets: NullSocket[] = []
  for (let i = 0; i <= distinct; i++) {
    const socket = new NullSocket()
    hub.accept(socket as never, 'msgpack', '127.0.0.1', UNRESTRICTED)
    const frame =
      i === 0 ? { type: 'subscribe', topic: 'ticker.x', snapshot: false } : { type: 'subscribe', topic: 'ticker.x', snapshot: false, filter: `bid < ${-i}` }
    socket.emit('message', Buffer.from(JSON.stringify(frame)), false)
    sockets.push(socket)
  }
  const ns = nsPer(distinct >= 1000 ? 1000 : 20_000, (i) => {
    ticker.ts = i
    bus.publish('ticker.x', ticker)
  })
  for (const s of sockets) s.emit('close', 1000)
  hub.close()
  return ns
}

console.log('\n| distinct filters on the topic | ns per event | ns per event per distinct filter, beyond no filter |\n|---|---|---|')
const none = perEvent(0)
console.log(`| 0 (one unfiltered subscriber) | ${none.toFixed(0)} | |`)
for (const distinct of [10, 1000]) {
  const ns = perEvent(distinct)
  console.log(`| ${distinct} | ${ns.toFixed(0)} | ${((ns - none) / distinct).toFixed(1)} |`)
}
