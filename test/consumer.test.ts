// The package as another team uses it: `npm pack`, installed into a scratch project, the README's
// embedding, hooks and SDK examples compiled exactly as printed under a strict tsconfig (nodenext,
// and bundler resolution), then run against each other. A README example that does not compile or
// does not work fails here.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { root, TestClient } from './helper.ts'

const readme = readFileSync(join(root, 'README.md'), 'utf8')
/** The budget the hooks example runs with here: no loaded machine's stall reaches it. */
const TEST_BUDGET_MS = 60_000

/** The first ```ts block after `marker` in the README, as printed. */
function example(marker: string): string {
  const at = readme.indexOf(marker)
  if (at === -1) throw new Error(`README has no "${marker}"`)
  const start = readme.indexOf('```ts\n', at) + 6
  return readme.slice(start, readme.indexOf('\n```', start) + 1)
}

/** Runs a command to its end without tap's loader in NODE_OPTIONS; rejects on a non-zero exit. */
function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('env', ['-u', 'NODE_OPTIONS', command, ...args], { cwd, env: { ...process.env, ...env } })
    let out = ''
    child.stdout.on('data', (c) => {
      out += c
    })
    child.stderr.on('data', (c) => {
      out += c
    })
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${out}`))))
  })
}

/** Starts a compiled example that listens (PORT=0) and resolves with its port once it logs it. */
function listening(t: Tap, file: string, cwd: string, env: Record<string, string>): Promise<number> {
  const child = spawn(process.execPath, [file], { cwd, env: { ...process.env, NODE_OPTIONS: '', PORT: '0', ...env } })
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  let out = ''
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.stderr.on('data', (c) => {
      out += c
    })
    child.once('exit', (code) => reject(new Error(`${file} exited ${code}: ${out}`)))
  })
}

type Tap = { teardown(fn: () => unknown): void }

const strict = { strict: true, target: 'es2022', lib: ['es2023', 'dom'], types: ['node'], noEmitOnError: true }

t.test('the packed package installs, and the README examples compile and run', { timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'realtime-consumer-'))
  const packed = (await run('npm', ['pack', '--silent', '--pack-destination', work], root)).trim().split('\n').at(-1)!
  const typesNode = JSON.parse(readFileSync(join(root, 'node_modules/@types/node/package.json'), 'utf8')).version
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, packed), `@types/node@${typesNode}`], work)

  const files = {
    'embed.ts': example('## Embedding in another Fastify app'),
    'hooks.ts': example('An embedding app with its own async model'),
    'sdk.ts': example('### TypeScript SDK')
  }
  for (const [name, code] of Object.entries(files)) writeFileSync(join(work, name), code)
  // Every import of the examples resolves through the package's exports, with its .d.ts files.
  writeFileSync(
    join(work, 'tsconfig.nodenext.json'),
    JSON.stringify({ compilerOptions: { ...strict, module: 'nodenext', moduleResolution: 'nodenext', outDir: 'out' }, files: Object.keys(files) })
  )
  writeFileSync(
    join(work, 'tsconfig.bundler.json'),
    JSON.stringify({ compilerOptions: { ...strict, module: 'esnext', moduleResolution: 'bundler', noEmit: true }, files: Object.keys(files) })
  )
  const tsc = join(root, 'node_modules/.bin/tsc')
  for (const mode of ['nodenext', 'bundler']) {
    const out = await run(tsc, ['-p', `tsconfig.${mode}.json`], work).then(
      () => 'compiled',
      (err: Error) => err.message
    )
    t.equal(out, 'compiled', `${mode}: the README examples compile against the installed package`)
  }
  // Only the package's entry imported, compiled alone (another file importing realtime/hooks would
  // bring the type in): registering the live plugin creates app.liveHooks, and its type comes along.
  writeFileSync(
    join(work, 'live-hooks.ts'),
    [
      "import Fastify from 'fastify'",
      "import live from 'realtime'",
      'const app = Fastify()',
      'await app.register(live)',
      "app.liveHooks.onPublish({ name: 'audit', topics: 'ticker.>' }, (topic) => (topic.length > 200 ? null : undefined))",
      'await app.close()',
      ''
    ].join('\n')
  )
  writeFileSync(
    join(work, 'tsconfig.entry.json'),
    JSON.stringify({ compilerOptions: { ...strict, module: 'nodenext', moduleResolution: 'nodenext', noEmit: true }, files: ['live-hooks.ts'] })
  )
  const entryOnly = await run(tsc, ['-p', 'tsconfig.entry.json'], work).then(
    () => 'compiled',
    (err: Error) => err.message
  )
  t.equal(entryOnly, 'compiled', 'nodenext, importing only realtime: app.liveHooks is typed')

  // A stand-in for the team's fill model of the hooks example.
  const model: Server = createServer((req, res) => {
    req.resume()
    req.on('end', () => res.setHeader('content-type', 'application/json').end('{"p":0.8}'))
  })
  await new Promise<void>((resolve) => model.listen(0, '127.0.0.1', resolve))
  t.teardown(() => model.close())
  const env = { FILL_MODEL_URL: `http://127.0.0.1:${(model.address() as AddressInfo).port}/fill` }

  // The example's budgets (25 ms for the fill model, 50 ms for predict) are what a deployment
  // would choose, and a loaded machine does not always grant them: the test gives the run its own
  // budget, so the enrichment is checked every time. Overrunning a budget is hooks.test.ts's.
  const printed = readFileSync(join(work, 'out/hooks.js'), 'utf8')
  const budgets = printed.match(/budgetMs: \d+/g) ?? []
  t.ok(budgets.length > 0, `the hooks example sets its budgets (${budgets.join(', ')})`)
  writeFileSync(join(work, 'out/hooks.js'), printed.replace(/budgetMs: \d+/g, `budgetMs: ${TEST_BUDGET_MS}`))
  const hooksPort = await listening(t, 'out/hooks.js', work, env)
  const desk = await TestClient.open(`ws://127.0.0.1:${hooksPort}`)
  t.teardown(() => desk.close())
  t.match(await desk.request({ type: 'subscribe', id: 1, topic: 'opportunities.>' }), { type: 'ack', id: 1 })
  // The desk is publisher and subscriber: its ack and the event carry no order between them.
  desk.send({ type: 'publish', id: 2, topic: 'opportunities.BTC-USDT', data: { netBps: 12, size: 1, status: 'open' } })
  const [ack, event] = (await desk.take(2)).sort((a) => (a.type === 'ack' ? -1 : 1))
  t.match(ack, { type: 'ack', id: 2 })
  t.match(event, { type: 'event', data: { netBps: 12, fillProbability: 0.8 } }, 'the fill model enriched the opportunity')
  t.match(await desk.request({ type: 'request', id: 3, method: 'predict', params: { symbol: 'BTC-USDT', horizonMs: 500 } }), {
    type: 'response',
    id: 3,
    result: { symbol: 'BTC-USDT', horizonMs: 500, up: 0.8 }
  })
  t.match(
    await desk.request({ type: 'publish', id: 4, topic: 'ticker.sketchy.BTC', data: 1 }),
    { type: 'error', id: 4, code: 'forbidden' },
    'the blocklist hook drops it'
  )

  const sdk = await run(process.execPath, ['out/sdk.js'], work, { REALTIME_URL: `ws://127.0.0.1:${hooksPort}/ws/live` })
  t.match(sdk, /round trip [\d.]+ ms/, 'the SDK example ran to its end against the hooks example')

  const embedPort = await listening(t, 'out/embed.js', work, {})
  const watcher = await TestClient.open(`ws://127.0.0.1:${embedPort}`)
  t.teardown(() => watcher.close())
  await watcher.request({ type: 'subscribe', topic: 'orders.created', snapshot: false })
  const order = await fetch(`http://127.0.0.1:${embedPort}/orders`, { method: 'POST', body: '{"qty":3}', headers: { 'content-type': 'application/json' } })
  t.same(await order.json(), { seq: 1 })
  t.match(await watcher.next(), { type: 'event', topic: 'orders.created', seq: 1, data: { qty: 3 } }, 'the embedding app publishes in process')
})
