import t from 'tap'
import { ConfigError, envName, loadConfig, redactConfig, describeConfig } from '../src/config.ts'
import { readFileSync } from 'node:fs'

t.test('defaults match the contract', async (t) => {
  const c = loadConfig({})
  t.equal(c.port, 8765)
  t.equal(c.host, '0.0.0.0')
  t.equal(c.useMsgpack, true)
  t.equal(c.logLevel, 'info')
  t.equal(c.maxPayload, 65536)
  t.equal(c.historySize, 1000)
  t.equal(c.historyTtl, 300000)
  t.equal(c.maxQueuedBytes, 1048576)
  t.equal(c.slowConsumer, 'close')
  t.equal(c.auth, 'loopback')
})

t.test('environment names are UPPER_SNAKE of the keys', async (t) => {
  t.equal(envName('port'), 'PORT')
  t.equal(envName('useMsgpack'), 'USE_MSGPACK')
  t.equal(envName('maxQueuedBytes'), 'MAX_QUEUED_BYTES')
})

t.test('environment values are parsed by type', async (t) => {
  const c = loadConfig({ PORT: '9000', USE_MSGPACK: 'false', LOG_LEVEL: 'debug', SLOW_CONSUMER: 'conflate', AUTH: 'none' })
  t.same([c.port, c.useMsgpack, c.logLevel, c.slowConsumer, c.auth], [9000, false, 'debug', 'conflate', 'none'])
  t.equal(loadConfig({ PORT: '' }).port, 8765, 'an empty variable means the default')
})

t.test('builder options override the environment', async (t) => {
  t.equal(loadConfig({ PORT: '9000' }, { port: 0 }).port, 0)
})

t.test('a bad value names the variable, the value and what is accepted', async (t) => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: 'abc' }, 'Invalid configuration: PORT="abc" is not valid; expected an integer from 0 to 65535'],
    [{ PORT: '70000' }, 'Invalid configuration: PORT=70000 is not valid; expected an integer from 0 to 65535'],
    [{ USE_MSGPACK: 'maybe' }, 'Invalid configuration: USE_MSGPACK="maybe" is not valid; expected true or false (also 1/0, yes/no)'],
    [{ SLOW_CONSUMER: 'drop' }, 'Invalid configuration: SLOW_CONSUMER="drop" is not valid; expected one of close, conflate'],
    [{ LOG_LEVEL: 'loud' }, 'Invalid configuration: LOG_LEVEL="loud" is not valid; expected one of fatal, error, warn, info, debug, trace, silent']
  ]
  for (const [env, message] of cases) {
    const err = t.throws(() => loadConfig(env), { message })
    t.ok(err instanceof ConfigError, 'a ConfigError, which server.ts prints as one line')
  }
  t.throws(() => loadConfig({}, { maxPayload: 1 }), {
    message: 'Invalid configuration: option maxPayload=1 is not valid; expected an integer from 128 to 16777216'
  })
  t.throws(() => loadConfig({}, { nope: 1 } as any), { message: /option nope=1 is not valid; expected a known option/ })
})

t.test('redaction and the documented table', async (t) => {
  const c = loadConfig({})
  const secret = 's'.repeat(40)
  const redacted = redactConfig(loadConfig({ JWT_SECRET: secret, API_KEYS: `${'k'.repeat(16)}=subscribe:>` }))
  t.same([redacted.jwtSecret, redacted.apiKeys, redacted.port], ['[redacted]', '[redacted]', c.port])
  t.notMatch(JSON.stringify(redacted), secret)
  const rows = describeConfig()
  t.ok(rows.find((r) => r.variable === 'HISTORY_TTL' && r.default === 300000))
})

t.test('REDIS_URL keeps its host but not its password in /config', async (t) => {
  const c = loadConfig({ BUS: 'redis', REDIS_URL: 'redis://:hunter2-secret@10.0.0.5:6380/2' })
  t.equal(redactConfig(c).redisUrl, 'redis://:[redacted]@10.0.0.5:6380/2')
  t.equal(redactConfig(loadConfig({ REDIS_URL: 'redis://10.0.0.5:6379' })).redisUrl, 'redis://10.0.0.5:6379')
  t.throws(() => loadConfig({ REDIS_URL: 'localhost:6379' }), {
    message: 'Invalid configuration: REDIS_URL="localhost:6379" is not valid; expected a URL redis://[:password@]host[:port][/db] or rediss://...'
  })
  t.throws(() => loadConfig({ REDIS_URL: 'http://:pw@x' }), { message: /REDIS_URL="http:\/\/:\[redacted\]@x"/ }, 'the password is redacted in the error too')
  t.throws(() => loadConfig({ BUS: 'kafka' }), { message: 'Invalid configuration: BUS="kafka" is not valid; expected one of memory, redis' })
})

