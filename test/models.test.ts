// Models in the loop: the ONNX reference scorer against its Python reference, MODELS versions and hot
// reload, refusals, shadow and A/B arms, and the status of every event a model did not enrich.
import t from 'tap'
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { Writable } from 'node:stream'
import { buildApp } from '../src/app.ts'
import type { Config } from '../src/config.ts'
import type { MemoryBus } from '../src/core/bus.ts'
import { LiveError } from '../src/core/protocol.ts'
import { onnxModel, armShare, type ModelFigures } from '../src/hooks/models.ts'
import { parseCard } from '../src/hooks/model-card.ts'
import { SHIPPED_MODELS } from '../src/hooks/scorer.ts'
import { root } from './helper.ts'

const recorded = JSON.parse(readFileSync(join(root, 'test/fixtures/models/opportunities.json'), 'utf8')) as Record<string, any>[]
const reference = JSON.parse(readFileSync(join(SHIPPED_MODELS, 'scorer/1/reference.json'), 'utf8')) as { scores: number[] }
const scorerCard = JSON.parse(readFileSync(join(SHIPPED_MODELS, 'scorer/1/model.json'), 'utf8'))
const otherWeights = join(root, 'test/fixtures/models/scorer-b.onnx')

/** A MODELS directory with the scorer's version 1; `version` adds more. */
function modelsDir(t: { testdir(): string }) {
  const dir = t.testdir()
  const version = (n: string, card: object = scorerCard, onnx: string | null = join(SHIPPED_MODELS, 'scorer/1/model.onnx'), name = 'scorer') => {
    // Written beside and renamed in, as a deployment does: a scan never sees half a folder.
    const staging = join(dir, `.staging-${name}-${n}`)
    mkdirSync(staging, { recursive: true })
    writeFileSync(join(staging, 'model.json'), JSON.stringify(card))
    if (onnx !== null) copyFileSync(onnx, join(staging, 'model.onnx'))
    mkdirSync(join(dir, name), { recursive: true })
    renameSync(staging, join(dir, name, n))
  }
  version('1')
  return { dir, version }
}

/** An app with MODELS=dir, scanned only when the test says (no timer), with budgets no stall reaches. */
async function appWith(t: { teardown(fn: () => unknown): void }, overrides: Partial<Config> = {}) {
  const lines: Record<string, any>[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line))
      done()
    }
  })
  const app = await buildApp(
    { heartbeatInterval: 0, arbitrage: false, modelsReloadMs: 0, hookBudget: 60_000, ...overrides },
    { logger: { level: 'info', stream } }
  )
  await app.ready()
  t.teardown(() => app.close())
  const last = (topic: string) => (app.liveBus as MemoryBus).last(topic)! as { data: Record<string, any> }
  const figures = () => (app.liveHooks.methods.get('models')!({}, { id: 0, codec: 'json', remoteAddress: undefined }) as ModelFigures[])[0]
  return { app, lines, last, figures, scan: () => Promise.all(app.liveModels.map((d) => d.scan())) }
}

t.test('the reference scorer as ONNX equals its Python reference outputs within 1e-5 on recorded opportunities', async (t) => {
  t.equal(reference.scores.length, recorded.length, 'one reference score per recorded opportunity')
  const { app, last } = await appWith(t, { models: SHIPPED_MODELS })
  for (let i = 0; i < recorded.length; i++) {
    await app.live.publish('opportunities.X', recorded[i])
    const data = last('opportunities.X').data as Record<string, any>
    const diff = Math.abs(data.score - reference.scores[i])
    if (diff > 1e-5) t.fail(`opportunity ${i}: server ${data.score}, Python ${reference.scores[i]}`)
    t.same(data.models, { scorer: { version: '1', arm: 'serving' } })
  }
  t.pass(`${recorded.length} scores within 1e-5`)
})

t.test('events scored in one turn go to the model as one batch, each getting the score of its own row', async (t) => {
  const { app } = await appWith(t, { models: SHIPPED_MODELS })
  const scores = new Map<number, number>()
  app.liveHooks.onPublish({ name: 'watch', topics: 'opportunities.>' }, (_topic, data: any) => {
    scores.set(data.n, data.score)
    return undefined
  })
  // Each on its own topic: events of one topic wait for the one before them, events of many topics do not.
  await Promise.all(recorded.map((o, n) => app.live.publish(`opportunities.S${n}`, { ...o, n })))
  t.equal(scores.size, recorded.length)
  for (let n = 0; n < recorded.length; n++)
    if (!(Math.abs(scores.get(n)! - reference.scores[n]) <= 1e-5)) t.fail(`row ${n}: ${scores.get(n)} against ${reference.scores[n]}`)
  const calls = (app.liveHooks.figures().find((f) => f.name === 'scorer')!.model as ModelFigures).versions[0].calls
  t.equal(calls, recorded.length, 'one call per event in the figures')
})

