// Fuzz and abuse against the server as its own process, while a well-behaved client keeps asking:
// the server must answer it throughout, never crash, and give its memory back afterwards.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { encode } from '@msgpack/msgpack'
import { rssMiB } from '../bench/proc.ts'
import { spawn } from 'node:child_process'
import { root, sleep, startProcess, TestClient, until } from './helper.ts'

const ATTACKER = 'attacker-key-0123456789'
const PROBE = 'probe-key-0123456789abc'
const FEED = 'feed-key-0123456789abcd'
// How far above its pre-abuse RSS the server may stay once the abuse is over.
const RSS_SLACK_MIB = 32

/** Deterministic randomness (mulberry32), so a failure can be replayed. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

function open(port: number, key: string, query = ''): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/live${query}`, { headers: { authorization: `Bearer ${key}` } })
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)))
    // Before open: a failed connect. After: closes the server initiates mid-send, expected here.
    ws.on('error', reject)
  })
}

/**
 * Sends every frame, on a new connection each time the server closes the current one (for bad
 * frames, floods), so every input reaches the decoder. Returns the close codes seen.
 */
async function attack(port: number, frames: Iterable<{ data: Buffer | string; binary: boolean }>): Promise<number[]> {
  const codes: number[] = []
  const connect = async () => {
    const ws = await open(port, ATTACKER)
    ws.once('close', (code) => codes.push(code))
    return ws
  }
  let ws = await connect()
  let sent = 0
  for (const frame of frames) {
    if (ws.readyState !== WebSocket.OPEN) {
      ws.terminate()
      ws = await connect()
    }
    ws.send(frame.data, { binary: frame.binary })
    if (++sent % 100 === 0) await sleep(1)
  }
  // What is in flight is answered, and a connection the server closes (a flood's 4029) is closed by
  // it, not by our terminate: on a loaded machine that can take far longer than the frames did.
  if (ws.readyState !== WebSocket.CLOSED) await Promise.race([new Promise((resolve) => ws.once('close', resolve)), sleep(5000)])
  ws.terminate()
  await sleep(10)
  return codes.filter((code) => code !== 1006) // 1006: our own terminate
}

/** One frame on a fresh connection each time, waiting for the server to close it; returns the close codes. */
async function attackEach(port: number, count: number, frame: { data: Buffer | string; binary: boolean }): Promise<number[]> {
  const codes: number[] = []
  for (let i = 0; i < count; i++) {
    const ws = await open(port, ATTACKER)
    const closed = new Promise<number>((resolve) => ws.once('close', resolve))
    ws.send(frame.data, { binary: frame.binary })
    codes.push(await Promise.race([closed, sleep(5000).then(() => 0)]))
    ws.terminate()
  }
  return codes
}

function* repeat<T>(count: number, make: (i: number) => T): Iterable<T> {
  for (let i = 0; i < count; i++) yield make(i)
}

