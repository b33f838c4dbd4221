// The two reference hooks: the logistic opportunity scorer and a model served over HTTP.
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { Type } from '@sinclair/typebox'
import scorer, { OpportunityScorer, loadScorerModel } from '../src/hooks/scorer.ts'
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

t.test('logistic score with exact values, and volatility from ticks', async (t) => {
  const s = new OpportunityScorer(loadScorerModel())
  t.same(s.model.weights, { bias: -1, netBps: 0.12, ageMs: -0.004, logSize: 0.15, volatilityBps: -0.08 }, 'the shipped weights')
  t.equal(s.score(opportunity), 0.9397, 'sigmoid(-1 + 0.12*20 - 0.004*50 + 0.15*ln(1 + 30000))')
  s.observeTick('ticker.a.BTC-USDT', { symbol: 'BTC-USDT', bid: 99.5, ask: 100.5 })
  t.equal(s.volatilityBps('BTC-USDT'), 0, 'one tick is no return yet')
  s.observeTick('ticker.a.BTC-USDT', { symbol: 'BTC-USDT', bid: 100.5, ask: 101.5 })
  t.equal(s.volatilityBps('BTC-USDT'), 100)
  s.observeTick('ticker.a.BTC-USDT', { symbol: 'BTC-USDT', bid: 99.5, ask: 100.5 })
  t.equal(s.volatilityBps('BTC-USDT'), Math.sqrt(10000 + 0.1 * ((1e4 / 101) ** 2 - 10000)))
  s.observeTick('ticker.b.BTC-USDT', { symbol: 'BTC-USDT', bid: -1, ask: 5 })
  t.equal(s.score(opportunity), 0.0052, 'high volatility pulls the score down')
})

t.test('bad weight files are refused with the field named', async (t) => {
  const dir = t.testdir({ 'w.json': JSON.stringify({ name: 'm', version: '1', weights: { bias: 0, netBps: 'x' } }) })
  t.throws(() => loadScorerModel(join(dir, 'w.json')), { message: /weights\.netBps must be a finite number/ })
})

t.test('the scorer fills score and model on opportunities published through the server', async (t) => {
  const dir = t.testdir({})
  const weights = join(dir, 'weights.json')
  writeFileSync(weights, JSON.stringify({ name: 'test-model', version: '2.1', weights: { bias: 0, netBps: 0, ageMs: 0, logSize: 0, volatilityBps: 0 } }))
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, scorerWeights: weights })
  await app.register(scorer, { config: app.live.config as any })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const c = await TestClient.open(`ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  await c.request({ type: 'subscribe', topic: 'opportunities.>' })
  await app.live.publish('opportunities.BTC-USDT', opportunity)
  const e = await c.next()
  t.match(e.data, { id: 'o1', score: 0.5, model: { name: 'test-model', version: '2.1' } })
  await app.live.publish('opportunities.BTC-USDT', { ...opportunity, status: 'closed' })
  t.notOk('score' in (await c.next()).data, 'closed opportunities are not scored')
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
    name: 'remote',
    version: '3',
    topics: 'opportunities.>',
    method: 'predict',
    params: Type.Object({ symbol: Type.String() }),
    budgetMs: 60_000 // a budget no loaded machine's stall reaches: this test is about the answers
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  for (let i = 0; i < 5; i++) await app.live.publish('opportunities.ETH-USDT', { n: i })
  t.same((app.liveBus as MemoryBus).last('opportunities.ETH-USDT')!.data, { n: 4, score: 0.42, model: { name: 'remote', version: '3' } })
  t.same(model.bodies[0], { topic: 'opportunities.ETH-USDT', data: { n: 0 } })
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

t.test('remote model that hangs: the call is aborted inside the budget and the event goes on', async (t) => {
  const model = await modelServer(t, () => ({ score: 1 }), Infinity)
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, hookFailures: 2, hookCooldown: 60_000 })
  await app.register(remoteModel, { url: model.url, name: 'hanging', topics: 'opportunities.>', method: 'predict', budgetMs: 30 })
  await app.ready()
  t.teardown(() => app.close())
  // The model never answers: the publish completing at all is the call aborted at the budget.
  await app.live.publish('opportunities.X', { n: 1 })
  t.same((app.liveBus as MemoryBus).last('opportunities.X')!.data, { n: 1 }, 'unmodified (fail-open)')
  await app.live.publish('opportunities.X', { n: 2 })
  const figures = app.liveHooks.figures().find((f) => f.name === 'hanging-enrich')!
  t.match(figures, { calls: 2, breaker: 'open' }, 'two failures in a row switch it off')
  t.equal(figures.timeouts + figures.errors, 2)
  await app.live.publish('opportunities.X', { n: 3 })
  t.equal(model.bodies.length, 2, 'not called while switched off')
})
