// Models in the loop (issue #29), measured in one run: the per-opportunity latency of an in-process
// ONNX model at 1,000 opportunities/s (a 32-64-1 MLP and the reference scorer, against no model),
// memory after 1,000 version reloads, and a KServe v2 round trip against a plain HTTP floor.
//   flock /work/.bench.lock node --import=tsx --expose-gc bench/models.ts [--quick]
// Needs /usr/bin/python3 with Debian's python3-onnx (the MLP) and the Python SDK's models server.
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:http'
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import { buildApp } from '../src/app.ts'
import { Histogram } from '../src/core/histogram.ts'
import { parseCard } from '../src/hooks/model-card.ts'
import { jsonClient, remoteRunner } from '../src/hooks/model-runners.ts'
import { SHIPPED_MODELS } from '../src/hooks/scorer.ts'

const quick = process.argv.includes('--quick')
const root = fileURLToPath(new URL('..', import.meta.url))
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc')
const work = mkdtempSync(join(tmpdir(), 'bench-models-'))
const mlp = join(work, 'mlp.onnx')
const made = spawnSync('/usr/bin/python3', [join(root, 'bench/make-mlp.py'), mlp], { encoding: 'utf8' })
if (made.status !== 0) throw new Error(`bench/make-mlp.py: ${made.stderr}`)

const WIDTH = 32
const mlpCard = { topics: 'opportunities.>', features: Array.from({ length: WIDTH }, (_, i) => `f${i}`), output: 'p', budgetMs: 60_000 }
const scorerCard = { topics: 'opportunities.>', features: ['netBps', 'maxTickAgeMs', 'size', 'buy.price', 'volatilityBps'], output: 'score', budgetMs: 60_000 }
const fmt = (ms: number) => (ms * 1000).toFixed(0)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function opportunity(i: number): Record<string, unknown> {
  const o: Record<string, unknown> = {
    id: `BTC-USD:${i}`,
    status: 'open',
    netBps: 8 + (i % 13),
    maxTickAgeMs: i % 50,
    size: 0.5,
    buy: { price: 67000 },
    volatilityBps: 3
  }
  for (let k = 0; k < WIDTH; k++) o[`f${k}`] = Math.sin(i + k)
  return o
}

/** A MODELS directory with one model folder. */
function modelsDir(name: string, card: object, onnx: string): string {
  const dir = mkdtempSync(join(work, 'models-'))
  version(dir, name, '1', card, onnx)
  return dir
}

function version(dir: string, name: string, v: string, card: object, onnx: string): void {
  const staging = join(dir, `.staging-${v}`)
  mkdirSync(staging, { recursive: true })
  writeFileSync(join(staging, 'model.json'), JSON.stringify(card))
  copyFileSync(onnx, join(staging, 'model.onnx'))
  mkdirSync(join(dir, name), { recursive: true })
  renameSync(staging, join(dir, name, v))
}

/** Publishes at `rate` per second for `seconds`, each on its own millisecond slot; publish-to-ack latency. */
async function paced(models: string | null, seconds: number, rate = 1000) {
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, modelsReloadMs: 0, hookBudget: 60_000, ...(models === null ? {} : { models }) })
  await app.ready()
  for (let i = 0; i < 200; i++) await app.live.publish('opportunities.BTC-USD', opportunity(i)) // warm-up
  const latency = new Histogram()
  const total = seconds * rate
  const pending: Promise<unknown>[] = []
  const cpu = process.cpuUsage()
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 0.5) await sleep(wait)
    const t0 = performance.now()
    pending.push(app.live.publish('opportunities.BTC-USD', opportunity(i)).then(() => latency.record(performance.now() - t0)))
  }
  await Promise.all(pending)
  const elapsed = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  // CPU per opportunity does not depend on how long the loaded machine kept the process waiting.
  const cpuUs = (used.user + used.system) / total
  const figures = app.liveHooks.figures().find((f) => f.model !== undefined)?.model as { versions: { latencyMs: { p50: number; p99: number } }[] } | undefined
  await app.close()
  return { latency: latency.summary(), rate: total / elapsed, cpuUs, model: figures?.versions[0].latencyMs }
}

