// Subscription filters: the expression (parse, errors, limits, meaning) and the server (live events,
// snapshots and replays filtered, one evaluation per distinct filter, no duplicate, the ack says so).
import t from 'tap'
import { FILTER_LIMITS, parseFilter } from '../src/shared/filter.ts'
import { FilterTable } from '../src/core/filter-table.ts'
import { matching } from '../src/core/connection.ts'
import { PageRead } from '../src/core/bus.ts'
import type { BusEvent } from '../src/core/protocol.ts'
import { hubOf } from '../src/core/hub.ts'
import { startServer, TestClient, until } from './helper.ts'
import { LiveClient } from '../src/client/index.ts'
import { Encoder, decode } from '@msgpack/msgpack'
import { applyDelta, applyStringDelta } from 'fossil-delta'
import { type ClientOptions, WebSocket as WsSocket } from 'ws'

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
  const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.open(url)))
  t.teardown(() => {
    for (const c of clients) c.close()
  })
  for (const [i, c] of clients.entries()) await c.request({ type: 'subscribe', topic: 'f.*', filter: i % 2 === 0 ? 'x >= 10' : ' x>=10 ' })
  t.equal(app.live.filterFigures.held, 1, 'twenty subscriptions, one filter held')
  // A connection also subscribed without a filter, and with another filter on a wider pattern.
  await clients[0].request({ type: 'subscribe', topic: 'f.a' })
  await clients[0].request({ type: 'subscribe', topic: 'f.>', filter: 'x > 0' })
  const before = app.live.filterFigures.evaluations
  await app.live.publish('f.a', { x: 11 })
  await app.live.publish('f.a', { x: 1 })
  const got = await Promise.all(clients.map((c) => c.next()))
  t.same(new Set(got.map((e) => e.seq)), new Set([1]), 'every subscriber got x = 11')
  t.equal(app.live.filterFigures.evaluations - before, 4, 'two events, one evaluation each of the two distinct filters, for twenty-one subscriptions')
  t.match(await clients[0].next(), { seq: 2, data: { x: 1 } }, 'x = 1 reaches the unfiltered and x > 0 subscriptions, once')
  await clients[0].quiet(100)
  await clients[1].quiet(50)
  t.equal(app.live.connections, 20)
  for (const c of clients) c.close()
  await until(() => app.live.filterFigures.held === 0, 'filters go with their last subscription')
  t.same(app.live.filterFigures, { held: 0, cost: 0, evaluations: before + 4 }, 'nothing held, nothing more evaluated')
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
    // Break the chain the way a conflated queue would: the transport loses event #11 once.
    let lost = 0
    const WebSocket = lossyWebSocket((frame) => frame.seq === 11 && lost++ === 0)
    const client = await LiveClient.connect({ url: `${url}/ws/live`, codec, WebSocket })
    t.teardown(() => client.close())
    const seen: number[] = []
    const errors: string[] = []
    client.on('error', (e) => errors.push(e.message))
    await client.subscribe<{ i: number; bids: number[][] }>(`s${codec}.*`, (e) => seen.push(e.data.i), { delta: true, snapshot: false })
    const book = (i: number) => ({ i, bids: Array.from({ length: 20 }, (_, k) => [100 - k, k === i % 20 ? 5 : 1]) })
    for (let i = 0; i < 10; i++) await app.live.publish(`s${codec}.a`, book(i))
    await until(() => seen.length === 10, `${codec}: ten events`)
    t.same(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], `${codec}: every event whole, in order`)
    for (let i = 10; i < 13; i++) await app.live.publish(`s${codec}.a`, book(i))
    await until(() => seen.length === 13, `${codec}: recovered through since`)
    t.same(seen.slice(10), [10, 11, 12], `${codec}: nothing lost, nothing twice`)
    t.equal(lost, 2, `${codec}: #11 lost once, and brought again by since`)
    t.match(errors[0], /delta on s\w+\.a #12 not applied \(no event #11 to apply it to\): recovering/)
  }
})

// Issue #26: an 11-token topic, and 1,000 distinct patterns that all match it (each of its last ten
// tokens literal or `*`), so one connection can hold 1,000 groups that every event of it reaches.
const TOPIC_TAIL = 'a.b.c.d.e.g.h.i.j.k'
const masks = (first: string) =>
  Array.from(
    { length: 1000 },
    (_, i) =>
      `${first}.${TOPIC_TAIL.split('.')
        .map((token, bit) => ((i >> bit) & 1 ? '*' : token))
        .join('.')}`
  )

