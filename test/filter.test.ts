// Subscription filters: the expression (parse, errors, limits, meaning) and the server (live events,
// snapshots and replays filtered, one evaluation per distinct filter, no duplicate, the ack says so).
import t from 'tap'
import { FILTER_LIMITS, parseFilter } from '../src/shared/filter.ts'
import { hubOf } from '../src/core/hub.ts'
import { startServer, TestClient, until } from './helper.ts'
import { LiveClient } from '../src/client/index.ts'
import { Encoder, decode } from '@msgpack/msgpack'
import { applyDelta, applyStringDelta } from 'fossil-delta'

t.test('expressions: comparisons, and/or/not, in lists, field paths; one canonical key however spaced', async (t) => {
  const f = parseFilter('netBps >= 10 and symbol in ["BTC-USDT","ETH-USDT"] and not buy.exchange == "kraken"')
  t.equal(f.key, '((netBps >= 10 and symbol in ["BTC-USDT","ETH-USDT"]) and not buy.exchange == "kraken")')
  t.equal(parseFilter('  netBps>=10   and symbol in [ "BTC-USDT" , "ETH-USDT" ]and not buy.exchange=="kraken"').key, f.key)
  t.equal(f.test({ netBps: 12, symbol: 'BTC-USDT', buy: { exchange: 'okx' } }), true)
  t.equal(f.test({ netBps: 12, symbol: 'BTC-USDT', buy: { exchange: 'kraken' } }), false)
  t.equal(f.test({ netBps: 9.99, symbol: 'BTC-USDT', buy: { exchange: 'okx' } }), false)
  t.equal(f.test({ netBps: 12, symbol: 'SOL-USDT', buy: { exchange: 'okx' } }), false)
  const or = parseFilter('a < 0 or (b == true and c != null)')
  t.same(
    [{ a: -1 }, { b: true, c: 1 }, { b: true, c: null }, { a: 'x' }, {}].map(or.test),
    [true, true, false, false, false],
    'an ordering needs a number (or two strings); a missing field is not equal to null'
  )
  const strings = parseFilter('symbol >= "B" and symbol < "C"')
  t.same(
    ['A-USD', 'BTC-USD', 'C-USD'].map((symbol) => strings.test({ symbol })),
    [false, true, false]
  )
  const own = parseFilter('constructor == 1 or toString != 1 or a.length == 1')
  t.same([own.test({}), own.test({ a: 'x' }), own.test(null), own.test(3)], [true, true, true, true], 'only own fields: inherited ones are absent')
  t.equal(parseFilter('x == -1.5e3').test({ x: -1500 }), true)
})

t.test('a bad filter is bad_request naming the position; limits hold', async (t) => {
  for (const [text, message] of [
    ['netBps >=', /expected a number.*at position 9/],
    ['netBps >= 10 and', /expected a field name, found "the end" at position 16/],
    ['(a == 1', /expected "\)", found "the end" at position 7/],
    ['a == 1 b', /unexpected "b" at position 7/],
    ['a in []', /expected a number.*found "\]" at position 6/],
    ['a == 1 @', /unexpected character "@" at position 7/],
    ['and == 1', /expected a field name, found "and" at position 0/],
    ['a == "unterminated', /unexpected character/],
    ['', /empty/]
  ] as const)
    t.throws(() => parseFilter(text), { code: 'bad_request', message }, text)
  t.throws(() => parseFilter(`${'a == 1 or '.repeat(120)}a == 1`), { message: /longer than 1024/ })
  t.throws(() => parseFilter(Array.from({ length: FILTER_LIMITS.comparisons + 1 }, (_, i) => `f${i} == 1`).join(' or ')), {
    message: /more than 32 comparisons/
  })
  t.throws(() => parseFilter(`a in [${Array.from({ length: 101 }, (_, i) => i).join(',')}]`), { message: /more than 100 values/ })
  t.throws(() => parseFilter(`${'not '.repeat(20)}a == 1`), { message: /nested deeper than 16/ })
  t.throws(() => parseFilter(`${'('.repeat(20)}a == 1${')'.repeat(20)}`), { message: /nested deeper than 16/ })
  t.throws(() => parseFilter(5 as unknown as string), { message: /a string expression/ })
})

