// npm run bench: each workload against our server and the raw ws baseline in the same invocation,
// servers and load generator in separate processes, with both processes' CPU and the server's RSS.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { cpuSeconds, rssMiB } from './proc.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const quick = process.argv.includes('--quick')
const WORKLOADS = ['floor', 'probe', 'fanout', 'filters', 'deltas', 'idle', 'memory', 'hooks', 'arbitrage', 'books', 'backplane']
const only = (process.env.BENCH_ONLY || WORKLOADS.join(',')).split(',')
const unknown = only.filter((w) => !WORKLOADS.includes(w))
if (unknown.length > 0) {
  console.error(`BENCH_ONLY: unknown workload ${unknown.join(', ')}; expected some of ${WORKLOADS.join(', ')}`)
  process.exit(2)
}
// A nice value the backplane workload's Redis runs at (an integer from -20 to 19); unset: default priority.
const redisNice = process.env.REDIS_NICE || undefined
if (redisNice !== undefined && !(/^-?\d+$/.test(redisNice) && Number(redisNice) >= -20 && Number(redisNice) <= 19)) {
  console.error(`REDIS_NICE: expected an integer from -20 to 19, got "${redisNice}"`)
  process.exit(2)
}
const targets = { raw: 'bench/raw-server.mjs', ours: 'bench/ours-server.mjs' } as const
type Target = keyof typeof targets

interface Server {
  child: ChildProcess
  port: number
  pid: number
}

// Our server runs with the V8 flags PM2 (and `npm start`) give it (README, "V8 flags"), read from
// pm2.config.json; OURS_NODE_ARGS overrides them ('' for none). The raw baseline runs plain: the
// flags made no difference to its probe tail by hand.
const pm2Flags: string[] = JSON.parse(readFileSync(new URL('../pm2.config.json', import.meta.url), 'utf8')).apps[0].node_args
const OURS_NODE_ARGS = process.env.OURS_NODE_ARGS === undefined ? pm2Flags : process.env.OURS_NODE_ARGS.split(' ').filter(Boolean)

async function startServer(target: Target, env: Record<string, string> = {}): Promise<Server> {
  const child = spawn(process.execPath, [...(target === 'ours' ? OURS_NODE_ARGS : []), targets[target]], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (c) => {
      out += c
      const m = /listening (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`${target} server exited with ${code}`)))
  })
  await new Promise((r) => setTimeout(r, 300)) // let start-up settle before measuring
  return { child, port, pid: child.pid! }
}

async function stopServer(server: Server) {
  server.child.kill('SIGKILL')
  await new Promise((r) => server.child.once('exit', r))
}

/** Runs one workload in a fresh generator process; `during` sees the generator's intermediate messages. */
function generate(workload: string, port: number, args: object, during?: (msg: any, child: ChildProcess) => void): Promise<any> {
  const child = spawn(process.execPath, ['--import=tsx', 'bench/load.ts', workload, String(port), JSON.stringify(args)], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  return new Promise((resolve, reject) => {
    child.on('message', (msg: any) => {
      if (msg.result) resolve(msg.result)
      else if (msg.error) reject(new Error(msg.error))
      else during?.(msg, child)
    })
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`generator exited with ${code}`))
    })
  })
}

async function measured<T>(server: Server, fn: () => Promise<T>) {
  const cpu0 = cpuSeconds(server.pid)
  const t0 = performance.now()
  const result = await fn()
  const seconds = (performance.now() - t0) / 1000
  return { ...result, serverCpuPct: Math.round(((cpuSeconds(server.pid) - cpu0) / seconds) * 100), serverRssMiB: Math.round(rssMiB(server.pid)) }
}

const results: Record<string, any> = {
  date: new Date().toISOString(),
  machine: `${cpus().length} × ${cpus()[0].model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  quick
}
const lines: string[] = []
const log = (line: string) => {
  lines.push(line)
  console.log(line)
}
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a')

/** Runs a bench script in a process of its own; resolves to what it printed. */
function scriptOutput(script: string, ...args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['--import=tsx', script, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout!.on('data', (c) => {
    out += c
  })
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${script} ${args.join(' ')} exited with ${code}`))))
  )
}

const floorRun = async (...args: string[]) => JSON.parse(await scriptOutput('bench/floor.ts', ...args))