t.test('models/make-scorer.py (python3-onnx) makes exactly the shipped model folder', async (t) => {
  const out = t.testdir()
  const run = spawnSync('/usr/bin/python3', [join(root, 'models/make-scorer.py'), '--out', out], { encoding: 'utf8' })
  t.equal(run.status, 0, run.stderr)
  for (const file of ['model.onnx', 'model.json']) {
    t.ok(readFileSync(join(out, file)).equals(readFileSync(join(SHIPPED_MODELS, 'scorer/1', file))), `${file} as committed`)
  }
  // The reference scores are numpy's float64 exp and log1p, whose last bit depends on the CPU's
  // vector path (one score differed in its 16th digit between two machines): equal to 1e-12.
  const made = JSON.parse(readFileSync(join(out, 'reference.json'), 'utf8')) as { source: string; scores: number[] }
  const shipped = JSON.parse(readFileSync(join(SHIPPED_MODELS, 'scorer/1/reference.json'), 'utf8')) as { source: string; scores: number[] }
  t.equal(made.source, shipped.source)
  t.equal(made.scores.length, shipped.scores.length)
  const apart = made.scores.filter((s, n) => !(Math.abs(s - shipped.scores[n]) <= 1e-12))
  t.same(apart, [], 'reference.json scores as committed, to 1e-12')
})

t.test('the default server scores opportunities with the shipped model and the volatility it observes', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: true, hookBudget: 60_000 })
  await app.ready()
  t.teardown(() => app.close())
  const o = { ...recorded[0] }
  delete o.volatilityBps
  await app.live.publish('opportunities.X', o)
  const data = (app.liveBus as MemoryBus).last('opportunities.X')!.data as Record<string, any>
  t.equal(data.volatilityBps, 0, 'no ticks observed: no volatility')
  t.ok(Math.abs(data.score - 1 / (1 + Math.exp(-(-1 + 0.12 * o.netBps - 0.004 * o.maxTickAgeMs + 0.15 * Math.log1p(o.size * o.buy.price))))) < 1e-5)
  t.same(data.models, { scorer: { version: '1', arm: 'serving' } })
})

t.test('cards are checked field by field', async (t) => {
  const good = { topics: 'opportunities.>', features: ['netBps'], output: 'p' }
  t.same(parseCard(good), good)
  t.throws(() => parseCard([]), { message: /JSON object/ })
  t.throws(() => parseCard({ ...good, topics: 'a..b' }), { message: /"topics"/ })
  t.throws(() => parseCard({ ...good, features: [] }), { message: /"features" must be a list of 1/ })
  t.throws(() => parseCard({ ...good, features: ['buy.__x y'] }), { message: /not a field path/ })
  t.throws(() => parseCard({ ...good, output: 'models' }), { message: /"output"/ })
  t.throws(() => parseCard({ ...good, output: '__proto__' }), { message: /"output"/ })
  t.throws(() => parseCard({ ...good, budgetMs: 0 }), { message: /"budgetMs"/ })
  t.throws(() => parseCard({ ...good, traffic: 1 }), { message: /"traffic"/ })
  t.throws(() => parseCard({ ...good, traffic: 0.1, mode: 'shadow' }), { message: /exclude each other/ })
  t.throws(() => parseCard({ ...good, url: 'ftp://x' }), { message: /"url"/ })
  t.throws(() => parseCard({ ...good, protocol: 'kserve' }), { message: /give "url" too/ })
  t.throws(() => parseCard({ ...good, featurs: [] }), { message: /unknown field "featurs"/ })
  t.same(parseCard({ ...good, features: [], url: 'http://127.0.0.1:1/x', protocol: 'http' }).features, [], 'a plain HTTP model may take the whole event only')
})

