// Every security rule against a real server: credentials, scopes, origins, limits and their codes, redaction, TLS.
import { hubOf } from '../src/core/hub.ts'
import t from 'tap'
import { Server as TlsServer } from 'node:tls'
import { execFileSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { encode } from '@msgpack/msgpack'
import { createSigner } from 'fast-jwt'
import { buildApp } from '../src/app.ts'
import { ANONYMOUS_SUBSCRIBER } from '../src/core/auth.ts'
import { loadConfig } from '../src/config.ts'
import { captureLog, startServer, TestClient, upgradeStatus, until } from './helper.ts'

const SECRET = 'a-test-secret-that-is-long-enough-0123456789'
// Tokens live an hour unless a test says otherwise: JWTs without exp are refused by default.
const sign = (claims: object, expiresInMs = 3_600_000) => createSigner({ key: SECRET, expiresIn: expiresInMs })(claims)
const SUB_KEY = 'sub-key-0123456789abcdef'
const PUB_KEY = 'pub-key-0123456789abcdef'
const API_KEYS = `${SUB_KEY}=subscribe:ticker.>;${PUB_KEY}=publish:ticker.binance.* subscribe:>`

t.test('AUTH=required: no, bad or expired credentials are refused with 401 before any socket exists', async (t) => {
  const { url } = await startServer(t, { auth: 'required', jwtSecret: SECRET })
  const none = await upgradeStatus(url)
  t.equal(none.status, 401)
  t.match(JSON.parse(none.body), { code: 'unauthorized', message: /credential is required/ })
  t.equal((await upgradeStatus(url, { headers: { authorization: 'Bearer nope' } })).status, 401)
  const forged = createSigner({ key: 'another-secret-that-is-long-enough-000000' })({ scope: 'subscribe:>' })
  const bad = await upgradeStatus(`${url}/ws/live?token=${forged}`, { path: '' })
  t.match([bad.status, JSON.parse(bad.body).message], [401, 'invalid token: bad signature'])
  t.notMatch(bad.body, forged, 'the answer never repeats the token')
  const expired = createSigner({ key: SECRET, clockTimestamp: Date.now() - 120_000, expiresIn: 1000 })({ scope: 'subscribe:>' })
  t.match(JSON.parse((await upgradeStatus(url, { headers: { authorization: `Bearer ${expired}` } })).body).message, 'invalid token: expired')
  t.equal((await upgradeStatus(url, { headers: { authorization: `Bearer ${sign({ scope: 'subscribe:>' })}` } })).status, 101)
  t.equal((await upgradeStatus(`${url}/ws/live?token=${sign({ scope: 'subscribe:>' })}`, { path: '' })).status, 101, '?token= for browsers')
})

t.test('JWT scopes: subscribe and publish with wildcards, forbidden outside them', async (t) => {
  const { url } = await startServer(t, { auth: 'required', jwtSecret: SECRET })
  const token = sign({ sub: 'bot-7', scope: 'subscribe:ticker.> subscribe:opportunities.BTC publish:ticker.binance.*' })
  const c = await TestClient.open(url, { headers: { authorization: `Bearer ${token}` } })
  t.teardown(() => c.close())
  t.match(await c.request({ type: 'subscribe', id: 1, topics: ['ticker.*.BTC', 'opportunities.BTC'] }), { type: 'ack', id: 1 })
  t.same(await c.request({ type: 'subscribe', id: 2, topic: 'opportunities.>' }), {
    type: 'error',
    id: 2,
    code: 'forbidden',
    message: 'no grant to subscribe to "opportunities.>"'
  })
  t.same(await c.request({ type: 'subscribe', id: 3, topic: '>' }), { type: 'error', id: 3, code: 'forbidden', message: 'no grant to subscribe to ">"' })
  c.send({ type: 'publish', id: 4, topic: 'ticker.binance.BTC', data: 1 })
  const [ack, event] = (await c.take(2)).sort((a) => (a.type === 'ack' ? -1 : 1))
  t.match(ack, { type: 'ack', id: 4, seq: 1 })
  t.match(event, { type: 'event', topic: 'ticker.binance.BTC', seq: 1 }, 'its own publish, on a granted subscription')
  t.match(await c.request({ type: 'publish', id: 5, topic: 'ticker.coinbase.BTC', data: 1 }), { type: 'error', id: 5, code: 'forbidden' })
  t.match(await c.request({ type: 'request', id: 6, method: 'snapshot', params: { topic: 'secret.x' } }), { type: 'error', id: 6, code: 'forbidden' })
})

t.test('RS256 and ES256 public keys, inline or from a file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'live-keys-'))
  for (const [type, algorithm, options] of [
    ['ec', 'ES256', { namedCurve: 'P-256' }],
    ['rsa', 'RS256', { modulusLength: 2048 }]
  ] as const) {
    const { privateKey, publicKey } = generateKeyPairSync(
      type as any,
      { ...options, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as any
    ) as unknown as { privateKey: string; publicKey: string }
    const path = join(dir, `${algorithm}.pem`)
    writeFileSync(path, publicKey)
    const token = createSigner({ key: privateKey, algorithm, expiresIn: 60_000 })({ scope: 'subscribe:>' })
    for (const jwtPublicKey of [publicKey, path]) {
      const { url } = await startServer(t, { auth: 'required', jwtPublicKey })
      t.equal(
        (await upgradeStatus(url, { headers: { authorization: `Bearer ${token}` } })).status,
        101,
        `${algorithm} ${jwtPublicKey === path ? 'file' : 'inline'}`
      )
      t.equal(
        (await upgradeStatus(url, { headers: { authorization: `Bearer ${sign({ scope: 'subscribe:>' })}` } })).status,
        401,
        'HS256 is not accepted with a public key'
      )
    }
  }
})

t.test('a JWT public key that cannot be used stops start-up naming JWT_PUBLIC_KEY', async (t) => {
  await t.rejects(buildApp({ jwtPublicKey: '-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----' }), {
    message: /^JWT_PUBLIC_KEY: not a usable key/
  })
  await t.rejects(buildApp({ jwtPublicKey: '/nonexistent/key.pem' }), { message: /^JWT_PUBLIC_KEY: not a usable key .*ENOENT/ })
})

t.test('issuer and audience, when configured, must match', async (t) => {
  const { url } = await startServer(t, { auth: 'required', jwtSecret: SECRET, jwtIssuer: 'desk', jwtAudience: 'live' })
  const status = async (claims: object) => (await upgradeStatus(url, { headers: { authorization: `Bearer ${sign(claims)}` } })).status
  t.equal(await status({ iss: 'desk', aud: 'live', scope: 'subscribe:>' }), 101)
  t.equal(await status({ iss: 'other', aud: 'live', scope: 'subscribe:>' }), 401)
  t.equal(await status({ iss: 'desk', scope: 'subscribe:>' }), 401)
})

t.test('a connection is closed with 1008 when its token expires, unless renewed with the auth method', async (t) => {
  const { url } = await startServer(t, { auth: 'required', jwtSecret: SECRET })
  const short = await TestClient.open(url, { headers: { authorization: `Bearer ${sign({ scope: 'subscribe:>' }, 1500)}` } })
  const renewed = await TestClient.open(url, { headers: { authorization: `Bearer ${sign({ scope: 'subscribe:>' }, 1500)}` } })
  t.teardown(() => renewed.close())
  const reply = await renewed.request({
    type: 'request',
    id: 1,
    method: 'auth',
    params: { token: sign({ sub: 'renewed', scope: 'subscribe:ticker.>' }, 60_000) }
  })
  t.match(reply, { type: 'response', id: 1, result: { subject: 'renewed', subscribe: ['ticker.>'], publish: [] } })
  t.ok(reply.result.expiresAt > Date.now() + 50_000)
  t.same(await short.closed, { code: 1008, reason: 'credential expired' })
  t.equal(renewed.ws.readyState, 1, 'the renewed connection is still open after the first token expired')
  t.match(await renewed.request({ type: 'subscribe', id: 2, topic: 'opportunities.BTC' }), { code: 'forbidden' }, 'the new grants apply')
  t.match(await renewed.request({ type: 'request', id: 3, method: 'auth', params: { token: 'garbage' } }), { type: 'error', id: 3, code: 'unauthorized' })
  t.match(await renewed.request({ type: 'request', id: 4, method: 'auth' }), { type: 'error', id: 4, code: 'bad_request' })
})

t.test('static API keys, on the socket and on POST /publish', async (t) => {
  const { url, http } = await startServer(t, { auth: 'required', apiKeys: API_KEYS })
  const sub = await TestClient.open(url, { headers: { authorization: `Bearer ${SUB_KEY}` } })
  t.teardown(() => sub.close())
  t.match(await sub.request({ type: 'subscribe', id: 1, topic: 'ticker.>' }), { type: 'ack' })
  t.match(await sub.request({ type: 'publish', id: 2, topic: 'ticker.binance.BTC', data: 1 }), { code: 'forbidden' })
  const post = (key: string | null, topic: string) =>
    fetch(`${http}/publish/${topic}`, {
      method: 'POST',
      body: '{"bid":1}',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) }
    })
  t.equal((await post(null, 'ticker.binance.BTC')).status, 401, 'no credential')
  t.equal((await post(SUB_KEY, 'ticker.binance.BTC')).status, 403, 'a key without the publish scope')
  t.equal((await post(PUB_KEY, 'ticker.coinbase.BTC')).status, 403, 'outside the publish scope')
  const ok = await post(PUB_KEY, 'ticker.binance.BTC')
  t.same([ok.status, await ok.json()], [200, { seq: 1, epoch: (await sub.next()).epoch }])
  t.equal(
    (await fetch(`${http}/publish/ticker.binance.ETH?token=${PUB_KEY}`, { method: 'POST', body: '1', headers: { 'content-type': 'application/json' } })).status,
    200
  )
})