/** What the machine allows any server (bench/floor.ts), so each run's latencies can be read against it. */
async function floorBench() {
  log('\n### Machine floor (bench/floor.ts; no server)\n\n| measure | result |\n|---|---|')
  const spins = await Promise.all([floorRun('spin', '5'), floorRun('spin', '5')]) // one per core
  for (const [core, r] of spins.entries())
    log(
      `| spinning process ${core + 1} of 2, ${r.seconds} s: gaps over 1 ms / over 2 ms, worst, time lost in gaps over 0.1 ms | ${r.over1ms} / ${r.over2ms}, ${r.worstMs} ms, ${r.lostPct}% |`
    )
  const writes = []
  for (const sockets of [900, 300]) {
    const r = await floorRun('writes', String(sockets))
    writes.push(r)
    log(
      `| 100 B written to each of ${sockets} loopback sockets, 20 rounds: µs per write (median, min); one event to all | ${r.perWriteUsMedian}, ${r.perWriteUsMin}; ${r.oneEventMs} ms |`
    )
  }
  results.floor = { spins, writes }
}

async function probeBench() {
  log('\n### Probe round trip (ms)\n\n| connections | server | p50 | p99 | p99.9 | max | server CPU % | generator CPU s |\n|---|---|---|---|---|---|---|---|')
  const runs = [
    { connections: 1, count: quick ? 2000 : 10000 },
    { connections: 1000, rate: 10, durationMs: quick ? 4000 : 10000 }
  ]
  for (const args of runs) {
    const row: Record<string, any> = {}
    for (const target of ['raw', 'ours'] as Target[]) {
      const server = await startServer(target)
      row[target] = await measured(server, () => generate('probe', server.port, args))
      await stopServer(server)
      const r = row[target]
      log(
        `| ${args.connections}${args.rate ? ` × ${args.rate}/s` : ''} | ${target} | ${r.p50} | ${r.p99} | ${r.p999} | ${r.max} | ${r.serverCpuPct} | ${r.generatorCpu.toFixed(2)} |`
      )
    }
    results[`probe-${args.connections}`] = row
  }
}

/** The highest rate of a ladder sustained without loss (fanoutBench's rule), one server start. */
async function sustainedRate(target: Target, subscribers: number, rates: number[], extra: object = {}): Promise<any> {
  const server = await startServer(target)
  let best: any = null
  for (const rate of rates) {
    const r = await measured(server, () =>
      generate('fanout', server.port, { subscribers, rate, durationMs: quick ? 2000 : 4000, topic: `bench.${subscribers}.${rate}`, ...extra })
    )
    const sustained = r.lost === 0 && r.reordered === 0 && Object.keys(r.closes).length === 0 && r.lagMs !== null && r.lagMs <= 250 && r.latency.p99 <= 100
    console.log(`  ${target} ${subscribers} subs @ ${rate}/s ${JSON.stringify(extra)}: ${sustained ? 'sustained' : 'NOT sustained'}`)
    if (!sustained) break
    best = r
  }
  await stopServer(server)
  return best
}

/** Fan-out to 1,000 subscribers spread over 10 and over 1,000 distinct filters (each passing every event) against none, same run. */
async function filtersBench() {
  log('\n### Filters: fan-out to 1,000 subscribers over 10 and 1,000 distinct filters (every event passes each) against no filter\n')
  log('| server | subscriptions | rate/s | delivered msgs/s | p50 ms | p99 ms | server CPU % |\n|---|---|---|---|---|---|---|')
  const rates = [25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000]
  const kinds: [number, string][] = [
    [0, 'no filter'],
    [10, '10 distinct filters'],
    [1000, '1,000 distinct filters']
  ]
  for (const [target, filters, what] of [['raw', 0, 'no filter'], ...kinds.map(([f, w]) => ['ours', f, w])] as [Target, number, string][]) {
    const r = await sustainedRate(target, 1000, rates, filters ? { filters } : {})
    results[`filters-${target}-${filters}`] = r
    log(
      r
        ? `| ${target} | ${what} | ${r.rate} | ${r.deliveredPerSecond} | ${r.latency.p50} | ${r.latency.p99} | ${r.serverCpuPct} |`
        : `| ${target} | ${what} | none sustained | | | | |`
    )
  }
  // The ladder's steps are coarse: the same fixed rate with and without, for the server's CPU per delivery.
  const rate = 100
  log(`\nAt a fixed ${rate} publishes/s to the same 1,000 subscribers (${quick ? 3 : 8} s):\n`)
  log('| subscriptions | delivered | server CPU % | µs of server CPU per delivery | p50 ms | p99 ms |\n|---|---|---|---|---|---|')
  for (const [filters, what] of kinds) {
    const server = await startServer('ours')
    const r: any = await measured(server, () =>
      generate('fanout', server.port, {
        subscribers: 1000,
        rate,
        durationMs: quick ? 3000 : 8000,
        topic: 'bench.filters',
        ...(filters ? { filters } : {})
      })
    )
    await stopServer(server)
    results[`filters-fixed-${filters}`] = r
    const seconds = r.published / rate
    log(
      `| ${what} | ${r.delivered} of ${r.expectedDeliveries} | ${r.serverCpuPct} | ${(((r.serverCpuPct / 100) * seconds * 1e6) / r.delivered).toFixed(2)} | ${r.latency.p50} | ${r.latency.p99} |`
    )
  }
  log('\nFilter evaluation in process (bench/filters.ts):\n')
  log(await scriptOutput('bench/filters.ts'))
}

