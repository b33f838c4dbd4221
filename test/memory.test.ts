// The memory guard (MEMORY_LIMIT_MB, measured as RSS like PM2's max_memory_restart): past it
// publishes and subscribes answer unavailable and are never acked, /ready says 503, the log warns,
// and the process comes back under by itself. The peaks of the bursts are bench/bursts.ts's.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { decode, encode } from '@msgpack/msgpack'
import { WebSocket } from 'ws'
import { Admission } from '../src/core/limits.ts'
import { startProcess, startServer, TestClient, until } from './helper.ts'

t.test('over the limit a publish is refused on every path, and nothing refused was published', async (t) => {
  const { app, http } = await startServer(t, { memoryLimitMb: 1 })
  await t.rejects(app.live.publish('a.b', 1), { code: 'unavailable', message: 'the server is at its memory limit' })
  const post = await fetch(`${http}/publish/a.b`, { method: 'POST', body: '1', headers: { 'content-type': 'application/json' } })
  t.match([post.status, await post.json()], [503, { code: 'unavailable' }])
  t.equal(app.liveBus.last('a.b'), undefined, 'nothing published')
  t.same(await (await fetch(`${http}/ready`)).json(), { ready: false, reason: 'memory limit' })
})

t.test('admission reads RSS and comes back once a collection gave memory back', async (t) => {
  let rss = 260 * 1024 * 1024
  let now = 0
  const admission = new Admission(
    { maxConnections: 10, maxConnectionsPerIp: 10, maxSubscriptionsTotal: 10, maxSubscriptionsPerIp: 10, memoryLimitMb: 200 },
    {
      now: () => now,
      held: () => rss,
      collect: () => () => {
        rss = 150 * 1024 * 1024 // what a full collection gave back
      }
    }
  )
  t.equal(admission.overMemory(), false, 'the collection asked for at once brought it under')
  rss = 230 * 1024 * 1024
  now += 1000
  t.equal(admission.overMemory(), true, 'within 5 s of the last collection none is asked for: refused')
  now += 5000
  t.equal(admission.overMemory(), false)
})

t.test('a burst against the real server: refused past the limit, every ack held, back under by itself', { timeout: 180_000 }, async (t) => {
  // The limit a little over what the idle process holds, so a modest burst crosses it.
  const probe = startProcess({})
  const idlePort = await probe.port
  const idle = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${probe.child.pid}/status`, 'utf8'))![1]) / 1024
  probe.child.kill('SIGKILL')
  t.ok(idlePort > 0)
  const limit = Math.ceil(idle + 40)
  const server = startProcess({ MEMORY_LIMIT_MB: String(limit), LOG_LEVEL: 'info' }, ['--expose-gc'])
  t.teardown(() => server.child.kill('SIGKILL'))
  const port = await server.port
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/live`)
  await new Promise((r) => ws.once('open', r))
  const acked = new Map<string, number>()
  const refusals = new Map<string, number>()
  const data = { blob: 'x'.repeat(4080) }
  const total = 40_000
  let sent = 0
  let answered = 0
  await new Promise<void>((resolve) => {
    const send = () => {
      const i = sent++
      ws.send(encode({ type: 'publish', id: i, topic: `burst.t${i % 1000}`, data }))
    }
    ws.on('message', (m: Buffer) => {
      const f = decode(m) as { type: string; id: number; seq: number; message?: string }
      const topic = `burst.t${f.id % 1000}`
      if (f.type === 'ack') acked.set(topic, Math.max(acked.get(topic) ?? 0, f.seq))
      else refusals.set(f.message ?? f.type, (refusals.get(f.message ?? f.type) ?? 0) + 1)
      if (++answered === total) resolve()
      else if (sent < total) send()
    })
    for (let i = 0; i < 256; i++) send()
  })
  t.ok(refusals.get('the server is at its memory limit')! > 0, `refused past the limit: ${JSON.stringify(Object.fromEntries(refusals))}`)
  t.same([...refusals.keys()], ['the server is at its memory limit'], 'no other refusal')
  ws.terminate()
  await until(async () => (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200, 'back under the limit by itself', 120_000)
  const client = await TestClient.open(`ws://127.0.0.1:${port}`)
  t.teardown(() => client.close())
  const held = new Map<string, number>(
    (await client.request({ type: 'request', id: 1, method: 'topics' })).result.map((x: { topic: string; seq: number }) => [x.topic, x.seq])
  )
  t.same(
    [...acked].filter(([topic, seq]) => (held.get(topic) ?? 0) < seq),
    [],
    `every acked publish is held (${[...acked.values()].reduce((a, b) => a + b, 0)} acked)`
  )
  t.match(server.output(), /over MEMORY_LIMIT_MB: publishes, subscribes and new connections are refused/, 'the log said so')
})
