// Remote models over the KServe v2 inference protocol: against the Python SDK's server
// (realtime_client.models.serve), and against servers that are slow, failing or absent.
import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { buildApp } from '../src/app.ts'
import type { Config } from '../src/config.ts'
import type { MemoryBus } from '../src/core/bus.ts'
import type { ModelFigures } from '../src/hooks/models.ts'
import remoteModel from '../src/hooks/remote-model.ts'
import { SHIPPED_MODELS } from '../src/hooks/scorer.ts'
import { root } from './helper.ts'

const recorded = JSON.parse(readFileSync(join(root, 'test/fixtures/models/opportunities.json'), 'utf8')) as Record<string, any>[]
const reference = JSON.parse(readFileSync(join(SHIPPED_MODELS, 'scorer/1/reference.json'), 'utf8')) as { scores: number[] }
const scorerCard = JSON.parse(readFileSync(join(SHIPPED_MODELS, 'scorer/1/model.json'), 'utf8'))
const features: string[] = scorerCard.features

/** The reference scorer as a plain Python function, served by realtime_client.models. */
const PYTHON_SCORER = `
import math, sys
from realtime_client.models import serve
w = ${JSON.stringify(scorerCard.weights)}
def score(rows):
    return [1 / (1 + math.exp(-(w["bias"] + w["netBps"] * net + w["ageMs"] * age + w["logSize"] * math.log1p(size * price) + w["volatilityBps"] * vol)))
            for net, age, size, price, vol in rows]
serve(score, name="scorer", inputs=${JSON.stringify(features)}, port=0)
`

async function pythonModel(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const child = spawn('/usr/bin/python3', ['-c', PYTHON_SCORER], { env: { ...process.env, PYTHONPATH: join(root, 'clients/python') } })
  t.teardown(() => child.kill())
  let out = ''
  let err = ''
  child.stderr.on('data', (c) => {
    err += c
  })
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c
      const m = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m) resolve(m[1])
    })
    child.once('exit', (code) => reject(new Error(`python exited with ${code}: ${err}`)))
  })
}

interface FakeOptions {
  /** /v2/health/ready */
  serverReady?: boolean
  /** /v2/models/{name}/ready: false answers 404, as for a model the server does not have. */
  modelReady?: boolean
  /** How /infer answers: with `value`, never, HTTP 500, 2 MiB of JSON, or no number where the output is. */
  infer?: 'answer' | 'hang' | 'fail' | 'huge' | 'nonsense'
  value?: number
  width?: number
}

/** A KServe v2 server whose behaviour each test sets, and what it was asked. */
async function fakeKServe(t: { teardown(fn: () => unknown): void }, options: FakeOptions) {
  const state = { serverReady: true, modelReady: true, infer: 'answer', value: 0.25, width: features.length, ...options }
  const calls: { method: string; url: string; body: any }[] = []
  const sockets = new Set<unknown>()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = ''
    req.on('data', (c) => {
      raw += c
    })
    req.on('end', () => {
      calls.push({ method: req.method!, url: req.url!, body: raw ? JSON.parse(raw) : null })
      const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
      const url = req.url!
      if (url === '/v2/health/ready') return send(state.serverReady ? 200 : 503, { ready: state.serverReady })
      if (url.endsWith('/ready')) return state.modelReady ? send(200, { ready: true }) : send(404, { error: 'no such model' })
      if (req.method === 'GET') return send(200, { name: 'm', inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, state.width] }] })
      if (state.infer === 'hang') return
      if (state.infer === 'fail') return send(500, { error: 'model crashed' })
      if (state.infer === 'huge') return send(200, { outputs: [{ name: 'p', data: new Array(1024 * 1024).fill(1) }] })
      if (state.infer === 'nonsense') return send(200, { outputs: [{ name: 'p', data: ['1', null, { a: 1 }] }] })
      send(200, { model_name: 'm', outputs: [{ name: 'p', datatype: 'FP32', shape: [1, 1], data: [state.value] }] })
    })
  })
  server.on('connection', (s) => sockets.add(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    state,
    calls,
    sockets,
    infers: () => calls.filter((c) => c.url.endsWith('/infer'))
  }
}