/** Delta frames against whole events: bytes and server CPU per delivery, ticker and book topics, same run. */
async function deltasBench() {
  const subscribers = 100
  const rate = 100
  log(`\n### Delta frames: ${subscribers} subscribers of one topic at ${rate} events/s, with and without deltas (MessagePack)\n`)
  log('| topic | deltas | delivered | delta frames | bytes per delivery | server CPU % | µs of server CPU per delivery |\n|---|---|---|---|---|---|---|')
  // The last row: deltas and a filter at once (ten distinct filters that every book passes).
  for (const [kind, delta, filters] of [
    ['ticker', false, 0],
    ['ticker', true, 0],
    ['book', false, 0],
    ['book', true, 0],
    ['book', true, 10]
  ] as [string, boolean, number][]) {
    const server = await startServer('ours')
    const r: any = await measured(server, () => generate('deltas', server.port, { kind, delta, filters, subscribers, rate, durationMs: quick ? 3000 : 8000 }))
    await stopServer(server)
    results[`deltas-${kind}-${delta}-${filters}`] = r
    const seconds = r.published / rate
    log(
      `| ${kind} | ${delta ? 'yes' : 'no'}${filters ? `, ${filters} distinct filters` : ''} | ${r.delivered} | ${r.deltaFrames} | ${r.bytesPerDelivery} | ${r.serverCpuPct} | ${(((r.serverCpuPct / 100) * seconds * 1e6) / r.delivered).toFixed(2)} |`
    )
  }
}

async function fanoutBench() {
  log(
    '\n### Fan-out: highest publish rate sustained without loss (a ladder of rates, 4 s each; a step fails on any loss, reordering or close, on p99 latency over 100 ms, or on the last delivery lagging over 250 ms behind the last publish)\n'
  )
  log(
    '| subscribers | server | rate/s | delivered msgs/s | p50 ms | p99 ms | p99.9 ms | lost | reordered | server CPU % | generator CPU s |\n|---|---|---|---|---|---|---|---|---|---|---|'
  )
  const ladders: Record<number, number[]> = {
    100: [250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 12500, 15000, 20000],
    1000: [25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000]
  }
  for (const subscribers of [100, 1000]) {
    const best: Record<string, any> = {}
    for (const target of ['raw', 'ours'] as Target[]) {
      const r = await sustainedRate(target, subscribers, ladders[subscribers])
      if (r) {
        best[target] = r
        log(
          `| ${subscribers} | ${target} | ${r.rate} | ${r.deliveredPerSecond} | ${r.latency.p50} | ${r.latency.p99} | ${r.latency.p999} | ${r.lost} | ${r.reordered} | ${r.serverCpuPct} | ${r.generatorCpu.toFixed(2)} |`
        )
      } else log(`| ${subscribers} | ${target} | none sustained | | | | | | | | |`)
    }
    results[`fanout-${subscribers}`] = best
    if (best.raw && best.ours)
      log(`| ${subscribers} | **ours/raw** | | **${ratio(best.ours.deliveredPerSecond, best.raw.deliveredPerSecond)}** | | | | | | | |`)
  }
}

