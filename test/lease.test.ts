// One engine per deployment: several server processes on one real Redis, one of them runs the
// arbitrage engine (the holder of its lease); killed, another takes over, ids never collide.
import t from 'tap'
import { Redis } from 'ioredis'
import { Lease } from '../src/core/lease.ts'
import { startMockExchange } from './mock-exchange.ts'
import { startProcess, startServer, TestClient, until } from './helper.ts'
import { redisUnavailable, startRedis } from './redis-helper.ts'

const skip = redisUnavailable() ?? false

t.test('a lease: one holder, a generation per holder, taken over once the holder stops renewing', { skip }, async (t) => {
  const redis = await startRedis(t)
  const connections = [new Redis(redis.url), new Redis(redis.url)]
  t.teardown(() => {
    for (const c of connections) c.disconnect()
  })
  const heard: string[] = []
  // The processes' clock is the test's; Redis's is its own: the lease is made to run out there below.
  let clock = 1_000_000
  const options = { ttlMs: 10_000, intervalMs: 60_000, now: () => clock } // rounds run by hand below
  const a = new Lease(connections[0], 'test:lease:x', options, (g) => heard.push(`a:${g}`))
  const b = new Lease(connections[1], 'test:lease:x', options, (g) => heard.push(`b:${g}`))
  await a.tick()
  await b.tick()
  t.same([a.held, b.held, a.generation, heard], [true, false, 1, ['a:1']], 'the first to ask holds it')
  await a.tick()
  t.same([a.generation, heard], [1, ['a:1']], 'a renewal keeps the generation')
  // The holder stops renewing (a process frozen or cut off): its lease runs out in Redis (made to
  // here), and by the holder's own clock it stops counting itself the holder.
  connections[0].disconnect()
  await redis.admin.pexpire('test:lease:x', 1)
  await until(async () => (await redis.admin.exists('test:lease:x')) === 0, 'the lease ran out in Redis')
  await b.tick()
  t.same([b.held, b.generation], [true, 2], 'the next to ask takes it, with the next generation')
  t.equal(a.held, true, 'the old holder still counts itself the holder until its own clock says otherwise')
  clock += 10_000
  t.equal(a.held, false, 'by its clock the lease ran out: it publishes nothing more')
  await a.tick()
  t.same(heard, ['a:1', 'b:2', 'a:null'], 'and it is told it lost it')
  await b.stop()
  t.equal(await redis.admin.exists('test:lease:x'), 0, 'stopping gives it back at once')
})

interface Node {
  server: ReturnType<typeof startProcess>
  client: TestClient
}

