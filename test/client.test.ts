// The client SDK against the real server: requests, publish, subscriptions that survive reconnects
// and restarts (recovering with `since`, or reporting that they could not), dead-server detection.
import { hubOf } from '../src/core/hub.ts'
import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { decode, encode } from '@msgpack/msgpack'
import { LiveClient, type LiveClientError, type Gap, type LiveEvent } from '../src/client/index.ts'
import { buildApp } from '../src/app.ts'
import type { Config } from '../src/config.ts'
import { startServer, until } from './helper.ts'
import { redisUnavailable, startRedis } from './redis-helper.ts'

type Teardown = { teardown(fn: () => unknown): void }

/** A server on a fixed port, so it can be stopped and started again where clients expect it. */
async function serverOn(port: number, overrides: Partial<Config> = {}) {
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, memoryLimitMb: 0, ...overrides })
  await app.listen({ port, host: '127.0.0.1' })
  return app
}

function connect(t: Teardown, url: string, options: Partial<ConstructorParameters<typeof LiveClient>[0]> = {}) {
  const client = new LiveClient({ url: `${url}/ws/live`, reconnect: { minDelayMs: 20, maxDelayMs: 200 }, ...options })
  t.teardown(() => client.close())
  return client
}

/** A bare WebSocket server standing in for ours, to misbehave on purpose. */
async function fakeServer(t: Teardown) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (offered) => [...offered][0] ?? false })
  t.teardown(() => new Promise((r) => wss.close(r)))
  await new Promise((r) => wss.once('listening', r))
  return wss
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

for (const codec of ['msgpack', 'json'] as const) {
  t.test(`requests, publish and a wildcard subscription (${codec})`, async (t) => {
    const { url, app } = await startServer(t)
    app.liveHooks.method({ name: 'slow', budgetMs: 5000, handler: () => new Promise((r) => setTimeout(() => r('late'), 300)) })
    const client = connect(t, url, { codec })
    await client.ready()
    t.ok(client.connected)
    const { serverTime } = await client.request<{ serverTime: number }>('time')
    t.ok(Math.abs(serverTime - Date.now()) < 5000, 'time')
    await t.rejects(client.request('nope'), { name: 'LiveClientError', code: 'not_found' })
    await t.rejects(client.request('slow', undefined, 50), { code: 'timeout', message: 'no answer to request within 50 ms' })
    t.ok((await client.probe()) >= 0, 'probe round trip')

    await app.live.publish('px.a', { v: 0 })
    const events: LiveEvent<{ v: number }>[] = []
    await client.subscribe<{ v: number }>('px.*', (e) => events.push(e))
    t.same(await client.publish('px.b', { v: 1 }), { seq: 1, epoch: (await app.liveBus.last('px.b'))!.epoch })
    await client.publish('px.a', { v: 2 })
    await until(() => events.length === 3, 'snapshot and two events')
    t.same(
      events.map((e) => [e.type, e.topic, e.seq, e.data.v]),
      [
        ['snapshot', 'px.a', 1, 0],
        ['event', 'px.b', 1, 1],
        ['event', 'px.a', 2, 2]
      ]
    )
    await t.rejects(client.publish('px.*', {}), { code: 'bad_request' })
    await t.rejects(
      client.subscribe('a..b', () => {}),
      { code: 'bad_request' },
      'a refused subscribe rejects'
    )
  })
}

t.test('connections cut mid-stream: the subscriber resubscribes with since and misses nothing', async (t) => {
  const { url, app } = await startServer(t)
  const client = connect(t, url)
  const seen: number[] = []
  const gaps: Gap[] = []
  let opens = 0
  client.on('open', () => {
    opens++
  })
  await client.subscribe('feed.>', (e) => seen.push(e.seq), { onGap: (g) => gaps.push(g) })
  for (let i = 1; i <= 2000; i++) {
    await app.live.publish('feed.x', { i })
    if (i % 500 === 0) {
      // Cut again only once the client recovered past the last cut: what it misses then (at most
      // the next 500 publishes plus what is in flight) stays within the history of 1,000 events.
      await until(() => opens === i / 500 && app.live.connections === 1 && (seen.at(-1) ?? 0) > i - 500, 'connected and recovered again')
      for (const connection of hubOf(app.live).connections) connection.socket.terminate()
    }
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1))
  }
  await until(() => seen.length >= 2000, 'every event delivered', 20_000).catch((err) => {
    t.comment({ seen: seen.length, last: seen.at(-1), gaps, opens, connections: app.live.connections })
    throw err
  })
  await until(() => opens === 5, 'reconnected after the last cut')
  t.same(seen, range(1, 2000), 'every seq once, in order')
  t.same(gaps, [], 'no gap to report')
})

