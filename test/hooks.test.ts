// The hook registry through real sockets: every stage, budgets, fail modes, the breaker, ordering, figures.
import t from 'tap'
import Fastify from 'fastify'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Type } from '@sinclair/typebox'
import { buildApp } from '../src/app.ts'
import live, { LiveError } from '../src/index.ts'
import liveHooks from '../src/plugins/hooks.ts'
import { DROP } from '../src/core/hooks.ts'
import { startServer, TestClient, sleep, until } from './helper.ts'
import type { MemoryBus } from '../src/core/bus.ts'
import type { FastifyInstance } from 'fastify'

/** The in-memory bus answers at once: the topic's last event. */
const last = (app: FastifyInstance, topic: string) => (app.liveBus as MemoryBus).last(topic)
const busy = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end);
}

t.test('publish hooks enrich or drop; a drop leaves no seq gap', async (t) => {
  const { url, app } = await startServer(t)
  app.liveHooks.onPublish({ name: 'tag', topics: 'px.>' }, (_topic, data) => ({ ...(data as object), tagged: true }))
  app.liveHooks.onPublish({ name: 'no-negatives', topics: 'px.>' }, (_topic, data) => ((data as { v: number }).v < 0 ? DROP : undefined))
  const sub = await TestClient.open(url)
  await sub.request({ type: 'subscribe', topic: 'px.*' })
  const pub = await TestClient.open(url)
  t.match(await pub.request({ type: 'publish', id: 1, topic: 'px.a', data: { v: 1 } }), { type: 'ack', seq: 1 })
  t.same(await pub.request({ type: 'publish', id: 2, topic: 'px.a', data: { v: -1 } }), {
    type: 'error',
    id: 2,
    code: 'forbidden',
    message: 'dropped by hook "no-negatives"'
  })
  t.match(await pub.request({ type: 'publish', id: 3, topic: 'px.a', data: { v: 2 } }), { type: 'ack', seq: 2 })
  t.same(
    (await sub.take(2)).map((e) => [e.seq, e.data]),
    [
      [1, { v: 1, tagged: true }],
      [2, { v: 2, tagged: true }]
    ]
  )
  await t.rejects(app.live.publish('px.b', { v: -5 }), { code: 'forbidden' })
  t.same(await app.live.publish('other', { v: -5 }), { seq: 1, epoch: String(last(app, 'other')!.epoch) }, 'topics filter')
  sub.close()
  pub.close()
})

t.test('async publish hooks resolving out of order keep seq order; a slow topic does not hold back others', async (t) => {
  const { url, app } = await startServer(t)
  const delays = [40, 1, 25, 5, 0]
  app.liveHooks.onPublish({ name: 'jitter', topics: 'slow', budgetMs: 500 }, async (_topic, data) => {
    await sleep(delays[(data as { i: number }).i])
    return { ...(data as object), seen: true }
  })
  app.liveHooks.onPublish({ name: 'slow-a', topics: 'held', budgetMs: 1000 }, async () => {
    await sleep(300)
  })
  const sub = await TestClient.open(url)
  await sub.request({ type: 'subscribe', topics: ['slow', 'held', 'free'] })
  const held = app.live.publish('held', 'a')
  const acks = Promise.all(delays.map((_, i) => app.live.publish('slow', { i })))
  const free = await app.live.publish('free', 'b')
  t.equal(free.seq, 1)
  const first = await sub.next()
  t.same([first.topic, first.data], ['free', 'b'], 'the free topic went first, not waiting on the slow hooks')
  const slow = await sub.take(5)
  t.same(
    slow.map((e) => [e.seq, e.data.i]),
    [
      [1, 0],
      [2, 1],
      [3, 2],
      [4, 3],
      [5, 4]
    ],
    'publish order, seq contiguous'
  )
  t.same(
    (await acks).map((a) => a.seq),
    [1, 2, 3, 4, 5]
  )
  t.match(await sub.next(), { topic: 'held', data: 'a' })
  await held
  sub.close()
})