/** Writes versions 2..n+1 one by one (each replacing the one before), scanning after each. */
async function reloads(n: number) {
  const dir = modelsDir('mlp', mlpCard, mlp)
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, modelsReloadMs: 0, hookBudget: 60_000, models: dir })
  await app.ready()
  const scan = () => Promise.all(app.liveModels.map((d) => d.scan()))
  const measure = () => {
    gc!()
    gc!()
    const m = process.memoryUsage()
    return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20, external: m.external / 2 ** 20 }
  }
  // Warm: the first few reloads map the library's lazily loaded parts.
  for (let v = 2; v <= 11; v++) {
    version(dir, 'mlp', String(v), mlpCard, mlp)
    rmSync(join(dir, 'mlp', String(v - 1)), { recursive: true })
    await scan()
    await app.live.publish('opportunities.BTC-USD', opportunity(v))
  }
  await sleep(100)
  const before = measure()
  let served = 0
  for (let v = 12; v < 12 + n; v++) {
    version(dir, 'mlp', String(v), mlpCard, mlp)
    rmSync(join(dir, 'mlp', String(v - 1)), { recursive: true })
    await scan()
    await app.live.publish('opportunities.BTC-USD', opportunity(v))
    const data = (app.liveBus as { last(t: string): { data: { models?: { mlp?: { version: string } } } } }).last('opportunities.BTC-USD').data
    if (data.models?.mlp?.version === String(v)) served++
  }
  await sleep(100)
  const after = measure()
  const refused = (app.liveHooks.figures().find((f) => f.name === 'mlp')!.model as { refused: number }).refused
  await app.close()
  return { before, after, served, refused }
}

/** Sequential calls: a plain JSON POST to a Node server (the floor), and KServe v2 to a Node and a Python server. */
async function roundTrips(n: number) {
  const kserveAnswer = JSON.stringify({ model_name: 'mlp', outputs: [{ name: 'p', datatype: 'FP32', shape: [1, 1], data: [0.5] }] })
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (req.method === 'GET') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"ready":true}')
      res.writeHead(200, { 'content-type': 'application/json' }).end(req.url === '/plain' ? '{"p":0.5}' : kserveAnswer)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const node = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const python = spawn(
    '/usr/bin/python3',
    [
      '-c',
      'from realtime_client.models import serve\nserve(lambda rows: [sum(r) / len(r) for r in rows], name="mlp", inputs=[f"f{i}" for i in range(32)], port=0)'
    ],
    {
      env: { ...process.env, PYTHONPATH: join(root, 'clients/python') }
    }
  )
  const pythonUrl = await new Promise<string>((resolve, reject) => {
    let out = ''
    python.stdout.on('data', (c) => {
      out += c
      const m = /at (http:\/\/[\d.:]+)/.exec(out)
      if (m) resolve(m[1])
    })
    python.once('exit', (code) => reject(new Error(`python exited ${code}`)))
  })
  const row = Float64Array.from({ length: WIDTH }, (_, i) => Math.sin(i))
  const time = async (call: () => Promise<unknown>) => {
    for (let i = 0; i < 100; i++) await call()
    const h = new Histogram()
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      await call()
      h.record(performance.now() - t0)
    }
    return h.summary()
  }
  const plain = jsonClient(60_000)
  const card = parseCard({ ...mlpCard, url: node, remoteName: 'mlp' })
  const kserveNode = remoteRunner(card, { name: 'mlp', budgetMs: 60_000 })
  const kservePython = remoteRunner(parseCard({ ...mlpCard, url: pythonUrl, remoteName: 'mlp' }), { name: 'mlp', budgetMs: 60_000 })
  await kservePython.ready(WIDTH)
  const rows = {
    'plain HTTP POST, Node server (floor)': await time(() => plain.post(`${node}/plain`, { features: Array.from(row) }, 'floor')),
    'KServe v2 infer, Node server': await time(() => kserveNode.run(row, '', null)),
    'KServe v2 infer, realtime_client.models (Python)': await time(() => kservePython.run(row, '', null))
  }
  await Promise.all([plain.close(), kserveNode.close(), kservePython.close()])
  python.kill()
  server.close()
  return rows
}

