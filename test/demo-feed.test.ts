// The synthetic feed as people run it: in process with DEMO_FEED, and as a standalone publisher.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startServer, TestClient } from './helper.ts'

const root = fileURLToPath(new URL('..', import.meta.url))

t.test('DEMO_FEED publishes ticks in process and opportunities follow', async (t) => {
  const { url } = await startServer(t, { arbitrage: true, demoFeed: true, demoFeedRate: 3000, demoFeedSeed: 3 })
  const c = await TestClient.open(url)
  await c.request({ type: 'subscribe', topics: ['opportunities.>', 'ticker.binance.BTC-USDT'], snapshot: false })
  const seen = new Set<string>()
  while (!seen.has('ticker') || !seen.has('open')) {
    const e = await c.next(10_000)
    seen.add(e.topic.startsWith('ticker.') ? 'ticker' : e.data.status)
    if (e.topic.startsWith('opportunities.')) t.match(e.data, { score: Number, models: { scorer: { version: '1' } } })
  }
  t.pass('ticks and an opened opportunity arrived')
  c.close()
})

for (const mode of ['ws', 'http'] as const) {
  t.test(`the standalone publisher over ${mode}`, async (t) => {
    // Generous tick age: on a loaded CI machine the publisher's ticks may arrive late; staleness is tested elsewhere.
    const { url, http } = await startServer(t, { arbitrage: true, maxTickAgeMs: 30_000 })
    const watcher = await TestClient.open(url)
    await watcher.request({ type: 'subscribe', topic: 'opportunities.>' })
    const target = mode === 'ws' ? ['--url', `${url}/ws/live`] : ['--http', http]
    const child = spawn(process.execPath, ['--import=tsx', 'src/market/publisher.ts', ...target, '--rate', '2000', '--seconds', '3', '--seed', '5'], {
      cwd: root
    })
    let out = ''
    child.stdout.on('data', (c) => {
      out += c
    })
    // The run is bounded (3 s of ticks); on a loaded machine starting it alone can take seconds.
    const code = await new Promise((resolve) => child.once('exit', resolve))
    t.equal(code, 0)
    const first = await watcher.next(10_000)
    t.match(first, { topic: /^opportunities\./, data: { status: 'open' } })
    const last = JSON.parse(out.trim().split('\n').pop()!)
    t.ok(last.sent >= 5000, `sent ${last.sent}`)
    t.equal(last.refused, 0)
    t.equal(last.acked, last.sent, 'every tick acknowledged')
    watcher.close()
  })
}