async function idleBench() {
  // This machine's hard limit is 20,000 open files per process, so the server can hold 19,900 sockets at most.
  const connections = quick ? 5000 : 19_900
  log(
    `\n### Idle connections (${connections}, each subscribed to one of 100 topics)\n\n| server | RSS before MiB | RSS after MiB | KiB per connection | projected RSS at 20,000 MiB |\n|---|---|---|---|---|`
  )
  const row: Record<string, any> = {}
  for (const target of ['raw', 'ours'] as Target[]) {
    const server = await startServer(target)
    const before = rssMiB(server.pid)
    let after = 0
    await generate('idle', server.port, { connections }, (msg, child) => {
      if (msg.held)
        setTimeout(() => {
          after = rssMiB(server.pid)
          child.send('done')
        }, 1000)
    })
    await stopServer(server)
    const perConnKiB = ((after - before) * 1024) / connections
    row[target] = { connections, before: Math.round(before), after: Math.round(after), perConnKiB: Math.round(perConnKiB * 10) / 10 }
    log(`| ${target} | ${Math.round(before)} | ${Math.round(after)} | ${perConnKiB.toFixed(1)} | ${Math.round(before + (perConnKiB * 20000) / 1024)} |`)
  }
  results.idle = row
}

async function memoryBench() {
  const durationMs = quick ? 10_000 : 60_000
  log(
    `\n### Memory with slow consumers: 1,000 subscribers of which 100 never read, ${durationMs / 1000} s\n\n| server | policy | rate/s | max RSS MiB | delivered to readers | lost by readers | closes |\n|---|---|---|---|---|---|---|`
  )
  // The highest rate our server sustained to 1,000 readers in this run's fan-out ladder, if it ran.
  const rate: number = results['fanout-1000']?.ours?.rate ?? 250
  for (const [target, policy] of [
    ['raw', '-'],
    ['ours', 'close'],
    ['ours', 'conflate']
  ] as [Target, string][]) {
    const server = await startServer(target, policy === '-' ? {} : { SLOW_CONSUMER: policy })
    let maxRss = rssMiB(server.pid)
    const sampler = setInterval(() => {
      try {
        maxRss = Math.max(maxRss, rssMiB(server.pid))
      } catch {}
    }, 250)
    const r = await generate('fanout', server.port, {
      subscribers: 1000,
      paused: 100,
      rate,
      durationMs,
      graceMs: 3000,
      topic: 'memory',
      timeoutMs: durationMs + 120_000
    })
    clearInterval(sampler)
    await stopServer(server)
    results[`memory-${target}-${policy}`] = { ...r, maxRssMiB: Math.round(maxRss) }
    log(`| ${target} | ${policy} | ${rate} | ${Math.round(maxRss)} | ${r.delivered} of ${r.expectedDeliveries} | ${r.lost} | ${JSON.stringify(r.closes)} |`)
  }
}

async function hooksBench() {
  const reps = quick ? 3 : 5
  log(`\n### Publish hooks: server CPU at a fixed load (median of ${reps} interleaved runs; ratio to no hook; the hook's own p50 from GET /hooks)\n`)
  log('| workload | server | hook | server CPU % | × no hook | hook p50 | delivered msgs/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|---|')
  const workloads = [
    { label: '1 subscriber, 10,000 publishes/s', subscribers: 1, rate: 10_000 },
    { label: '100 subscribers, 3,000 publishes/s', subscribers: 100, rate: 3000 }
  ]
  const configs: [Target, string][] = [
    ['raw', '-'],
    ['ours', 'none'],
    ['ours', 'noop'],
    ['ours', 'scorer']
  ]
  for (const w of workloads) {
    const runs: Record<string, any[]> = {}
    for (let rep = 0; rep < reps; rep++) {
      for (const [target, hook] of configs) {
        const server = await startServer(target, { ARBITRAGE: 'false', ...(hook === '-' || hook === 'none' ? {} : { HOOK: hook }) })
        const r: any = await measured(server, () =>
          generate('fanout', server.port, {
            subscribers: w.subscribers,
            rate: w.rate,
            durationMs: quick ? 2000 : 6000,
            topic: `opportunities.B${rep}`,
            payload: 'opportunity'
          })
        )
        if (target === 'ours') r.hooks = await (await fetch(`http://127.0.0.1:${server.port}/hooks`)).json()
        await stopServer(server)
        ;(runs[`${target}/${hook}`] ??= []).push(r)
      }
    }
    const middle = (key: string) => [...runs[key]].sort((a, b) => a.serverCpuPct - b.serverCpuPct)[Math.floor(reps / 2)]
    const base = middle('ours/none').serverCpuPct
    for (const [target, hook] of configs) {
      const r = middle(`${target}/${hook}`)
      const hookP50 =
        r.hooks
          ?.filter((h: any) => h.calls > 0)
          .map((h: any) => `${h.name} ${h.latencyMs.p50} ms`)
          .join(', ') || ''
      log(
        `| ${w.label} | ${target} | ${hook} | ${r.serverCpuPct} | ${target === 'ours' ? (r.serverCpuPct / base).toFixed(2) : ''} | ${hookP50} | ${r.deliveredPerSecond} | ${r.latency.p50} | ${r.latency.p99} |`
      )
    }
    results[`hooks-${w.subscribers}`] = runs
  }
  // The publish path alone, in process, where a hook's cost is not lost in socket noise.
  const table = await scriptOutput('bench/publish-path.ts')
  log('\nPublish path alone (in process, no sockets; median of 5 runs of 200,000 publishes, best of two rounds):\n')
  log(table)
}

