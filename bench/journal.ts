// npm run bench:journal: what HISTORY_DIR costs a publish, and what a restart costs.
// 1. Publish round trips (publish -> ack, one at a time: p50/p99) and sustained publishes/s (a
//    window of acks outstanding) against the raw ws baseline, our server without a journal and our
//    server with one (HISTORY_FSYNC=everysec, the default, and always), each its own process, in
//    the same invocation, rounds interleaved so drift of the shared machine falls on all alike.
// 2. Restart to recovered: TOPICS x EVENTS journaled, then a fresh process loads them and answers
//    a `since` of the oldest event held: the time from the process's start to that answer.
// --quick: shorter runs, 1,000 x 1,000 for the restart.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decode, encode } from '@msgpack/msgpack'
import { WebSocket } from 'ws'
import { Histogram } from '../src/core/histogram.ts'
import { rssMiB } from './proc.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 1 : 3
const ROUND_TRIPS = quick ? 2000 : 5000
const SUSTAIN_MS = quick ? 2000 : 4000
const WINDOW = 200
const TOPICS = 100
const payload = { bid: 64123.5, ask: 64124, bidSize: 1.25, askSize: 0.5, note: 'x'.repeat(40) }

interface Target {
  name: string
  script: string
  env: Record<string, string>
}

const dirs: string[] = []
const journalDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-journal-'))
  dirs.push(dir)
  return dir
}
const targets = (): Target[] => [
  { name: 'raw ws baseline', script: 'bench/raw-server.mjs', env: {} },
  { name: 'ours, no journal', script: 'bench/ours-server.mjs', env: { ARBITRAGE: 'false' } },
  {
    name: 'ours, journal (fsync everysec)',
    script: 'bench/ours-server.mjs',
    env: { ARBITRAGE: 'false', HISTORY_DIR: journalDir(), HISTORY_FSYNC: 'everysec' }
  },
  { name: 'ours, journal (fsync always)', script: 'bench/ours-server.mjs', env: { ARBITRAGE: 'false', HISTORY_DIR: journalDir(), HISTORY_FSYNC: 'always' } }
]

async function start(target: Target): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [target.script], { cwd: root, env: { ...process.env, ...target.env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (c) => {
      out += c
      const m = /listening (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`${target.name} exited with ${code}`)))
  })
  return { child, port }
}

async function measure(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/live`, { perMessageDeflate: false })
  await new Promise((r) => ws.once('open', r))
  let onAck: (id: number) => void = () => {}
  ws.on('message', (data: Buffer) => {
    const f = decode(data) as { type: string; id: number }
    if (f.type === 'ack') onAck(f.id)
  })
  const send = (id: number) => ws.send(encode({ type: 'publish', id, topic: `bench.t${id % TOPICS}`, data: payload }))
  // Round trips, one at a time.
  const latency = new Histogram()
  for (let i = 1; i <= ROUND_TRIPS; i++) {
    const sent = performance.now()
    await new Promise<void>((resolve) => {
      onAck = () => resolve()
      send(i)
    })
    latency.record(performance.now() - sent)
  }
  // Sustained: WINDOW publishes outstanding, for SUSTAIN_MS.
  let acked = 0
  let next = ROUND_TRIPS + 1
  const started = performance.now()
  await new Promise<void>((resolve) => {
    onAck = () => {
      acked++
      if (performance.now() - started >= SUSTAIN_MS) return acked === next - ROUND_TRIPS - 1 ? resolve() : undefined
      send(next++)
    }
    for (let i = 0; i < WINDOW; i++) send(next++)
  })
  const perSecond = acked / ((performance.now() - started) / 1000)
  ws.terminate()
  const { p50, p99 } = latency.summary()
  return { p50, p99, perSecond }
}

const results = new Map<string, { p50: number[]; p99: number[]; perSecond: number[] }>()
const list = targets()
for (let round = 0; round < ROUNDS; round++) {
  for (const target of list) {
    const server = await start(target)
    await new Promise((r) => setTimeout(r, 300))
    const r = await measure(server.port)
    server.child.kill('SIGKILL')
    await new Promise((r) => server.child.once('exit', r))
    const acc = results.get(target.name) ?? { p50: [], p99: [], perSecond: [] }
    acc.p50.push(r.p50)
    acc.p99.push(r.p99)
    acc.perSecond.push(r.perSecond)
    results.set(target.name, acc)
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const base = results.get('ours, no journal')!
console.log(`publish -> ack, ${ROUND_TRIPS} round trips and ${SUSTAIN_MS} ms at ${WINDOW} outstanding, median of ${ROUNDS} round(s)`)
console.log('| server | p50 ms | p99 ms | publishes/s | p50 vs no journal | publishes/s vs no journal |')
console.log('|---|---|---|---|---|---|')
for (const [name, r] of results) {
  console.log(
    `| ${name} | ${median(r.p50).toFixed(3)} | ${median(r.p99).toFixed(3)} | ${Math.round(median(r.perSecond))} | ${(median(r.p50) / median(base.p50)).toFixed(2)}x | ${(median(base.perSecond) / median(r.perSecond)).toFixed(2)}x slower |`
  )
}

// Restart to recovered.
const restartTopics = quick ? 1000 : 10_000
const restartEvents = 1000
const dir = journalDir()
const fill = spawnSync(process.execPath, ['--import=tsx', 'bench/journal-restart.ts', 'fill', dir, String(restartTopics), String(restartEvents)], {
  cwd: root,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit']
})
if (fill.status !== 0) throw new Error(`fill exited ${fill.status}`)
const bytes = readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0)
const startedAt = Date.now()
const child = spawn(
  process.execPath,
  ['--import=tsx', 'bench/journal-restart.ts', 'load', dir, String(restartTopics), String(restartEvents), String(startedAt)],
  {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit']
  }
)
let out = ''
child.stdout!.on('data', (c) => {
  out += c
})
let peak = 0
const sampler = setInterval(() => {
  const rss = rssMiB(child.pid!)
  if (rss > peak) peak = rss
}, 50)
await new Promise((r) => child.once('exit', r))
clearInterval(sampler)
console.log(fill.stdout.trim())
console.log(`journal on disk: ${(bytes / 1024 / 1024).toFixed(0)} MiB`)
console.log(`${out.trim()}; peak RSS ${peak.toFixed(0)} MiB`)
for (const d of dirs) rmSync(d, { recursive: true, force: true })