t.test('a new version folder serves without a lost or unscored event under a steady publish rate', async (t) => {
  const { dir, version } = modelsDir(t)
  const { app, last, figures, scan, lines } = await appWith(t, { models: dir })
  const published: Promise<unknown>[] = []
  let n = 0
  let reloaded = false
  // Publishes keep going, ten a turn, while version 2 is written, renamed in and loaded, and after.
  const publisher = (async () => {
    while (!reloaded || n < 400) {
      const i = n++
      published.push(app.live.publish('opportunities.X', { ...recorded[i % recorded.length], id: `o${i}` }))
      if (i % 10 === 0) await new Promise((r) => setImmediate(r))
    }
  })()
  await new Promise((r) => setImmediate(r))
  version('2', scorerCard, otherWeights)
  await scan()
  reloaded = true
  await publisher
  const acks = (await Promise.all(published)) as { seq: number }[]
  t.same(
    acks.map((a) => a.seq),
    Array.from({ length: n }, (_, i) => i + 1),
    `every one of ${n} publishes acked, in order, none dropped`
  )
  await app.live.publish('opportunities.X', recorded[0])
  t.equal(last('opportunities.X').data.models.scorer.version, '2', 'the new version serves')
  t.match(figures(), {
    serving: '2',
    refused: 0,
    versions: [
      { version: '2', state: 'serving' },
      { version: '1', state: 'standby' }
    ]
  })
  t.ok(
    lines.some((l) => l.msg === 'model scorer: version 2 serves'),
    'one line says so'
  )
  t.notOk('modelStatus' in last('opportunities.X').data)
  t.equal(app.liveHooks.figures().find((f) => f.name === 'scorer')!.errors, 0)
})

t.test('every event of a reload is scored by one version or the other, never neither', async (t) => {
  const { dir, version } = modelsDir(t)
  const { app, scan } = await appWith(t, { models: dir })
  const seen: { version: string; status: unknown }[] = []
  app.liveHooks.onPublish({ name: 'watch', topics: 'opportunities.>' }, (_topic, data: any) => {
    seen.push({ version: data.models?.scorer?.version, status: data.modelStatus })
    return undefined
  })
  const publishing = Promise.all(Array.from({ length: 200 }, (_, i) => app.live.publish('opportunities.X', { ...recorded[i % recorded.length], id: `o${i}` })))
  version('2', scorerCard, otherWeights)
  await Promise.all([publishing, scan()])
  for (let i = 0; i < 100; i++) await app.live.publish('opportunities.X', { ...recorded[0], id: `p${i}` })
  t.equal(seen.length, 300)
  t.same(
    seen.filter((s) => s.status !== undefined || (s.version !== '1' && s.version !== '2')),
    [],
    'no event unscored'
  )
  t.equal(seen[seen.length - 1].version, '2')
})

