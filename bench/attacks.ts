// The measured attacks of SECURITY.md ("Hostile clients and publishers"), each against a fresh
// server process on loopback, bounded in count and time. Compare builds by pointing
// ATTACK_SERVER at another checkout's built server (default: this one's dist/server.js):
//   npm run build && node --import=tsx bench/attacks.ts [since,snapshot,subscriptions,slow-bodies,topics,replay,redis-patterns,redis-replay,filters,delta-groups,delta-patterns]
import { spawn, type ChildProcess } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { decode, encode } from '@msgpack/msgpack'
import { cpuSeconds, rssMiB } from './proc.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const serverScript = process.env.ATTACK_SERVER ?? `${root}dist/server.js`
const NODE_ARGS = ['--no-allocation-site-pretenuring', '--max-semi-space-size=8', '--expose-gc']
const ATTACKS: Record<string, () => Promise<void>> = {
  since,
  snapshot,
  subscriptions,
  'slow-bodies': slowBodies,
  topics,
  replay,
  'redis-patterns': redisPatterns,
  'redis-replay': redisReplay,
  filters,
  'delta-groups': deltaGroups,
  'delta-patterns': deltaPatterns
}
const chosen = (process.argv[2] ?? Object.keys(ATTACKS).join(',')).split(',')
const unknown = chosen.filter((a) => !(a in ATTACKS))
if (unknown.length > 0) {
  console.error(`unknown attack ${unknown.join(', ')}; expected some of ${Object.keys(ATTACKS).join(', ')}`)
  process.exit(2)
}

interface Server {
  child: ChildProcess
  port: number
  pid: number
}