t.test(
  'three processes on one Redis: one engine, one open per dislocation; its holder killed, another takes over with new ids',
  { skip, timeout: 120_000 },
  async (t) => {
    const redis = await startRedis(t)
    const nodes: Node[] = []
    for (let i = 0; i < 3; i++) {
      // Quotes count for a minute: a loaded machine slow to pass them on never makes them stale here.
      // And a 10 s lease: a holder starved that long by a loaded machine would lose it mid-dislocation.
      const server = startProcess({ BUS: 'redis', REDIS_URL: redis.url, MAX_TICK_AGE_MS: '60000', LEASE_TTL: '10000' })
      t.teardown(() => server.child.kill('SIGKILL'))
      const client = await TestClient.open(`ws://127.0.0.1:${await server.port}`)
      t.teardown(() => client.close())
      nodes.push({ server, client })
    }
    let id = 0
    const engines = async () =>
      Promise.all(
        nodes.map(async (n) =>
          n.server.child.exitCode === null && n.server.child.signalCode === null
            ? (await n.client.request({ type: 'request', id: ++id, method: 'arbitrage' })).result
            : null
        )
      )
    const holder = async () => {
      let found = -1
      await until(
        async () => {
          const running = (await engines()).map((e) => e?.running === true)
          found = running.indexOf(true)
          return running.filter(Boolean).length === 1
        },
        'exactly one process runs the engine',
        60_000
      )
      return found
    }

    // The test's clients go through a fourth process without an engine, which outlives the kills.
    const access = startProcess({ BUS: 'redis', REDIS_URL: redis.url, ARBITRAGE: 'false' })
    t.teardown(() => access.child.kill('SIGKILL'))
    // Listening comes before the backplane is connected: until /ready says so, a subscribe is
    // answered `unavailable` ("the bus is unavailable"), as it was on a loaded machine.
    const ready = `http://127.0.0.1:${await access.port}/ready`
    await until(async () => (await fetch(ready)).status === 200, 'the access process is ready', 60_000)
    const watcher = await TestClient.open(`ws://127.0.0.1:${await access.port}`)
    const publisher = await TestClient.open(`ws://127.0.0.1:${await access.port}`)
    t.teardown(() => {
      watcher.close()
      publisher.close()
    })
    t.match(await watcher.request({ type: 'subscribe', id: 'w', topic: 'opportunities.>', snapshot: false }), { type: 'ack' })
    /** One dislocation on `symbol` (b bids over a's ask), then its end: the open and close every engine would publish. */
    const dislocation = async (symbol: string) => {
      const now = Date.now()
      const quote = (exchange: string, bid: number, ask: number) =>
        publisher.request({ type: 'publish', id: ++id, topic: `ticker.${exchange}.${symbol}`, data: { bid, ask, bidSize: 1, askSize: 1, ts: now } })
      await quote('a', 99, 100)
      await quote('b', 101, 102)
      const open = await watcher.next(20_000)
      await quote('b', 99.5, 100.5)
      const close = await watcher.next(20_000)
      return { open, close }
    }

    const first = await holder()
    const one = await dislocation('X-USD')
    t.match(one, {
      open: { topic: 'opportunities.X-USD', seq: 1, data: { status: 'open' } },
      close: { seq: 2, data: { status: 'closed', id: one.open.data.id } }
    })
    const counters = await engines()
    t.same(
      counters.map((c, i) => (i === first ? c.ticks > 0 : c.ticks)),
      counters.map((_, i) => (i === first ? true : 0)),
      'only the holder fed its engine: the others never saw a tick, so never opened anything'
    )
    const generation = Number(/:(\d+)\./.exec(one.open.data.id)![1])

    // The holder dies without giving the lease back.
    nodes[first].server.child.kill('SIGKILL')
    await nodes[first].server.exited
    const second = await holder()
    t.not(second, first, 'another process took over')
    const two = await dislocation('Y-USD')
    t.match(two, { open: { seq: 1, data: { status: 'open' } }, close: { seq: 2, data: { status: 'closed' } } })
    const next = Number(/:(\d+)\./.exec(two.open.data.id)![1])
    t.ok(next > generation, `the new engine's ids carry a later generation (${one.open.data.id}, then ${two.open.data.id})`)
    t.not(two.open.data.id, one.open.data.id)

    // Two left: the same again, down to the last one.
    nodes[second].server.child.kill('SIGKILL')
    await nodes[second].server.exited
    const third = await holder()
    const three = await dislocation('Z-USD')
    t.match(three, { open: { seq: 1, data: { status: 'open' } }, close: { seq: 2 } })
    t.ok(Number(/:(\d+)\./.exec(three.open.data.id)![1]) > next, `and again (${three.open.data.id}, from process ${third})`)
  }
)

t.test('FEEDS in two processes on one Redis: each venue connects from one of them; closed, the other takes it over', { skip, timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const options = { bus: 'redis' as const, redisUrl: redis.url, arbitrage: false, feeds: 'kraken:BTC-USD;okx:BTC-USDT', feedsEndpoints: mock.endpoints }
  const apps = [(await startServer(t, options)).app, (await startServer(t, options)).app]
  const venues = (app: (typeof apps)[number]) => app.liveFeeds.running.flatMap((f) => f.feeds.map((v) => v.exchange)).sort()
  await until(() => venues(apps[0]).length + venues(apps[1]).length === 2, 'both venues started', 60_000)
  t.same([...venues(apps[0]), ...venues(apps[1])].sort(), ['kraken', 'okx'], 'each venue runs once in the deployment')
  const holder = venues(apps[0]).includes('kraken') ? 0 : 1
  await apps[holder].close()
  // The closed process may have held okx too: each venue's lease is taken over on its own renewal
  // tick, so wait for both rather than assume they move together.
  await until(() => venues(apps[1 - holder]).length === 2, 'the other process took every venue over', 60_000)
  t.same(venues(apps[1 - holder]), ['kraken', 'okx'])
})
