// A bus that answers asynchronously (as a network backplane does): subscribe holds live events
// while history is read, then drops those the replay or snapshot already covered.
import t from 'tap'
import { MemoryBus, type Bus } from '../src/core/bus.ts'
import type { BusEvent, Position } from '../src/core/protocol.ts'
import { startServer, TestClient, sleep, until } from './helper.ts'

class SlowReadsBus implements Bus {
  readonly inner = new MemoryBus({ historySize: 10_000, historyTtl: 60_000 })
  readonly ready = true
  constructor(private readonly delayMs: number) {}
  subscribe(listener: (e: BusEvent) => void) {
    return this.inner.subscribe(listener)
  }
  private later<T>(read: () => T): Promise<T> {
    // Read at the end of the delay: events published meanwhile are both in the answer and held live.
    return new Promise((resolve) => setTimeout(() => resolve(read()), this.delayMs))
  }
  publish(topic: string, data: unknown) {
    return Promise.resolve(this.inner.publish(topic, data))
  }
  last(topic: string) {
    return this.later(() => this.inner.last(topic))
  }
  lastMatching(pattern: string) {
    return this.later(() => this.inner.lastMatching(pattern))
  }
  since(topic: string, position: Position) {
    return this.later(() => this.inner.since(topic, position))
  }
  topics() {
    return this.later(() => this.inner.topics())
  }
  watch() {}
  unwatch() {}
  close() {}
}

async function publishing(bus: SlowReadsBus, topic: string) {
  let stop = false
  const done = (async () => {
    while (!stop) {
      await bus.publish(topic, null)
      await sleep(1)
    }
  })()
  return async () => {
    stop = true
    await done
  }
}

t.test('snapshot then live with no gap and no duplicate while reads are slow', async (t) => {
  const bus = new SlowReadsBus(30)
  const { url } = await startServer(t, {}, bus)
  bus.inner.publish('s', null)
  const stop = await publishing(bus, 's')
  const c = await TestClient.open(url)
  t.match(await c.request({ type: 'subscribe', topic: 's' }), { type: 'ack' })
  const frames = await c.take(40)
  await stop()
  t.equal(frames[0].type, 'snapshot')
  const seqs = frames.map((f) => f.seq)
  t.same(
    seqs,
    seqs.map((_, i) => seqs[0] + i),
    'snapshot then every later seq once'
  )
  c.close()
})

t.test('recovery with since while reads are slow', async (t) => {
  const bus = new SlowReadsBus(30)
  const { url } = await startServer(t, {}, bus)
  const stop = await publishing(bus, 'r')
  await until(() => bus.inner.last('r')!.seq >= 5, 'a few events published')
  const from = bus.inner.last('r')!
  await until(() => bus.inner.last('r')!.seq >= from.seq + 5, 'events after the position, to recover')
  const c = await TestClient.open(url)
  t.same(await c.request({ type: 'subscribe', id: 1, topic: 'r', since: { epoch: from.epoch, seq: from.seq } }), {
    type: 'ack',
    id: 1,
    topics: ['r'],
    recovered: true
  })
  const frames = await c.take(40)
  await stop()
  t.same(
    frames.map((f) => f.seq),
    frames.map((_, i) => from.seq + 1 + i),
    'replay then live, contiguous, no duplicate'
  )
  c.close()
})

t.test('a failing bus read answers an error and undoes the subscription', async (t) => {
  const bus = new SlowReadsBus(1)
  bus.last = () => Promise.reject(new Error('down'))
  const { url, app } = await startServer(t, {}, bus)
  const c = await TestClient.open(url)
  t.same(await c.request({ type: 'subscribe', id: 1, topic: 'f' }), { type: 'error', id: 1, code: 'internal', message: 'internal error' })
  t.equal(app.live.subscribers('f'), 0)
  c.close()
})