t.test("the README's configuration table is the schema's, row for row", async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Configuration'), readme.indexOf('\n## Security'))
  const rows = section.split('\n').filter((line) => /^\| `[A-Z_]+` \|/.test(line))
  const shown = (d: unknown) => (d === '' ? '(empty)' : `\`${String(d)}\``)
  t.same(
    rows,
    describeConfig().map((r) => `| \`${r.variable}\` | ${shown(r.default)} | ${r.accepts} | ${r.description} |`)
  )
})

t.test('engine options: fees per kind, the ladder, quote groups and balances parse or stop start-up naming the variable', async (t) => {
  t.match(loadConfig({ TAKER_FEES: 'binance:spot=0.001,binance:perp=0.0004,coinbase=0.006' }), {
    takerFees: 'binance:spot=0.001,binance:perp=0.0004,coinbase=0.006'
  })
  t.match(loadConfig({ SIZE_LADDER: '500,5000', QUOTE_GROUPS: 'USD,USDT;EUR,EURC', BALANCES: 'binance:USDT=50000,BTC=1;coinbase:USD=0' }), {
    sizeLadder: '500,5000'
  })
  t.match(loadConfig({ QUOTE_GROUPS: 'none' }), { quoteGroups: 'none' }, 'no groups: every symbol is its own class')
  for (const [variable, value] of [
    ['TAKER_FEES', 'binance:swap=0.001'],
    ['TAKER_FEES', 'binance=0.5'],
    ['SIZE_LADDER', '1000,-5'],
    ['SIZE_LADDER', '1,2,3,4,5,6,7,8,9,10,11'],
    ['QUOTE_GROUPS', 'USD'],
    ['QUOTE_GROUPS', 'USD,USDT;USDT,EUR'],
    ['BALANCES', 'binance'],
    ['BALANCES', 'binance:usdt=1'],
    ['BALANCES', 'binance:USDT=-1']
  ])
    t.throws(() => loadConfig({ [variable]: value }), { message: new RegExp(`${variable}=`) }, `${variable}=${value}`)
})

t.test('/config redacts the credentials of every URL-valued setting: tokens in queries, user:password@ in lists of URLs', async (t) => {
  const c = loadConfig({
    FEEDS_SERVER_URL: 'wss://feeds:pw-secret@live.example/ws/live?token=eyJ.tok-secret&codec=json',
    FEEDS_ENDPOINTS:
      'binance=wss://u1:p1-secret@proxy.example/ws,https://u2:p2-secret@proxy.example/api?apiKey=k-secret;okx=wss://ws.okx.example/ws/v5/public,https://www.okx.example',
    REDIS_URL: 'rediss://default:r-secret@redis.example:6380/0?password=q-secret'
  })
  const redacted = redactConfig(c)
  t.notMatch(JSON.stringify(redacted), /secret/, 'no credential shows')
  t.equal(redacted.feedsServerUrl, 'wss://feeds:[redacted]@live.example/ws/live?token=[redacted]&codec=json')
  t.equal(
    redacted.feedsEndpoints,
    'binance=wss://u1:[redacted]@proxy.example/ws,https://u2:[redacted]@proxy.example/api?apiKey=[redacted];okx=wss://ws.okx.example/ws/v5/public,https://www.okx.example',
    'hosts and paths stay: one can still see where each venue is'
  )
  t.equal(redacted.redisUrl, 'rediss://default:[redacted]@redis.example:6380/0?password=[redacted]')
  t.throws(
    () => loadConfig({ FEEDS_ENDPOINTS: 'nope=wss://u:pw-secret@x' }),
    { message: /FEEDS_ENDPOINTS="nope=wss:\/\/u:\[redacted\]@x"/ },
    'a refused value is redacted too'
  )
})
