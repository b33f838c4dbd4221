// npm run bench:bursts: the memory bursts of issue #28 against the built server as `npm start` runs
// it (pm2.config.json's node_args, its environment otherwise default), RSS sampled every 20 ms from
// /proc. Each shape: PUBLISHES publishes of 4 KB spread over TOPICS topics, sent as fast as acks come
// back (WINDOW outstanding), one subscriber to everything reading as fast as it can. Reported:
// peak RSS against PM2's 250 MB, publishes acked and refused (and with what), events delivered,
// and whether every acked event is in history (a `since` from before the burst recovers it).
//   node --import=tsx bench/bursts.ts [--quick] [--pm2] [shape,...]   shapes: one, thousand, forty-thousand
// --pm2: the shipped PM2 app (pm2.config.json, ws-server) under a PM2 daemon of its own.
import { execFileSync, spawn } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decode, encode } from '@msgpack/msgpack'
import { WebSocket } from 'ws'
import { rssMiB } from './proc.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const quick = process.argv.includes('--quick')
const PUBLISHES = quick ? 20_000 : 80_000
const WINDOW = 256
const SHAPES: Record<string, number> = { one: 1, thousand: 1000, 'forty-thousand': 40_000 }
const underPm2 = process.argv.includes('--pm2')
const asked = process.argv.slice(2).find((a) => !a.startsWith('--'))
const shapes = asked ? asked.split(',') : Object.keys(SHAPES)
const nodeArgs: string[] = JSON.parse(readFileSync(join(root, 'pm2.config.json'), 'utf8')).apps[0].node_args
const data = { blob: 'x'.repeat(4096 - 16) }

async function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  return ws
}

/** The server as `npm start` runs it: dist/server.js with pm2.config.json's node_args. */
async function startPlain(dir: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [...nodeArgs, 'dist/server.js'], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', HISTORY_DIR: join(dir, 'data'), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let log = ''
  child.stderr!.on('data', (c) => {
    log += c
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (c) => {
      log += c
      const m = /"websocket":"ws:\/\/127\.0\.0\.1:(\d+)/.exec(log)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${log}`)))
  })
  return {
    pid: child.pid!,
    port,
    stop: async () => {
      child.kill('SIGKILL')
      return log
    }
  }
}

/** The shipped PM2 app: `pm2 start pm2.config.json --only ws-server` under a PM2 daemon of its own. */
async function startPm2(dir: string, env: Record<string, string>) {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo
      probe.close(() => resolve(port))
    })
  })
  const pm2Env = { ...process.env, PM2_HOME: join(dir, 'pm2'), PORT: String(port), HOST: '127.0.0.1', HISTORY_DIR: join(dir, 'data'), ...env }
  const pm2 = (...args: string[]) =>
    execFileSync(process.execPath, [join(root, 'node_modules/pm2/bin/pm2'), ...args], { cwd: root, env: pm2Env, encoding: 'utf8' })
  pm2('start', join(root, 'pm2.config.json'), '--only', 'ws-server')
  const list = JSON.parse(pm2('jlist')) as { name: string; pid: number }[]
  const pid = list.find((p) => p.name === 'ws-server')!.pid
  for (let i = 0; i < 100 && (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null)) === null; i++) await new Promise((r) => setTimeout(r, 100))
  return {
    pid,
    port,
    stop: async () => {
      const restarts = (JSON.parse(pm2('jlist')) as { name: string; pm2_env: { restart_time: number } }[]).find((p) => p.name === 'ws-server')!.pm2_env
        .restart_time
      const log = readFileSync(join(dir, 'pm2', 'logs', 'ws-server-out.log'), 'utf8') + `\nPM2 restarts: ${restarts}\n`
      pm2('kill')
      return log
    }
  }
}