/** MODELS with one remote model `name` whose card points at `url`; scanned when the test says. */
async function appWithCard(t: any, card: object, overrides: Partial<Config> = {}) {
  const dir = t.testdir()
  mkdirSync(join(dir, 'fill', '1'), { recursive: true })
  writeFileSync(join(dir, 'fill', '1', 'model.json'), JSON.stringify({ topics: 'opportunities.>', features, output: 'fill', ...card }))
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, modelsReloadMs: 0, models: dir, ...overrides })
  await app.ready()
  t.teardown(() => app.close())
  const last = () => (app.liveBus as MemoryBus).last('opportunities.X')!.data as Record<string, any>
  const figures = () => (app.liveHooks.methods.get('models')!({}, { id: 0, codec: 'json', remoteAddress: undefined }) as ModelFigures[])[0]
  const hook = () => app.liveHooks.figures().find((f) => f.name === 'fill')!
  return { app, last, figures, hook, scan: () => app.liveModels[0].scan() }
}

t.test('a Python function served by realtime_client.models scores like the reference, over KServe v2', async (t) => {
  const url = await pythonModel(t)
  const { app, last, figures } = await appWithCard(t, { url, remoteName: 'scorer', datatype: 'FP64', budgetMs: 60_000 })
  t.match(figures(), { serving: '1', versions: [{ version: '1', state: 'serving', kind: 'kserve' }] })
  for (let i = 0; i < recorded.length; i++) {
    await app.live.publish('opportunities.X', recorded[i])
    const data = last()
    if (!(Math.abs(data.fill - reference.scores[i]) <= 1e-5))
      t.fail(`opportunity ${i}: ${data.fill} against ${reference.scores[i]} (${JSON.stringify(data.modelStatus)})`)
  }
  t.same(last().models, { fill: { version: '1', arm: 'serving' } })
  t.match(figures().versions[0], { calls: recorded.length, errors: 0 })
})

t.test('the request is the KServe v2 infer call with typed inputs, over kept-alive connections', async (t) => {
  const fake = await fakeKServe(t, { value: 0.75 })
  const { app, last } = await appWithCard(t, { url: fake.url, remoteName: 'fill-model', remoteVersion: '7', budgetMs: 60_000 })
  for (let i = 0; i < 5; i++) await app.live.publish('opportunities.X', recorded[i])
  t.match(last(), { fill: 0.75, models: { fill: { version: '1', arm: 'serving' } } })
  t.same(
    fake.calls.slice(0, 3).map((c) => c.url),
    ['/v2/health/ready', '/v2/models/fill-model/versions/7/ready', '/v2/models/fill-model/versions/7'],
    'readiness of the server and the model, then its metadata'
  )
  const infer = fake.infers()
  t.equal(infer.length, 5)
  t.equal(infer[0].url, '/v2/models/fill-model/versions/7/infer')
  const o = recorded[0]
  t.same(infer[0].body, {
    inputs: [{ name: 'features', shape: [1, 5], datatype: 'FP32', data: [o.netBps, o.maxTickAgeMs, o.size, o.buy.price, o.volatilityBps] }]
  })
  t.ok(fake.sockets.size <= 2, `eight requests over ${fake.sockets.size} connection(s)`)
})

t.test('the card picks the KServe v2 output by name and index', async (t) => {
  const fake = await fakeKServe(t, { value: 0.75 })
  const { app, last } = await appWithCard(t, { url: fake.url, outputTensor: 'p', budgetMs: 60_000 })
  await app.live.publish('opportunities.X', recorded[0])
  t.equal(last().fill, 0.75)
  const other = await appWithCard(t, { url: fake.url, outputTensor: 'q', budgetMs: 60_000 })
  await other.app.live.publish('opportunities.X', recorded[0])
  t.same(other.last().modelStatus, { fill: 'error' })
  t.match(other.figures().versions[0], { errors: 1 })
})