t.test('a corrupt or incompatible version is refused with one log line and a counter; the one before keeps serving', async (t) => {
  const { dir, version } = modelsDir(t)
  const { app, last, figures, scan, lines } = await appWith(t, { models: dir })
  const bad = join(t.testdirName, 'bad.onnx')
  writeFileSync(bad, 'this is not an ONNX model')
  version('2', scorerCard, bad)
  version('3', { ...scorerCard, features: ['netBps', 'maxTickAgeMs', 'size'] }) // the model takes five
  version('4', { ...scorerCard, output: 'fill' }) // the model's output field cannot change under it
  version('5', { ...scorerCard, featurs: [] }, null)
  mkdirSync(join(dir, 'scorer', 'latest')) // not a version number: ignored
  mkdirSync(join(dir, 'scorer', '.6-partial'))
  await scan()
  await scan() // a second pass over unchanged folders logs and counts nothing again
  const f = figures()
  t.match(f, { serving: '1', refused: 4 })
  t.same(
    f.versions.map((v) => [v.version, v.state]),
    [
      ['5', 'refused'],
      ['4', 'refused'],
      ['3', 'refused'],
      ['2', 'refused'],
      ['1', 'serving']
    ]
  )
  t.match(f.versions[3].reason, /protobuf|parse|load|model/i, 'bad bytes')
  t.match(f.versions[2].reason, /shape \[N, 5\]; the card names 3 features/, 'wrong input shape')
  t.match(f.versions[1].reason, /"output" is "fill" where the model's first version has "score"/)
  t.match(f.versions[0].reason, /unknown field "featurs"/)
  const refusals = lines.filter((l) => l.level === 40 && /refused/.test(l.msg))
  t.equal(refusals.length, 4, 'one line per refused version')
  t.match(refusals[0].msg, /^model scorer version 2 refused: .*; version 1 keeps serving$/)
  await app.live.publish('opportunities.X', recorded[1])
  t.ok(Math.abs(last('opportunities.X').data.score - reference.scores[1]) < 1e-5, 'version 1 still scores')
  // The broken version fixed in place is loaded on the next pass.
  rmSync(join(dir, 'scorer', '3'), { recursive: true })
  version('3', scorerCard, otherWeights)
  await scan()
  t.match(figures(), { serving: '3', refused: 4 })
})

t.test('the card picks the output tensor and the value in it; a model without them is refused', async (t) => {
  const { dir, version } = modelsDir(t)
  version('2', { ...scorerCard, outputTensor: 'probabilities' })
  version('3', { ...scorerCard, outputIndex: 1 })
  version('4', { ...scorerCard, outputTensor: 'score', outputIndex: 0 })
  const { figures } = await appWith(t, { models: dir })
  const f = figures()
  t.equal(f.serving, '4', 'the same output named explicitly')
  t.match(f.versions[1], { version: '3', state: 'refused', reason: 'output "score" has no number at index 1' })
  t.match(f.versions[2], { version: '2', state: 'refused', reason: 'the model has no output "probabilities" (it has score)' })
})

t.test('a shadow scores beside the serving version and never changes an event', async (t) => {
  const { dir, version } = modelsDir(t)
  version('2', { ...scorerCard, mode: 'shadow' }, otherWeights)
  const { app, last, figures } = await appWith(t, { models: dir })
  for (let i = 0; i < recorded.length; i++) {
    await app.live.publish('opportunities.X', recorded[i])
    const data = last('opportunities.X').data
    if (Math.abs(data.score - reference.scores[i]) > 1e-5) t.fail(`event ${i} changed by the shadow`)
    t.same(data.models, { scorer: { version: '1', arm: 'serving' } })
  }
  // The shadow's answers settle beside the events; wait for the last one.
  while (figures().versions[0].shadow!.compared < recorded.length) await new Promise((r) => setTimeout(r, 5))
  const shadow = figures().versions[0]
  t.match(shadow, { version: '2', state: 'shadow', mode: 'shadow', calls: recorded.length, errors: 0 })
  t.ok(
    shadow.shadow!.meanAbsDiff > 0.01 && shadow.shadow!.maxAbsDiff >= shadow.shadow!.meanAbsDiff,
    `other weights, other scores: ${JSON.stringify(shadow.shadow)}`
  )
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, `realtime_model_shadow_compared_total{model="scorer",version="2",arm="shadow"} ${recorded.length}`)
  t.match(metrics, `realtime_model_calls_total{model="scorer",version="1",arm="serving"} ${recorded.length}`)
  t.match(metrics, `realtime_model_shadow_abs_diff{model="scorer",version="2",arm="shadow",stat="mean"} ${shadow.shadow!.meanAbsDiff}`)
  // Promoting it: the same folder's card without "mode".
  writeFileSync(join(dir, 'scorer', '2', 'model.json'), JSON.stringify(scorerCard))
  await Promise.all(app.liveModels.map((d) => d.scan()))
  t.match(figures(), { serving: '2', shadow: null })
  // Rolling back: version 2's folder goes, version 1 is loaded again before 2 stops serving.
  const seen: unknown[] = []
  app.liveHooks.onPublish({ name: 'watch', topics: 'opportunities.>' }, (_topic, data: any) => {
    seen.push(data.modelStatus ?? data.models.scorer.version)
    return undefined
  })
  rmSync(join(dir, 'scorer', '2'), { recursive: true })
  await Promise.all([
    Promise.all(app.liveModels.map((d) => d.scan())),
    ...Array.from({ length: 100 }, (_, i) => app.live.publish('opportunities.X', { ...recorded[0], id: `r${i}` }))
  ])
  await app.live.publish('opportunities.X', recorded[0])
  t.same(
    seen.filter((s) => s !== '1' && s !== '2'),
    [],
    'every event scored during the rollback'
  )
  t.equal(seen.at(-1), '1')
  t.match(figures(), { serving: '1', versions: [{ version: '1', state: 'serving' }] })
})