t.test(
  '#26 filters: 10 connections x 1,000 distinct never-passing filters; each connection is held to its budget, a publish costs what the budgets allow',
  async (t) => {
    // Frame-error strikes off: each refusal is counted here instead of closing the attacker after 100.
    const { url, app } = await startServer(t, { maxFrameErrors: 0 })
    const attackers = await Promise.all(Array.from({ length: 10 }, () => TestClient.open(url)))
    const honest = await TestClient.open(url)
    const filtered = await TestClient.open(url)
    t.teardown(() => {
      for (const c of [...attackers, honest, filtered]) c.close()
    })
    const answers: Record<string, number> = {}
    let message = ''
    for (const [c, attacker] of attackers.entries()) {
      const patterns = masks('f')
      for (const [i, topic] of patterns.entries()) attacker.send({ type: 'subscribe', id: i, topic, filter: `v < ${-(c * 1000 + i)}`, snapshot: false })
      for (const reply of await attacker.take(patterns.length)) {
        const answer = reply.type === 'error' ? (reply.code as string) : (reply.type as string)
        answers[answer] = (answers[answer] ?? 0) + 1
        if (reply.type === 'error') message = reply.message as string
      }
    }
    t.same(answers, { ack: 2560, too_large: 7440 }, 'MAX_FILTER_COST (256 field reads) per connection')
    t.equal(message, "this connection's filters would cost more than 256 field reads per event")
    t.match(app.live.filterFigures, { held: 2560, cost: 2560 })
    await honest.request({ type: 'subscribe', topic: 'f.>', snapshot: false })
    await filtered.request({ type: 'subscribe', topic: 'f.>', filter: 'v >= 0', snapshot: false })
    const before = app.live.filterFigures.evaluations
    for (let i = 0; i < 50; i++) await app.live.publish(`f.${TOPIC_TAIL}`, { v: i })
    t.equal(app.live.filterFigures.evaluations - before, 50 * 2561, 'each distinct filter evaluated once per event: at most MAX_FILTER_COST_TOTAL field reads')
    t.same(
      (await honest.take(50)).map((e) => e.seq),
      Array.from({ length: 50 }, (_, i) => i + 1),
      'the honest subscriber got every event'
    )
    t.same(
      (await filtered.take(50)).map((e) => e.seq),
      Array.from({ length: 50 }, (_, i) => i + 1),
      'and the honest filtered one'
    )
    for (const attacker of attackers) await attacker.quiet(0)
    for (const attacker of attackers) attacker.close()
    await until(() => app.live.filterFigures.held === 1, 'the attackers’ filters go with their connections')
    t.match(app.live.filterFigures, { held: 1, cost: 1 })
  }
)

t.test('#26 filters: the address and server budgets refuse with unavailable, naming which; a shared filter is charged once to the server', async (t) => {
  const table = new FilterTable({ maxFilterCost: 100, maxFilterCostPerIp: 10, maxFilterCostTotal: 12 })
  const f = (text: string) => parseFilter(text)
  t.equal(f('a.b.c == 1 and d in [1, 2]').cost, 4, 'a comparison costs the names of its field')
  const held = Array.from({ length: 5 }, (_, i) => table.hold('1.1.1.1', f(`a.b == ${i}`)))
  t.equal(table.refusal('1.1.1.1', f('x == 1')), "this address's filters cost their maximum of 10 field reads per event")
  const shared = table.hold('2.2.2.2', f('a.b == 0'))
  t.equal(shared, held[0], 'one compiled filter for every holder of the same text')
  t.same(table.size, { filters: 5, cost: 10 }, 'held twice, counted once')
  table.hold('2.2.2.2', f('y == 1'))
  table.hold('2.2.2.2', f('z == 1'))
  t.equal(table.refusal('3.3.3.3', f('w == 1')), "the server's filters cost their maximum of 12 field reads per event")
  t.equal(table.refusal('3.3.3.3', f('a.b == 1')), null, 'a filter already held costs the server nothing more')
  for (const h of held) table.release('1.1.1.1', h)
  t.same(table.size, { filters: 3, cost: 4 })
  t.equal(table.refusal('1.1.1.1', f('x == 1')), null, 'released budgets admit again')

  const { url } = await startServer(t, { maxFilterCostPerIp: 3 })
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  t.match(await c.request({ type: 'subscribe', topic: 'a', filter: 'x == 1 or y == 1' }), { type: 'ack' })
  t.match(await c.request({ type: 'subscribe', topic: 'b', filter: 'x == 1 or y == 1' }), { type: 'ack' }, 'the same filter again costs nothing more')
  t.match(await c.request({ type: 'subscribe', id: 3, topic: 'c', filter: 'x == 2 or y == 2' }), {
    type: 'error',
    id: 3,
    code: 'unavailable',
    message: "this address's filters cost their maximum of 3 field reads per event"
  })
  await c.request({ type: 'unsubscribe', topics: ['a', 'b'] })
  t.match(await c.request({ type: 'subscribe', topic: 'c', filter: 'x == 2 or y == 2' }), { type: 'ack' }, 'unsubscribing gave it back')
})