t.test('default AUTH=loopback: anyone subscribes, non-loopback clients need a publish grant; AUTH=none opens publishing', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, apiKeys: API_KEYS })
  t.teardown(() => app.close())
  const remote = { method: 'POST' as const, url: '/publish/ticker.binance.BTC', payload: { x: 1 }, remoteAddress: '203.0.113.9' }
  t.equal((await app.inject(remote)).statusCode, 403)
  t.equal((await app.inject({ ...remote, headers: { authorization: `Bearer ${PUB_KEY}` } })).statusCode, 200)
  t.equal((await app.inject({ ...remote, headers: { authorization: 'Bearer wrong' } })).statusCode, 401, 'a wrong credential is refused, not ignored')
  t.equal((await app.inject({ ...remote, remoteAddress: '127.0.0.1' })).statusCode, 200)
})

t.test('AUTH=none warns loudly when listening beyond loopback', async (t) => {
  for (const host of ['0.0.0.0', '127.0.0.1']) {
    const log = captureLog()
    const app = await buildApp({ heartbeatInterval: 0, arbitrage: false, auth: 'none' }, { logger: { level: 'warn', stream: log.stream } })
    await app.listen({ port: 0, host })
    await app.close()
    t.equal(/ANYONE who can reach this port may publish/.test(log.text()), host === '0.0.0.0', `host ${host}`)
  }
})

