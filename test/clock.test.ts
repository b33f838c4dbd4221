// The connectors' clock seam (src/market/clock.ts): the virtual clock tests and replays run on fires
// timers in due order (ties in creation order) at their due times, and runs the end of turn only
// when told; the live clock's timers never keep a process up.
import t from 'tap'
import { liveClock, liveClockWith, timeoutSignal, VirtualClock } from '../src/market/clock.ts'

t.test('timers fire in due order, ties in creation order, each with now() at its due time', async (t) => {
  const clock = new VirtualClock(1000)
  const fired: string[] = []
  const at = (name: string) => () => fired.push(`${name}@${clock.now()}`)
  clock.timeout(30, at('c'))
  clock.timeout(10, at('a'))
  clock.timeout(20, at('b1'))
  clock.timeout(20, at('b2'))
  clock.timeout(0, at('zero'))
  clock.timeout(-5, at('negative')) // as Node: at once, not in the past
  clock.advanceTo(1019)
  t.same(fired, ['zero@1000', 'negative@1000', 'a@1010'])
  t.equal(clock.now(), 1019)
  clock.advanceTo(1030)
  t.same(fired.slice(3), ['b1@1020', 'b2@1020', 'c@1030'])
  t.equal(clock.timers, 0)
})

t.test('an interval fires once per period up to the time advanced to, after timeouts due with it that were set first', async (t) => {
  const clock = new VirtualClock(0)
  const fired: string[] = []
  const every = clock.interval(250, () => fired.push(`tick@${clock.now()}`))
  clock.timeout(500, () => fired.push(`once@${clock.now()}`))
  clock.advanceTo(1000)
  t.same(fired, ['tick@250', 'once@500', 'tick@500', 'tick@750', 'tick@1000'], 'the tick rescheduled at 250 comes after the timeout set at 0')
  every.cancel()
  clock.advanceTo(5000)
  t.equal(fired.length, 5, 'nothing after cancel')
  t.equal(clock.timers, 0)
  const zero = clock.interval(0, () => fired.push(`zero@${clock.now()}`))
  clock.advance(3)
  t.same(fired.slice(5), ['zero@5001', 'zero@5002', 'zero@5003'], 'a period under 1 ms is 1 ms, as setInterval')
  zero.cancel()
})

t.test('timers set or cancelled by a firing timer', async (t) => {
  const clock = new VirtualClock(0)
  const fired: string[] = []
  const later = clock.timeout(40, () => fired.push('cancelled, never'))
  clock.timeout(10, () => {
    fired.push(`first@${clock.now()}`)
    later.cancel()
    // Due within the same advance: fires in it, at its own due time.
    clock.timeout(5, () => fired.push(`set by first@${clock.now()}`))
  })
  const self = clock.interval(20, () => {
    fired.push(`interval@${clock.now()}`)
    self.cancel() // an interval may cancel itself from its callback
  })
  clock.advanceTo(100)
  t.same(fired, ['first@10', 'set by first@15', 'interval@20'])
  t.equal(clock.now(), 100)
  const once = clock.timeout(1, () => fired.push('once'))
  clock.advance(1)
  once.cancel() // cancelling a timer that fired does nothing
  clock.advance(10)
  t.same(fired.slice(3), ['once'])
})

t.test('a clock set back fires nothing and reads the earlier time; timers keep their due times', async (t) => {
  const clock = new VirtualClock(100)
  const fired: number[] = []
  clock.timeout(50, () => fired.push(clock.now()))
  clock.advanceTo(90)
  t.equal(clock.now(), 90)
  t.same(fired, [])
  clock.advanceTo(150)
  t.same(fired, [150])
})

t.test('many timers come out of the heap in order', async (t) => {
  const clock = new VirtualClock(0)
  const fired: number[] = []
  // A fixed shuffle of 0..199 (multiplying by a unit mod 200), each due at its own number.
  for (let k = 0; k < 200; k++) {
    const due = (k * 73) % 200
    clock.timeout(due, () => fired.push(due))
  }
  clock.advanceTo(199)
  t.same(
    fired,
    Array.from({ length: 200 }, (_, i) => i)
  )
})

