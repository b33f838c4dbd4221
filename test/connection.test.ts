// The connection, its send path and its subscribe flow without a socket: a real hub and in-memory
// bus, object fakes for the WebSocket and its TCP socket, exact frames and write counts. Nothing
// here waits on the network, so nothing here can flake under load.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { decode, encode } from '@msgpack/msgpack'
import { Hub } from '../src/core/hub.ts'
import { MemoryBus, type Bus } from '../src/core/bus.ts'
import { HookRegistry } from '../src/core/hooks.ts'
import { framePayload } from '../src/core/codec.ts'
import { UNRESTRICTED } from '../src/core/auth.ts'
import { loadConfig, type Config } from '../src/config.ts'
import type { LiveSocket } from '../src/core/connection.ts'
import type { BusEvent, Position } from '../src/core/protocol.ts'

const silent = { debug() {}, warn() {} }
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** ws's underlying TCP socket: records writes and corks; `take` plays the kernel accepting bytes. */
class FakeTcp extends EventEmitter {
  readonly writes: Buffer[] = []
  corks = 0
  uncorks = 0
  pending = 0
  readonly writableHighWaterMark = 16 * 1024
  get writableNeedDrain() {
    return this.pending >= this.writableHighWaterMark
  }
  cork() {
    this.corks++
  }
  uncork() {
    this.uncorks++
  }
  write(frame: Buffer) {
    this.writes.push(frame)
    this.pending += frame.length
    return this.pending < this.writableHighWaterMark
  }
  /** The kernel took everything: the queue is empty and 'drain' fires. */
  take() {
    this.pending = 0
    this.emit('drain')
  }
  /** Frames written so far, decoded (complete WebSocket frames: header, then MessagePack). */
  frames(): Record<string, any>[] {
    return this.writes.map((f) => decode(framePayload(f)) as Record<string, any>)
  }
}

class FakeSocket extends EventEmitter implements LiveSocket {
  readyState = 1
  readonly sent: Record<string, any>[] = []
  closedWith: { code?: number; reason?: string } | null = null
  constructor(readonly _socket: FakeTcp | null = null) {
    super()
  }
  get bufferedAmount() {
    return this._socket?.pending ?? 0
  }
  send(data: Uint8Array) {
    this.sent.push(decode(data) as Record<string, any>)
  }
  close(code?: number, reason?: string) {
    this.readyState = 2
    this.closedWith = { code, reason }
  }
  terminate() {
    this.readyState = 3
  }
  ping() {}
  /** A frame from the client. */
  receive(frame: object) {
    this.emit('message', Buffer.from(encode(frame)), true)
  }
}

function setup(overrides: Partial<Config> = {}, bus: Bus = new MemoryBus({ historySize: 100, historyTtl: 60_000 })) {
  const options = loadConfig({}, { heartbeatInterval: 0, memoryLimitMb: 0, ...overrides })
  const hub = new Hub(bus, options, silent, new HookRegistry(options, silent))
  return { hub, bus: bus as MemoryBus }
}

function connect(hub: Hub, tcp: FakeTcp | null = null) {
  const socket = new FakeSocket(tcp)
  const connection = hub.accept(socket, 'msgpack', '127.0.0.1', UNRESTRICTED)!
  return { socket, connection }
}

t.test('send path: a turn of events leaves corked, uncorked every 64 frames and once at the end', async (t) => {
  const { hub, bus } = setup()
  const tcp = new FakeTcp()
  const { socket } = connect(hub, tcp)
  socket.receive({ type: 'subscribe', id: 1, topic: 'a', snapshot: false })
  await turn()
  tcp.writes.length = 0
  const [corks, uncorks] = [tcp.corks, tcp.uncorks]
  for (let i = 0; i < 100; i++) bus.publish('a', i)
  t.equal(tcp.writes.length, 100, 'one write per event')
  t.same([tcp.corks - corks, tcp.uncorks - uncorks], [2, 1], 'corked, then uncorked and corked again at the 64th frame')
  await turn()
  t.equal(tcp.uncorks - uncorks, 2, 'the end-of-turn flush uncorked it')
  t.same(
    tcp.frames().map((f) => f.seq),
    Array.from({ length: 100 }, (_, i) => i + 1)
  )
})

