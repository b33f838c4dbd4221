// HTTP beside the socket: health, ready, config, and POST /publish/:topic.
import t from 'tap'
import { encode } from '@msgpack/msgpack'
import { buildApp } from '../src/app.ts'
import { startServer, TestClient, until } from './helper.ts'

t.test('health, ready and config', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  t.teardown(() => app.close())
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.match(health.json(), { status: 'ok', uptime: Number, connections: 0, version: '0.1.0' })
  const ready = await app.inject('/ready')
  t.same([ready.statusCode, ready.json()], [200, { ready: true }])
  const config = await app.inject('/config')
  t.match(config.json(), { port: 8765, useMsgpack: true, maxPayload: 65536, slowConsumer: 'close' })
  app.live.drain()
  const draining = await app.inject('/ready')
  t.same([draining.statusCode, draining.json()], [503, { ready: false, reason: 'draining' }])
  t.equal((await app.inject('/health')).statusCode, 200, 'health stays 200 while the process lives')
})

t.test('health counts open connections', async (t) => {
  const { app, url } = await startServer(t)
  const c = await TestClient.open(url)
  t.equal((await app.inject('/health')).json().connections, 1)
  c.close()
  await c.closed
  await until(async () => (await app.inject('/health')).json().connections === 0, 'the server saw the close')
  t.equal((await app.inject('/health')).json().connections, 0)
})

t.test('POST /publish/:topic with JSON and MessagePack bodies', async (t) => {
  const { url, http } = await startServer(t)
  const c = await TestClient.open(url)
  t.match(await c.request({ type: 'subscribe', id: 1, topic: 'orders.>' }), { type: 'ack', id: 1, topics: ['orders.>'] })

  const json = await fetch(`${http}/publish/orders.a`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ qty: 1 })
  })
  t.equal(json.status, 200)
  const first = await json.json()
  t.match(first, { seq: 1, epoch: String })
  t.match(await c.next(), { type: 'event', topic: 'orders.a', seq: 1, epoch: first.epoch, ts: Number, data: { qty: 1 } })

  for (const type of ['application/msgpack', 'application/x-msgpack', 'application/vnd.msgpack']) {
    const res = await fetch(`${http}/publish/orders.a`, {
      method: 'POST',
      headers: { 'content-type': type },
      body: encode({ qty: 2 }) as Uint8Array<ArrayBuffer>
    })
    t.equal(res.status, 200, type)
    const { seq } = await res.json()
    t.match(await c.next(), { type: 'event', topic: 'orders.a', seq, data: { qty: 2 } })
  }
  c.close()
})

t.test('POST /publish/:topic refuses bad input with a status and a protocol code', async (t) => {
  const { http } = await startServer(t, { maxPublishBytes: 100 })
  const post = async (topic: string, type: string | null, body?: string | Uint8Array<ArrayBuffer>) => {
    const res = await fetch(`${http}/publish/${topic}`, { method: 'POST', headers: type ? { 'content-type': type } : {}, body })
    return [res.status, (await res.json()).code]
  }
  t.same(await post('a.*', 'application/json', '1'), [400, 'bad_request'], 'wildcards cannot be published to')
  t.same(await post('a..b', 'application/json', '1'), [400, 'bad_request'])
  t.same(await post('a', 'application/json', '{"x":'), [400, 'bad_request'], 'invalid JSON')
  t.same(await post('a', 'application/msgpack', new Uint8Array([0xc1])), [400, 'bad_request'], 'invalid MessagePack')
  t.same(await post('a', 'application/json', JSON.stringify('x'.repeat(200))), [413, 'too_large'])
  t.same(await post('a', 'text/csv', 'a,b'), [415, 'bad_request'])
  t.same(await post('a', null), [400, 'bad_request'], 'no body')
})