t.test('origin allowlist: browsers from other origins get 403; clients without Origin pass', async (t) => {
  const { url } = await startServer(t, { allowedOrigins: 'https://desk.example, https://ops.example' })
  t.equal((await upgradeStatus(url, { headers: { origin: 'https://evil.example' } })).status, 403)
  t.equal((await upgradeStatus(url, { headers: { origin: 'https://ops.example' } })).status, 101)
  t.equal((await upgradeStatus(url)).status, 101)
})

t.test('connection limits: overall and per address answer 503 before the upgrade; a race past them closes 1013', async (t) => {
  const { app, url } = await startServer(t, { maxConnections: 3, maxConnectionsPerIp: 2 })
  const a = await TestClient.open(url)
  const b = await TestClient.open(url)
  const third = await upgradeStatus(url)
  t.match([third.status, JSON.parse(third.body)], [503, { code: 'unavailable', message: 'this address holds its maximum of 2 connections' }])
  const other = await TestClient.open(url, { localAddress: '127.0.0.2' })
  t.match(JSON.parse((await upgradeStatus(url, { localAddress: '127.0.0.3' })).body).message, 'the server holds its maximum of 3 connections')
  const closes: number[] = []
  const fake = { readyState: 1, bufferedAmount: 0, send() {}, close: (code: number) => closes.push(code), terminate() {}, ping() {}, on() {} }
  t.equal(hubOf(app.live).accept(fake, 'json', '127.0.0.4', ANONYMOUS_SUBSCRIBER), null)
  t.same(closes, [1013])
  a.close()
  await a.closed
  await until(() => app.live.connections === 2, 'the server saw the close')
  const again = await TestClient.open(url)
  for (const c of [b, other, again]) c.close()
})