t.test('server restart (in-memory bus): the client reconnects and is told it did not recover', async (t) => {
  const first = await serverOn(0)
  const port = (first.server.address() as AddressInfo).port
  const client = connect(t, `ws://127.0.0.1:${port}`)
  const events: LiveEvent[] = []
  const gaps: Gap[] = []
  await client.subscribe('px.a', (e) => events.push(e), { onGap: (g) => gaps.push(g) })
  for (let i = 1; i <= 5; i++) await first.live.publish('px.a', { i })
  await until(() => events.length === 5, 'five events')
  await first.close()

  const second = await serverOn(port)
  t.teardown(() => second.close())
  await second.live.publish('px.a', { i: 'after' })
  await until(() => gaps.length === 1, 'the client reports the lost history')
  t.same(gaps, [{ pattern: 'px.a', reason: 'not-recovered' }])
  await until(() => events.length === 6, 'the snapshot of the new epoch')
  t.match(events[5], { type: 'snapshot', seq: 1, data: { i: 'after' } })
  t.not(events[5].epoch, events[0].epoch, 'a new epoch')
  await second.live.publish('px.a', { i: 'live' })
  await until(() => events.length === 7, 'live again')
  t.match(events[6], { type: 'event', seq: 2 })
})

const noRedis = redisUnavailable()
t.test('server restart on a Redis backplane: the client recovers exactly what was published meanwhile', { skip: noRedis ?? false }, async (t) => {
  const redis = await startRedis(t)
  const config = { bus: 'redis' as const, redisUrl: redis.url }
  const node = await serverOn(0, config)
  const port = (node.server.address() as AddressInfo).port
  await until(() => node.live.ready, 'node ready')
  const other = await startServer(t, config) // publishes while the first node is down
  await until(() => other.app.live.ready, 'other node ready')
  const client = connect(t, `ws://127.0.0.1:${port}`)
  const seen: number[] = []
  const gaps: Gap[] = []
  await client.subscribe('ticker.>', (e) => seen.push(e.seq), { onGap: (g) => gaps.push(g) })
  for (let i = 1; i <= 100; i++) await other.app.live.publish('ticker.x.BTC', { i })
  await until(() => seen.length === 100, 'first hundred')
  await node.close()
  for (let i = 101; i <= 200; i++) await other.app.live.publish('ticker.x.BTC', { i })
  const restarted = await serverOn(port, config)
  t.teardown(() => restarted.close())
  for (let i = 201; i <= 300; i++) {
    await other.app.live.publish('ticker.x.BTC', { i })
    if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5))
  }
  await until(() => seen.length >= 300, 'all 300 events', 20_000).catch((err) => {
    t.comment({ seen: seen.length, last: seen.at(-1), gaps, connected: client.connected, restartedConnections: restarted.live.connections })
    throw err
  })
  t.same(seen, range(1, 300), 'recovered across the restart: every seq once, in order')
  t.same(gaps, [])
})

t.test('a server that stops answering is detected and left', async (t) => {
  const wss = await fakeServer(t)
  let connections = 0
  wss.on('connection', () => {
    connections++
  }) // accepts, then never sends a frame
  const port = (wss.address() as AddressInfo).port
  const client = connect(t, `ws://127.0.0.1:${port}`, { heartbeatMs: 50, deadAfterMs: 200 })
  const closes: { code: number; reason: string }[] = []
  client.on('close', (info) => closes.push(info))
  await client.ready()
  const call = client.request('time', undefined, 10_000)
  await t.rejects(call, { code: 'disconnected' }, 'calls on the dead connection fail rather than hang')
  t.match(closes[0], { code: 1006, reason: /no frame from the server for \d+ ms/ })
  await until(() => connections >= 2, 'it connects again')
})

t.test('a seq jump in the live stream is reported, duplicates are dropped', async (t) => {
  // A stand-in server that acks the subscribe and then sends seqs 1, 2, 2, 5, 6.
  const wss = await fakeServer(t)
  wss.on('connection', (socket) =>
    socket.once('message', () => {
      socket.send(encode({ type: 'ack', id: 1, topics: ['q.a'] }))
      for (const seq of [1, 2, 2, 5, 6]) socket.send(encode({ type: 'event', topic: 'q.a', seq, epoch: 'e1', ts: 0, data: null }))
    })
  )
  const port = (wss.address() as AddressInfo).port
  const client = connect(t, `ws://127.0.0.1:${port}`)
  const seen: number[] = []
  const gaps: Gap[] = []
  await client.subscribe('q.a', (e) => seen.push(e.seq), { onGap: (g) => gaps.push(g) })
  await until(() => seen.length === 4, 'events')
  t.same(seen, [1, 2, 5, 6])
  t.same(gaps, [{ pattern: 'q.a', reason: 'seq-jump', topic: 'q.a', expected: 3, received: 5 }])
})

