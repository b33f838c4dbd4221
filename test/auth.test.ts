// Pure logic of permissions and limits: grant coverage, scopes, API key syntax, the token bucket.
import t from 'tap'
import { covers, grantsOf, mayPublish, maySubscribe, parseApiKeys, tokenOf } from '../src/core/auth.ts'
import { TokenBucket, STRIKE_WINDOW_MS } from '../src/core/limits.ts'
import { redactToken } from '../src/app.ts'

t.test('a grant covers a pattern when it matches everything the pattern can match', async (t) => {
  const cases: [string, string, boolean][] = [
    ['>', 'a', true],
    ['>', 'a.b.>', true],
    ['ticker.>', 'ticker.binance.BTC', true],
    ['ticker.>', 'ticker.*.BTC', true],
    ['ticker.>', 'ticker.>', true],
    ['ticker.>', 'ticker', false], // > needs at least one more token
    ['ticker.>', '>', false],
    ['ticker.>', 'opportunities.BTC', false],
    ['ticker.*.BTC', 'ticker.binance.BTC', true],
    ['ticker.*.BTC', 'ticker.*.BTC', true],
    ['ticker.*.BTC', 'ticker.*.*', false],
    ['ticker.*.BTC', 'ticker.>', false],
    ['ticker.*.*', 'ticker.*.BTC', true],
    ['ticker.*', 'ticker.a.b', false],
    ['ticker.binance.BTC', 'ticker.binance.BTC', true],
    ['ticker.binance.BTC', 'ticker.binance.*', false],
    ['ticker.binance', 'ticker.binance.BTC', false],
    ['*', '>', false],
    ['*.>', 'a.b', true],
    ['*.>', 'a', false]
  ]
  for (const [grant, pattern, expected] of cases) t.equal(covers(grant, pattern), expected, `${grant} covers ${pattern}: ${expected}`)
})

t.test('scopes become grants; subscribe checks coverage, publish checks the concrete topic', async (t) => {
  const g = grantsOf(['subscribe:ticker.>', 'publish:ticker.binance.*', 'admin', 'read:x', ':y', 'publish:'], 123, 'svc')
  t.same(g, { subscribe: ['ticker.>'], publish: ['ticker.binance.*'], expiresAt: 123, subject: 'svc' })
  t.equal(maySubscribe(g, 'ticker.*.BTC'), true)
  t.equal(maySubscribe(g, 'opportunities.>'), false)
  t.equal(mayPublish(g, 'ticker.binance.BTC'), true)
  t.equal(mayPublish(g, 'ticker.coinbase.BTC'), false)
  t.equal(mayPublish(g, 'ticker.binance.BTC.x'), false)
})

t.test('API_KEYS syntax', async (t) => {
  const key = 'k'.repeat(16)
  t.same(
    [...parseApiKeys(`${key}=subscribe:> publish:a.b ; ${'j'.repeat(20)}=subscribe:ticker.>`)!],
    [
      [key, ['subscribe:>', 'publish:a.b']],
      ['j'.repeat(20), ['subscribe:ticker.>']]
    ]
  )
  t.same([...parseApiKeys('')!], [])
  t.equal(parseApiKeys('short=subscribe:>'), null, 'keys under 16 characters')
  t.equal(parseApiKeys(`${key}=`), null, 'no scopes')
  t.equal(parseApiKeys(`${key}=read:>`), null, 'unknown action')
  t.equal(parseApiKeys(`${key}`), null, 'no =')
})

t.test('the credential comes from Authorization: Bearer, else ?token=', async (t) => {
  t.equal(tokenOf('Bearer abc.def', 'q'), 'abc.def')
  t.equal(tokenOf('bearer   abc ', undefined), 'abc')
  t.equal(tokenOf('Basic xyz', 'q'), 'q')
  t.equal(tokenOf(undefined, undefined), undefined)
})

t.test('logged URLs never carry a token', async (t) => {
  t.equal(redactToken('/ws/live?token=eyJ.abc.def&codec=json'), '/ws/live?token=[redacted]&codec=json')
  t.equal(redactToken('/ws/live?codec=json&TOKEN=x'), '/ws/live?codec=json&TOKEN=[redacted]')
  t.equal(redactToken('/publish/a'), '/publish/a')
})

t.test('token bucket: burst, refill at the rate, strikes, abuse', async (t) => {
  const bucket = new TokenBucket(10, 20, 3, 0)
  const verdicts = Array.from({ length: 24 }, () => bucket.take(0))
  t.same(verdicts.slice(0, 20), Array(20).fill('ok'), 'a full burst')
  t.same(verdicts.slice(20), ['limited', 'limited', 'limited', 'abuse'], 'then strikes, then abuse')
  t.equal(bucket.take(100), 'ok', '100 ms at 10/s refills one token')
  t.equal(bucket.take(100), 'abuse', 'still over the strikes of this window')
  t.equal(bucket.take(100 + STRIKE_WINDOW_MS + 1), 'ok', 'a new window: tokens refilled, strikes forgiven')
  const fresh = new TokenBucket(10, 20, 3, 0)
  for (let i = 0; i < 20; i++) fresh.take(0)
  t.equal(fresh.take(50), 'limited', 'half a token is not a token')
  t.equal(fresh.take(100), 'ok')
})

t.test('a bucket that replaces another (new grants, new rate) takes over its tokens and strikes', async (t) => {
  const old = new TokenBucket(10, 20, 1, 0)
  for (let i = 0; i < 20; i++) old.take(0)
  t.equal(old.take(0), 'limited')
  const renewed = new TokenBucket(100, 200, 1, 0)
  renewed.continueFrom(old)
  t.equal(renewed.take(0), 'abuse', 'no refill, and the strike carries over')
  const capped = new TokenBucket(1, 2, 5, 0)
  capped.continueFrom(new TokenBucket(10, 20, 5, 0))
  t.same([capped.take(0), capped.take(0), capped.take(0)], ['ok', 'ok', 'limited'], 'tokens capped at the new burst')
})