/** onnxruntime-node alone: sequential `session.run` calls of one row, and of batches of 16 rows. */
async function ortAlone(n: number) {
  const loaded = await import('onnxruntime-node')
  const { InferenceSession, Tensor } = (loaded as unknown as { default?: typeof loaded }).default ?? loaded
  const session = await InferenceSession.create(mlp, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' })
  const rows: Record<string, { cpuUs: number; wallUs: number }> = {}
  for (const batch of [1, 16]) {
    const data = Float32Array.from({ length: WIDTH * batch }, (_, i) => Math.sin(i))
    const call = () => session.run({ features: new Tensor('float32', data, [batch, WIDTH]) })
    for (let i = 0; i < 1000; i++) await call()
    const calls = Math.round(n / batch)
    const cpu = process.cpuUsage()
    const start = performance.now()
    for (let i = 0; i < calls; i++) await call()
    const used = process.cpuUsage(cpu)
    rows[`${batch}`] = { cpuUs: (used.user + used.system) / calls / batch, wallUs: ((performance.now() - start) * 1000) / calls }
  }
  await session.release()
  return rows
}

const seconds = quick ? 3 : 10
const load = loadavg()
const floor = await paced(null, seconds)
const withMlp = await paced(modelsDir('mlp', mlpCard, mlp), seconds)
const withScorer = await paced(modelsDir('scorer', scorerCard, join(SHIPPED_MODELS, 'scorer/1/model.onnx')), seconds)
const memory = await reloads(quick ? 200 : 1000)
const trips = await roundTrips(quick ? 500 : 2000)
const alone = await ortAlone(quick ? 5000 : 20_000)
const loadAfter = loadavg()

console.log(
  `machine: ${cpus().length} × ${cpus()[0].model}, Node ${process.version}, load average ${load[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after`
)
console.log(`\n#### Publish to ack at ${seconds * 1000} opportunities over ${seconds} s (µs)\n`)
console.log('| model | rate reached | CPU per opportunity | p50 | p99 | max | model alone p50 | model alone p99 | p99 × no model |')
console.log('|---|---|---|---|---|---|---|---|---|')
for (const [name, r] of [
  ['none', floor],
  ['32-64-1 MLP (ONNX, in process)', withMlp],
  ['reference scorer (ONNX, in process)', withScorer]
] as const) {
  const alone = r.model === undefined ? ['-', '-'] : [fmt(r.model.p50), fmt(r.model.p99)]
  console.log(
    `| ${name} | ${r.rate.toFixed(0)}/s | ${r.cpuUs.toFixed(0)} | ${fmt(r.latency.p50)} | ${fmt(r.latency.p99)} | ${fmt(r.latency.max)} | ${alone[0]} | ${alone[1]} | ${(r.latency.p99 / floor.latency.p99).toFixed(2)} |`
  )
}
const n = quick ? 200 : 1000
console.log(`\n#### Memory after ${n} reloads of the MLP (MiB, after gc; ${memory.served} of ${n} new versions served at once, ${memory.refused} refused)\n`)
console.log('| | RSS | heap used | external |\n|---|---|---|---|')
console.log(`| before | ${memory.before.rss.toFixed(1)} | ${memory.before.heap.toFixed(1)} | ${memory.before.external.toFixed(1)} |`)
console.log(`| after | ${memory.after.rss.toFixed(1)} | ${memory.after.heap.toFixed(1)} | ${memory.after.external.toFixed(1)} |`)
console.log(
  `| growth | ${(memory.after.rss - memory.before.rss).toFixed(1)} | ${(memory.after.heap - memory.before.heap).toFixed(1)} | ${(memory.after.external - memory.before.external).toFixed(1)} |`
)
console.log(`\n#### Round trip of one call, ${quick ? 500 : 2000} sequential calls over one kept-alive connection (µs)\n`)
console.log('| call | p50 | p99 | max | p50 × floor |\n|---|---|---|---|---|')
const floorTrip = Object.values(trips)[0]
for (const [name, r] of Object.entries(trips))
  console.log(`| ${name} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${(r.p50 / floorTrip.p50).toFixed(2)} |`)
console.log('\n#### onnxruntime-node alone, the MLP: sequential session.run calls (µs)\n')
console.log('| rows per call | CPU per row | wall per call |\n|---|---|---|')
for (const [batch, r] of Object.entries(alone)) console.log(`| ${batch} | ${r.cpuUs.toFixed(1)} | ${r.wallUs.toFixed(1)} |`)
rmSync(work, { recursive: true, force: true })