t.test('an upgrade that is never answered is given up and retried', async (t) => {
  // A TCP server that accepts and then says nothing, not even to the upgrade request.
  const sockets: import('node:net').Socket[] = []
  const server = createServer((socket) => {
    sockets.push(socket)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const client = connect(t, `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, { heartbeatMs: 50, deadAfterMs: 200 })
  const closes: { code: number; reason: string }[] = []
  client.on('close', (info) => closes.push(info))
  await until(() => sockets.length >= 2, 'a second attempt')
  t.match(closes[0], { code: 1006, reason: /^no answer to the upgrade for \d+ ms$/ })
  t.notOk(client.connected)
})

t.test('closing from the handler of the first snapshot: the subscribe still resolves', async (t) => {
  const { url, app } = await startServer(t)
  await app.live.publish('px.a', 1)
  await app.live.publish('px.b', 2)
  const client = connect(t, url)
  await client.ready()
  let got = 0
  // ack and both snapshots arrive in one read: the handler runs before the ack's promise settles.
  const subscription = await client.subscribe('px.*', () => {
    if (++got === 1) client.close()
  })
  t.equal(subscription.pattern, 'px.*')
  await t.rejects(
    client.subscribe('px.c', () => {}),
    { code: 'disconnected' },
    'a closed client refuses new subscriptions'
  )
})

t.test('the package exports the SDK as realtime/client (the compiled one: npm test builds it)', async (t) => {
  const sdk = await import('realtime/client')
  t.type(sdk.LiveClient, 'function')
  t.type(sdk.LiveClientError, 'function')
  t.match(import.meta.resolve('realtime/client'), /\/dist\/client\/index\.js$/)
})

t.test('a token goes as ?token=; a function is asked again on each reconnect', async (t) => {
  const good = 'k'.repeat(24)
  const { url, app } = await startServer(t, { auth: 'required', apiKeys: `${good}=subscribe:px.> publish:px.>` })
  const asked: string[] = []
  const tokens = ['wrong-token-wrong-token', good]
  const client = connect(t, url, {
    token: () => {
      const token = tokens[Math.min(asked.length, 1)]
      asked.push(token)
      return token
    }
  })
  const errors: string[] = []
  client.on('error', (err) => errors.push(err.message))
  await client.ready() // the first attempt is refused with 401, the second gets in
  t.same(asked, tokens)
  t.ok(errors.length >= 1, 'the refused attempt is reported')
  t.same(await client.publish('px.a', 1), { seq: 1, epoch: (await app.liveBus.last('px.a'))!.epoch })
  await t.rejects(client.publish('other', 1), { code: 'forbidden' }, "grants are the token's")
})

t.test('a resubscribe refused for a while (unavailable) is retried; one refused for good ends with an error', async (t) => {
  // Connection 1 takes both subscriptions; on connection 2, q.a is refused twice as unavailable
  // and then taken, q.b is forbidden.
  const wss = await fakeServer(t)
  let connection = 0
  let refusedA = 0
  wss.on('connection', (socket) => {
    connection++
    socket.on('message', (data: Buffer) => {
      const frame = decode(data) as { type: string; id: number; topic: string }
      if (frame.type !== 'subscribe') return
      const refuse = (code: string) => socket.send(encode({ type: 'error', id: frame.id, code, message: code }))
      if (connection === 1) return socket.send(encode({ type: 'ack', id: frame.id, topics: [frame.topic] }))
      if (frame.topic === 'q.b') return refuse('forbidden')
      if (++refusedA <= 2) return refuse('unavailable')
      socket.send(encode({ type: 'ack', id: frame.id, topics: [frame.topic] }))
      socket.send(encode({ type: 'event', topic: 'q.a', seq: 1, epoch: 'e', ts: 0, data: 'back' }))
    })
  })
  const client = connect(t, `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`)
  const errors: { code: string; message: string }[] = []
  client.on('error', (err) => errors.push({ code: (err as LiveClientError).code, message: err.message }))
  const events: unknown[] = []
  await client.subscribe('q.a', (e) => events.push(e.data))
  await client.subscribe('q.b', () => {})
  for (const socket of wss.clients) socket.terminate()
  await until(() => events.length === 1, 'q.a taken again after two refusals')
  t.same(events, ['back'])
  t.equal(refusedA, 3)
  t.same(errors.filter((e) => e.code === 'unavailable').length, 2, 'each refusal is reported')
  t.same(
    errors.find((e) => e.code === 'forbidden'),
    { code: 'forbidden', message: 'subscription to "q.b" ended: forbidden' }
  )
})

t.test('closed before it ever connected: ready() rejects, nothing is left running', async (t) => {
  const client = new LiveClient({ url: 'ws://127.0.0.1:9/ws/live', reconnect: { minDelayMs: 1000 } })
  const off = client.on('error', () => {})
  off()
  off() // a second call removes nothing else
  client.close()
  await t.rejects(client.ready(), { code: 'disconnected' })
})

t.test('an undecodable frame from the server is reported as an error event; the client carries on', async (t) => {
  const wss = await fakeServer(t)
  wss.on('connection', (socket) =>
    socket.once('message', () => {
      socket.send(Buffer.from([0xc1])) // never valid MessagePack
      socket.send('{not json')
      socket.send(encode({ type: 'ack', id: 1, topics: ['q.a'] }))
      socket.send(encode({ type: 'event', topic: 'q.a', seq: 1, epoch: 'e', ts: 0, data: 'ok' }))
    })
  )
  const client = connect(t, `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`)
  const errors: string[] = []
  client.on('error', (err) => errors.push((err as LiveClientError).code))
  const events: unknown[] = []
  await client.subscribe('q.a', (e) => events.push(e.data))
  await until(() => events.length === 1, 'the next good frame')
  t.same(errors, ['bad_frame', 'bad_frame'])
  t.same(events, ['ok'])
  t.ok(client.connected)
})

/** Fossil's checksum of a delta's result (fossil-delta does not export it): what a valid hostile delta must carry. */
function fossilChecksum(a: Uint8Array): number {
  const lanes = [0, 0, 0, 0]
  const whole = a.length - (a.length % 4)
  for (let i = 0; i < whole; i++) lanes[i & 3] = (lanes[i & 3] + a[i]) | 0
  let sum = (((((lanes[3] + (lanes[2] << 8)) | 0) + (lanes[1] << 16)) | 0) + (lanes[0] << 24)) | 0
  const tail = a.length - whole
  if (tail >= 3) sum = (sum + (a[whole + 2] << 8)) | 0
  if (tail >= 2) sum = (sum + (a[whole + 1] << 16)) | 0
  if (tail >= 1) sum = (sum + (a[whole] << 24)) | 0
  return sum >>> 0
}

const FOSSIL_DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~'
function fossilInt(n: number): string {
  let out = ''
  do {
    out = FOSSIL_DIGITS[n % 64] + out
    n = Math.floor(n / 64)
  } while (n > 0)
  return out
}

/**
 * A small delta whose result is `{ pad: 'x' × size }`, made of copies of the base's run of x's:
 * a few KB on the wire that a client applying it turns into `size` bytes.
 */
function inflatingDelta(base: Uint8Array, run: number, size: number, declared = -1): Uint8Array {
  const target = encode({ pad: 'x'.repeat(size) })
  const header = target.length - size
  const xAt = base.length - run
  let commands = `${fossilInt(header)}:`
  const parts: (string | Uint8Array)[] = []
  parts.push(commands)
  parts.push(target.subarray(0, header))
  commands = ''
  for (let left = size; left > 0; left -= run) commands += `${fossilInt(Math.min(run, left))}@${fossilInt(xAt)},`
  parts.push(`${commands}${fossilInt(fossilChecksum(target))};`)
  const bytes = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))))
  return Buffer.concat([Buffer.from(`${fossilInt(declared >= 0 ? declared : target.length)}\n`, 'latin1'), bytes])
}

/** A stand-in server that acks every subscribe (with delta when asked) and then sends `frames` of that subscribe (1, 2, ...). */
async function hostileServer(t: Teardown, frames: (subscribe: number) => (Uint8Array | string)[]) {
  const wss = await fakeServer(t)
  let subscribes = 0
  wss.on('connection', (socket) => {
    socket.on('message', (data: Buffer) => {
      const frame = decode(data) as { type: string; id: unknown; topic: string; delta?: boolean }
      if (frame.type !== 'subscribe') return
      socket.send(encode({ type: 'ack', id: frame.id, topics: [frame.topic], ...(frame.delta ? { delta: true } : {}) }))
      for (const f of frames(++subscribes)) socket.send(f)
    })
  })
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`
}

t.test('a hostile server: a delta declaring more than maxFrameBytes is refused before it is applied', async (t) => {
  const run = 60_000
  const baseData = { pad: 'x'.repeat(run) }
  const base = encode(baseData)
  const event = (seq: number, rest: object) => encode({ type: 'event', topic: 'h.x', seq, epoch: 'e', ts: 0, ...rest })
  const url = await hostileServer(t, (subscribe) => [
    ...(subscribe > 1 ? [] : [event(1, { data: baseData })]),
    // 8 MiB out of ~1 KB of copy commands, with a valid checksum: the old client built and decoded it.
    event(2, { base: 1, delta: inflatingDelta(base, run, 8 * 1024 * 1024) }),
    // 4 GB declared in a few bytes (the most a Fossil delta can declare): refused on its declaration alone.
    event(2, { base: 1, delta: inflatingDelta(base, run, 1024, 2 ** 32 - 1) }),
    event(3, { data: { honest: true } })
  ])
  const client = new LiveClient({ url, maxFrameBytes: 1024 * 1024, reconnect: false })
  t.teardown(() => client.close())
  const errors: string[] = []
  client.on('error', (err) => errors.push(err.message))
  const sizes: number[] = []
  await client.subscribe('h.x', (e) => sizes.push(JSON.stringify(e.data).length), { delta: true })
  await until(() => sizes.length >= 2, 'the whole events')
  t.same(sizes, [JSON.stringify(baseData).length, JSON.stringify({ honest: true }).length], 'nothing the deltas made reached the handler')
  t.match(errors[0], /delta on h\.x #2 not applied \(it declares 8388618 bytes, more than maxFrameBytes 1048576\)/)
  t.match(errors[1], /it declares 4294967295 bytes/)
})

t.test('a hostile server: a frame past maxFrameBytes or nested past maxDepth is dropped before it is decoded; the stream goes on', async (t) => {
  const deep = Buffer.concat([Buffer.alloc(10_000, 0x91), Buffer.from([0xc0])]) // [[[[...null]]]] 10,000 deep
  const frame = (seq: number, data: Buffer) =>
    Buffer.concat([encode({ type: 'event', topic: 'h.y', seq, epoch: 'e', ts: 0, data: null }).subarray(0, -1), data])
  const url = await hostileServer(t, (subscribe) =>
    subscribe === 1
      ? [frame(1, deep), encode({ type: 'event', topic: 'h.y', seq: 2, epoch: 'e', ts: 0, data: 'x'.repeat(2 * 1024 * 1024) })]
      : [encode({ type: 'event', topic: 'h.y', seq: 3, epoch: 'e', ts: 0, data: { honest: true } })]
  )
  const client = new LiveClient({ url, maxFrameBytes: 1024 * 1024, maxDepth: 64, reconnect: { minDelayMs: 10, maxDelayMs: 50 } })
  t.teardown(() => client.close())
  const errors: string[] = []
  const closes: number[] = []
  client.on('error', (err) => errors.push(err.message))
  client.on('close', ({ code }) => closes.push(code))
  const seen: unknown[] = []
  await client.subscribe('h.y', (e) => seen.push(e.data))
  await until(() => seen.length >= 1, 'the honest event after reconnecting')
  t.same(seen, [{ honest: true }], 'only the honest event reached the handler')
  t.match(errors[0], /frame nests deeper than 64 levels/)
  t.match(errors[1], /Max payload size exceeded/, 'the 2 MiB frame was refused by ws (maxPayload) before it was buffered whole')
  t.equal(closes.length, 1, 'which closed that connection; the client connected again')
})

t.test('in Node the SDK takes the ws package (its maxPayload) even where a global WebSocket exists, as on Node 22', async (t) => {
  const url = await hostileServer(t, () => [encode({ type: 'event', topic: 'h.w', seq: 1, epoch: 'e', ts: 0, data: 'x'.repeat(2 * 1024 * 1024) })])
  const global = globalThis as { WebSocket?: unknown }
  const before = global.WebSocket
  let used = 0
  global.WebSocket = class {
    constructor() {
      used++
      throw new Error('the global WebSocket was used')
    }
  }
  t.teardown(() => {
    global.WebSocket = before
  })
  const client = new LiveClient({ url, maxFrameBytes: 1024 * 1024, reconnect: false })
  t.teardown(() => client.close())
  const errors: string[] = []
  client.on('error', (err) => errors.push(err.message))
  const seen: unknown[] = []
  await client.subscribe('h.w', (e) => seen.push(e.seq))
  await until(() => errors.some((m) => /Max payload size exceeded/.test(m)), 'ws refused the 2 MiB frame')
  t.equal(used, 0, 'the global WebSocket was never constructed')
  t.same(seen, [], 'the frame never reached the handler')
})
