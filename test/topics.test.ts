import t from 'tap'
import { checkTopic, isPattern, matches, SubscriptionIndex, Work } from '../src/core/topics.ts'

const limits = { maxTopicLength: 32, maxTopicTokens: 4 }

t.test('topic validation', async (t) => {
  for (const ok of ['a', 'ticker.binance.BTC-USDT', 'a.b.c.d']) t.doesNotThrow(() => checkTopic(ok, limits, false), ok)
  for (const ok of ['*', '>', 'a.*', 'a.>', '*.b.>']) t.doesNotThrow(() => checkTopic(ok, limits, true), ok)
  const bad: [string, boolean, RegExp][] = [
    ['', true, /empty topic/],
    ['a..b', true, /empty token/],
    ['.a', true, /empty token/],
    ['a b', true, /white space/],
    ['a.>.b', true, /">" must be the last token/],
    ['a.b*', true, /whole tokens/],
    ['a.*', false, /concrete topic/],
    ['a.b.c.d.e', true, /more than 4 tokens/],
    ['x'.repeat(33), true, /longer than 32/]
  ]
  for (const [topic, wildcards, message] of bad) t.throws(() => checkTopic(topic, limits, wildcards), { code: 'bad_request', message }, topic)
})

t.test('pattern matching', async (t) => {
  t.equal(isPattern('a.*'), true)
  t.equal(isPattern('>'), true)
  t.equal(isPattern('a.b'), false)
  const table: [string, string, boolean][] = [
    ['a.b', 'a.b', true],
    ['a.b', 'a.c', false],
    ['a.*', 'a.b', true],
    ['a.*', 'a.b.c', false],
    ['a.*', 'a', false],
    ['a.>', 'a.b', true],
    ['a.>', 'a.b.c', true],
    ['a.>', 'a', false],
    ['*', 'a', true],
    ['*', 'a.b', false],
    ['>', 'a', true],
    ['>', 'a.b.c', true],
    ['*.b.>', 'x.b.c', true],
    ['*.b.>', 'x.b', false],
    ['*.*', 'a.b', true]
  ]
  for (const [pattern, topic, expected] of table) t.equal(matches(pattern, topic), expected, `${pattern} ~ ${topic}`)
})

t.test('the index agrees with matches() and lists each subscriber once', async (t) => {
  const index = new SubscriptionIndex<string>()
  const subs: [string, string][] = [
    ['s1', 'a.b'],
    ['s1', 'a.*'],
    ['s1', 'a.>'],
    ['s2', '*.b'],
    ['s3', '>'],
    ['s4', 'a.b.c'],
    ['s5', '*.*.c']
  ]
  for (const [s, p] of subs) index.add(p, s)
  for (const topic of ['a.b', 'a.b.c', 'x.b', 'a', 'q.r.c', 'a.x']) {
    const expected = [...new Set(subs.filter(([, p]) => matches(p, topic)).map(([s]) => s))].sort()
    t.same([...index.match(topic)].sort(), expected, topic)
  }
})

t.test('(un)subscribe invalidates the cache, removal prunes', async (t) => {
  const index = new SubscriptionIndex<string>()
  index.add('a.*', 'x')
  t.same(index.match('a.b'), ['x'])
  index.add('a.b', 'y')
  t.same([...index.match('a.b')].sort(), ['x', 'y'], 'a new subscriber is seen at once')
  index.remove('a.*', 'x')
  t.same(index.match('a.b'), ['y'])
  index.remove('a.b', 'y')
  t.same(index.match('a.b'), [])
  index.remove('never.added', 'z')
  // has() spends one unit of work per trie node it visits: a budget of one visits the root alone,
  // so it answers without throwing only if no branch for a.b (a, or a star) is left.
  t.equal(index.has('a.b', new Work(1)), false, 'empty branches are pruned')
  index.add('a.b', 'y')
  index.add('a.b', 'y')
  index.remove('a.b', 'y')
  t.same(index.match('a.b'), [], 'adding twice is one subscription')
})
