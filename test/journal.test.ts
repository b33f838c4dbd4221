// HISTORY_DIR: the in-memory bus's journal. Restarts keep epochs, seqs, history and last values;
// a damaged journal loads its good part and says what it skipped; kill -9 of the real server
// mid-publish loses no acked event.
import t from 'tap'
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Journal, type FsyncPolicy } from '../src/core/journal.ts'
import { JournaledBus } from '../src/core/journaled-bus.ts'
import type { BusEvent } from '../src/core/protocol.ts'
import { decode, encode } from '@msgpack/msgpack'
import { WebSocket } from 'ws'
import { startProcess, TestClient } from './helper.ts'

const dir = () => mkdtempSync(join(tmpdir(), 'live-journal-'))
const options = { historySize: 100, historyTtl: 3_600_000 }

function open(path: string, { fsync = 'no' as FsyncPolicy, floor = 64 * 1024 * 1024, historySize = 100 } = {}) {
  const bus = new JournaledBus({ ...options, historySize }, new Journal(path, fsync, floor))
  const report = bus.restore()
  return { bus, report }
}

const seqs = (replay: Iterable<BusEvent> | null) => (replay === null ? null : [...replay].map((e) => [e.seq, e.data]))

t.test('a restart keeps every topic: epoch, seq, history and last value', async (t) => {
  const path = dir()
  const first = open(path).bus
  const events = new Map<string, BusEvent>()
  for (let i = 1; i <= 5; i++) for (const topic of ['a', 'b.c']) events.set(`${topic}${i}`, await first.publish(topic, { i, topic }))
  const delivered: BusEvent[] = []
  first.subscribe((e) => delivered.push(e))
  const acked = await first.publish('a', 'six')
  t.same([acked.seq, delivered.map((e) => e.seq)], [6, [6]], 'acked and delivered after the write')
  // No close: what a kill -9 leaves (every acked record was written to the file).
  const { bus, report } = open(path)
  t.match(report, { records: 11, topics: 2, damaged: [] })
  t.equal(bus.last('a')!.epoch, events.get('a1')!.epoch, 'same epoch')
  t.same([bus.last('a')!.seq, bus.last('a')!.data], [6, 'six'])
  t.same(seqs(bus.since('b.c', { epoch: events.get('b.c1')!.epoch, seq: 2 })), [
    [3, { i: 3, topic: 'b.c' }],
    [4, { i: 4, topic: 'b.c' }],
    [5, { i: 5, topic: 'b.c' }]
  ])
  t.same((await bus.publish('b.c', 'next')).seq, 6, 'seqs continue')
  t.same(
    bus.topics().map((x) => [x.topic, x.seq]),
    [
      ['a', 6],
      ['b.c', 6]
    ]
  )
  bus.close()
  first.close()
})

t.test('a publish is acked only after its group commit, and one write holds the whole turn', async (t) => {
  const path = dir()
  const { bus } = open(path)
  const segment = join(path, readdirSync(path).find((n) => n.endsWith('.log'))!)
  const acks = [bus.publish('x', 1), bus.publish('x', 2), bus.publish('y', 3)]
  t.equal(statSync(segment).size, 0, 'nothing written during the turn')
  t.equal(bus.last('x'), undefined, 'no snapshot of what is not written yet')
  const done = await Promise.all(acks)
  t.same(
    done.map((e) => [e.topic, e.seq]),
    [
      ['x', 1],
      ['x', 2],
      ['y', 1]
    ]
  )
  t.ok(statSync(segment).size > 0, 'written before the acks')
  bus.close()
})