t.test('fuzz and abuse: the server answers a well-behaved client throughout, never crashes, and gives memory back', { timeout: 150_000 }, async (t) => {
  // Heartbeats run during the abuse, at an interval this test's own clients answer even while the
  // loaded test process stalls: at 1 s the watcher below was cut off as dead (1006) under load.
  const server = startProcess(
    {
      AUTH: 'required',
      API_KEYS: `${ATTACKER}=subscribe:>;${PROBE}=subscribe:>;${FEED}=publish:> subscribe:>`,
      HEARTBEAT_INTERVAL: '5000',
      RATE_STRIKES: '200',
      LOG_LEVEL: 'info',
      ARBITRAGE: 'false',
      // RSS: the process runs through tsx here (~175 MiB idle), ~45 MiB more than npm start's.
      MEMORY_LIMIT_MB: '300'
    },
    ['--expose-gc', '--import=./test/fixtures/gc-on-signal.mjs', ...(process.env.FUZZ_NODE_ARGS?.split(' ') ?? [])]
  )
  t.teardown(() => {
    server.child.kill(process.env.FUZZ_PROF ? 'SIGINT' : 'SIGKILL')
  })
  const port = await server.port
  const pid = server.child.pid!
  const random = prng(42)
  const inputs: Record<string, number> = {}
  /** Close codes seen, per kind of input: random bytes may happen to make any frame at all. */
  const closes: Record<string, Record<number, number>> = {}
  const note = (what: string, count: number, codes: number[] = []) => {
    if (process.env.FUZZ_DEBUG) console.error(what, count, codes.join(','), Math.round(rssMiB(pid)), Date.now() % 100000)
    inputs[what] = (inputs[what] ?? 0) + count
    closes[what] ??= {}
    for (const code of codes) closes[what][code] = (closes[what][code] ?? 0) + 1
  }

  // Warm up, then the baseline; the probe runs in its own process.
  const warm = await open(port, PROBE)
  for (let i = 0; i < 500; i++) warm.send(encode({ type: 'request', id: i }))
  await sleep(1500)
  warm.close()
  const rssBefore = rssMiB(pid)
  const probe = spawn(process.execPath, ['--import=tsx', 'test/fixtures/probe-client.ts', `ws://127.0.0.1:${port}/ws/live`, PROBE, '10'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => {
    probe.kill('SIGKILL')
  })
  let probeOutput = ''
  probe.stdout.on('data', (chunk) => {
    probeOutput += chunk
  })
  await until(() => probeOutput.includes('open'), 'the probe connected')

  // A feed of 1 KiB events that the never-reading clients fall behind on.
  const feed = await open(port, FEED)
  let feeding = true
  const feedLoop = (async () => {
    let i = 0
    while (feeding) {
      for (let k = 0; k < 20; k++) feed.send(encode({ type: 'publish', topic: 'fuzz.busy', data: { i: i++, pad: 'x'.repeat(1024) } }))
      await sleep(10)
    }
  })()

  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)))
  const valid = () => encode({ type: 'publish', id: 1, topic: 'fuzz.topic', data: { bid: random(), ask: random(), s: 'abcdef' } })
  const runs: Promise<unknown>[] = []

  // 1. Random bytes as binary and text frames, and as raw bytes under the WebSocket framing.
  for (let c = 0; c < 4; c++) {
    runs.push(
      attack(
        port,
        repeat(1500, () => ({ data: bytes(1 + Math.floor(random() * 512)), binary: true }))
      ).then((codes) => note('random binary frames', 1500, codes))
    )
  }
  runs.push(
    (async () => {
      for (let c = 0; c < 50; c++) {
        const ws = await open(port, ATTACKER)
        const closed = new Promise<number>((resolve) => ws.once('close', resolve))
        ;(ws as any)._socket.write(bytes(64 + Math.floor(random() * 256)))
        note('raw bytes under the framing', 1, [await Promise.race([closed, sleep(2000).then(() => 0)])])
        ws.terminate()
      }
    })()
  )
  // 2. Invalid UTF-8 in text frames (the connection is closed with 1007), one connection per attempt.
  const badUtf8 = Buffer.concat([Buffer.from('{"type":"ping","x":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')])
  runs.push(attackEach(port, 100, { data: badUtf8, binary: false }).then((codes) => note('invalid UTF-8 text frames', 100, codes)))
  // 3. Truncated MessagePack, extension types, huge declared lengths, deep nesting.
  runs.push(
    attack(
      port,
      repeat(3000, () => {
        const whole = valid()
        return { data: Buffer.from(whole.subarray(0, Math.floor(random() * whole.length))), binary: true }
      })
    ).then((codes) => note('truncated MessagePack', 3000, codes))
  )
  runs.push(
    attack(
      port,
      repeat(1000, (i) => ({ data: Buffer.from([0x81, 0xa4, ...Buffer.from('type'), 0xc7, 4, (i % 256) - 128, 1, 2, 3, 4]), binary: true }))
    ).then((codes) => note('extension types', 1000, codes))
  )
  const huge = [0xdb, 0xc6, 0xdd, 0xdf].map((tag) => Buffer.from([tag, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]))
  runs.push(
    attack(
      port,
      repeat(2000, (i) => ({ data: huge[i % 4], binary: true }))
    ).then((codes) => note('huge declared lengths', 2000, codes))
  )
  runs.push(
    attack(
      port,
      repeat(200, (i) =>
        i % 2 === 0
          ? { data: Buffer.concat([Buffer.alloc(30_000, 0x91), Buffer.from([1])]), binary: true }
          : { data: '['.repeat(30_000) + ']'.repeat(30_000), binary: false }
      )
    ).then((codes) => note('deep nesting (30,000 levels)', 200, codes))
  )
  // 4. A JSON array of a million elements (2 MB: past MAX_PAYLOAD, closed with 1009).
  runs.push(
    (async () => {
      const million = `[${'0,'.repeat(999_999)}0]`
      note('JSON arrays of a million elements', 5, await attackEach(port, 5, { data: million, binary: false }))
    })()
  )
  // 5. Subscribe/unsubscribe floods: past the rate limit, rate_limited, then 4029.
  for (let c = 0; c < 4; c++) {
    runs.push(
      attack(
        port,
        repeat(20_000, (i) => ({
          data: Buffer.from(encode({ type: i % 2 ? 'unsubscribe' : 'subscribe', id: i, topic: `flood.${c}.${i % 1000}` })),
          binary: true
        }))
      ).then((codes) => note('subscribe/unsubscribe flood frames', 20_000, codes))
    )
  }
  // 6. Thousands of connect/close cycles.
  runs.push(
    (async () => {
      for (let batch = 0; batch < 100; batch++) {
        await Promise.all(
          Array.from({ length: 20 }, async () => {
            const ws = await open(port, ATTACKER)
            if (random() < 0.5) ws.terminate()
            else ws.close()
          })
        )
      }
      note('connect/close cycles', 2000)
    })()
  )
  // 7. Clients that subscribe to the busy topic and never read. They cannot see their close frame
  // (they read nothing), so the server's side is what is checked: it drops them from the topic.
  const watcher = await TestClient.open(`ws://127.0.0.1:${port}`, { headers: { authorization: `Bearer ${PROBE}` } })
  const busySubscribers = async () => {
    watcher.send({ type: 'request', id: 'topics', method: 'topics' })
    const reply = await watcher.next(30_000) // generous: the whole suite may be sharing the two cores with this abuse
    return (reply.result as { topic: string; subscribers: number }[]).find((r) => r.topic === 'fuzz.busy')?.subscribers ?? 0
  }
  let stalledDropped = false
  runs.push(
    (async () => {
      const stalled = await Promise.all(
        Array.from({ length: 30 }, async () => {
          const ws = await open(port, ATTACKER)
          ws.send(encode({ type: 'subscribe', topic: 'fuzz.busy' }))
          await sleep(50)
          ;(ws as any)._socket.pause()
          return ws
        })
      )
      for (let i = 0; i < 100 && !stalledDropped; i++) {
        await sleep(200)
        stalledDropped = (await busySubscribers()) === 0
      }
      note('clients that never read', stalled.length)
      for (const ws of stalled) ws.terminate()
    })()
  )

  await Promise.all(runs)
  feeding = false
  await feedLoop
  feed.terminate()
  watcher.close()
  probe.kill('SIGTERM')
  await new Promise((resolve) => probe.once('exit', resolve))
  const probed = JSON.parse(probeOutput.split('\n').find((l) => l.startsWith('{'))!)
  const rssPeak = rssMiB(pid)
  await sleep(5000)
  const rssIdle = rssMiB(pid) // what an idle process shows: V8 collects only when it allocates
  // A full collection, then RSS: garbage is gone, so what is left above the baseline is held.
  let rssAfter = rssIdle
  for (let i = 0; i < 10 && rssAfter >= rssBefore + RSS_SLACK_MIB / 2; i++) {
    server.child.kill('SIGWINCH')
    await sleep(1000)
    rssAfter = rssMiB(pid)
  }

  t.equal(server.child.exitCode, null, 'the server is still running')
  t.equal(probed.unanswered, 0, `every probe answered (${probed.answered})`)
  t.ok(probed.answered > 100, 'the probe kept asking throughout')
  t.ok(rssAfter < rssBefore + RSS_SLACK_MIB, `RSS back near its baseline after a full GC: ${rssBefore.toFixed(0)} MiB before, ${rssAfter.toFixed(0)} MiB after`)
  t.ok((closes['subscribe/unsubscribe flood frames'][4029] ?? 0) >= 1, 'floods were closed with 4029')
  t.ok(stalledDropped, 'clients that never read were cut off (4008) and their subscriptions freed')
  t.same(closes['invalid UTF-8 text frames'], { 1007: 100 }, 'invalid UTF-8 is closed with 1007, every time')
  t.same(closes['JSON arrays of a million elements'], { 1009: 5 }, 'the oversized array is closed with 1009, every time')
  const figures = {
    date: new Date().toISOString(),
    inputs,
    closes,
    probe: probed,
    rssMiB: { before: rssBefore, peak: rssPeak, idle5s: rssIdle, afterFullGc: rssAfter }
  }
  t.comment(JSON.stringify(figures))
  mkdirSync(join(root, '.tap'), { recursive: true })
  writeFileSync(join(root, '.tap', 'fuzz-figures.json'), JSON.stringify(figures, null, 2))
})
