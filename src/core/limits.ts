// Admission and rate limits: how many connections, how much memory, how many frames per second.
import { Tally } from './tally.js'

/** Counts offences in a window of STRIKE_WINDOW_MS: more than `max` in one window is abuse. */
export class Strikes {
  private count = 0
  private since = -Infinity

  constructor(private readonly max: number) {}

  /** Records one offence; true when it is one too many. */
  add(now: number): boolean {
    if (now - this.since > STRIKE_WINDOW_MS) {
      this.count = 0
      this.since = now
    }
    return ++this.count > this.max
  }
}

/**
 * A token bucket per connection: `rate` frames per second on average, bursts up to `burst`.
 * Frames over the limit are strikes; too many strikes in a window is abuse.
 */
export class TokenBucket {
  private tokens: number
  private refilledAt: number
  private strikes: Strikes

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    maxStrikes: number,
    now: number
  ) {
    this.tokens = burst
    this.refilledAt = now
    this.strikes = new Strikes(maxStrikes)
  }

  /** Continues where `previous` was (tokens, capped at this burst, and strikes): a new rate is never a refill. */
  continueFrom(previous: TokenBucket): void {
    this.tokens = Math.min(this.burst, previous.tokens)
    this.refilledAt = previous.refilledAt
    this.strikes = previous.strikes
  }

  /** 'ok' to handle the frame, 'limited' to refuse it, 'abuse' to close the connection. */
  take(now: number): 'ok' | 'limited' | 'abuse' {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) * this.rate) / 1000)
    this.refilledAt = now
    if (this.tokens >= 1) {
      this.tokens -= 1
      return 'ok'
    }
    return this.strikes.add(now) ? 'abuse' : 'limited'
  }
}

export const STRIKE_WINDOW_MS = 10_000

export interface AdmissionOptions {
  maxConnections: number
  maxConnectionsPerIp: number
  maxSubscriptionsTotal: number
  maxSubscriptionsPerIp: number
  /** Resident memory (RSS, what PM2's max_memory_restart reads), in MiB, past which new connections, subscriptions and publishes are refused; 0: no limit. */
  memoryLimitMb: number
}

// Memory is read at most this often: reading RSS makes a system call. What a burst can add in
// one interval is part of the headroom MEMORY_LIMIT_MB keeps under PM2's limit.
const MEMORY_SAMPLE_MS = 100
// Over the limit, garbage may be what holds it there: an idle process can go minutes without a
// full collection. Where gc() is exposed (npm start and PM2 run node with --expose-gc), one is
// asked for at most this often, so the server admits clients again soon after an attack ends.
const COLLECT_EVERY_MS = 5000

/** Connections and subscriptions overall and per client address, and the memory budget: who may do more now. */
export class Admission {
  private readonly perAddress = new Tally<string>()
  private readonly subscriptionsPerAddress = new Tally<string>()
  private total = 0
  private subscriptions = 0
  private heldBytes = 0
  private readAt = -Infinity
  private collectedAt = -Infinity

  constructor(
    private readonly options: AdmissionOptions,
    private readonly memory: MemoryProbe = processMemory
  ) {}

  /** Why a new connection from `address` is refused, or null when it is admitted. */
  refusal(address: string | undefined): string | null {
    if (this.total >= this.options.maxConnections) return `the server holds its maximum of ${this.options.maxConnections} connections`
    if (this.perAddress.get(address ?? '') >= this.options.maxConnectionsPerIp) {
      return `this address holds its maximum of ${this.options.maxConnectionsPerIp} connections`
    }
    if (this.overMemory()) return 'the server is at its memory limit'
    return null
  }

  /** Why `count` more subscriptions from `address` are refused, or null when they are admitted. */
  subscriptionRefusal(address: string | undefined, count: number): string | null {
    if (this.subscriptions + count > this.options.maxSubscriptionsTotal) {
      return `the server holds its maximum of ${this.options.maxSubscriptionsTotal} subscriptions`
    }
    if (this.subscriptionsPerAddress.get(address ?? '') + count > this.options.maxSubscriptionsPerIp) {
      return `this address holds its maximum of ${this.options.maxSubscriptionsPerIp} subscriptions`
    }
    if (this.overMemory()) return 'the server is at its memory limit'
    return null
  }

  /**
   * Near the memory budget: refuse new clients, subscriptions and publishes so the process
   * manager never kills one serving clients (and loses what it acked). Measured as RSS, what the
   * manager measures: heap and buffers alone ran 60-170 MiB under it in the bursts of
   * bench/bursts.ts. Over the limit a full collection is asked for (at most every 5 s), which
   * gives freed heap and buffers back to the system, so the process comes back under by itself.
   */
  overMemory(): boolean {
    if (this.options.memoryLimitMb === 0) return false
    const limit = this.options.memoryLimitMb * 1024 * 1024
    const { memory } = this
    const now = memory.now()
    if (now - this.readAt > MEMORY_SAMPLE_MS) {
      this.heldBytes = memory.held()
      this.readAt = now
      const collect = memory.collect()
      if (this.heldBytes > limit && collect !== undefined && now - this.collectedAt > COLLECT_EVERY_MS) {
        this.collectedAt = now
        collect()
        this.heldBytes = memory.held()
      }
    }
    return this.heldBytes > limit
  }

  opened(address: string | undefined): void {
    this.total++
    this.perAddress.add(address ?? '', 1)
  }

  closed(address: string | undefined): void {
    this.total--
    this.perAddress.add(address ?? '', -1)
  }

  subscribed(address: string | undefined, n: number): void {
    this.subscriptions += n
    this.subscriptionsPerAddress.add(address ?? '', n)
  }
}

/** How Admission reads memory; tests pass a fake one with a fake clock. */
export interface MemoryProbe {
  now(): number
  /** Bytes of memory the process holds resident (RSS): live objects, buffers, garbage not collected yet, code. */
  held(): number
  /** A full garbage collection, where one can be asked for. */
  collect(): (() => void) | undefined
}

const processMemory: MemoryProbe = {
  now: () => performance.now(),
  held: () => process.memoryUsage.rss(),
  collect: () => (globalThis as { gc?: () => void }).gc
}