t.test('POST /publish bodies get the decoder limits of socket frames, so a refused body costs no seq', async (t) => {
  const { http, url } = await startServer(t)
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  await c.request({ type: 'subscribe', topic: 'deep' })
  let deep: unknown = 1
  for (let i = 0; i < 90; i++) deep = [deep] // under the test client's own encoder limit (100), over the server's (32)
  for (const [type, body] of [
    ['application/json', JSON.stringify(deep)],
    ['application/msgpack', encode(deep)]
  ] as const) {
    const res = await fetch(`${http}/publish/deep`, { method: 'POST', headers: { 'content-type': type }, body: body as string })
    t.match([res.status, await res.json()], [413, { code: 'too_large', message: 'frame nests deeper than 32 levels' }], type)
  }
  const ok = await fetch(`${http}/publish/deep`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"fine":[[1]]}' })
  t.same(await ok.json(), { seq: 1, epoch: (await c.next()).epoch }, 'the next publish is seq 1: nothing was used up')
})

t.test('only loopback clients may publish unless AUTH=none', async (t) => {
  const closed = await buildApp({ heartbeatInterval: 0 })
  t.teardown(() => closed.close())
  const remote = { method: 'POST' as const, url: '/publish/a', payload: { x: 1 }, remoteAddress: '203.0.113.9' }
  const refused = await closed.inject(remote)
  t.same([refused.statusCode, refused.json().code], [403, 'forbidden'])
  t.equal((await closed.inject({ ...remote, remoteAddress: '127.0.0.1' })).statusCode, 200)
  t.equal((await closed.inject({ ...remote, remoteAddress: '::1' })).statusCode, 200)
  t.equal((await closed.inject({ ...remote, remoteAddress: '::ffff:127.0.0.1' })).statusCode, 200)

  const open = await buildApp({ heartbeatInterval: 0, auth: 'none' })
  t.teardown(() => open.close())
  t.equal((await open.inject(remote)).statusCode, 200)
})

t.test('a browser GET of / lands on the dashboard; other live paths say they want an upgrade', async (t) => {
  const { http, url } = await startServer(t)
  const root = await fetch(`${http}/`, { redirect: 'manual' })
  t.equal(root.status, 302)
  t.equal(root.headers.get('location'), '/dashboard/')
  t.equal((await fetch(`${http}/dashboard`, { redirect: 'manual' })).headers.get('location'), '/dashboard/')
  const page = await fetch(`${http}/dashboard/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(await page.text(), /<script type="importmap">/)
  const vendor = await fetch(`${http}/dashboard/vendor/msgpack/index.mjs`)
  t.equal(vendor.status, 200, 'MessagePack as ES modules for the page')
  t.match(vendor.headers.get('content-type'), /javascript/)
  await vendor.text()
  const live = await fetch(`${http}/ws/live`)
  t.equal(live.status, 426)
  t.equal(live.headers.get('upgrade'), 'websocket')
  t.match(await live.json(), { statusCode: 426, code: 'bad_request' })
  const client = await TestClient.open(url, { path: '/' })
  t.equal((await client.request({ type: 'ping', id: 1 })).type, 'pong', 'upgrades at / still work')
  client.close()
})

t.test('dashboard files: the page, its SDK (and what it shares with the server) and MessagePack modules, and nothing outside them', async (t) => {
  const { http, app } = await startServer(t)
  for (const path of ['dashboard.js', 'dashboard.css', 'sdk/index.js', 'shared/patterns.js', 'shared/subprotocols.js', 'vendor/msgpack/utils/utf8.mjs']) {
    const res = await fetch(`${http}/dashboard/${path}`)
    t.equal(res.status, 200, path)
    t.match(res.headers.get('content-type'), /^(application\/javascript|text\/css); charset=utf-8$/)
    await res.text()
  }
  for (const url of ['/dashboard/../../package.json', '/dashboard/..%2F..%2Fpackage.json', '/dashboard/%2e%2e/%2e%2e/package.json']) {
    const res = await app.inject(url) // inject sends the path as written, without URL normalisation
    t.ok(res.statusCode >= 400, `${url}: ${res.statusCode}`)
    t.notMatch(res.body, /"dependencies"/, 'no file outside the dashboard')
  }
})