t.test('#26 canonical forms never merge different meanings: numbers outside the double range are refused; list order does not matter', async (t) => {
  for (const text of ['v < 1e999', 'v < -1e999', 'v in [1, 2e308]'])
    t.throws(() => parseFilter(text), { code: 'bad_request', message: /number outside the double range at position/ }, text)
  t.equal(parseFilter('v < 1.7976931348623157e308').key, 'v < 1.7976931348623157e+308')
  t.equal(parseFilter('s in ["b", "a", "b"]').key, parseFilter('s in ["a","b"]').key, 'a list is a set')
  t.not(parseFilter('v in [1]').key, parseFilter('v in ["1"]').key)
  const { url } = await startServer(t)
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  t.match(await c.request({ type: 'subscribe', id: 1, topic: 'a', filter: 'v < 1e999' }), { type: 'error', id: 1, code: 'bad_request' })
})

t.test('#26 deltas: made once per event and codec for every filtered subscriber that holds the base, whole for the others', async (t) => {
  const { url, app } = await startServer(t)
  const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.open(url)))
  t.teardown(() => {
    for (const c of clients) c.close()
  })
  // Twenty trivial filters that every event passes, and one that lets every other event through.
  for (const [i, c] of clients.entries())
    await c.request({ type: 'subscribe', topic: 'd.a', delta: true, snapshot: false, filter: i === 19 ? 'odd == true' : `i >= ${-i}` })
  const book = (i: number) => ({ i, odd: i % 2 === 1, bids: Array.from({ length: 20 }, (_, k) => [100 - k, k === i % 20 ? 5 : 1]) })
  for (let i = 0; i < 20; i++) await app.live.publish('d.a', book(i))
  t.equal(app.live.deltaFigures.made, 19, 'one delta per event after the first, not one per filter group')
  const got = await Promise.all(clients.slice(0, 19).map((c) => c.take(20)))
  for (const frames of got) {
    let bytes: Uint8Array | null = null
    for (const [k, e] of frames.entries()) {
      bytes = 'delta' in e ? applyDelta(bytes!, (e as any).delta) : new Encoder({ ignoreUndefined: true }).encode(e.data)
      t.same(decode(bytes!), book(k))
    }
    t.equal(frames.filter((e) => 'delta' in e).length, 19)
  }
  const odd = await clients[19].take(10)
  t.same(
    odd.map((e) => [e.seq, 'delta' in e]),
    Array.from({ length: 10 }, (_, k) => [2 * k + 2, false]),
    'its last event is never the shared base: every event whole'
  )
})

t.test('#26 deltas: one connection with 1,000 delta patterns over 1,700 topics holds one state per topic, every byte counted and capped', async (t) => {
  const { url, app } = await startServer(t, { deltaMemoryMb: 1 })
  const hub = hubOf(app.live)
  const attacker = await TestClient.open(url)
  const honest = await TestClient.open(url)
  t.teardown(() => {
    attacker.close()
    honest.close()
  })
  const patterns = masks('*')
  for (let i = 0; i < patterns.length; i += 250) await attacker.request({ type: 'subscribe', topics: patterns.slice(i, i + 250), delta: true, snapshot: false })
  await honest.request({ type: 'subscribe', topic: 'x0.>', delta: true, snapshot: false })
  let most = 0
  for (let round = 0; round < 2; round++)
    for (let k = 0; k < 1700; k++) {
      await app.live.publish(`x${k}.${TOPIC_TAIL}`, { k, round, pad: 'p'.repeat(200) })
      most = Math.max(most, hub.deltas.used)
    }
  t.ok(most <= 1024 * 1024, `at most ${most} bytes of delta state, of 1 MiB`)
  t.ok(hub.deltas.size.topics <= 1700, `${hub.deltas.size.topics} topic states for 1,000 groups: one per topic`)
  t.ok(hub.deltas.used >= hub.deltas.size.topics * 160, 'each topic state counted with what holds it, not only its encodings')
  t.equal((await attacker.take(3400)).length, 3400, 'every event delivered, once per connection')
  t.same(
    (await honest.take(2)).map((e) => e.seq),
    [1, 2],
    'the honest subscriber got its topic'
  )
  attacker.close()
  honest.close()
  await until(() => hub.deltas.used === 0, 'all of it given back with the last delta subscription')
  t.same(hub.deltas.size, { topics: 0, receivers: 0 })
})

