// The realtime CLI as a user runs it, against a real server.
import t from 'tap'
import { freePort, spawnClean, startServer, until } from './helper.ts'

const cli = (args: string[], env: Record<string, string> = {}) => spawnClean(process.execPath, ['--import=tsx', 'src/cli.ts', ...args], env)

t.test('pub, sub (JSON lines and readable) and ping', async (t) => {
  const { app, url } = await startServer(t)
  const endpoint = `${url}/ws/live`
  await app.live.publish('px.a', { v: 0 })

  const json = cli(['sub', 'px.*', '--json', '--count', '3', '--url', endpoint])
  const readable = cli(['sub', 'px.a', '--count', '2', '--codec', 'json'], { REALTIME_URL: endpoint })
  await until(() => app.live.stats.subscriptions === 2, 'both subscribed')

  const published = await cli(['pub', 'px.a', '{"v":1}', '--url', endpoint]).done
  t.equal(published.code, 0, published.stderr)
  t.match(published.stdout, /^px\.a #2 \(epoch [0-9a-f]+\)\n$/)
  t.equal((await cli(['pub', 'px.b', '{"v":2}', '--json', '--url', endpoint]).done).code, 0)

  const lines = (await json.done).stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.match(lines, [
    { type: 'snapshot', topic: 'px.a', seq: 1, data: { v: 0 } },
    { type: 'event', topic: 'px.a', seq: 2, data: { v: 1 } },
    { type: 'event', topic: 'px.b', seq: 1, data: { v: 2 } }
  ])
  const text = (await readable.done).stdout.trim().split('\n')
  t.match(text[0], /^\d\d:\d\d:\d\d\.\d{3} px\.a #1 \(snapshot\) \{"v":0\}$/)
  t.match(text[1], /^\d\d:\d\d:\d\d\.\d{3} px\.a #2 \{"v":1\}$/)

  const probes = await cli(['ping', '--count', '20', '--interval', '0', '--url', endpoint]).done
  t.equal(probes.code, 0, probes.stderr)
  t.match(probes.stdout, /^20 probes to ws:\/\/127\.0\.0\.1:\d+\/ws\/live: p50 \d+\.\d{3} ms, p90 \d+\.\d{3} ms, p99 \d+\.\d{3} ms, max \d+\.\d{3} ms\n$/)
  const asJson = JSON.parse((await cli(['ping', '--count', '5', '--json', '--url', endpoint]).done).stdout)
  t.equal(asJson.probes, 5)
  t.ok(asJson.p50 <= asJson.p99 && asJson.p99 <= asJson.max, 'percentiles are ordered')
})

t.test('sub --filter: only the events that pass; a bad filter is exit 1 naming its position', async (t) => {
  const { app, url } = await startServer(t)
  const endpoint = `${url}/ws/live`
  const sub = cli(['sub', 'fx.*', '--json', '--count', '2', '--no-snapshot', '--filter', 'v >= 10 and tag in ["a","b"]', '--url', endpoint])
  await until(() => app.live.stats.subscriptions === 1, 'subscribed')
  for (const data of [
    { v: 11, tag: 'c' },
    { v: 12, tag: 'a' },
    { v: 1, tag: 'a' },
    { v: 13, tag: 'b' }
  ])
    await app.live.publish('fx.x', data)
  const got = (await sub.done).stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.match(got, [
    { seq: 2, data: { v: 12 } },
    { seq: 4, data: { v: 13 } }
  ])
  t.match(await cli(['sub', 'fx.*', '--filter', 'v >', '--url', endpoint]).done, { code: 1, stderr: /bad_request: filter: expected a number.*at position 3/ })
  // --delta: deltas on the wire, whole events printed.
  const deltas = cli(['sub', 'fy.*', '--json', '--count', '3', '--no-snapshot', '--delta', '--url', endpoint])
  await until(() => app.live.stats.subscriptions === 1, 'subscribed with deltas')
  for (let v = 0; v < 3; v++) await app.live.publish('fy.x', { v, levels: [1, 2, 3, v] })
  const whole = (await deltas.done).stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.match(whole, [
    { seq: 1, data: { v: 0, levels: [1, 2, 3, 0] } },
    { seq: 2, data: { v: 1, levels: [1, 2, 3, 1] } },
    { seq: 3, data: { v: 2 } }
  ])
})

t.test('errors: usage is exit 2, a refused publish exit 1 with its code', async (t) => {
  const { url } = await startServer(t)
  const endpoint = `${url}/ws/live`
  const none = await cli([]).done
  t.equal(none.code, 2)
  t.match(none.stderr, /^realtime: no command\n\nusage: realtime <command>/)
  t.match(await cli(['frobnicate']).done, { code: 2, stderr: /unknown command "frobnicate"/ })
  t.match(await cli(['pub', 'px.a', '{nope', '--url', endpoint]).done, { code: 2, stderr: /data is not JSON: \{nope/ })
  t.match(await cli(['ping', '--count', 'many']).done, { code: 2, stderr: /--count must be a non-negative integer, got "many"/ })
  t.match(await cli(['pub', 'px.*', '{}', '--url', endpoint]).done, { code: 1, stderr: /^realtime: bad_request: .*wildcard/ })
  t.match(await cli(['--help']).done, { code: 0, stdout: /sub <pattern>/ })
  t.match(await cli(['help']).done, { code: 0, stdout: /sub <pattern>[\s\S]*exit codes: 0 done, 1 refused or unreachable/ })
  t.match(await cli(['sub', '--bogus']).done, { code: 2, stderr: /Unknown option '--bogus'[\s\S]*usage: realtime/ })
})

t.test('a server that cannot be reached is exit 1 at once, said once; sub --retry keeps trying', async (t) => {
  const nowhere = `ws://127.0.0.1:${await freePort()}/ws/live`
  for (const args of [['ping'], ['pub', 'px.a', '{}'], ['sub', 'px.a']]) {
    const run = await cli([...args, '--url', nowhere]).done
    t.equal(run.code, 1, `${args[0]} exits 1`)
    t.equal(run.stderr.match(/cannot reach/g)?.length, 1, `${args[0]}: one line says why: ${run.stderr.trim()}`)
  }
  const retrying = cli(['sub', 'px.a', '--retry', '--url', nowhere])
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(retrying.child.exitCode, null, 'with --retry it is still trying')
  retrying.child.kill('SIGINT')
  await retrying.done
})

t.test('the feed publisher: --help, usage errors without a stack trace, an unreachable server', async (t) => {
  const publisher = (args: string[]) => spawnClean(process.execPath, ['--import=tsx', 'src/market/publisher.ts', ...args]).done
  t.match(await publisher(['--help']), { code: 0, stdout: /^usage: node dist\/market\/publisher\.js/ })
  for (const args of [['--bogus'], ['--rate', 'fast'], ['--symbols', '0']]) {
    const run = await publisher(args)
    t.equal(run.code, 2, args.join(' '))
    t.match(run.stderr, /^publisher: .*\n\nusage: /)
    t.notMatch(run.stderr, /\n\s+at /, 'no stack trace')
  }
  const unreachable = await publisher(['--url', `ws://127.0.0.1:${await freePort()}/ws/live`])
  t.match(unreachable, { code: 1, stderr: /^publisher: cannot reach ws:\/\/127\.0\.0\.1:\d+\/ws\/live/ })
  t.notMatch(unreachable.stderr, /\n\s+at /, 'no stack trace')
})

t.test('bench passes its workloads to the benchmark, which refuses unknown ones', async (t) => {
  const run = await cli(['bench', 'nonsense']).done
  t.equal(run.code, 2)
  t.match(
    run.stderr,
    /BENCH_ONLY: unknown workload nonsense; expected some of floor, probe, fanout, filters, deltas, idle, memory, hooks, arbitrage, books, backplane/
  )
})