async function arbitrageBench() {
  log('\n### Tick to opportunity (20 symbols × 5 exchanges; ticks over WebSocket, opportunities to a WebSocket subscriber)\n')
  log(
    '| server | measures | ticks/s | acked | opportunities (timed) | p50 ms | p99 ms | p99.9 ms | max ms | p99 ms after 1 s | server CPU % | generator CPU s |\n|---|---|---|---|---|---|---|---|---|---|---|---|'
  )
  for (const rate of [10_000, 50_000]) {
    for (const [target, baseline] of [
      ['raw', true],
      ['ours', true],
      ['ours', false]
    ] as [Target, boolean][]) {
      const server = await startServer(target)
      const r: any = await measured(server, () => generate('arbitrage', server.port, { rate, durationMs: quick ? 3000 : 8000, warmupMs: 1000, baseline }))
      await stopServer(server)
      results[`arbitrage-${rate}-${target}-${baseline ? 'tick' : 'opportunity'}`] = r
      const what = baseline ? 'tick publish → receive' : 'tick → opportunity'
      log(
        `| ${target} | ${what} | ${rate} | ${r.acks} of ${r.ticks} | ${baseline ? '' : `${r.opportunities} (${r.latency.samples})`} | ${r.latency.p50} | ${r.latency.p99} | ${r.latency.p999} | ${r.latency.max} | ${r.steadyLatency.p99} | ${r.serverCpuPct} | ${r.generatorCpu.toFixed(2)} |`
      )
    }
  }
}

/** Book update to opportunity at 10, 50 and 200 instruments × 5 venues, raw ws's plain publish → receive in the same run. */
async function booksBench() {
  log(
    '\n### Book update to opportunity (instruments × 5 venues, 20-level books over WebSocket; latency from the send of a book to the opportunity it opens in a class with none open)\n'
  )
  log(
    '| instruments × venues | books/s | server | measures | books acked | opened (timed) | p50 ms | p99 ms | p99 ms after 1 s | server CPU % | generator CPU s |\n|---|---|---|---|---|---|---|---|---|---|---|'
  )
  for (const rate of [1000, 5000])
    for (const instruments of [10, 50, 200]) {
      for (const [target, baseline] of [
        ['raw', true],
        ['ours', false]
      ] as [Target, boolean][]) {
        const server = await startServer(target)
        const r: any = await measured(server, () =>
          generate('books', server.port, { rate, instruments, durationMs: quick ? 3000 : 8000, warmupMs: 1000, baseline })
        )
        await stopServer(server)
        results[`books-${rate}-${instruments}-${target}`] = r
        const what = baseline ? 'book publish → receive' : 'book → new opportunity'
        log(
          `| ${instruments} × 5 | ${rate} | ${target} | ${what} | ${r.acks} of ${r.books} | ${baseline ? '' : `${r.opportunities} (${r.latency.samples})`} | ${r.latency.p50} | ${r.latency.p99} | ${r.steadyLatency.p99} | ${r.serverCpuPct} | ${r.generatorCpu.toFixed(2)} |`
        )
      }
    }
  log('\nThe engine alone (in process, no sockets): CPU per book update\n')
  log(await scriptOutput('bench/engine.ts'))
}

/**
 * Subscribers on one in-memory node, and spread over 3 nodes sharing a Redis of the benchmark's own:
 * 900 (3 × 300) up a ladder of rates, and 3 (one per node) at 10,000 publishes/s, where the
 * backplane's own cost per message shows instead of the 900-socket fan-out's.
 */
