// The two reference hooks: the opportunity scorer (its volatility feature and shipped model) and a model served over HTTP.
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Type } from '@sinclair/typebox'
import scorer, { Volatility } from '../src/hooks/scorer.ts'
import remoteModel from '../src/hooks/remote-model.ts'
import { buildApp } from '../src/app.ts'
import type { MemoryBus } from '../src/core/bus.ts'
import { TestClient } from './helper.ts'

const opportunity = {
  id: 'o1',
  status: 'open',
  symbol: 'BTC-USDT',
  buy: { exchange: 'a', price: 60000, size: 0.5 },
  sell: { exchange: 'b', price: 60150, size: 2 },
  size: 0.5,
  grossBps: 25,
  netBps: 20,
  profit: 60,
  detectedAt: 1,
  maxTickAgeMs: 50
}

t.test('volatility from ticks with exact values, and the shipped model on it', async (t) => {
  const v = new Volatility()
  v.observeTick('ticker.a.BTC-USDT', { symbol: 'BTC-USDT', bid: 99.5, ask: 100.5 })
  t.equal(v.volatilityBps('BTC-USDT'), 0, 'one tick is no return yet')
  v.observeTick('ticker.a.BTC-USDT', { symbol: 'BTC-USDT', bid: 100.5, ask: 101.5 })
  t.equal(v.volatilityBps('BTC-USDT'), 100)
  v.observeTick('ticker.a.BTC-USDT', { symbol: 'BTC-USDT', bid: 99.5, ask: 100.5 })
  t.equal(v.volatilityBps('BTC-USDT'), Math.sqrt(10000 + 0.1 * ((1e4 / 101) ** 2 - 10000)))
  v.observeTick('ticker.b.BTC-USDT', { symbol: 'BTC-USDT', bid: -1, ask: 5 })
  t.equal(v.volatilityBps('BTC-USDT'), Math.sqrt(10000 + 0.1 * ((1e4 / 101) ** 2 - 10000)), 'a crossed or negative quote is not observed')
})

t.test('the scorer fills volatilityBps, score and models on opportunities published through the server', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, hookBudget: 60_000 })
  await app.register(scorer, { config: app.live.config as any })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const c = await TestClient.open(`ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  await c.request({ type: 'subscribe', topic: 'opportunities.>' })
  await app.live.publish('ticker.a.BTC-USDT', { symbol: 'BTC-USDT', bid: 99.5, ask: 100.5 })
  await app.live.publish('ticker.a.BTC-USDT', { symbol: 'BTC-USDT', bid: 100.5, ask: 101.5 })
  await app.live.publish('opportunities.BTC-USDT', opportunity)
  const e = await c.next()
  // sigmoid(-1 + 0.12*20 - 0.004*50 + 0.15*ln(1 + 30000) - 0.08*100): high volatility pulls it down
  const z = -1 + 0.12 * 20 - 0.004 * 50 + 0.15 * Math.log1p(30000) - 0.08 * 100
  t.match(e.data, { id: 'o1', volatilityBps: 100, models: { scorer: { version: '1', arm: 'serving' } } })
  t.ok(Math.abs(e.data.score - 1 / (1 + Math.exp(-z))) < 1e-5, `score ${e.data.score}`)
  c.close()
})

/** A model server: answers with `answer(body)` after `delayMs`, or never when delayMs is Infinity. */
async function modelServer(t: { teardown(fn: () => unknown): void }, answer: (body: any) => unknown, delayMs = 0) {
  const sockets = new Set<unknown>()
  const bodies: unknown[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = ''
    req.on('data', (c) => {
      raw += c
    })
    req.on('end', () => {
      const body = JSON.parse(raw)
      bodies.push(body)
      if (delayMs === Infinity) return
      setTimeout(() => res.setHeader('content-type', 'application/json').end(JSON.stringify(answer(body))), delayMs)
    })
  })
  server.on('connection', (s) => sockets.add(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/score`, sockets, bodies }
}

t.test('remote model: enriches events over keep-alive HTTP and answers a request method', async (t) => {
  const model = await modelServer(t, (body) => (body.params ? { up: 0.7, symbol: body.params.symbol } : { score: 0.42 }))
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false })
  await app.register(remoteModel, {
    url: model.url,
    protocol: 'http',
    name: 'remote',
    version: '3',
    topics: 'opportunities.>',
    output: 'fill',
    method: 'predict',
    params: Type.Object({ symbol: Type.String() }),
    budgetMs: 60_000 // a budget no loaded machine's stall reaches: this test is about the answers
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  for (let i = 0; i < 5; i++) await app.live.publish('opportunities.ETH-USDT', { n: i })
  t.same(
    (app.liveBus as MemoryBus).last('opportunities.ETH-USDT')!.data,
    { n: 4, fill: { score: 0.42 }, models: { remote: { version: '3', arm: 'serving' } } },
    'the answer under its own field: it overwrites nothing of the event or of another model'
  )
  t.same(model.bodies[0], { topic: 'opportunities.ETH-USDT', data: { n: 0 }, features: [] })
  t.ok(model.sockets.size < 5, `five calls over ${model.sockets.size} kept-alive connection(s)`)
  const c = await TestClient.open(`ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  t.same(await c.request({ type: 'request', id: 1, method: 'predict', params: { symbol: 'ETH-USDT' } }), {
    type: 'response',
    id: 1,
    result: { up: 0.7, symbol: 'ETH-USDT' }
  })
  t.match(await c.request({ type: 'request', id: 2, method: 'predict', params: {} }), { type: 'error', id: 2, code: 'bad_request' })
  c.close()
})

t.test('remote model that hangs: events go on saying so, late answers count as timeouts, the method answers timeout', async (t) => {
  const model = await modelServer(t, () => ({ score: 1 }), Infinity)
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, hookFailures: 2, hookCooldown: 60_000 })
  await app.register(remoteModel, { url: model.url, protocol: 'http', name: 'hanging', topics: 'opportunities.>', method: 'predict', budgetMs: 30 })
  await app.ready()
  t.teardown(() => app.close())
  // The model never answers: the publish completing at all is the budget deciding.
  await app.live.publish('opportunities.X', { n: 1 })
  t.same((app.liveBus as MemoryBus).last('opportunities.X')!.data, { n: 1, modelStatus: { hanging: 'timeout' } }, 'unmodified but for why (fail-open)')
  await app.live.publish('opportunities.X', { n: 2 })
  const figures = app.liveHooks.figures().find((f) => f.name === 'hanging')!
  t.match(figures, { calls: 2, timeouts: 2, errors: 0, breaker: 'open' }, 'two late answers in a row switch it off')
  await app.live.publish('opportunities.X', { n: 3 })
  t.same((app.liveBus as MemoryBus).last('opportunities.X')!.data, { n: 3, modelStatus: { hanging: 'off' } })
  t.equal(model.bodies.length, 2, 'not called while switched off')
  await t.rejects(
    app.liveHooks.methods.get('predict')!({}, { id: 1, codec: 'json', remoteAddress: undefined }) as Promise<unknown>,
    { code: 'timeout', message: 'method "predict" ran over its 30 ms budget' },
    'a late answer is a timeout, not internal'
  )
  t.match(
    app.liveHooks.figures().find((f) => f.name === 'predict'),
    { timeouts: 1, errors: 0 }
  )
})