t.test('a journal that cannot be written holds its acks and refuses publishes until it can', async (t) => {
  const path = dir()
  const journal = new Journal(path, 'no')
  const errors: (string | undefined)[] = []
  const bus = new JournaledBus(options, journal, (err) => errors.push(err?.message))
  bus.restore()
  const write = journal.flush.bind(journal)
  journal.flush = () => {
    throw new Error('ENOSPC: no space left on device')
  }
  let acked = false
  const pending = bus.publish('d', 1).then((e) => {
    acked = true
    return e
  })
  await new Promise((r) => setImmediate(r))
  t.same([acked, bus.ready, errors], [false, false, ['ENOSPC: no space left on device']], 'not acked, not ready, said once')
  t.throws(() => bus.publish('d', 2), { code: 'unavailable', message: 'the history journal cannot be written' })
  journal.flush = write // the disk has room again: the retry writes it
  t.match(await pending, { seq: 1 })
  t.same([bus.ready, errors], [true, ['ENOSPC: no space left on device', undefined]])
  t.match(await bus.publish('d', 3), { seq: 2 }, 'the refused publish took no seq')
  bus.close()
  t.same(open(path).bus.topics(), [{ topic: 'd', seq: 2, epoch: (await pending).epoch }])
})

t.test('a truncated or corrupt journal loads its good part, reports the rest, and goes on', async (t) => {
  const path = dir()
  const first = open(path).bus
  for (let i = 1; i <= 10; i++) await first.publish('t', i)
  first.close()
  const [name] = readdirSync(path).filter((n) => n.endsWith('.log'))
  const segment = join(path, name)
  const size = statSync(segment).size
  const recordSize = size / 10
  // A record cut short (a crash in the middle of a write).
  truncateSync(segment, size - 3)
  let { bus, report } = open(path)
  t.equal(report.records, 9)
  t.match(report.damaged, [new RegExp(`^${name}: ${recordSize - 3} bytes from offset ${9 * recordSize} skipped \\(a record cut short`)])
  t.same([bus.last('t')!.seq, bus.last('t')!.data], [9, 9], 'the good part')
  t.equal((await bus.publish('t', 'after')).seq, 10, 'appended after the good part')
  bus.close()
  ;({ bus, report } = open(path))
  t.same([report.records, report.damaged], [10, []], 'the cut tail was dropped: what follows it loads')
  t.equal(bus.last('t')!.data, 'after')
  bus.close()

  // A flipped byte in the middle: the checksum stops the segment there.
  const bytes = readFileSync(segment)
  bytes[4 * recordSize + 20] ^= 0xff
  writeFileSync(segment, bytes)
  ;({ bus, report } = open(path))
  t.equal(report.records, 4)
  t.match(report.damaged, [/a record fails its checksum/])
  t.same(bus.last('t')!.seq, 4)
  bus.close()

  // Garbage that claims a huge record, and a file of noise: reported, never thrown.
  appendFileSync(join(path, '00000099.log'), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]))
  ;({ bus, report } = open(path))
  t.match(report.damaged, [/^00000099.log: 8 bytes from offset 0 skipped \(a record claims 4294967295 bytes\)/])
  t.ok(readdirSync(path).includes(`${name}.damaged`), 'the damaged tail of the last segment is kept aside, not appended after')
  t.equal((await bus.publish('t', 'still')).seq, 5)
  bus.close()
})

t.test('compaction: the journal stays near what is live, and loads the same', async (t) => {
  const path = dir()
  const { bus } = open(path, { floor: 64 * 1024, historySize: 10 })
  for (let i = 1; i <= 3000; i++) await bus.publish(`k.${i % 7}`, { i, pad: 'x'.repeat(100) })
  bus.close()
  const segments = readdirSync(path).filter((n) => n.endsWith('.log'))
  const total = segments.reduce((n, s) => n + statSync(join(path, s)).size, 0)
  t.ok(segments.length === 1 && total < 3 * 64 * 1024, `${segments.length} segment(s), ${total} bytes for 3,000 events written`)
  const again = open(path, { historySize: 10 }).bus
  // 3,000 publishes round 7 topics: k.1 to k.4 got 429 each, the other three 428.
  t.same(Object.fromEntries(again.topics().map((x) => [x.topic, x.seq])), {
    'k.0': 428,
    'k.1': 429,
    'k.2': 429,
    'k.3': 429,
    'k.4': 429,
    'k.5': 428,
    'k.6': 428
  })
  const last = again.last('k.1')!
  t.same(seqs(again.since('k.1', { epoch: last.epoch, seq: last.seq - 2 }))!.length, 2)
  again.close()
})

