import t from 'tap'
import { MemoryBus } from '../src/core/bus.ts'
import type { BusEvent } from '../src/core/protocol.ts'

t.test('seq rises by exactly one per topic, events reach subscribers in order', async (t) => {
  const bus = new MemoryBus({ historySize: 10, historyTtl: 60_000 })
  const seen: BusEvent[] = []
  bus.subscribe((e) => seen.push(e))
  const a1 = bus.publish('a', 1)
  const b1 = bus.publish('b', 'x')
  const a2 = bus.publish('a', 2)
  t.same([a1.seq, b1.seq, a2.seq], [1, 1, 2])
  t.equal(a1.epoch, a2.epoch)
  t.not(a1.epoch, b1.epoch, 'each topic has its own epoch')
  t.same(
    seen.map((e) => `${e.topic}:${e.seq}`),
    ['a:1', 'b:1', 'a:2']
  )
  t.equal(bus.last('a'), a2)
  t.equal(bus.last('c'), undefined)
  t.same(
    bus
      .lastMatching('*')
      .map((e) => e.topic)
      .sort(),
    ['a', 'b']
  )
  t.same(bus.topics(), [
    { topic: 'a', seq: 2, epoch: a1.epoch },
    { topic: 'b', seq: 1, epoch: b1.epoch }
  ])
})

t.test('since: exact replays, and null when history cannot cover the gap', async (t) => {
  const bus = new MemoryBus({ historySize: 5, historyTtl: 60_000 })
  let epoch = ''
  for (let i = 1; i <= 12; i++) epoch = bus.publish('a', i).epoch
  t.same(bus.since('a', { epoch, seq: 12 }), [], 'already current')
  t.same(
    [...bus.since('a', { epoch, seq: 9 })!].map((e) => e.seq),
    [10, 11, 12]
  )
  t.same(
    [...bus.since('a', { epoch, seq: 7 })!].map((e) => e.seq),
    [8, 9, 10, 11, 12],
    'the whole ring'
  )
  t.equal(bus.since('a', { epoch, seq: 6 }), null, 'seq 7 fell out of the ring')
  t.equal(bus.since('a', { epoch: 'other', seq: 11 }), null, 'another epoch')
  t.equal(bus.since('a', { epoch, seq: 13 }), null, 'a position from the future')
  t.equal(bus.since('nope', { epoch, seq: 0 }), null, 'unknown topic')
})

t.test('history expires by age', async (t) => {
  // A second: the reads right after the publishes must come before it passes, even on a loaded machine.
  const bus = new MemoryBus({ historySize: 100, historyTtl: 1000 })
  const { epoch } = bus.publish('a', 1)
  bus.publish('a', 2)
  t.same(
    [...bus.since('a', { epoch, seq: 1 })!].map((e) => e.seq),
    [2]
  )
  await new Promise((r) => setTimeout(r, 1100))
  t.equal(bus.since('a', { epoch, seq: 1 }), null)
  t.same(bus.since('a', { epoch, seq: 2 }), [], 'current is current, however old')
  t.equal(bus.last('a')!.seq, 2, 'the last value outlives history')
})

t.test('HISTORY_SIZE=0 keeps no history', async (t) => {
  const bus = new MemoryBus({ historySize: 0, historyTtl: 60_000 })
  const { epoch } = bus.publish('a', 1)
  bus.publish('a', 2)
  t.equal(bus.since('a', { epoch, seq: 1 }), null)
})

t.test('history bytes: events of every size survive growth and wrap-around exactly', async (t) => {
  const bus = new MemoryBus({ historySize: 50, historyTtl: 60_000 })
  let state = 7
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  const published: { seq: number; ts: number; data: unknown }[] = []
  let epoch = ''
  for (let i = 1; i <= 2000; i++) {
    // Sizes from a byte to 6 KB, so the ring grows and events straddle its end.
    const data = { i, s: 'x'.repeat(Math.floor(random() ** 3 * 6000)), n: random(), nested: [i, { ok: i % 2 === 0 }] }
    const e = bus.publish('a', data)
    epoch = e.epoch
    published.push({ seq: e.seq, ts: e.ts, data })
    if (i % 97 === 0 || i === 2000) {
      const from = i - 50
      const replay = [...bus.since('a', { epoch, seq: from })!]
      t.equal(replay.length, 50, `50 events after seq ${from}`)
      t.same(
        replay.map(({ seq, ts, data }) => ({ seq, ts, data })),
        published.slice(from),
        `exact replay at seq ${i}`
      )
    }
  }
  t.equal(bus.since('a', { epoch, seq: 1949 }), null, 'seq 1950 fell out')
})