t.test('runDeferred runs what was deferred before it, in order; what they defer waits for the next end of turn', async (t) => {
  const clock = new VirtualClock(0)
  const ran: string[] = []
  clock.defer(() => ran.push('a'))
  clock.defer(() => {
    ran.push('b')
    clock.defer(() => ran.push('deferred by b'))
  })
  t.same(ran, [], 'nothing runs before the end of the turn')
  t.equal(clock.pendingDeferred, 2)
  clock.runDeferred()
  t.same(ran, ['a', 'b'])
  t.equal(clock.pendingDeferred, 1)
  clock.runDeferred()
  t.same(ran, ['a', 'b', 'deferred by b'])
  clock.runDeferred()
  t.equal(ran.length, 3)
})

t.test('the live clock: real timers, setImmediate for the end of the turn', async (t) => {
  // The clock's timers are unref'd (they never keep a process up): this one keeps the test's.
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(keepAlive))
  t.equal(liveClock.now, Date.now)
  const order: string[] = []
  await new Promise<void>((resolve) => {
    liveClock.defer(() => order.push('deferred'))
    const cancelled = liveClock.timeout(0, () => order.push('cancelled'))
    cancelled.cancel()
    liveClock.timeout(1, () => {
      order.push('timeout')
      resolve()
    })
  })
  t.same(order, ['deferred', 'timeout'])
  let ticks = 0
  await new Promise<void>((resolve) => {
    const every = liveClock.interval(1, () => {
      if (++ticks === 3) {
        every.cancel()
        resolve()
      }
    })
  })
  t.equal(ticks, 3)
  const read = liveClockWith(() => 42)
  t.equal(read.now(), 42)
  t.equal(read.defer, liveClock.defer, 'only the reading differs')
})

t.test("timeoutSignal aborts at its time on the clock it is given, not on real time, as AbortSignal.timeout's would", async (t) => {
  const clock = new VirtualClock(1000)
  const deadline = timeoutSignal(clock, 5)
  const kept = timeoutSignal(clock, 5)
  kept.cancel()
  // Real time passes (a real timer's 20 ms): the virtual clock does not move, nothing aborts.
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(deadline.signal.aborted, false, 'not on real time')
  clock.advanceTo(1004)
  t.equal(deadline.signal.aborted, false, 'not a millisecond early')
  clock.advanceTo(1005)
  t.equal(deadline.signal.aborted, true, 'at 5 ms on the clock')
  t.equal(kept.signal.aborted, false, 'a cancelled one never aborts')
  // The same reason as AbortSignal.timeout's (what a fetch rejects with, and the log says). Its
  // timer is unref'd, as the live clock's: this interval keeps the test up until it fires.
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(keepAlive))
  const real = AbortSignal.timeout(0)
  await new Promise((resolve) => real.addEventListener('abort', resolve))
  const reason = deadline.signal.reason as DOMException
  t.same({ name: reason.name, message: reason.message }, { name: (real.reason as DOMException).name, message: (real.reason as DOMException).message })
  t.equal(reason.name, 'TimeoutError')
  deadline.cancel() // after it fired: nothing
  t.equal(clock.timers, 0)
})

t.test('an interval fires every period of an advance up to 10,000, then once at the last due time: a clock that jumps costs bounded work', async (t) => {
  // A recording's record at year 33,658 (crafted, or a wall clock set forward) would otherwise fire
  // the connectors' 250 ms watchdog 4e12 times, and the replay never end.
  const clock = new VirtualClock(0)
  const fired: number[] = []
  clock.interval(1, () => fired.push(clock.now()))
  clock.advanceTo(10_000)
  t.equal(fired.length, 10_000, 'every period of an advance of 10,000 periods')
  fired.length = 0
  clock.advanceTo(1e15)
  t.equal(fired.length, 10_001, 'the first 10,000 periods, then the last due time')
  t.same(fired.slice(-2), [20_000, 1e15])
  clock.advanceTo(1e15 + 3)
  t.same(fired.slice(-3), [1e15 + 1, 1e15 + 2, 1e15 + 3], 'on its period again from there')
  // Set back an hour, then on: the periods of the advance count from the first due one.
  clock.advanceTo(1e15 - 3_600_000)
  fired.length = 0
  clock.advanceTo(1e15 + 5_000)
  t.equal(fired.length, 4_997, 'each period from 1e15 + 4 to 1e15 + 5,000 fires')
})
