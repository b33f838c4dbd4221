// pm2.config.json's ws-server app under a real PM2 daemon (a PM2_HOME of its own): the custom
// metrics appear in `pm2 jlist` (what `pm2 monit` reads) and in `pm2 show ws-server`.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LiveClient } from '../src/client/index.ts'
import { freePort, root, sleep, spawnClean, until } from './helper.ts'

const built = existsSync(join(root, 'dist/server.js'))
if (!built) t.fail('dist/server.js is missing: npm test builds it first (pretest)')

t.test('custom metrics under PM2', { skip: !built, timeout: 120_000 }, async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'live-pm2-'))
  const port = await freePort()
  // The file as shipped; the port and the rest come from the environment, as the README says.
  const env = { PM2_HOME: home, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', HISTORY_DIR: join(home, 'data') }
  const pm2 = (...args: string[]) => spawnClean(process.execPath, [join(root, 'node_modules/pm2/bin/pm2'), ...args], env).done
  t.teardown(() => pm2('kill'))

  const started = await pm2('start', join(root, 'pm2.config.json'), '--only', 'ws-server')
  t.equal(started.code, 0, started.stderr)
  const url = `ws://127.0.0.1:${port}/ws/live`
  const subscriber = new LiveClient({ url })
  const publisher = new LiveClient({ url })
  t.teardown(() => {
    subscriber.close()
    publisher.close()
  })
  let received = 0
  await subscriber.subscribe('pm2.test', () => {
    received++
  })
  await publisher.ready()

  // Traffic while PM2 samples: 200 publishes/s, each delivered to one subscriber.
  let publishing = true
  const traffic = (async () => {
    while (publishing) {
      for (let i = 0; i < 20; i++) publisher.publish('pm2.test', { i }).catch(() => {})
      await sleep(100)
    }
  })()
  type Monitor = Record<string, { value: number | string; unit?: string }>
  let monitor: Monitor = {}
  await until(
    async () => {
      const list = JSON.parse((await pm2('jlist')).stdout) as { name: string; pm2_env: { axm_monitor?: Monitor } }[]
      monitor = list.find((p) => p.name === 'ws-server')?.pm2_env.axm_monitor ?? {}
      return Number(monitor['Messages out/s']?.value) > 0 && Number(monitor['Publish to send p99']?.value) > 0
    },
    'PM2 shows live figures',
    60_000
  )
  publishing = false
  await traffic

  t.equal(Number(monitor.Connections.value), 2, 'connections')
  t.equal(Number(monitor.Subscriptions.value), 1, 'subscriptions')
  t.ok(Number(monitor['Messages in/s'].value) > 0, `messages in/s: ${monitor['Messages in/s'].value}`)
  t.ok(Number(monitor['Messages out/s'].value) > 0, `messages out/s: ${monitor['Messages out/s'].value}`)
  t.equal(monitor['Publish to send p99'].unit, 'ms')
  t.ok(received > 0, 'the subscriber got events')

  t.equal(readFileSync(join(home, 'logs/ws-server-error.log'), 'utf8'), '', 'a normal start leaves the error log empty')

  const show = await pm2('show', 'ws-server')
  t.match(show.stdout, /Code metrics value/)
  for (const name of ['Connections', 'Messages in/s', 'Messages out/s', 'Publish to send p99', 'Subscriptions']) {
    t.match(show.stdout, new RegExp(`│ ${name.replace('/', '\\/')}\\s`), `pm2 show lists ${name}`)
  }
})
