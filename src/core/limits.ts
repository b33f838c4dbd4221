// Admission and rate limits: how many connections, how much memory, how many frames per second.

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

  constructor(private readonly rate: number, private readonly burst: number, maxStrikes: number, now: number) {
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
  /** RSS in MiB past which new connections are refused and /ready answers 503; 0: no limit. */
  memoryLimitMb: number
}

// RSS is read at most this often: process.memoryUsage.rss() is a system call.
const RSS_SAMPLE_MS = 250

/** Connection counts overall and per client address, and the memory budget: who may connect now. */
export class Admission {
  private readonly perAddress = new Map<string, number>()
  private total = 0
  private rss = 0
  private rssReadAt = -Infinity

  constructor(private readonly options: AdmissionOptions) {}

  /** Why a new connection from `address` is refused, or null when it is admitted. */
  refusal(address: string | undefined): string | null {
    if (this.total >= this.options.maxConnections) return `the server holds its maximum of ${this.options.maxConnections} connections`
    if ((this.perAddress.get(address ?? '') ?? 0) >= this.options.maxConnectionsPerIp) {
      return `this address holds its maximum of ${this.options.maxConnectionsPerIp} connections`
    }
    if (this.overMemory()) return 'the server is at its memory limit'
    return null
  }

  /** Near the memory budget: refuse new clients so the process manager never kills one serving clients. */
  overMemory(): boolean {
    if (this.options.memoryLimitMb === 0) return false
    const now = performance.now()
    if (now - this.rssReadAt > RSS_SAMPLE_MS) {
      this.rss = process.memoryUsage.rss()
      this.rssReadAt = now
    }
    return this.rss > this.options.memoryLimitMb * 1024 * 1024
  }

  opened(address: string | undefined): void {
    this.total++
    const key = address ?? ''
    this.perAddress.set(key, (this.perAddress.get(key) ?? 0) + 1)
  }

  closed(address: string | undefined): void {
    this.total--
    const key = address ?? ''
    const count = this.perAddress.get(key) ?? 0
    if (count <= 1) this.perAddress.delete(key)
    else this.perAddress.set(key, count - 1)
  }
}