t.test('the server: live events, snapshots and replays filtered; seqs stay the topic’s; the ack says so', async (t) => {
  const { url } = await startServer(t)
  const publisher = await TestClient.open(url)
  const watcher = await TestClient.open(url)
  t.teardown(() => {
    publisher.close()
    watcher.close()
  })
  const ack = await watcher.request({ type: 'subscribe', id: 1, topic: 'o.*', filter: 'x >= 10' })
  t.match(ack, { type: 'ack', id: 1, topics: ['o.*'], filter: 'x >= 10' })
  for (const [i, x] of [5, 12, 7, 20].entries()) t.match(await publisher.request({ type: 'publish', id: i, topic: 'o.a', data: { x } }), { type: 'ack' })
  const events = await watcher.take(2)
  t.same(
    events.map((e) => [e.seq, (e.data as { x: number }).x]),
    [
      [2, 12],
      [4, 20]
    ],
    'seq gaps by design'
  )
  await watcher.quiet(100)

  // A snapshot only when the topic's last value passes; a replay of the matching events only.
  const late = await TestClient.open(url)
  t.teardown(() => late.close())
  t.match(await late.request({ type: 'subscribe', topic: 'o.a', filter: 'x < 10' }), { type: 'ack', filter: 'x < 10' })
  await late.quiet(100)
  const { epoch } = events[0] as { epoch: string }
  t.match(await late.request({ type: 'subscribe', topic: 'o.a', filter: 'x < 10', since: { epoch, seq: 0 } }), { type: 'ack', recovered: true })
  const replayed = await late.take(2)
  t.same(
    replayed.map((e) => [e.type, e.seq]),
    [
      ['event', 1],
      ['event', 3]
    ],
    'the replay skips what the filter does not let through'
  )
  const snapshot = await late.request({ type: 'subscribe', topic: 'o.a', filter: 'x > 10' })
  t.match(snapshot, { type: 'ack', filter: 'x > 10' }, 'the same pattern with another filter replaces it')
  t.match(await late.next(), { type: 'snapshot', seq: 4, data: { x: 20 } })

  t.match(await watcher.request({ type: 'subscribe', id: 9, topic: 'o.*', filter: 'x >=' }), {
    type: 'error',
    id: 9,
    code: 'bad_request',
    message: 'filter: expected a number, a "string", true, false or null, found "the end" at position 4'
  })
})

t.test('one evaluation per event per distinct filter, one frame per connection however many subscriptions match', async (t) => {
  const { url, app } = await startServer(t)
  const hub = hubOf(app.live) as unknown as { groups: Map<string, { mode: { filter: { test(d: unknown): boolean } } }> }
  const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.open(url)))
  t.teardown(() => {
    for (const c of clients) c.close()
  })
  for (const [i, c] of clients.entries()) await c.request({ type: 'subscribe', topic: 'f.*', filter: i % 2 === 0 ? 'x >= 10' : ' x>=10 ' })
  t.equal(hub.groups.size, 1, 'twenty subscriptions, one filter group')
  const group = [...hub.groups.values()][0]
  let evaluations = 0
  const test = group.mode.filter.test
  group.mode.filter.test = (d) => {
    evaluations++
    return test(d)
  }
  // A connection also subscribed without a filter, and with another filter on a wider pattern.
  await clients[0].request({ type: 'subscribe', topic: 'f.a' })
  await clients[0].request({ type: 'subscribe', topic: 'f.>', filter: 'x > 0' })
  await app.live.publish('f.a', { x: 11 })
  await app.live.publish('f.a', { x: 1 })
  const got = await Promise.all(clients.map((c) => c.next()))
  t.same(new Set(got.map((e) => e.seq)), new Set([1]), 'every subscriber got x = 11')
  t.equal(evaluations, 2, 'two events, one evaluation each for twenty subscribers')
  t.match(await clients[0].next(), { seq: 2, data: { x: 1 } }, 'x = 1 reaches the unfiltered and x > 0 subscriptions, once')
  await clients[0].quiet(100)
  await clients[1].quiet(50)
  t.equal(app.live.connections, 20)
  for (const c of clients) c.close()
  await new Promise((r) => setTimeout(r, 100))
  t.equal(hub.groups.size, 0, 'groups go with their last subscription')
})