t.test('budget overrun: fail-open goes on unmodified, fail-closed refuses; figures count it', async (t) => {
  const { url, app } = await startServer(t)
  app.liveHooks.onPublish({ name: 'hangs-open', topics: 'o', budgetMs: 20 }, () => new Promise(() => {}))
  app.liveHooks.onPublish({ name: 'hangs-closed', topics: 'c', budgetMs: 20, failMode: 'closed' }, () => new Promise(() => {}))
  app.liveHooks.onPublish({ name: 'slow-sync', topics: 's', budgetMs: 2 }, (_t, data) => {
    busy(10)
    return { changed: data }
  })
  const pub = await TestClient.open(url)
  t.match(await pub.request({ type: 'publish', id: 1, topic: 'o', data: 'x' }), { type: 'ack', seq: 1 })
  t.equal(last(app, 'o')!.data, 'x', 'unmodified')
  t.same(await pub.request({ type: 'publish', id: 2, topic: 'c', data: 'x' }), {
    type: 'error',
    id: 2,
    code: 'unavailable',
    message: 'hook "hangs-closed" failed and refuses what it cannot check'
  })
  t.equal(last(app, 'c'), undefined, 'nothing published')
  // A synchronous hook is timed on every 8th call: the 8th overruns and goes on unmodified.
  for (let i = 1; i <= 8; i++) t.match(await pub.request({ type: 'publish', id: 3, topic: 's', data: `y${i}` }), { type: 'ack' })
  t.same(last(app, 's')!.data, 'y8', 'a synchronous hook over budget counts as failed too')
  const figures = (await pub.request({ type: 'request', id: 4, method: 'hooks' })).result
  t.match(
    figures.find((f: any) => f.name === 'hangs-open'),
    { stage: 'publish', calls: 1, timeouts: 1, errors: 0, breaker: 'closed', budgetMs: 20, failMode: 'open' }
  )
  t.match(
    figures.find((f: any) => f.name === 'slow-sync'),
    { calls: 8, timeouts: 1 }
  )
  const http = await app.inject('/hooks')
  t.same(
    http.json().map((f: any) => f.name),
    // venue-data: the built-in check of venue.> data where it enters; venues: the built-in method of venue health
    ['venue-data', 'hangs-open', 'hangs-closed', 'slow-sync', 'venues']
  )
  pub.close()
})

t.test('a hook that keeps failing is switched off for the cool-down, then tried again', async (t) => {
  // A second's cool-down: the publish "while off" must come before it ends, even on a loaded machine.
  const { app } = await startServer(t, { hookFailures: 3, hookCooldown: 1000 })
  let calls = 0
  let healthy = false
  app.liveHooks.onPublish({ name: 'flaky' }, () => {
    calls++
    if (!healthy) throw new Error('model crashed')
    return 'ok'
  })
  for (let i = 0; i < 3; i++) await app.live.publish('b', i)
  const figures = () => app.liveHooks.figures().find((f) => f.name === 'flaky')!
  t.match(figures(), { calls: 3, errors: 3, breaker: 'open' })
  await app.live.publish('b', 'while off')
  t.equal(calls, 3, 'not called while off')
  t.match(figures(), { skipped: 1 })
  t.equal(last(app, 'b')!.data, 'while off', 'fail-open: events go on unmodified')
  await until(() => figures().breaker === 'half-open', 'the cool-down over')
  healthy = true
  await app.live.publish('b', 'back')
  t.equal(last(app, 'b')!.data, 'ok')
  t.match(figures(), { calls: 4, breaker: 'closed' })
})

t.test('inbound hooks transform or reject frames, in order even when async', async (t) => {
  const { url, app } = await startServer(t)
  app.liveHooks.onInbound({ name: 'tenant-prefix' }, (frame) => (frame.type === 'publish' ? { ...frame, topic: `tenant.${frame.topic}` } : undefined))
  app.liveHooks.onInbound({ name: 'slow-pings', budgetMs: 200 }, async (frame) => {
    if (frame.type === 'ping' && frame.id === 'slow') await sleep(50)
    return undefined
  })
  app.liveHooks.onInbound({ name: 'no-requests' }, (frame) => {
    if (frame.type === 'request' && frame.method === 'time') throw new LiveError('rate_limited', 'too many time requests')
    return undefined
  })
  const c = await TestClient.open(url)
  t.match(await c.request({ type: 'publish', id: 1, topic: 'x', data: 1 }), { type: 'ack' })
  t.equal(last(app, 'tenant.x')!.data, 1, 'rewritten topic')
  c.send({ type: 'ping', id: 'slow' })
  c.send({ type: 'ping', id: 'fast' })
  t.same(
    (await c.take(2)).map((f) => f.id),
    ['slow', 'fast'],
    'frames keep their order behind an async hook'
  )
  t.same(await c.request({ type: 'request', id: 2, method: 'time' }), { type: 'error', id: 2, code: 'rate_limited', message: 'too many time requests' })
  t.equal(app.liveHooks.figures().find((f) => f.name === 'no-requests')!.errors, 0, 'a deliberate refusal is not a fault')
  c.close()
})

t.test('subscribe hooks deny with forbidden', async (t) => {
  const { url, app } = await startServer(t)
  app.liveHooks.onSubscribe({ name: 'no-internal', topics: 'internal.>' }, () => false)
  app.liveHooks.onSubscribe({ name: 'async-allow', budgetMs: 100 }, async () => {
    await sleep(5)
    return true
  })
  const c = await TestClient.open(url)
  t.same(await c.request({ type: 'subscribe', id: 1, topics: ['public.a', 'internal.secrets'] }), {
    type: 'error',
    id: 1,
    code: 'forbidden',
    message: 'subscription to "internal.secrets" denied by hook "no-internal"'
  })
  t.equal(app.live.subscribers('public.a'), 0, 'nothing of a denied subscribe is applied')
  t.match(await c.request({ type: 'subscribe', id: 2, topic: 'public.a' }), { type: 'ack', id: 2 })
  c.send({ type: 'unsubscribe', id: 3, topic: 'public.a' })
  t.match(await c.next(), { type: 'ack', id: 3 })
  t.equal(app.live.subscribers('public.a'), 0)
  c.close()
})

