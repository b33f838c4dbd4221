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
  await until(() => app.live.figures.subscriptions === 2, 'both subscribed')

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
  await until(() => app.live.figures.subscriptions === 1, 'subscribed')
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
  await until(() => app.live.figures.subscriptions === 1, 'subscribed with deltas')
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
  await new Promise((resolve) => setTimeout(resolve, 1500)) // a window in which it must not exit
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

t.test(
  'sub prints what a hostile server sends with its control characters escaped: no title, clear screen or clipboard write reaches the terminal',
  async (t) => {
    const { WebSocketServer } = await import('ws')
    const { encode, decode } = await import('@msgpack/msgpack')
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (offered) => [...offered][0] ?? false })
    t.teardown(() => new Promise((r) => wss.close(r)))
    await new Promise((r) => wss.once('listening', r))
    const osc52 = '\u001b]52;c;ZWNobyBwd25lZA==\u0007' // OSC 52: write "echo pwned" to the clipboard
    wss.on('connection', (socket) =>
      socket.on('message', (data: Buffer) => {
        const frame = decode(data) as { id: unknown }
        socket.send(encode({ type: 'ack', id: frame.id, topics: ['h.>'] }))
        socket.send(encode({ type: 'error', code: 'internal', message: `\u001b]0;owned title\u0007${osc52}` }))
        socket.send(
          encode({ type: 'event', topic: `h.z\u001b[2J\u009b2J`, seq: 1, epoch: 'e', ts: 0, data: { text: `${osc52}\u009d0;t\u009c\u007f\u202egnp.exe` } })
        )
        socket.send(encode({ type: 'event', topic: 'h.z', seq: 2, epoch: 'e', ts: 0, data: 'fine' }))
      })
    )
    const url = `ws://127.0.0.1:${(wss.address() as import('node:net').AddressInfo).port}`
    for (const json of [false, true]) {
      const run = await cli(['sub', 'h.>', '--count', '2', '--url', url, ...(json ? ['--json'] : [])]).done
      t.equal(run.code, 0, run.stderr)
      for (const [name, text] of [
        ['stdout', run.stdout],
        ['stderr', run.stderr]
      ]) {
        // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for them is the point
        t.notMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/, `${json ? '--json' : 'readable'} ${name}: no control character but line ends`)
      }
      t.match(run.stdout, '\\u001b]52;c;ZWNobyBwd25lZA==\\u0007', 'the clipboard sequence shows as text')
      t.match(run.stdout, 'h.z\\u001b[2J\\u009b2J', 'so does the screen clear in a topic')
      t.match(run.stderr, 'realtime: \\u001b]0;owned title\\u0007', 'and the title in an error message')
      t.match(run.stdout, '\\u202egnp.exe', 'a right-to-left override shows as text too')
      if (json)
        t.same(
          JSON.parse(run.stdout.split('\n')[0]).data,
          { text: `${osc52}\u009d0;t\u009c\u007f\u202egnp.exe` },
          '--json lines stay JSON meaning what was sent'
        )
    }
  }
)