t.test('memory admission: past MEMORY_LIMIT_MB /ready answers 503 and upgrades are refused', async (t) => {
  const { url, http } = await startServer(t, { memoryLimitMb: 1 })
  const ready = await fetch(`${http}/ready`)
  t.same([ready.status, await ready.json()], [503, { ready: false, reason: 'memory limit' }])
  t.match(await upgradeStatus(url), { status: 503, body: /memory limit/ })
  const { http: roomy } = await startServer(t, { memoryLimitMb: 100_000 })
  t.equal((await fetch(`${roomy}/ready`)).status, 200)
})

t.test('rate limit: a burst is served, then rate_limited errors (with ids), then 4029', async (t) => {
  const { url } = await startServer(t, { rateLimit: 10, publisherRateLimit: 10, rateStrikes: 5 })
  const c = await TestClient.open(url)
  for (let id = 1; id <= 40; id++) c.send({ type: 'ping', id })
  const closed = await c.closed
  const pongs = c.frames.filter((f) => f.type === 'pong')
  const limited = c.frames.filter((f) => f.type === 'error')
  t.ok(pongs.length >= 20 && pongs.length <= 22, `a burst of twice the rate: ${pongs.length} pongs`)
  t.same(
    limited.map((f) => f.code),
    Array(5).fill('rate_limited'),
    'as many rate_limited errors as strikes allowed'
  )
  t.same(
    limited.map((f) => f.id),
    pongs.length === 20 ? [21, 22, 23, 24, 25] : limited.map((f) => f.id),
    'errors carry the ids'
  )
  t.same(closed, { code: 4029, reason: 'rate limit exceeded repeatedly' })
  const { url: publisherUrl } = await startServer(t, { rateLimit: 10, rateStrikes: 5 })
  const feed = await TestClient.open(publisherUrl)
  t.teardown(() => feed.close())
  for (let id = 1; id <= 100; id++) feed.send({ type: 'ping', id })
  t.equal((await feed.take(100)).filter((f) => f.type === 'pong').length, 100, 'publishers get PUBLISHER_RATE_LIMIT')
})

t.test('decoder limits: nesting depth, container sizes and extension types, in both codecs', async (t) => {
  const { url } = await startServer(t, { decodeMaxDepth: 8, decodeMaxItems: 100 })
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  let deep: unknown = 1
  for (let i = 0; i < 10; i++) deep = [deep]
  c.ws.send(encode({ type: 'publish', topic: 'a', data: deep }))
  t.match(await c.next(), { type: 'error', code: 'too_large', message: 'frame nests deeper than 8 levels' })
  c.ws.send(JSON.stringify({ type: 'publish', topic: 'a', data: deep }))
  t.match(await c.next(), { code: 'too_large', message: 'frame nests deeper than 8 levels' })
  c.ws.send(JSON.stringify({ type: 'publish', topic: 'a', data: Array(101).fill(0) }))
  t.match(await c.next(), { code: 'too_large', message: 'an array holds more than 100 elements' })
  c.ws.send(JSON.stringify({ type: 'publish', topic: 'a', data: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [i, i])) }))
  t.match(await c.next(), { code: 'too_large', message: 'a map holds more than 100 entries' })
  c.ws.send(encode({ type: 'publish', topic: 'a', data: Array(101).fill(0) }))
  t.match(await c.next(), { code: 'too_large', message: 'an array holds more than 100 elements' })
  c.ws.send(Buffer.from([0x82, 0xa4, ...Buffer.from('type'), 0xa4, ...Buffer.from('ping'), 0xa1, 0x78, 0xd4, 0x05, 0x00]))
  t.match(await c.next(), { code: 'bad_request', message: /extension types are not accepted/ })
  c.ws.send(encode({ type: 'ping', id: 9, at: new Date() }))
  t.match(await c.next(), { code: 'bad_request', message: /extension types are not accepted/ }, 'timestamps too')
  t.match(await c.request({ type: 'ping', id: 10 }), { type: 'pong', id: 10 }, 'the connection stays open')
})