async function backplaneBench() {
  // REDIS_NICE=-10 runs Redis at a higher scheduling priority than the nodes and the generator, as a
  // backplane with a core of its own would be; by default everything shares the two cores as equals.
  log(
    `\n### Backplane: one in-memory node vs 3 nodes on Redis (subscribers spread evenly, publisher on the first node; 4 s per rate; Redis ${redisNice ? `at nice ${redisNice}` : 'at default priority'})\n`
  )
  log(
    '| setup | subscribers | publishes/s | delivered msgs/s | p50 ms | p99 ms | p99.9 ms | p99 ms after 1 s | lost | reordered | CPU % (servers + Redis) | generator CPU s |\n|---|---|---|---|---|---|---|---|---|---|---|---|'
  )
  const redisPort = 16_379 + Math.floor(Math.random() * 1000)
  const [command, ...commandArgs] = [
    ...(redisNice ? ['nice', '-n', redisNice] : []),
    'redis-server',
    '--port',
    String(redisPort),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no'
  ]
  const redis = spawn(command, commandArgs, { stdio: 'ignore' })
  await new Promise((r) => setTimeout(r, 500))
  // 11/s × 900 ≈ 10,000 delivered msgs/s; then up the ladder until a step fails.
  const workloads = [
    { subscribers: 900, rates: [11, 50, 100, 200, 400, 800, 1600] },
    { subscribers: 3, rates: [1000, 10_000] }
  ]
  for (const { subscribers, rates } of workloads)
    for (const setup of ['memory', 'redis'] as const) {
      const nodes =
        setup === 'memory'
          ? [await startServer('ours', { ARBITRAGE: 'false' })]
          : await Promise.all([0, 1, 2].map(() => startServer('ours', { ARBITRAGE: 'false', BUS: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}` })))
      const pids = [...nodes.map((n) => n.pid), ...(setup === 'redis' ? [redis.pid!] : [])]
      for (const rate of rates) {
        const cpu0 = pids.map(cpuSeconds)
        const t0 = performance.now()
        const r: any = await generate('fanout', nodes[0].port, {
          subscribers,
          rate,
          durationMs: quick ? 2000 : 4000,
          warmupMs: 1000,
          topic: `backplane.${setup}.${rate}`,
          subscriberPorts: nodes.map((n) => n.port).join(',')
        })
        const cpuPct = Math.round((pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - cpu0[i], 0) / ((performance.now() - t0) / 1000)) * 100)
        const label = setup === 'memory' ? '1 node, memory' : '3 nodes, Redis'
        log(
          `| ${label} | ${subscribers} | ${rate} | ${r.deliveredPerSecond} | ${r.latency.p50} | ${r.latency.p99} | ${r.latency.p999} | ${r.steadyLatency.p99} | ${r.lost} | ${r.reordered} | ${cpuPct} | ${r.generatorCpu.toFixed(2)} |`
        )
        ;(results[`backplane-${setup}-${subscribers}`] ??= []).push({ ...r, cpuPct })
        if (r.lost > 0 || r.reordered > 0 || r.lagMs === null || r.lagMs > 250 || r.latency.p99 > 100) break
      }
      for (const node of nodes) await stopServer(node)
    }
  redis.kill('SIGKILL')
}

log(`## ${results.date.slice(0, 10)} — ${results.machine}${quick ? ' (quick run)' : ''}`)
if (only.includes('floor')) await floorBench()
if (only.includes('probe')) await probeBench()
if (only.includes('fanout')) await fanoutBench()
if (only.includes('filters')) await filtersBench()
if (only.includes('deltas')) await deltasBench()
if (only.includes('idle')) await idleBench()
if (only.includes('memory')) await memoryBench()
if (only.includes('hooks')) await hooksBench()
if (only.includes('arbitrage')) await arbitrageBench()
if (only.includes('books')) await booksBench()
if (only.includes('backplane')) await backplaneBench()
mkdirSync(`${root}/bench/out`, { recursive: true })
writeFileSync(`${root}/bench/out/latest.json`, JSON.stringify(results, null, 2))
writeFileSync(`${root}/bench/out/latest.md`, `${lines.join('\n')}\n`)
console.log('\nwritten: bench/out/latest.json, bench/out/latest.md')