export async function burst(shape: string, env: Record<string, string> = {}) {
  const topics = SHAPES[shape]
  const dir = mkdtempSync(join(tmpdir(), 'bench-bursts-'))
  const server = underPm2 ? await startPm2(dir, env) : await startPlain(dir, env)
  const { pid, port } = server
  let peak = 0
  const sampler = setInterval(() => {
    const rss = rssMiB(pid)
    if (rss > peak) peak = rss
  }, 20)
  const url = `ws://127.0.0.1:${port}/ws/live`
  const subscriber = await open(url)
  let delivered = 0
  let closedWith = 0
  subscriber.on('message', (m: Buffer) => {
    if ((decode(m) as { type: string }).type === 'event') delivered++
  })
  subscriber.on('close', (code) => {
    closedWith = code
  })
  subscriber.send(encode({ type: 'subscribe', id: 0, topic: 'burst.>', snapshot: false }))
  await new Promise((r) => setTimeout(r, 200))
  const publisher = await open(url)
  const acked = new Map<string, number>() // topic -> last acked seq
  let ackCount = 0
  const refused = new Map<string, number>()
  let epochOf = new Map<string, string>()
  let sent = 0
  let answered = 0
  await new Promise<void>((resolve) => {
    const send = () => {
      const i = sent++
      publisher.send(encode({ type: 'publish', id: i, topic: `burst.t${i % topics}`, data }))
    }
    publisher.on('message', (m: Buffer) => {
      const f = decode(m) as { type: string; id: number; seq: number; epoch: string; code?: string }
      const topic = `burst.t${f.id % topics}`
      if (f.type === 'ack') {
        ackCount++
        acked.set(topic, Math.max(acked.get(topic) ?? 0, f.seq))
        epochOf.set(topic, f.epoch)
      } else refused.set(f.code ?? f.type, (refused.get(f.code ?? f.type) ?? 0) + 1)
      answered++
      if (sent < PUBLISHES) send()
      else if (answered === PUBLISHES) resolve()
    })
    publisher.on('close', () => resolve())
    for (let i = 0; i < WINDOW; i++) send()
  })
  const afterBurst = rssMiB(pid)
  // Back under the limit by itself: how long until /ready answers 200 again, with no traffic.
  const burstEnded = performance.now()
  let readyAfterMs = -1
  while (performance.now() - burstEnded < 60_000) {
    if ((await fetch(`http://127.0.0.1:${port}/ready`)).status === 200) {
      readyAfterMs = Math.round(performance.now() - burstEnded)
      break
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  // Every acked event's topic answers at least that seq: history or last value holds it.
  const checker = await open(url)
  let missing = 0
  let checked = 0
  const answers: Record<string, unknown>[] = []
  checker.on('message', (m: Buffer) => answers.push(decode(m) as Record<string, unknown>))
  checker.send(encode({ type: 'request', id: 1, method: 'topics' }))
  while (answers.length === 0) await new Promise((r) => setTimeout(r, 10))
  const held = new Map((answers[0].result as { topic: string; seq: number }[]).map((x) => [x.topic, x.seq]))
  for (const [topic, seq] of acked) {
    checked++
    if ((held.get(topic) ?? 0) < seq) missing++
  }
  const settled = rssMiB(pid)
  clearInterval(sampler)
  for (const ws of [subscriber, publisher, checker]) ws.terminate()
  const log = await server.stop()
  rmSync(dir, { recursive: true, force: true })
  epochOf = new Map()
  return {
    shape: `${PUBLISHES} x 4 KB over ${topics} topic(s)`,
    peakRssMiB: Math.round(peak),
    afterBurstMiB: Math.round(afterBurst),
    readyAgainAfterMs: readyAfterMs,
    rssThenMiB: Math.round(settled),
    acked: ackCount,
    refused: Object.fromEntries(refused),
    delivered,
    subscriberClosed: closedWith,
    topicsBehindTheirAcks: `${missing} of ${checked}`,
    memoryWarnings: (log.match(/over MEMORY_LIMIT_MB/g) ?? []).length,
    ...(underPm2 ? { pm2Restarts: Number(/PM2 restarts: (\d+)/.exec(log)?.[1]) } : {})
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const shape of shapes) console.log(JSON.stringify(await burst(shape)))
}
