// The connectors' time: what they stamp, when their timers fire and what "the end of this
// event-loop turn" is. Live it is Date.now, Node's timers (unref'd: a connector never keeps a
// process up) and setImmediate; tests and a replay hand in a VirtualClock, whose time moves only
// when told, so a recording's timers fire where the recorded times say and no real time passes.

/** A timer's handle: cancelling one that fired (or was cancelled) does nothing. */
export interface Timer {
  cancel(): void
}

export interface Clock {
  /** Milliseconds (the connectors' receivedAt, silences, backoffs, rotations). */
  now(): number
  /** Runs `fn` once, `ms` from now. */
  timeout(ms: number, fn: () => void): Timer
  /** Runs `fn` every `ms` from now on. */
  interval(ms: number, fn: () => void): Timer
  /** Runs `fn` at the end of this event-loop turn, after what the turn's I/O delivered. */
  defer(fn: () => void): void
}

const cancelTimeout = (t: NodeJS.Timeout): Timer => ({ cancel: () => clearTimeout(t) })
const cancelInterval = (t: NodeJS.Timeout): Timer => ({ cancel: () => clearInterval(t) })

/** The real clock. */
export const liveClock: Clock = {
  now: Date.now,
  timeout: (ms, fn) => cancelTimeout(setTimeout(fn, ms).unref()),
  interval: (ms, fn) => cancelInterval(setInterval(fn, ms).unref()),
  defer: (fn) => {
    setImmediate(fn)
  }
}

/**
 * AbortSignal.timeout on a clock: a signal that aborts `ms` from now (reason a TimeoutError, as
 * AbortSignal.timeout's), so a request's deadline runs on the connectors' time, virtual in a replay
 * or a test. Cancel it once the request is done: a cancelled one never aborts.
 */
export function timeoutSignal(clock: Clock, ms: number): { signal: AbortSignal; cancel(): void } {
  const controller = new AbortController()
  const timer = clock.timeout(ms, () => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')))
  return { signal: controller.signal, cancel: () => timer.cancel() }
}

/** The wait before a retry after `failures` (one or more) in a row: 1 s doubling to 30 s, so a broken venue is not hammered. */
export const backoffMs = (failures: number): number => Math.min(1000 * 2 ** (failures - 1), 30_000)

/** The live clock read through another `now` (a benchmark's sub-millisecond one), its timers real. */
export function liveClockWith(now: () => number): Clock {
  return { ...liveClock, now }
}

/**
 * Periods of one interval fired in one advance, at most, before it skips to its last due time: a
 * live run's gaps between records are seconds (the watchdog's 250 ms ticks, or an idle sweep's
 * 500 ms, for 40 minutes and more), so only a clock that jumped reaches it, and its work stays bounded.
 */
const MAX_CATCH_UP = 10_000

interface Entry {
  due: number
  /** Creation order: timers due at the same time fire in it. */
  seq: number
  /** 0 for a timeout; an interval's period. */
  period: number
  fn: () => void
  cancelled: boolean
}

/**
 * A clock whose time is set from outside: `advanceTo(t)` fires every timer due at or before t in
 * due order (ties in creation order), each with now() at its due time, then sets now() to t;
 * `runDeferred()` is the end of the turn. Nothing here waits or touches Node's timers.
 */
export class VirtualClock implements Clock {
  private time: number
  private seq = 0
  /** A binary min-heap on (due, seq). */
  private readonly heap: Entry[] = []
  private deferred: (() => void)[] = []

  constructor(start = 0) {
    this.time = start
  }

  now(): number {
    return this.time
  }

  timeout(ms: number, fn: () => void): Timer {
    return this.add(ms, 0, fn)
  }

  interval(ms: number, fn: () => void): Timer {
    // As Node's setInterval: a period under 1 ms (or NaN) is 1 ms; a zero one would never let time pass.
    const period = Number.isNaN(ms) ? 1 : Math.max(ms, 1)
    return this.add(period, period, fn)
  }

  defer(fn: () => void): void {
    this.deferred.push(fn)
  }

  /** Timers waiting (intervals count until cancelled). */
  get timers(): number {
    let n = 0
    for (const e of this.heap) if (!e.cancelled) n++
    return n
  }

  /** Functions deferred to the end of the turn and not yet run. */
  get pendingDeferred(): number {
    return this.deferred.length
  }

  /**
   * Fires, in order, every timer due at or before `t` (those the fired ones set, too), now() at each
   * one's due time; then now() is t. An interval fires MAX_CATCH_UP periods of the advance at most,
   * then once at its last due time by t. A `t` before now() fires nothing and sets now() back to t:
   * a recording's clock may step back, and what the connectors stamp follows it.
   */
  advanceTo(t: number): void {
    const heap = this.heap
    // Where this advance's firing starts (after a step back, at the first timer due, not at now()).
    const from = heap.length > 0 ? Math.max(this.time, heap[0].due) : this.time
    while (heap.length > 0 && heap[0].due <= t) {
      const e = heap[0]
      if (e.cancelled) {
        this.pop()
        continue
      }
      if (e.due > this.time) this.time = e.due
      if (e.period > 0) {
        // Rescheduled before it runs, so the callback may cancel it; after the timers set meanwhile.
        e.due += e.period
        // Past MAX_CATCH_UP periods of one advance (a clock that jumped: a wall clock set forward, a
        // crafted recording), on to the last due time by t, as a late live interval fires once.
        if (e.due - from >= MAX_CATCH_UP * e.period && e.due < t) e.due += Math.floor((t - e.due) / e.period) * e.period
        e.seq = this.seq++
        this.siftDown(0)
      } else {
        this.pop()
        e.cancelled = true
      }
      e.fn()
    }
    this.time = t
  }

  /**
   * Sets now() to `t` and fires nothing: a live event loop's end of turn reads the clock before the
   * timers that came due meanwhile, which run in its next timers phase (here: the next advanceTo).
   */
  setTime(t: number): void {
    this.time = t
  }

  /** advanceTo(now() + ms). */
  advance(ms: number): void {
    this.advanceTo(this.time + ms)
  }

  /**
   * The end of the turn: runs what was deferred before this call, in order. What those defer runs
   * at the next end of turn, as setImmediate's callbacks queued by one run on the next loop turn.
   */
  runDeferred(): void {
    if (this.deferred.length === 0) return
    const run = this.deferred
    this.deferred = []
    for (const fn of run) fn()
  }

  private add(ms: number, period: number, fn: () => void): Timer {
    const e: Entry = { due: this.time + (Number.isNaN(ms) ? 0 : Math.max(ms, 0)), seq: this.seq++, period, fn, cancelled: false }
    const heap = this.heap
    heap.push(e)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(e, heap[parent])) break
      heap[i] = heap[parent]
      i = parent
    }
    heap[i] = e
    return {
      cancel: () => {
        e.cancelled = true
      }
    }
  }

  private pop(): void {
    const last = this.heap.pop() as Entry
    if (this.heap.length === 0) return
    this.heap[0] = last
    this.siftDown(0)
  }

  private siftDown(at: number): void {
    const heap = this.heap
    const e = heap[at]
    let i = at
    for (;;) {
      const left = 2 * i + 1
      if (left >= heap.length) break
      const right = left + 1
      const child = right < heap.length && before(heap[right], heap[left]) ? right : left
      if (!before(heap[child], e)) break
      heap[i] = heap[child]
      i = child
    }
    heap[i] = e
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq)
}