t.test('send path: replies to one read leave in one write, after the read', async (t) => {
  const { hub } = setup()
  const tcp = new FakeTcp()
  const { socket } = connect(hub, tcp)
  socket.receive({ type: 'ping', id: 1 })
  socket.receive({ type: 'ping', id: 2 })
  t.same([tcp.corks, tcp.uncorks], [1, 0], 'the replies wait, corked')
  await Promise.resolve()
  t.same([tcp.corks, tcp.uncorks], [1, 1], 'and leave at the end of the read (a microtask)')
  t.same(
    tcp.frames().map((f) => [f.type, f.id]),
    [
      ['pong', 1],
      ['pong', 2]
    ]
  )
})

t.test('send path: past MAX_QUEUED_BYTES, close with 4008, or conflate to the latest per topic', async (t) => {
  const closing = setup({ maxQueuedBytes: 1024 })
  const tcp = new FakeTcp()
  const a = connect(closing.hub, tcp)
  a.socket.receive({ type: 'subscribe', topic: 'a', snapshot: false })
  await turn()
  tcp.pending = 2048 // the kernel stopped taking bytes
  closing.bus.publish('a', 1)
  t.same(a.socket.closedWith, { code: 4008, reason: 'slow consumer' })
  t.equal(closing.hub.figures.slowClosed, 1)

  const conflating = setup({ maxQueuedBytes: 1024, slowConsumer: 'conflate' })
  const slow = new FakeTcp()
  const b = connect(conflating.hub, slow)
  b.socket.receive({ type: 'subscribe', topics: ['x', 'y'], snapshot: false })
  await turn()
  slow.writes.length = 0
  slow.pending = 2048
  for (const [topic, v] of [
    ['x', 1],
    ['x', 2],
    ['y', 1],
    ['x', 3]
  ] as const)
    conflating.bus.publish(topic, v)
  t.equal(slow.writes.length, 0, 'nothing written while congested')
  t.equal(conflating.hub.figures.conflatedEvents, 4)
  slow.take()
  t.same(
    slow.frames().map((f) => [f.topic, f.seq]),
    [
      ['x', 3],
      ['y', 1]
    ],
    'after the drain: the latest of each topic, a seq jump the client sees'
  )
  t.equal(b.socket.closedWith, null)
})

t.test('deltas under the conflate policy: whole events while congested, deltas again after the drain', async (t) => {
  const { hub, bus } = setup({ maxQueuedBytes: 1024, slowConsumer: 'conflate' })
  const slow = new FakeTcp()
  const c = connect(hub, slow)
  c.socket.receive({ type: 'subscribe', topic: 'd', snapshot: false, delta: true })
  await turn()
  const data = (v: number) => ({ v, levels: [1, 2, 3, 4, 5, 6, 7, 8] })
  bus.publish('d', data(1))
  bus.publish('d', data(2))
  await turn()
  t.same(
    slow
      .frames()
      .slice(1)
      .map((f) => [f.seq, 'delta' in f ? f.base : 'whole']),
    [
      [1, 'whole'],
      [2, 1]
    ]
  )
  slow.writes.length = 0
  slow.pending = 2048 // congested: the queue conflates
  for (const v of [3, 4, 5]) bus.publish('d', data(v))
  slow.take()
  bus.publish('d', data(6))
  await turn()
  t.same(
    slow.frames().map((f) => [f.seq, 'delta' in f ? f.base : 'whole']),
    [
      [5, 'whole'],
      [6, 5]
    ],
    'the frame that survived conflation is whole (a delta against a dropped one could not be applied); then deltas against it'
  )
})

t.test('subscribe flow: ack, replay, then live; a long replay waits for the socket, live events behind it', async (t) => {
  const { hub, bus } = setup({ maxQueuedBytes: 16 * 1024 })
  const tcp = new FakeTcp()
  const { socket } = connect(hub, tcp)
  const first = bus.publish('r', { n: 0, pad: 'x'.repeat(3000) })
  for (let n = 1; n < 60; n++) bus.publish('r', { n, pad: 'x'.repeat(3000) })
  socket.receive({ type: 'subscribe', id: 7, topic: 'r', since: { epoch: first.epoch, seq: 0 } })
  socket.receive({ type: 'ping', id: 8 }) // waits behind the replay
  bus.publish('r', { n: 60, live: true }) // held behind the replay
  const written = () => tcp.frames().map((f) => (f.type === 'event' ? f.seq : f.type))
  // MAX_QUEUED_BYTES (16 KiB) of ~3 KB frames: the replay stops after 6 frames until 'drain'.
  const beforeDrain = written()
  t.equal(beforeDrain[0], 'ack')
  t.equal(beforeDrain.length - 1, 6, 'replayed events written before the socket drained')
  t.notOk(beforeDrain.includes('pong'), 'the ping waits behind the replay')
  for (let i = 0; i < 100 && tcp.writes.length < 63; i++) {
    tcp.take()
    await turn()
  }
  const frames = tcp.frames()
  t.match(frames[0], { type: 'ack', id: 7, recovered: true })
  t.same(
    frames.slice(1, 62).map((f) => f.seq),
    Array.from({ length: 61 }, (_, i) => i + 1),
    'seq 1..60 replayed, then 61 live: no gap, no duplicate'
  )
  t.match(frames[62], { type: 'pong', id: 8 }, 'then the ping, in the order sent')
})