t.test('handshake timeout: a TCP connection that never completes its request headers is dropped', async (t) => {
  const { port, http } = await startServer(t, { handshakeTimeout: 300 })
  const silent = connect(port, '127.0.0.1')
  const trickle = connect(port, '127.0.0.1')
  for (const s of [silent, trickle]) s.on('error', () => {}) // a reset is how the server drops them
  const timer = setInterval(() => trickle.write('X'), 50)
  trickle.write('GET /ws/live HTTP/1.1\r\nHost: x\r\nX-Slow: ')
  await Promise.all([silent, trickle].map((s) => new Promise((resolve) => s.on('close', resolve))))
  clearInterval(timer)
  t.pass('both closed by the server')
  t.equal((await fetch(`${http}/health`)).status, 200, 'ordinary requests are unaffected')
})

t.test('secrets never appear in /config, errors or logs', async (t) => {
  const captured = captureLog()
  const token = sign({ sub: 'u1', scope: 'subscribe:>' })
  const app = await buildApp(
    { heartbeatInterval: 0, arbitrage: false, memoryLimitMb: 0, jwtSecret: SECRET, apiKeys: API_KEYS },
    { logger: { level: 'trace', stream: captured.stream } }
  )
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const url = `ws://127.0.0.1:${port}`
  const config = await (await fetch(`http://127.0.0.1:${port}/config`)).json()
  t.same([config.jwtSecret, config.apiKeys], ['[redacted]', '[redacted]'])
  const c = await TestClient.open(`${url}/ws/live?token=${token}`, { path: '' })
  await c.request({ type: 'subscribe', id: 1, topic: 'x.y' })
  await c.request({ type: 'publish', id: 2, topic: 'x.y', data: 1 })
  c.close()
  await upgradeStatus(`${url}/ws/live?token=${token}x`, { path: '' })
  await fetch(`http://127.0.0.1:${port}/publish/x.y?token=${PUB_KEY}`, { method: 'POST', body: '1', headers: { 'content-type': 'application/json' } })
  await fetch(`http://127.0.0.1:${port}/publish/x.y`, {
    method: 'POST',
    body: '{',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${SUB_KEY}` }
  })
  // The close is logged when the server sees it, after everything else: then the log is whole.
  await until(() => captured.text().includes('connection closed'), 'the close logged')
  const log = captured.text()
  t.match(log, /connection open/, 'the log was captured')
  for (const secret of [SECRET, token, PUB_KEY, SUB_KEY]) t.notMatch(log, secret.slice(0, 24))
  t.throws(() => loadConfig({ API_KEYS: `${PUB_KEY}=bogus` }), { message: /API_KEYS="\[redacted\]"/ })
  t.throws(() => loadConfig({ JWT_SECRET: 'short-secret' }), {
    message: 'Invalid configuration: JWT_SECRET="[redacted]" is not valid; expected at least 32 characters'
  })
  t.throws(() => loadConfig({ AUTH: 'required' }), { message: /AUTH="required".*JWT_SECRET, JWT_PUBLIC_KEY or API_KEYS/ })
})

t.test('TLS: wss:// and https:// with a certificate generated here', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'live-tls-'))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      key,
      '-out',
      cert
    ],
    { stdio: 'ignore' }
  )
  const { app, port } = await startServer(t, { tlsCert: cert, tlsKey: key })
  const ca = readFileSync(cert)
  const c = await TestClient.open(`wss://127.0.0.1:${port}`, { ca })
  t.teardown(() => c.close())
  t.match(await c.request({ type: 'ping', id: 1 }), { type: 'pong', id: 1 })
  t.ok(app.server instanceof TlsServer, 'the server answering it speaks TLS: a wss:// client got its pong')
  await t.rejects(TestClient.open(`wss://127.0.0.1:${port}`), 'an untrusted certificate is refused by the client')
  t.throws(() => loadConfig({ TLS_CERT: cert }), { message: /TLS_KEY/ })
  await t.rejects(buildApp({ tlsCert: join(dir, 'missing.pem'), tlsKey: key }), { message: /TLS_CERT: cannot read/ })
})
