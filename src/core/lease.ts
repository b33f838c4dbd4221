// A lease in Redis: of the processes sharing a backplane, at most one holds a name at a time (the
// arbitrage engine, a venue's connectors). Every change of holder increments the lease's
// generation, which the holder puts in what it publishes (opportunity ids), so the work of two
// holders never collides even if an old one, paused past its lease, wakes up and publishes.
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'

// KEYS[1] the lease (value "<generation>:<holder>"), KEYS[2] its generation counter;
// ARGV[1] the holder, ARGV[2] the lease's time to live (ms). Returns the generation held, or 0.
const ACQUIRE = `
local current = redis.call('GET', KEYS[1])
if current then
  local generation, holder = string.match(current, '^(%d+):(.*)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(generation)
  end
  return 0
end
local generation = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], generation .. ':' .. ARGV[1], 'PX', ARGV[2])
return generation
`

// Deletes the lease only if this holder still holds it.
const RELEASE = `
local current = redis.call('GET', KEYS[1])
if current and current == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

export interface LeaseOptions {
  /** How long a lease lasts without renewal (ms): a dead holder's work is taken over within about this. */
  ttlMs: number
  /** How often holders renew and others try to take it (ms). */
  intervalMs: number
  now?: () => number
}

/**
 * One process's side of a lease. `onChange` hears the generation when this process takes it, and
 * null when it loses it (renewal refused, or not confirmed before the lease would have run out
 * by this process's clock). `held` is what a holder checks before each piece of work it publishes.
 */
export class Lease {
  readonly holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
  generation = 0
  /** By this process's clock, when the lease runs out unless renewed: the start of the last confirmed renewal plus the TTL, less a margin. */
  private heldUntil = 0
  private timer: NodeJS.Timeout | undefined
  private busy = false
  private stopped = false
  private readonly now: () => number

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly options: LeaseOptions,
    private readonly onChange: (generation: number | null) => void
  ) {
    this.now = options.now ?? Date.now
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs).unref()
    void this.tick()
  }

  get held(): boolean {
    return this.generation > 0 && this.now() < this.heldUntil
  }

  /** One round: take or renew. Runs on the timer; exposed for tests. */
  async tick(): Promise<void> {
    if (this.generation > 0 && !this.held) this.lose() // renewals did not get through in time
    if (this.busy || this.stopped) return
    this.busy = true
    const asked = this.now()
    try {
      const generation = Number(await this.redis.eval(ACQUIRE, 2, this.key, `${this.key}:generation`, this.holder, this.options.ttlMs))
      if (this.stopped && generation > 0) {
        // Stopped while asking: give it back at once.
        await this.redis.eval(RELEASE, 1, this.key, `${generation}:${this.holder}`)
        return
      }
      if (generation === 0) {
        if (this.generation > 0) this.lose()
        return
      }
      // A margin for clock drift between this process and Redis over one TTL.
      this.heldUntil = asked + this.options.ttlMs - Math.max(50, this.options.ttlMs / 10)
      if (generation !== this.generation) {
        if (this.generation > 0) this.lose()
        this.generation = generation
        this.onChange(generation)
      }
    } catch {
      // Redis unreachable: the next round tries again; the lease runs out by the clock above.
    } finally {
      this.busy = false
    }
  }

  /** Stops taking part; a holder gives the lease back so another takes over at its next round. */
  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    if (this.generation === 0) return
    const released = `${this.generation}:${this.holder}`
    this.lose()
    await this.redis.eval(RELEASE, 1, this.key, released).catch(() => {})
  }

  private lose(): void {
    this.generation = 0
    this.heldUntil = 0
    this.onChange(null)
  }
}