t.test('subscribe flow: a replay holds a cursor into history; if history moves past a reader that slow, 4008', async (t) => {
  const bus = new MemoryBus({ historySize: 100, historyTtl: 60_000 })
  const { hub } = setup({ maxQueuedBytes: 16 * 1024 }, bus)
  const tcp = new FakeTcp()
  const { socket } = connect(hub, tcp)
  const first = bus.publish('r', { n: 0, pad: 'x'.repeat(3000) })
  for (let n = 1; n < 60; n++) bus.publish('r', { n, pad: 'x'.repeat(3000) })
  const replay = bus.since('r', { epoch: first.epoch, seq: 0 })!
  t.equal(replay.length, 60, 'the range covers 60 events, none read yet')
  socket.receive({ type: 'subscribe', id: 1, topic: 'r', since: { epoch: first.epoch, seq: 0 } })
  t.equal(tcp.frames().length, 7, 'ack and 6 events written, the rest waits for the socket')
  bus.sweep(Date.now() + 120_000) // the history expires while the client is not reading
  tcp.take()
  t.same(socket.closedWith, { code: 4008, reason: 'slow consumer' }, 'the events it was promised are gone: closed as a slow consumer')
  t.equal(tcp.frames().length, 7, 'nothing written after')
})

t.test('subscribe flow: with a bus that answers later, live events are held and those the replay covered dropped', async (t) => {
  const inner = new MemoryBus({ historySize: 100, historyTtl: 60_000 })
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  // Reads answer after the gate opens, with what the bus holds then.
  const slow: Bus = Object.assign(Object.create(inner), {
    since: (topic: string, position: Position) => gate.then(() => inner.since(topic, position)),
    subscribe: (listener: (e: BusEvent) => void) => inner.subscribe(listener)
  })
  const { hub } = setup({}, slow)
  const { socket } = connect(hub)
  const first = inner.publish('s', 1)
  socket.receive({ type: 'subscribe', id: 1, topic: 's', since: { epoch: first.epoch, seq: 1 } })
  inner.publish('s', 2) // live while the read is out, and also in what the read returns
  inner.publish('s', 3)
  release()
  await turn()
  inner.publish('s', 4)
  t.same(
    socket.sent.map((f) => (f.type === 'event' ? f.seq : f.type)),
    ['ack', 2, 3, 4],
    'replayed 2 and 3 once, then 4 live'
  )
})

t.test('frames of a connection keep their order behind an async inbound hook', async (t) => {
  const { hub } = setup()
  hub.hooks.onInbound({ name: 'slow-first', budgetMs: 1000 }, (frame) =>
    frame.id === 1 ? new Promise((resolve) => setTimeout(() => resolve(undefined), 30)) : undefined
  )
  const { socket } = connect(hub)
  socket.receive({ type: 'ping', id: 1 })
  socket.receive({ type: 'ping', id: 2 })
  socket.receive({ type: 'request', id: 3, method: 'time' })
  while (socket.sent.length < 3) await new Promise((resolve) => setTimeout(resolve, 5))
  t.same(
    socket.sent.map((f) => f.id),
    [1, 2, 3]
  )
})

t.test('the connection owns its subscriptions: closing it frees every one in the hub', async (t) => {
  const { hub } = setup()
  const { socket, connection } = connect(hub)
  socket.receive({ type: 'subscribe', topics: ['a.*', 'b', 'c.>'], snapshot: false })
  t.same([...connection.subscriptions], ['a.*', 'b', 'c.>'])
  t.same([hub.subscribers('a.x'), hub.figures.subscriptions], [1, 3])
  socket.receive({ type: 'unsubscribe', topic: 'b' })
  t.same([...connection.subscriptions], ['a.*', 'c.>'])
  socket.emit('close', 1000)
  t.same([hub.subscribers('a.x'), hub.subscribers('c.d'), hub.figures.subscriptions, hub.connections.size], [0, 0, 0, 0])
})