async function start(env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, [...NODE_ARGS, serverScript], {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  // The port is in the server's start-up log line; the rest of the log is read and dropped.
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    let found = false
    child.stdout!.on('data', (chunk) => {
      if (found) return
      out += chunk
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (m === null) return
      found = true
      resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
  })
  return { child, port, pid: child.pid! }
}

async function stop(server: Server) {
  server.child.kill('SIGKILL')
  await new Promise((r) => server.child.once('exit', r))
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const mib = (server: Server) => Math.round(rssMiB(server.pid))

function open(port: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/live`)
    ws.setMaxListeners(0)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

function reply(ws: WebSocket, frame: unknown): Promise<any> {
  return new Promise((resolve) => {
    ws.once('message', (d: Buffer) => resolve(decode(d)))
    ws.send(encode(frame))
  })
}

const answer = (r: any) => (r.type === 'error' ? r.code : r.type)

/** Answer times of one frame sent `times` times (the first few include JIT warm-up). */
async function timeFrames(label: string, ws: WebSocket, frame: unknown, undo: unknown, times = 15) {
  const ms: number[] = []
  let last = ''
  for (let i = 0; i < times; i++) {
    const t0 = performance.now()
    last = answer(await reply(ws, frame))
    ms.push(performance.now() - t0)
    if (undo !== null) await reply(ws, undo)
  }
  ms.sort((a, b) => a - b)
  console.log(
    `${label}: ${encode(frame).length} bytes, answered ${last}; ms min ${ms[0].toFixed(1)}, median ${ms[times >> 1].toFixed(1)}, max ${ms.at(-1)!.toFixed(1)}`
  )
}

/** 513 wildcard patterns and 1,000 since entries that each walk 512 pattern prefixes. */
async function since() {
  const server = await start({ MAX_SUBSCRIPTIONS: '5000' })
  const ws = await open(server.port)
  const topics = Array.from({ length: 512 }, (_, i) => `${[...i.toString(2).padStart(9, '0')].map((b) => (b === '1' ? '*' : 't')).join('.')}.z`)
  topics.push('*.*.*.*.*.*.*.*.*.>')
  const positions = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`t.t.t.t.t.t.t.t.t.y${i}`, { epoch: 'e', seq: 1 }]))
  await timeFrames('since', ws, { type: 'subscribe', topics, since: positions, snapshot: false }, { type: 'unsubscribe', topics })
  await stop(server)
}

/** 5,000 topics, then one subscribe of 1,000 patterns `*.w<i>` with snapshots. */
async function snapshot() {
  const server = await start({ MAX_SUBSCRIPTIONS: '5000' })
  const [ws, publisher] = [await open(server.port), await open(server.port)]
  for (let i = 0; i < 5000; i += 500)
    await Promise.all(Array.from({ length: 500 }, (_, k) => reply(publisher, { type: 'publish', topic: `t${i + k}.v`, data: i + k })))
  const topics = Array.from({ length: 1000 }, (_, i) => `*.w${i}`)
  await timeFrames('snapshot', ws, { type: 'subscribe', topics }, { type: 'unsubscribe', topics })
  await stop(server)
}

/** 60 connections from one address, 1,000 distinct 4-token patterns each. */
async function subscriptions() {
  const server = await start({})
  const before = mib(server)
  const answers: Record<string, number> = {}
  const held: WebSocket[] = []
  for (let c = 0; c < 60; c++) {
    const ws = await open(server.port)
    held.push(ws)
    const a = answer(await reply(ws, { type: 'subscribe', topics: Array.from({ length: 1000 }, (_, i) => `a${c}.b${i}.c${i}.d${c}`), snapshot: false }))
    answers[a] = (answers[a] ?? 0) + 1
  }
  console.log(`subscriptions: answers ${JSON.stringify(answers)}; RSS ${before} -> ${mib(server)} MiB`)
  for (const ws of held) ws.close()
  await stop(server)
}

/** AUTH=required: 3,000 connections each send 65,000 of a 65,536-byte body, no credential, then stop. */
async function slowBodies() {
  const server = await start({ AUTH: 'required', API_KEYS: 'bench-key-0123456789=publish:>', MAX_CONNECTIONS_PER_IP: '100000' })
  const ready = async () => (await fetch(`http://127.0.0.1:${server.port}/ready`)).status
  const before = mib(server)
  const sockets: Socket[] = []
  const body = Buffer.alloc(65_000, 0x61)
  for (let i = 0; i < 3000; i++) {
    const s = connect(server.port, '127.0.0.1')
    s.on('error', () => {})
    s.write('POST /publish/a.b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n')
    s.write(body)
    sockets.push(s)
    if (i % 500 === 499) await sleep(50)
  }
  await sleep(2000)
  const during = `RSS ${before} -> ${mib(server)} MiB, /ready ${await ready()}`
  for (const s of sockets) s.destroy()
  await sleep(30_000)
  console.log(`slow-bodies: ${during}; 30 s after the attacker left: RSS ${mib(server)} MiB, /ready ${await ready()}`)
  await stop(server)
}

/** 1,200 topics of 60 KB, then 20,000 small ones, over POST /publish from loopback. */
async function topics() {
  const server = await start({})
  const post = (topic: string, body: string) =>
    fetch(`http://127.0.0.1:${server.port}/publish/${topic}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }).then((r) => r.status)
  const ready = async () => (await fetch(`http://127.0.0.1:${server.port}/ready`)).status
  const count = async (n: number, batch: number, topic: (i: number) => string, body: string) => {
    const statuses: Record<number, number> = {}
    for (let i = 0; i < n; i += batch)
      for (const s of await Promise.all(Array.from({ length: batch }, (_, k) => post(topic(i + k), body)))) statuses[s] = (statuses[s] ?? 0) + 1
    return JSON.stringify(statuses)
  }
  const before = mib(server)
  const big = await count(1200, 50, (i) => `big.t${i}`, JSON.stringify({ blob: 'x'.repeat(60_000) }))
  const afterBig = `${mib(server)} MiB, /ready ${await ready()}`
  const small = await count(20_000, 200, (i) => `small.t${i}`, '{"v":1}')
  console.log(`topics: 60 KB ${big} (RSS ${before} -> ${afterBig}); small ${small} (RSS ${mib(server)} MiB, /ready ${await ready()})`)
  await stop(server)
}

/** 1,000 topics x 1,000 events of history, then one client asks to recover all of them and never reads. */
async function replay() {
  const server = await start({ MAX_SUBSCRIPTIONS: '1000' })
  const publisher = await open(server.port)
  const since: Record<string, { epoch: string; seq: number }> = {}
  for (let t = 0; t < 1000; t++) {
    const acks = await Promise.all(Array.from({ length: 1000 }, (_, i) => reply(publisher, { type: 'publish', topic: `r.t${t}`, data: i })))
    since[`r.t${t}`] = { epoch: acks[0].epoch, seq: 1 }
  }
  publisher.close()
  await sleep(1000)
  const before = mib(server)
  const reader = await open(server.port)
  ;(reader as unknown as { _socket: { pause(): void } })._socket.pause()
  reader.send(encode({ type: 'subscribe', topics: Object.keys(since), since }))
  await sleep(5000)
  console.log(`replay: 999,000 events asked for by a client that does not read; RSS ${before} -> ${mib(server)} MiB`)
  reader.terminate()
  await stop(server)
}

/** A redis-server of the attack's own (a random port from 16,000) and the server on it, without a memory limit. */
async function onRedis(env: Record<string, string>) {
  const redisPort = 16_000 + Math.floor(Math.random() * 1000)
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  await sleep(500)
  const server = await start({ BUS: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}`, MEMORY_LIMIT_MB: '0', ...env })
  await sleep(500)
  return { server, redis }
}

/** BUS=redis: a publisher's round trip before and after 40 connections subscribe 1,000 distinct patterns each. */
async function redisPatterns() {
  const { server, redis } = await onRedis({ MAX_SUBSCRIPTIONS_PER_IP: '100000' })
  const roundTrip = async () => {
    const ws = await open(server.port)
    const ms: number[] = []
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now()
      await reply(ws, { type: 'publish', topic: 'ticker.x.BTC', data: i })
      ms.push(performance.now() - t0)
    }
    ws.close()
    ms.sort((a, b) => a - b)
    return `p50 ${ms[150].toFixed(2)} ms, p99 ${ms[297].toFixed(2)} ms`
  }
  const before = await roundTrip()
  const held: WebSocket[] = []
  for (let c = 0; c < 40; c++) {
    const ws = await open(server.port)
    held.push(ws)
    await reply(ws, { type: 'subscribe', topics: Array.from({ length: 1000 }, (_, i) => `p${c}_${i}.*.x`), snapshot: false })
  }
  console.log(`redis-patterns: publish round trip ${before}; with 40 x 1,000 patterns ${await roundTrip()}`)
  for (const ws of held) ws.close()
  await stop(server)
  redis.kill('SIGKILL')
}

/** BUS=redis: 100 topics x 1,000 events of 500 B, then 8 clients recover all of them and never read. */
async function redisReplay() {
  const { server, redis } = await onRedis({ MAX_SUBSCRIPTIONS: '1000' })
  const publisher = await open(server.port)
  const since: Record<string, { epoch: string; seq: number }> = {}
  const payload = 'x'.repeat(490)
  for (let t = 0; t < 100; t++) {
    // Each topic's 1,000 acks counted (one listener per topic, not per publish), its epoch from the first.
    const acked = new Promise<string>((resolve) => {
      let count = 0
      let epoch = ''
      const onAck = (d: Buffer) => {
        const ack = decode(d) as { epoch: string }
        epoch ||= ack.epoch
        if (++count < 1000) return
        publisher.off('message', onAck)
        resolve(epoch)
      }
      publisher.on('message', onAck)
    })
    for (let i = 0; i < 1000; i++) publisher.send(encode({ type: 'publish', id: i, topic: `rr.t${t}`, data: { i, payload } }))
    since[`rr.t${t}`] = { epoch: await acked, seq: 0 }
  }
  publisher.close()
  await sleep(1000)
  const before = mib(server)
  const readers: WebSocket[] = []
  for (let c = 0; c < 8; c++) {
    const reader = await open(server.port)
    ;(reader as unknown as { _socket: { pause(): void } })._socket.pause()
    reader.send(encode({ type: 'subscribe', topics: Object.keys(since), since }))
    readers.push(reader)
  }
  await sleep(5000)
  const ready = (await fetch(`http://127.0.0.1:${server.port}/ready`)).status
  console.log(`redis-replay: 8 clients recovering 100 x 1,000 events of 500 B without reading; RSS ${before} -> ${mib(server)} MiB, /ready ${ready}`)
  for (const reader of readers) reader.terminate()
  await stop(server)
  redis.kill('SIGKILL')
}

/** `GET /health` answer times while `attack` runs (one request at a time), and the server's CPU seconds over it. */
async function whileHealthProbed(server: Server, attack: () => Promise<void>): Promise<string> {
  const ms: number[] = []
  let running = true
  const probe = (async () => {
    while (running) {
      const t0 = performance.now()
      await fetch(`http://127.0.0.1:${server.port}/health`)
      ms.push(performance.now() - t0)
      await sleep(10)
    }
  })()
  const cpu0 = cpuSeconds(server.pid)
  const t0 = performance.now()
  await attack()
  const took = performance.now() - t0
  const cpu = cpuSeconds(server.pid) - cpu0
  running = false
  await probe
  ms.sort((a, b) => a - b)
  return `took ${took.toFixed(0)} ms, server CPU ${cpu.toFixed(2)} s; /health ${ms.length} answers, median ${ms[ms.length >> 1].toFixed(1)} ms, max ${ms.at(-1)!.toFixed(1)} ms`
}

/** Sends every frame at once and collects one answer per frame, or what came before the socket closed (`closed <code>`). */
function answers(ws: WebSocket, frames: unknown[]): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    const counts: Record<string, number> = {}
    let left = frames.length
    const done = () => {
      ws.off('message', onMessage)
      ws.off('close', onClose)
      resolve(counts)
    }
    const onMessage = (d: Buffer) => {
      const a = answer(decode(d))
      counts[a] = (counts[a] ?? 0) + 1
      if (--left === 0) done()
    }
    const onClose = (code: number) => {
      counts[`closed ${code}`] = 1
      done()
    }
    ws.on('message', onMessage)
    ws.on('close', onClose)
    for (const frame of frames) ws.send(encode(frame))
  })
}

// An 11-token topic and 1,000 distinct patterns that all match it (its last ten tokens literal or `*`).
const TAIL = 'a.b.c.d.e.g.h.i.j.k'
const masks = (first: string) =>
  Array.from(
    { length: 1000 },
    (_, i) =>
      `${first}.${TAIL.split('.')
        .map((t, bit) => ((i >> bit) & 1 ? '*' : t))
        .join('.')}`
  )

/**
 * 10 connections × 1,000 distinct filters that never pass, then a burst of 50 tiny events; then as
 * many more connections as one address may fill with 256 such filters each, and the burst again.
 */
async function filters() {
  const server = await start({})
  const held: WebSocket[] = []
  const publisher = await open(server.port)
  let offset = 0
  const attack = async (connections: number, perConnection: number) => {
    const counts: Record<string, number> = {}
    for (let c = 0; c < connections; c++) {
      const ws = await open(server.port)
      held.push(ws)
      const got = await answers(
        ws,
        masks('f')
          .slice(0, perConnection)
          .map((topic, i) => ({ type: 'subscribe', id: i, topic, filter: `v < ${-(offset + i)}`, snapshot: false }))
      )
      offset += perConnection
      for (const [k, n] of Object.entries(got)) counts[k] = (counts[k] ?? 0) + n
    }
    const burst = await whileHealthProbed(server, async () => {
      await answers(
        publisher,
        Array.from({ length: 50 }, (_, i) => ({ type: 'publish', id: i, topic: `f.${TAIL}`, data: { v: i } }))
      )
    })
    const open_ = held.filter((ws) => ws.readyState === WebSocket.OPEN).length
    return `subscribe answers ${JSON.stringify(counts)}, ${open_} attackers open; 50 events: ${burst}`
  }
  console.log(`filters: 10 x 1,000: ${await attack(10, 1000)}`)
  console.log(`filters: then 16 x 256: ${await attack(16, 256)}`)
  for (const ws of [...held, publisher]) ws.close()
  await stop(server)
}

/** 20 subscribers, each with a filter of its own that every event passes, with deltas; 20 publishes of 60 KB. */
async function deltaGroups() {
  const server = await start({})
  const held: WebSocket[] = []
  for (let c = 0; c < 20; c++) {
    const ws = await open(server.port)
    held.push(ws)
    await reply(ws, { type: 'subscribe', topic: 'd.a', delta: true, filter: `i >= ${-c}`, snapshot: false })
  }
  const publisher = await open(server.port)
  const blob = (i: number) => Array.from({ length: 7500 }, (_, k) => ((k * 2654435761 + i * 40503) >>> 0).toString(16).padStart(8, '0')).join('')
  const frames = Array.from({ length: 20 }, (_, i) => ({ type: 'publish', id: i, topic: 'd.a', data: { i, blob: blob(i) } }))
  const burst = await whileHealthProbed(server, async () => {
    await answers(publisher, frames)
  })
  console.log(`delta-groups: 20 publishes of ${encode(frames[0]).length} bytes to 20 filtered delta subscribers: ${burst}`)
  for (const ws of [...held, publisher]) ws.close()
  await stop(server)
}

/** One connection with 1,000 delta patterns over 1,700 topics (three events each). */
async function deltaPatterns() {
  const server = await start({})
  const ready = async () => (await fetch(`http://127.0.0.1:${server.port}/ready`)).status
  const before = mib(server)
  const ws = await open(server.port)
  const patterns = masks('*')
  for (let i = 0; i < patterns.length; i += 250) await reply(ws, { type: 'subscribe', topics: patterns.slice(i, i + 250), delta: true, snapshot: false })
  const publisher = await open(server.port)
  for (let round = 0; round < 3; round++)
    for (let k = 0; k < 1700; k += 100)
      await answers(
        publisher,
        Array.from({ length: 100 }, (_, j) => ({ type: 'publish', topic: `x${k + j}.${TAIL}`, data: { k: k + j, round, pad: 'p'.repeat(100) } }))
      )
  await sleep(1000)
  console.log(`delta-patterns: RSS ${before} -> ${mib(server)} MiB, /ready ${await ready()}`)
  for (const c of [ws, publisher]) c.close()
  await stop(server)
}

for (const name of chosen) await ATTACKS[name]()
process.exit(0)
