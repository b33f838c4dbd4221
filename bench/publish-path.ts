// The publish path alone, in process: nanoseconds per publish with no hook and a no-op sync hook, to
// one in-process subscriber, so a hook's cost is not lost in socket noise. The reference scorer is an
// ONNX model answering on the next turn since issue #29: bench/models.ts measures it at a fixed rate.
import { buildApp } from '../src/app.ts'

const N = Number(process.env.N ?? 200_000)
const REPS = 7
const opportunity = {
  id: 'BTC-USDT:a:b',
  status: 'open',
  symbol: 'BTC-USDT',
  buy: { exchange: 'a', price: 67000, size: 0.5 },
  sell: { exchange: 'b', price: 67100, size: 1 },
  size: 0.5,
  grossBps: 14.9,
  netBps: 9.9,
  profit: 33.2,
  detectedAt: 0,
  maxTickAgeMs: 12
}

async function measure(hook: 'none' | 'noop'): Promise<number[]> {
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false })
  if (hook === 'noop') app.liveHooks.onPublish({ name: 'noop' }, () => undefined)
  await app.ready()
  // publishDetached: the in-process publish path without a promise per event (app.live.publish waits for its seq).
  let refused = 0
  const failed = () => {
    refused++
  }
  const samples: number[] = []
  for (let rep = 0; rep < REPS; rep++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < N; i++) app.live.publishDetached('opportunities.BTC-USDT', opportunity, failed)
    samples.push(Number(process.hrtime.bigint() - t0) / N)
  }
  if (refused > 0) throw new Error(`${refused} publishes refused`)
  await app.close()
  return samples.slice(2) // the first two warm the JIT
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const rows: Record<string, number> = {}
for (const hook of ['none', 'noop', 'none', 'noop'] as const) rows[hook] = Math.min(rows[hook] ?? Infinity, median(await measure(hook)))
console.log('| hook | ns per publish | × no hook |\n|---|---|---|')
for (const [hook, ns] of Object.entries(rows)) console.log(`| ${hook} | ${ns.toFixed(0)} | ${(ns / rows.none).toFixed(3)} |`)