t.test('a slow model: past its budget the event goes on saying timeout, counted as a timeout', async (t) => {
  const fake = await fakeKServe(t, { infer: 'hang' })
  // The model never answers: only the budget can end the wait, however loaded the machine.
  const { app, last, hook } = await appWithCard(t, { url: fake.url, budgetMs: 50 }, { hookFailures: 2, hookCooldown: 600_000 })
  await app.live.publish('opportunities.X', recorded[0])
  t.same(last().modelStatus, { fill: 'timeout' })
  t.notOk('fill' in last())
  await app.live.publish('opportunities.X', recorded[1])
  t.match(hook(), { calls: 2, timeouts: 2, errors: 0, breaker: 'open' })
  await app.live.publish('opportunities.X', recorded[2])
  t.same(last().modelStatus, { fill: 'off' }, 'switched off: not called, and the event says so')
  t.equal(fake.infers().length, 2)
})

t.test('a failing model: errors open the breaker and the events say so', async (t) => {
  const fake = await fakeKServe(t, { infer: 'fail' })
  const { app, last, hook, figures } = await appWithCard(t, { url: fake.url, budgetMs: 60_000 }, { hookFailures: 3, hookCooldown: 600_000 })
  for (let i = 0; i < 3; i++) {
    await app.live.publish('opportunities.X', recorded[i])
    t.same(last().modelStatus, { fill: 'error' })
  }
  t.match(hook(), { calls: 3, errors: 3, timeouts: 0, breaker: 'open' })
  t.match(figures().versions[0], { errors: 3 })
  await app.live.publish('opportunities.X', recorded[3])
  t.same(last().modelStatus, { fill: 'off' })
  t.equal(fake.infers().length, 3, 'not called while switched off')
})

t.test('hostile answers: over 1 MiB, or no number where the output is, are errors and nothing more', async (t) => {
  for (const infer of ['huge', 'nonsense'] as const) {
    const fake = await fakeKServe(t, { infer })
    const { app, last, figures } = await appWithCard(t, { url: fake.url, budgetMs: 60_000 }, { hookFailures: 100 })
    await app.live.publish('opportunities.X', recorded[0])
    t.same(last().modelStatus, { fill: 'error' }, infer)
    t.notOk('fill' in last())
    t.match(figures().versions[0], { errors: 1 })
    await app.close()
  }
})

t.test('an absent model: not ready, events say unavailable, and it serves once ready', async (t) => {
  const fake = await fakeKServe(t, { modelReady: false })
  const { app, last, figures, scan } = await appWithCard(t, { url: fake.url, budgetMs: 60_000 })
  t.match(figures(), {
    serving: null,
    refused: 0,
    versions: [{ version: '1', state: 'unready', reason: /not ready: .*\/v2\/models\/fill\/ready answered HTTP 404/ }]
  })
  await app.live.publish('opportunities.X', recorded[0])
  t.same(last().modelStatus, { fill: 'unavailable' })
  fake.state.serverReady = false
  await scan()
  t.match(figures().versions[0], { state: 'unready', reason: /\/v2\/health\/ready answered HTTP 503/ })
  fake.state.serverReady = true
  fake.state.modelReady = true
  await scan()
  t.match(figures(), { serving: '1', versions: [{ state: 'serving' }] })
  await app.live.publish('opportunities.X', recorded[0])
  t.match(last(), { fill: 0.25 })
  t.notOk('modelStatus' in last())
})

t.test('a remote model that takes other inputs than the card names is refused', async (t) => {
  const fake = await fakeKServe(t, { width: 3 })
  const { figures } = await appWithCard(t, { url: fake.url })
  t.match(figures(), { serving: null, refused: 1, versions: [{ state: 'refused', reason: 'input "features" has shape [-1, 3]; the card names 5 features' }] })
})

t.test('remoteModel({...}) in code speaks KServe v2 too', async (t) => {
  const fake = await fakeKServe(t, { value: 0.5, width: 1 })
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false })
  await app.register(remoteModel, { url: fake.url, name: 'edge', topics: 'opportunities.>', features: ['netBps'], output: 'edge', budgetMs: 60_000 })
  await app.ready()
  t.teardown(() => app.close())
  await app.live.publish('opportunities.X', recorded[0])
  t.match((app.liveBus as MemoryBus).last('opportunities.X')!.data, { edge: 0.5, models: { edge: { version: '1', arm: 'serving' } } })
  t.same(fake.infers()[0].body.inputs[0].data, [recorded[0].netBps])
})