t.test('a machine restart without a clean close: new epochs unless every commit was synced', async (t) => {
  for (const fsync of ['everysec', 'always'] as const) {
    const path = dir()
    const first = open(path, { fsync }).bus
    const { epoch } = await first.publish('p', 1)
    writeFileSync(join(path, 'boot'), 'another-boot') // the journal as a power loss leaves it: never closed
    const { bus, report } = open(path, { fsync })
    t.equal(report.uncleanReboot, true)
    t.same(bus.last('p')!.seq, 1)
    if (fsync === 'always') t.equal(bus.last('p')!.epoch, epoch, 'always: every ack was on disk, same epoch')
    else {
      t.not(bus.last('p')!.epoch, epoch, `${fsync}: a new epoch`)
      t.equal(bus.since('p', { epoch, seq: 1 }), null, 'a client of before is told recovered:false')
    }
    bus.close()
    first.close()
  }
})

t.test('kill -9 of the server mid-publish: every acked event comes back, same epoch, seq continues', async (t) => {
  const path = dir()
  const first = startProcess({ HISTORY_DIR: path, HISTORY_SIZE: '10000' })
  t.teardown(() => first.child.kill('SIGKILL'))
  const publisher = new WebSocket(`ws://127.0.0.1:${await first.port}/ws/live`)
  await new Promise((r) => publisher.once('open', r))
  const acked = new Map<number, number>() // seq -> n
  let epoch = ''
  let sent = 0
  // Publishes in flight all the time: the kill lands between a write and its ack somewhere.
  const inFlight = new Set<number>()
  publisher.on('message', (data: Buffer) => {
    const f = decode(data) as { type: string; id: number; seq: number; epoch: string }
    if (f.type !== 'ack') return
    acked.set(f.seq, f.id)
    epoch = f.epoch
    inFlight.delete(f.id)
  })
  while (acked.size < 2000) {
    while (inFlight.size < 50) {
      sent++
      inFlight.add(sent)
      publisher.send(encode({ type: 'publish', id: sent, topic: 'k9', data: { n: sent } }))
    }
    await new Promise((r) => setTimeout(r, 1))
  }
  // Frozen where it stands (50 in flight), then 50 more it cannot read: some are surely unanswered
  // at the kill (a plain kill after a burst let a fast server answer every one first).
  first.child.kill('SIGSTOP')
  for (let i = 0; i < 50; i++) publisher.send(encode({ type: 'publish', id: ++sent, topic: 'k9', data: { n: sent } }))
  first.child.kill('SIGKILL')
  await first.exited
  t.ok(sent > acked.size, `${sent - acked.size} of ${sent} publishes were unanswered at the kill`)

  const second = startProcess({ HISTORY_DIR: path, HISTORY_SIZE: '10000' })
  t.teardown(() => second.child.kill('SIGKILL'))
  const client = await TestClient.open(`ws://127.0.0.1:${await second.port}`)
  t.same(await client.request({ type: 'subscribe', id: 1, topic: 'k9', since: { epoch, seq: 0 } }), { type: 'ack', id: 1, topics: ['k9'], recovered: true })
  const last = Math.max(...acked.keys())
  const replay = await client.take(last)
  for (const e of replay) if (acked.has(e.seq) && acked.get(e.seq) !== e.data.n) t.fail(`seq ${e.seq} is not what was acked`)
  t.same(
    replay.slice(0, last).map((e) => e.seq),
    Array.from({ length: last }, (_, i) => i + 1),
    `every acked event (${acked.size}) recovered in order`
  )
  t.equal(replay[0].epoch, epoch, 'same epoch')
  const next = await client.request({ type: 'publish', id: 9, topic: 'k9', data: 'after' })
  t.ok(next.seq > last && next.epoch === epoch, `the next seq (${next.seq}) follows the last acked (${last})`)
  t.match(second.output(), /"msg":"history journal loaded"/)
  client.close()
  publisher.terminate()
})