t.test('A/B: traffic sends its share of opportunities to the candidate by a hash of the id, one id on one arm', async (t) => {
  const { dir, version } = modelsDir(t)
  version('2', { ...scorerCard, traffic: 0.25 }, otherWeights)
  const { app, last, figures } = await appWith(t, { models: dir })
  const arms = new Map<string, string>()
  let candidate = 0
  for (let i = 0; i < 2000; i++) {
    const id = `BTC-USD:${i}`
    await app.live.publish('opportunities.X', { ...recorded[i % recorded.length], id })
    const m = last('opportunities.X').data.models.scorer
    t.equal(m.version, m.arm === 'candidate' ? '2' : '1')
    arms.set(id, m.arm)
    if (m.arm === 'candidate') candidate++
    t.equal(m.arm === 'candidate', armShare('scorer', id) < 0.25)
  }
  t.ok(Math.abs(candidate / 2000 - 0.25) < 0.03, `${candidate} of 2000 on the candidate`)
  for (let i = 0; i < 2000; i += 7) {
    const id = `BTC-USD:${i}`
    await app.live.publish('opportunities.X', { ...recorded[0], id, status: 'update' })
    if (last('opportunities.X').data.models.scorer.arm !== arms.get(id)) t.fail(`${id} changed arm`)
  }
  t.match(figures(), { serving: '1', candidate: '2' })
})

t.test('an event a model could not score says why; fail closed refuses it instead', async (t) => {
  const { dir, version } = modelsDir(t)
  version('1', { ...scorerCard, topics: 'strict.>', failMode: 'closed' }, undefined, 'strict')
  const { app, last, figures } = await appWith(t, { models: dir })
  const { netBps: _, ...noNet } = recorded[0]
  await app.live.publish('opportunities.X', { ...noNet, id: 'a' })
  t.same(last('opportunities.X').data.modelStatus, { scorer: 'missing-feature' })
  t.notOk('score' in last('opportunities.X').data)
  await app.live.publish('opportunities.X', { ...recorded[0], netBps: 'many' })
  t.same(last('opportunities.X').data.modelStatus, { scorer: 'missing-feature' }, 'a non-numeric feature is missing too')
  t.equal(figures().versions[0].missingFeatures, 2)
  await t.rejects(
    app.live.publish('strict.X', noNet),
    new LiveError('unavailable', 'model "strict" could not score the event (missing-feature) and fails closed')
  )
  t.equal(app.liveHooks.figures().find((f) => f.name === 'scorer')!.breaker, 'closed', "bad data is the publisher's, not the model's: no breaker")
})

t.test('onnxModel({...}) runs one model file for an embedding app', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, hookBudget: 60_000 })
  await app.register(
    onnxModel({
      name: 'fill',
      file: join(SHIPPED_MODELS, 'scorer/1/model.onnx'),
      topics: 'opportunities.>',
      features: scorerCard.features,
      output: 'fillProbability'
    })
  )
  await app.register(onnxModel({ name: 'other', file: otherWeights, topics: 'opportunities.>', features: scorerCard.features, output: 'other' }))
  await app.ready()
  t.teardown(() => app.close())
  await app.live.publish('opportunities.X', recorded[2])
  const data = (app.liveBus as MemoryBus).last('opportunities.X')!.data as Record<string, any>
  t.ok(Math.abs(data.fillProbability - reference.scores[2]) < 1e-5)
  t.ok(typeof data.other === 'number' && data.other !== data.fillProbability, 'each model writes its own output')
  t.same(data.models, { fill: { version: '1', arm: 'serving' }, other: { version: '1', arm: 'serving' } }, 'and its own entry in models')
  await t.rejects(
    buildApp({ arbitrage: false }).then(async (a) => {
      t.teardown(() => a.close())
      await a.register(onnxModel({ name: 'bad', file: join(root, 'package.json'), topics: 'x', features: ['a'], output: 'y' }))
      await a.ready()
    }),
    /onnxModel bad: /
  )
})

t.test('MODELS that is not a directory stops start-up naming the variable', async (t) => {
  await t.rejects(
    buildApp({ arbitrage: false, models: join(root, 'package.json') }).then((a) => a.close()),
    /MODELS: ".*package.json" is not a directory/
  )
})

t.test('GET /hooks lists each model with its versions', async (t) => {
  const { dir, version } = modelsDir(t)
  version('2', { ...scorerCard, mode: 'shadow' }, otherWeights)
  const { app } = await appWith(t, { models: dir })
  await app.live.publish('opportunities.X', recorded[0])
  const hooks = (await app.inject({ url: '/hooks' })).json() as any[]
  const scorer = hooks.find((h) => h.name === 'scorer')
  t.match(scorer, {
    stage: 'publish',
    calls: 1,
    model: {
      name: 'scorer',
      serving: '1',
      shadow: '2',
      versions: [
        { version: '2', state: 'shadow' },
        { version: '1', state: 'serving', calls: 1 }
      ]
    }
  })
})