t.test('request methods with params schemas and budgets', async (t) => {
  const { url, app } = await startServer(t)
  app.liveHooks.method({
    name: 'predict',
    params: Type.Object({ symbol: Type.String(), horizonMs: Type.Integer({ minimum: 1 }) }),
    budgetMs: 50,
    handler: async ({ symbol, horizonMs }) => ({ symbol, horizonMs, up: 0.61 })
  })
  app.liveHooks.method({ name: 'stuck', budgetMs: 20, handler: () => new Promise(() => {}) })
  t.throws(() => app.liveHooks.method({ name: 'predict', handler: () => 1 }), { message: 'request method "predict" is already registered' })
  const c = await TestClient.open(url)
  t.same(await c.request({ type: 'request', id: 1, method: 'predict', params: { symbol: 'BTC-USDT', horizonMs: 500 } }), {
    type: 'response',
    id: 1,
    result: { symbol: 'BTC-USDT', horizonMs: 500, up: 0.61 }
  })
  t.same(await c.request({ type: 'request', id: 2, method: 'predict', params: { symbol: 'BTC-USDT' } }), {
    type: 'error',
    id: 2,
    code: 'bad_request',
    message: 'predict: params.horizonMs: Expected required property'
  })
  t.same(await c.request({ type: 'request', id: 3, method: 'stuck' }), {
    type: 'error',
    id: 3,
    code: 'timeout',
    message: 'method "stuck" ran over its 20 ms budget'
  })
  // What the client hears is what happened: a throw is internal, a LiveError keeps its code.
  app.liveHooks.method({
    name: 'broken',
    handler: () => {
      throw new Error('model file missing')
    }
  })
  app.liveHooks.method({
    name: 'broken-async',
    handler: async () => {
      throw new Error('model answered 500')
    }
  })
  app.liveHooks.method({
    name: 'picky',
    handler: () => {
      throw new LiveError('not_found', 'no such symbol')
    }
  })
  t.same(await c.request({ type: 'request', id: 4, method: 'broken' }), { type: 'error', id: 4, code: 'internal', message: 'method "broken" failed' })
  t.same(await c.request({ type: 'request', id: 5, method: 'broken-async' }), {
    type: 'error',
    id: 5,
    code: 'internal',
    message: 'method "broken-async" failed'
  })
  t.same(await c.request({ type: 'request', id: 6, method: 'picky' }), { type: 'error', id: 6, code: 'not_found', message: 'no such symbol' })
  for (let i = 0; i < 4; i++) await c.request({ type: 'request', method: 'broken' }) // five failures in a row: switched off
  t.match(await c.request({ type: 'request', id: 7, method: 'broken' }), { type: 'error', id: 7, code: 'unavailable', message: /switched off after failing/ })
  c.close()
})

t.test('an embedding app adds hooks before and after the live plugin', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(liveHooks, { hookBudget: 7 })
  app.liveHooks.onPublish({ name: 'before' }, (_t, d) => `${d}+before`)
  await app.register(live, { heartbeatInterval: 0 })
  app.liveHooks.onPublish({ name: 'after' }, (_t, d) => `${d}+after`)
  await app.ready()
  await app.live.publish('e', 'x')
  t.equal(last(app, 'e')!.data, 'x+before+after')
  t.equal(app.liveHooks.figures()[0].budgetMs, 7, 'the registry the host configured is the one in use')
  t.throws(() => app.liveHooks.onPublish({ name: 'after' }, () => undefined), { message: 'a publish hook named "after" is already registered' })
})

t.test('HOOKS loads modules named in config; a bad one stops start-up with its name', async (t) => {
  const dir = t.testdir({})
  const module = join(dir, 'shout.mjs')
  writeFileSync(
    module,
    `export default async function (app) {
    app.liveHooks.onPublish({ name: 'shout' }, (_topic, data) => typeof data === 'string' ? data.toUpperCase() : undefined)
  }\n`
  )
  const app = await buildApp({ heartbeatInterval: 0, hooks: module })
  t.teardown(() => app.close())
  await app.live.publish('m', 'quiet')
  t.equal(last(app, 'm')!.data, 'QUIET')
  const notPlugin = join(dir, 'nothing.mjs')
  writeFileSync(notPlugin, 'export const x = 1\n')
  await t.rejects(buildApp({ hooks: notPlugin }), { message: `HOOKS: "${notPlugin}" has no default export that is a Fastify plugin` })
  await t.rejects(buildApp({ hooks: join(dir, 'missing.mjs') }), { message: /^HOOKS: cannot load ".*missing\.mjs"/ })
})
