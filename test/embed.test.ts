// Another team's Fastify app embedding the live plugin.
import t from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { encode } from '@msgpack/msgpack'
import type { AddressInfo } from 'node:net'
import live, { ConfigError, type LiveOptions, MemoryBus, metrics } from '../src/index.ts'
import { TestClient } from './helper.ts'

async function listen(app: ReturnType<typeof Fastify>) {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

t.test('a host app with its own GET / and its own @fastify/websocket', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } })
  app.get('/', async () => ({ host: 'app' }))
  await app.register(live, { paths: ['/ws/live'], maxPayload: 4096, heartbeatInterval: 0 })
  app.post('/orders', async (request) => app.live.publish('orders.created', request.body))
  const url = await listen(app)

  t.same((await app.inject('/')).json(), { host: 'app' }, 'the host keeps GET /')
  const c = await TestClient.open(url)
  t.match(await c.request({ type: 'request', id: 1 }), { type: 'response', id: 1 })
  t.match(await c.request({ type: 'subscribe', id: 2, topic: 'orders.*' }), { type: 'ack' })
  const res = await app.inject({ method: 'POST', url: '/orders', payload: { qty: 3 } })
  t.match(res.json(), { seq: 1, epoch: String })
  t.match(await c.next(), { type: 'event', topic: 'orders.created', seq: 1, data: { qty: 3 } })

  c.ws.send(encode({ type: 'publish', topic: 'x', data: 'y'.repeat(5000) }))
  t.equal((await c.closed).code, 1009, 'MAX_PAYLOAD holds even when the host set a larger ws limit')
})

t.test('registering twice is refused; a bad option stops registration with its name', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(live, { heartbeatInterval: 0 })
  t.ok(app.hasDecorator('websocketServer'), '@fastify/websocket registered by the plugin')
  await t.rejects(
    async () => {
      await app.register(live, {})
    },
    { message: 'the live plugin is already registered' }
  )

  const bad = Fastify()
  t.teardown(() => bad.close())
  const err = await (async () => {
    await bad.register(live, { maxPayload: -1 })
  })().catch((e: unknown) => e)
  t.ok(err instanceof ConfigError)
  t.equal((err as Error).message, 'Invalid configuration: option maxPayload=-1 is not valid; expected an integer from 128 to 16777216')
})

t.test("the live plugin takes its own settings only, and Fastify's register options beside them", async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(live, { heartbeatInterval: 0, hookBudget: 50, logLevel: 'warn' } as LiveOptions)
  t.equal(app.live.config.heartbeatInterval, 0)
  t.equal(app.live.config.hookBudget, 50)
  t.equal(app.live.config.maxPayload, 65536, 'a setting not given has its default')
  t.equal(app.liveHooks.defaultBudgetMs, 50, 'the hooks get their part')
  t.notOk('port' in app.live.config, "the server's settings are not the plugin's")

  const other = Fastify()
  t.teardown(() => other.close())
  const err = await (async () => {
    await other.register(live, { arbitrage: false } as LiveOptions)
  })().catch((e: unknown) => e)
  t.ok(err instanceof ConfigError)
  t.equal((err as Error).message, 'Invalid configuration: option arbitrage=false is not valid; expected a known option')
})

t.test('app.close() closes live sockets with 1001', async (t) => {
  const app = Fastify()
  await app.register(live, { heartbeatInterval: 0 })
  const url = await listen(app)
  const c = await TestClient.open(url)
  await c.request({ type: 'ping' })
  await app.close()
  t.equal((await c.closed).code, 1001)
})

t.test('two host apps in one process, each with its own /metrics', async (t) => {
  const apps = [Fastify(), Fastify()]
  for (const app of apps) {
    t.teardown(() => app.close())
    await app.register(live, { paths: ['/ws/live'], heartbeatInterval: 0 })
    await app.register(metrics)
  }
  await apps[0].live.publish('a.b', 1)
  const texts = await Promise.all(apps.map(async (app) => (await app.inject('/metrics')).body))
  t.match(texts[0], /^realtime_topics 1$/m)
  t.match(texts[1], /^realtime_topics 0$/m, 'each app counts its own')
  for (const text of texts) t.match(text, /^process_cpu_user_seconds_total /m, 'process metrics in both')
})

t.test('a bus the host passes in is used and left open; one the plugin made is closed with the app', async (t) => {
  const own = new MemoryBus({ historySize: 10, historyTtl: 60_000 })
  let closes = 0
  const close = own.close.bind(own)
  own.close = () => {
    closes++
    close()
  }
  const app = Fastify()
  await app.register(live, { heartbeatInterval: 0, bus: own })
  t.equal(app.liveBus, own)
  await app.live.publish('kept.x', 1)
  await app.close()
  t.equal(closes, 0, 'the host still owns its bus')
  t.equal(own.publish('kept.x', 2).seq, 2, 'and it goes on working')
  const made = Fastify()
  await made.register(live, { heartbeatInterval: 0 })
  const bus = made.liveBus as MemoryBus
  let madeCloses = 0
  const closeMade = bus.close.bind(bus)
  bus.close = () => {
    madeCloses++
    closeMade()
  }
  await made.close()
  t.equal(madeCloses, 1, 'a bus the plugin made is closed with the app')
})