t.test('the SDK: filter option, no gap reports for skipped seqs, applied to events another subscription brings, kept across a reconnect', async (t) => {
  const { url, app } = await startServer(t)
  const client = await LiveClient.connect({ url: `${url}/ws/live` })
  t.teardown(() => client.close())
  const gaps: unknown[] = []
  const filtered: number[] = []
  const all: number[] = []
  await client.subscribe<{ x: number }>('o.*', (e) => filtered.push(e.data.x), { filter: 'x >= 10', onGap: (g) => gaps.push(g) })
  await client.subscribe<{ x: number }>('o.a', (e) => all.push(e.data.x), { snapshot: false })
  await t.rejects(
    client.subscribe('o.b', () => {}, { filter: 'x >=' }),
    { code: 'bad_request', message: /position 4/ },
    'checked before it is sent'
  )
  await t.rejects(
    client.subscribe('o.*', () => {}, { filter: 'x < 0' }),
    { code: 'bad_request', message: /another filter/ }
  )
  for (const x of [5, 12, 7, 20]) await app.live.publish('o.a', { x })
  await until(() => all.length === 4, 'the unfiltered subscription gets all four')
  t.same(filtered, [12, 20], 'the filtered one only what passes, though the connection got all four')
  // Its connection drops; events published meanwhile come back through since, filtered.
  for (const connection of hubOf(app.live).connections) connection.socket.terminate()
  await until(() => !client.connected, 'dropped')
  for (const x of [30, 1, 40]) await app.live.publish('o.a', { x })
  await until(() => filtered.length === 4, 'recovered after the reconnect')
  t.same(filtered, [12, 20, 30, 40])
  t.same(gaps, [], 'no gap: the skipped seqs were filtered out')
})

t.test('deltas: whole event first, then Fossil deltas against the event each connection holds; whole every 32; with a filter', async (t) => {
  const { url, app } = await startServer(t)
  const bin = await TestClient.open(url)
  const text = await TestClient.open(url, { protocols: ['live.v1.json'], codec: 'json' })
  const plain = await TestClient.open(url)
  t.teardown(() => {
    bin.close()
    text.close()
    plain.close()
  })
  t.match(await bin.request({ type: 'subscribe', topic: 'd.*', delta: true, snapshot: false }), { type: 'ack', delta: true })
  t.match(await text.request({ type: 'subscribe', topic: 'd.*', delta: true, snapshot: false }), { type: 'ack', delta: true })
  await plain.request({ type: 'subscribe', topic: 'd.*', snapshot: false })
  // As a venue's book moves: one level's size changes per update.
  const book = (i: number) => ({
    bids: Array.from({ length: 20 }, (_, k) => [100 - k * 0.1, k === i % 20 ? 1 + i : 1]),
    asks: Array.from({ length: 20 }, (_, k) => [100.1 + k * 0.1, 2]),
    i
  })
  for (let i = 0; i < 40; i++) await app.live.publish('d.a', book(i))
  const got = await bin.take(40)
  const gotText = await text.take(40)
  const gotPlain = await plain.take(40)
  t.same(
    gotPlain.map((e) => (e.data as { i: number }).i),
    Array.from({ length: 40 }, (_, i) => i),
    'a plain subscriber: whole events, as before'
  )
  // Rebuild what a delta client sees: the data's own encoding, patched by each delta.
  const enc = new Encoder({ ignoreUndefined: true })
  let bytes: Uint8Array | null = null
  let json: string | null = null
  const kinds: string[] = []
  for (let k = 0; k < 40; k++) {
    const e = got[k] as Record<string, any>
    const j = gotText[k] as Record<string, any>
    if ('delta' in e) {
      t.equal(e.base, e.seq - 1)
      bytes = applyDelta(bytes!, e.delta)
      json = applyStringDelta(json!, j.delta)
      kinds.push('delta')
    } else {
      bytes = enc.encode(e.data)
      json = JSON.stringify(j.data)
      kinds.push('whole')
    }
    t.same(decode(bytes!), book(k), `seq ${e.seq} rebuilt`)
    t.same(JSON.parse(json), book(k))
  }
  t.same(kinds.map((k, i) => (k === 'whole' ? i + 1 : 0)).filter(Boolean), [1, 32], 'whole at the first event and every 32nd of the topic; deltas between')
  const deltaBytes = got.filter((e) => 'delta' in e).reduce((n, e) => n + (e as any).delta.length, 0) / 38
  const wholeBytes = enc.encode(book(0)).length
  t.ok(deltaBytes < wholeBytes / 4, `a delta of a 20-level book: ${deltaBytes.toFixed(0)} bytes of ${wholeBytes}`)

  // A late subscriber starts with a whole event; a filtered delta subscriber's deltas are against what it received.
  const late = await TestClient.open(url)
  t.teardown(() => late.close())
  await late.request({ type: 'subscribe', topic: 'd.a', delta: true, snapshot: false, filter: 'i >= 41' })
  for (let i = 40; i < 44; i++) await app.live.publish('d.a', book(i))
  const lateGot = await late.take(3)
  t.same(
    lateGot.map((e) => [e.seq, 'delta' in e ? (e as any).base : 'whole']),
    [
      [42, 'whole'],
      [43, 42],
      [44, 43]
    ]
  )
  const bytes42 = new Encoder({ ignoreUndefined: true }).encode(lateGot[0].data)
  t.same(decode(applyDelta(bytes42, (lateGot[1] as any).delta)), book(42))
})