t.test('#26 filters: a filtered replay lets the event loop go every 1,000 evaluations, and sends what passes, in order', async (t) => {
  const events: BusEvent[] = Array.from({ length: 2500 }, (_, i) => ({ topic: 'r.a', seq: i + 1, epoch: 'e', ts: 0, data: { x: i } }))
  const replay = matching({ length: events.length, [Symbol.iterator]: () => events[Symbol.iterator]() }, parseFilter('x == 10 or x == 2400'))
  t.same(
    [...replay].map((e) => (e instanceof PageRead ? 'turn' : e.seq)),
    [11, 'turn', 'turn', 2401]
  )
  const { url, app } = await startServer(t, { historySize: 3000 })
  let epoch = ''
  for (let i = 0; i < 2500; i++) epoch = (await app.live.publish('r.a', { x: i })).epoch
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  t.match(await c.request({ type: 'subscribe', topic: 'r.a', filter: 'x == 10 or x == 2400', since: { epoch, seq: 0 } }), { type: 'ack', recovered: true })
  t.same(
    (await c.take(2)).map((e) => e.seq),
    [11, 2401]
  )
  await app.live.publish('r.a', { x: 2400 })
  t.match(await c.next(), { type: 'event', seq: 2501 }, 'then live')
})

t.test("#26 filters: a subscribe's snapshots are filtered from its frame's work budget, at the filter's cost", async (t) => {
  const { url, app } = await startServer(t)
  for (let i = 0; i < 2000; i++) await app.live.publish(`s.t${i}`, { a: { b: i } })
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  // 30 comparisons of a two-name field: 60 field reads per snapshot, 120,000 for 2,000 topics.
  const costly = Array.from({ length: 30 }, (_, i) => `a.b == ${-1 - i}`).join(' or ')
  t.match(await c.request({ type: 'subscribe', id: 1, topic: 's.>', filter: costly }), {
    type: 'error',
    id: 1,
    code: 'too_large',
    message: /costs more than one frame may/
  })
  t.match(app.live.filterFigures, { held: 0, cost: 0 }, 'refused whole: nothing held')
  t.match(await c.request({ type: 'subscribe', id: 2, topic: 's.>', filter: 'a.b < 2' }), { type: 'ack', id: 2 }, 'two reads a topic fit')
  t.same(
    (await c.take(2)).map((e) => [e.type, e.topic]),
    [
      ['snapshot', 's.t0'],
      ['snapshot', 's.t1']
    ]
  )
})

/**
 * The `ws` WebSocket as the SDK takes it (its WebSocket option), losing the frames `lose` picks on
 * their way in, as a transport behind a conflated queue does.
 */
function lossyWebSocket(lose: (frame: { seq?: number }) => boolean) {
  return class LossySocket {
    private readonly inner: WsSocket
    onopen: ((ev: unknown) => void) | null = null
    onmessage: ((ev: { data: unknown }) => void) | null = null
    onclose: ((ev: { code: number; reason: string }) => void) | null = null
    onerror: ((ev: unknown) => void) | null = null
    constructor(url: string, protocols?: string[], options?: ClientOptions) {
      this.inner = new WsSocket(url, protocols, options)
      this.inner.onopen = (ev) => this.onopen?.(ev)
      this.inner.onmessage = (ev) => {
        const frame = typeof ev.data === 'string' ? JSON.parse(ev.data) : decode(new Uint8Array(ev.data as ArrayBuffer))
        if (!lose(frame as { seq?: number })) this.onmessage?.(ev)
      }
      this.inner.onclose = (ev) => this.onclose?.(ev)
      this.inner.onerror = (ev) => this.onerror?.(ev)
    }
    get readyState(): number {
      return this.inner.readyState
    }
    get protocol(): string {
      return this.inner.protocol
    }
    get binaryType(): string {
      return this.inner.binaryType
    }
    set binaryType(type: string) {
      this.inner.binaryType = type as WsSocket['binaryType']
    }
    send(data: string | Uint8Array): void {
      this.inner.send(data)
    }
    close(code?: number, reason?: string): void {
      this.inner.close(code, reason)
    }
  }
}