t.test('the SDK with delta: true: whole events to the handler, fewer bytes on the wire; a broken chain recovers', async (t) => {
  const { url, app } = await startServer(t)
  for (const codec of ['msgpack', 'json'] as const) {
    const client = await LiveClient.connect({ url: `${url}/ws/live`, codec })
    t.teardown(() => client.close())
    const seen: number[] = []
    const errors: string[] = []
    client.on('error', (e) => errors.push(e.message))
    await client.subscribe<{ i: number; bids: number[][] }>(`s${codec}.*`, (e) => seen.push(e.data.i), { delta: true, snapshot: false })
    const book = (i: number) => ({ i, bids: Array.from({ length: 20 }, (_, k) => [100 - k, k === i % 20 ? 5 : 1]) })
    for (let i = 0; i < 10; i++) await app.live.publish(`s${codec}.a`, book(i))
    await until(() => seen.length === 10, `${codec}: ten events`)
    t.same(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], `${codec}: every event whole, in order`)
    // Break the chain the way a conflated queue would: the client forgets its base.
    ;(client as unknown as { deltaBases: Map<string, unknown> }).deltaBases.clear()
    for (let i = 10; i < 13; i++) await app.live.publish(`s${codec}.a`, book(i))
    await until(() => seen.length === 13, `${codec}: recovered through since`)
    t.same(seen.slice(10), [10, 11, 12], `${codec}: nothing lost, nothing twice`)
    t.match(errors[0], /delta on s\w+\.a #11 not applied .*: recovering/)
  }
})

t.test('what delta groups hold is capped: many filters over many topics stay within the budget, events go whole past it', async (t) => {
  const { url, app } = await startServer(t)
  const hub = hubOf(app.live) as unknown as { deltaMemory: { used: number; limit: number } }
  hub.deltaMemory.limit = 20_000 // 64 MiB in production
  const clients = await Promise.all(Array.from({ length: 5 }, () => TestClient.open(url)))
  t.teardown(() => {
    for (const c of clients) c.close()
  })
  for (const [i, c] of clients.entries()) await c.request({ type: 'subscribe', topic: 'm.*', delta: true, snapshot: false, filter: `n >= ${i}` })
  let most = 0
  for (let round = 0; round < 3; round++)
    for (let n = 0; n < 100; n++) {
      await app.live.publish(`m.t${n}`, { n: 10, pad: 'x'.repeat(100), round })
      most = Math.max(most, hub.deltaMemory.used)
    }
  t.ok(most <= 20_000, `at most ${most} bytes held`)
  const frames = await clients[4].take(300)
  t.equal(frames.length, 300, 'every event still delivered')
  for (const c of clients) c.close()
  await new Promise((r) => setTimeout(r, 100))
  t.equal(hub.deltaMemory.used, 0, 'given back with the last subscription')
})
