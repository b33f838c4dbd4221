// The Redis backplane: several server processes share seq, epoch, history and last values in Redis.
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { Redis } from 'ioredis'
import { encodeData, scanMsgpack, StoredEvent } from './codec.ts'
import type { BackplaneFigures, Bus, TopicInfo } from './bus.ts'
import { ErrorCode, LiveError, type BusEvent, type Position } from './protocol.ts'
import { matches } from './topics.ts'

export interface RedisBusOptions {
  redisUrl: string
  redisPrefix: string
  historySize: number
  historyTtl: number
}

export interface RedisBusLogger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

/**
 * Atomic publishes, a batch per call: for each event the next seq (and the epoch, created when the
 * topic has none: a Redis that lost its data starts new epochs), the capped history, the last
 * value, the topic index, and the PUBLISH to every node. Entries are `epoch|seq|ts|<MessagePack
 * data>`. KEYS: the topic index, then each event's meta hash and history list. ARGV: history
 * size, TTL and the epoch for topics that have none, then per event: ts, data, channel, topic.
 * Returns {seq, epoch} per event.
 */
const PUBLISH_SCRIPT = `
local size = tonumber(ARGV[1])
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  local meta, hist, a = KEYS[2 * i], KEYS[2 * i + 1], 3 + (i - 1) * 4
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = ARGV[3]
    redis.call('HSET', meta, 'epoch', epoch)
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local entry = epoch .. '|' .. seq .. '|' .. ARGV[a + 1] .. '|' .. ARGV[a + 2]
  redis.call('HSET', meta, 'last', entry)
  if size > 0 then
    redis.call('RPUSH', hist, entry)
    redis.call('LTRIM', hist, -size, -1)
    redis.call('PEXPIRE', hist, ARGV[2])
  end
  redis.call('SADD', KEYS[1], ARGV[a + 4])
  redis.call('PUBLISH', ARGV[a + 3], entry)
  out[i] = {seq, epoch}
end
return out
`
// Publishes of one event-loop turn (up to this many) share one script call: per event, the cost
// of an ioredis command (objects, promise, buffers) was most of a publishing node's CPU and garbage.
const MAX_BATCH = 256

interface PendingPublish {
  topic: string
  ts: number
  data: unknown
  encoded: Buffer
  resolve(event: BusEvent): void
  reject(err: unknown): void
}

/** What this node has delivered of one topic; `queue` holds events that wait while a gap is fetched. */
interface Cursor {
  epoch: string
  seq: number
  queue: BusEvent[] | null
}

type RedisWithPublish = Redis & {
  livePublish(numberOfKeys: number, ...keysAndArgs: (string | Buffer | number)[]): Promise<[number, string][]>
}

const BAR = 0x7c // '|'

// Stored data passed the publish limits; these only bound the well-formedness scan.
const SCAN_DEPTH = 512
const scanStack = new Float64Array(SCAN_DEPTH + 1)

/**
 * `epoch|seq|ts|data` as an event, or null for an entry this server did not write (another
 * format, or data that is not one whole MessagePack value): it is dropped, never delivered.
 */
export function parseEntry(topic: string, entry: Buffer): BusEvent | null {
  const a = entry.indexOf(BAR)
  const b = entry.indexOf(BAR, a + 1)
  const c = entry.indexOf(BAR, b + 1)
  if (a <= 0 || b < 0 || c < 0) return null
  const seq = Number(entry.toString('latin1', a + 1, b))
  const ts = Number(entry.toString('latin1', b + 1, c))
  const data = entry.subarray(c + 1)
  if (!Number.isSafeInteger(seq) || seq < 1 || !Number.isFinite(ts) || scanMsgpack(data, SCAN_DEPTH, Infinity, scanStack, true) !== null) return null
  return new StoredEvent(topic, entry.toString('latin1', 0, a), seq, ts, data)
}

/** A topic pattern as a Redis glob: `*` and `>` become `*` (which may match more: delivery filters again). */
export function redisGlob(pattern: string): string {
  return pattern.split('.').map((t) => (t === '*' || t === '>' ? '*' : t.replace(/[\\*?[\]]/g, '\\$&'))).join('.')
}

export class RedisBus implements Bus {
  onEvent: (event: BusEvent) => void = () => {}
  private readonly redis: RedisWithPublish
  private readonly sub: Redis
  private readonly channelPrefix: string
  /** Local interest: refcount per pattern, each one PSUBSCRIBEd once. */
  private readonly watched = new Map<string, number>()
  private readonly cursors = new Map<string, Cursor>()
  private subscriberReadyBefore = false
  /** Epochs this node proposes for topics Redis has none for: unique per node and per batch. */
  private readonly epochPrefix = randomBytes(4).toString('hex')
  private epochsProposed = 0
  /** The subscriber connection is up and every watched pattern is subscribed again. */
  private subscribed = false
  /** Publishes waiting for the end of this turn's microtasks, when they leave as one script call. */
  private batch: PendingPublish[] | null = null
  readonly backplane: BackplaneFigures = { reconnects: 0, gaps: 0, refetched: 0, unfilled: 0 }

  /** Names this node's Redis connections (`live-<name>`, `live-sub-<name>`) in CLIENT LIST. */
  readonly name = `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`

  constructor(private readonly options: RedisBusOptions, private readonly log: RedisBusLogger) {
    const common = { lazyConnect: false, connectionName: `live-${this.name}` }
    // Commands fail at once while Redis is away: a publish answers `unavailable` rather than waiting.
    // Auto-pipelining: the reads of one event-loop turn (history, last values) leave in one write.
    // Publishes batch themselves (flushPublishes) and bypass it: each auto-pipeline is an ioredis
    // Pipeline whose objects outlived young-generation GCs, so at 10,000 publishes/s the old
    // generation grew ~9 MB/s and mark-compacts set the latency tail.
    this.redis = new Redis(options.redisUrl, {
      ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, enableAutoPipelining: true, autoPipeliningIgnoredCommands: ['livePublish']
    }) as RedisWithPublish
    this.sub = new Redis(options.redisUrl, { ...common, connectionName: `live-sub-${this.name}`, maxRetriesPerRequest: null, autoResubscribe: false })
    this.flushPublishes = this.flushPublishes.bind(this)
    this.redis.defineCommand('livePublish', { lua: PUBLISH_SCRIPT })
    this.channelPrefix = `${options.redisPrefix}ev:`
    for (const connection of [this.redis, this.sub]) {
      connection.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'))
    }
    this.sub.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => {
      this.receive(channel.toString('utf8', Buffer.byteLength(this.channelPrefix)), message)
    })
    // After a reconnect: subscribe again, and once Redis confirmed it, fetch what was published meanwhile.
    this.sub.on('ready', () => {
      const patterns = [...this.watched.keys()].map((p) => this.channelPrefix + redisGlob(p))
      ;(patterns.length > 0 ? this.sub.psubscribe(...patterns) : Promise.resolve())
        .then(() => {
          this.subscribed = true
          if (!this.subscriberReadyBefore) return
          this.backplane.reconnects++
          log.info({}, 'redis subscriber reconnected: catching up from history')
          for (const [topic, cursor] of this.cursors) if (cursor.queue === null) this.catchUp(topic, cursor)
        })
        .catch((err: Error) => log.warn({ err: err.message }, 'redis resubscribe failed; the next reconnect retries'))
        .finally(() => { this.subscriberReadyBefore = true })
    })
    this.sub.on('close', () => { this.subscribed = false })
  }

  get ready(): boolean {
    return this.redis.status === 'ready' && this.subscribed
  }

  private key(kind: 'm' | 'h', topic: string): string {
    return `${this.options.redisPrefix}${kind}:${topic}`
  }

  /** Joins this turn's batch; resolves once Redis ran it (so an acked event is in Redis). */
  publish(topic: string, data: unknown): Promise<BusEvent> {
    const encoded = encodeData(data)
    return new Promise((resolve, reject) => {
      const event = { topic, ts: Date.now(), data, encoded: Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength), resolve, reject }
      if (this.batch === null) {
        this.batch = []
        queueMicrotask(this.flushPublishes)
      }
      if (this.batch.push(event) >= MAX_BATCH) this.flushPublishes()
    })
  }

  private flushPublishes(): void {
    const batch = this.batch
    this.batch = null
    if (batch === null) return
    const keys: string[] = [`${this.options.redisPrefix}topics`]
    const epoch = this.epochPrefix + (++this.epochsProposed).toString(36)
    const args: (string | number | Buffer)[] = [this.options.historySize, Math.max(this.options.historyTtl, 1), epoch]
    for (const { topic, ts, encoded } of batch) {
      keys.push(this.key('m', topic), this.key('h', topic))
      args.push(ts, encoded, this.channelPrefix + topic, topic)
    }
    this.call(() => this.redis.livePublish(keys.length, ...keys, ...args)).then((results) => {
      for (let i = 0; i < batch.length; i++) {
        const { topic, ts, data, resolve } = batch[i]
        resolve({ topic, seq: results[i][0], epoch: results[i][1], ts, data })
      }
    }, (err) => {
      for (const { reject } of batch) reject(err)
    })
  }

  async last(topic: string): Promise<BusEvent | undefined> {
    const entry = await this.call(() => this.redis.hgetBuffer(this.key('m', topic), 'last'))
    return (entry && parseEntry(topic, entry)) ?? undefined
  }

  async lastMatching(pattern: string): Promise<BusEvent[]> {
    const topics = (await this.call(() => this.redis.smembers(`${this.options.redisPrefix}topics`))).filter((t) => matches(pattern, t))
    if (topics.length === 0) return []
    const pipeline = this.redis.pipeline()
    for (const topic of topics) pipeline.hgetBuffer(this.key('m', topic), 'last')
    const results = (await this.call(() => pipeline.exec())) ?? []
    const events: BusEvent[] = []
    results.forEach(([err, entry], i) => {
      const event = err === null && entry !== null ? parseEntry(topics[i], entry as Buffer) : null
      if (event !== null) events.push(event)
    })
    return events
  }

  async since(topic: string, position: Position): Promise<BusEvent[] | null> {
    const [epoch, seq] = await this.call(() => this.redis.hmget(this.key('m', topic), 'epoch', 'seq'))
    if (epoch !== position.epoch || seq === null || position.seq > Number(seq)) return null
    if (position.seq === Number(seq)) return []
    const events = await this.history(topic)
    if (events.length === 0 || events[0].seq > position.seq + 1 || events[0].epoch !== position.epoch) return null
    return events.filter((e) => e.seq > position.seq)
  }

  /** The topic's retained events within HISTORY_TTL, oldest first. */
  private async history(topic: string): Promise<BusEvent[]> {
    const entries = await this.call(() => this.redis.lrangeBuffer(this.key('h', topic), 0, -1))
    const oldest = Date.now() - this.options.historyTtl
    const events: BusEvent[] = []
    for (const entry of entries) {
      const event = parseEntry(topic, entry)
      if (event !== null && event.ts >= oldest) events.push(event)
    }
    return events
  }

  async topics(): Promise<TopicInfo[]> {
    const topics = await this.call(() => this.redis.smembers(`${this.options.redisPrefix}topics`))
    const pipeline = this.redis.pipeline()
    for (const topic of topics) pipeline.hmget(this.key('m', topic), 'epoch', 'seq')
    const results = (await this.call(() => pipeline.exec())) ?? []
    const out: TopicInfo[] = []
    results.forEach(([err, value], i) => {
      const [epoch, seq] = (value ?? []) as (string | null)[]
      if (err === null && epoch && seq) out.push({ topic: topics[i], epoch, seq: Number(seq) })
    })
    return out
  }

  /**
   * Resolves once Redis confirmed the subscription, so a history read after it misses nothing.
   * While the subscriber connection is away it fails with `unavailable` at once; the pattern stays
   * watched (the caller unwatches it if it gives up) and is subscribed on reconnection.
   */
  async watch(pattern: string): Promise<void> {
    const count = this.watched.get(pattern) ?? 0
    this.watched.set(pattern, count + 1)
    if (!this.subscribed) throw new LiveError(ErrorCode.unavailable, 'the bus is unavailable')
    if (count === 0) await this.sub.psubscribe(this.channelPrefix + redisGlob(pattern))
  }

  unwatch(pattern: string): void {
    const count = this.watched.get(pattern) ?? 0
    if (count > 1) {
      this.watched.set(pattern, count - 1)
      return
    }
    this.watched.delete(pattern)
    this.sub.punsubscribe(this.channelPrefix + redisGlob(pattern)).catch(() => {})
    for (const topic of this.cursors.keys()) {
      if (![...this.watched.keys()].some((p) => p === topic || matches(p, topic))) this.cursors.delete(topic)
    }
  }

  /**
   * Every event passes here in the order Redis sent it. Pub/sub is at-most-once: a seq gap means
   * messages were lost between Redis and this node, and they are fetched from history before
   * anything later of that topic is delivered. Duplicates (overlapping patterns) are dropped.
   */
  private receive(topic: string, message: Buffer): void {
    const event = parseEntry(topic, message)
    if (event === null) {
      this.log.warn({ topic }, 'malformed backplane message dropped')
      return
    }
    let cursor = this.cursors.get(topic)
    if (cursor === undefined) {
      cursor = { epoch: event.epoch, seq: event.seq - 1, queue: null }
      this.cursors.set(topic, cursor)
    }
    if (cursor.queue !== null) cursor.queue.push(event)
    else this.advance(topic, cursor, event)
  }

  private advance(topic: string, cursor: Cursor, event: BusEvent): void {
    if (event.epoch !== cursor.epoch) {
      // Redis lost this topic's history: a new sequence starts; clients see the new epoch.
      cursor.epoch = event.epoch
      cursor.seq = event.seq - 1
    }
    if (event.seq <= cursor.seq) return
    if (event.seq === cursor.seq + 1) {
      cursor.seq = event.seq
      this.onEvent(event)
      return
    }
    cursor.queue = [event]
    this.backplane.gaps++
    this.fill(topic, cursor)
  }

  /** Fetches what the node missed from history, then delivers it and whatever queued meanwhile. */
  private fill(topic: string, cursor: Cursor): void {
    this.history(topic)
      .then((events) => {
        const missing = events.filter((e) => e.epoch === cursor.epoch && e.seq > cursor.seq)
        this.backplane.refetched += missing.length
        if (missing.length > 0 && missing[0].seq !== cursor.seq + 1) {
          this.backplane.unfilled++
          this.log.warn({ topic, from: cursor.seq + 1, to: missing[0].seq - 1 }, 'backplane gap older than the history: clients see a seq jump')
        }
        return missing
      })
      .catch((err: Error) => {
        this.backplane.unfilled++
        this.log.warn({ topic, err: err.message }, 'cannot fetch a backplane gap: clients see a seq jump')
        return [] as BusEvent[]
      })
      .then((missing) => {
        const queued = cursor.queue ?? []
        cursor.queue = null
        for (const event of [...missing, ...queued]) {
          const waiting = cursor.queue as BusEvent[] | null // set again when a new gap opens while draining
          if (waiting !== null) waiting.push(event)
          else this.advance(topic, cursor, event)
        }
      })
  }

  /** After the subscriber connection came back: deliver what was published while it was away. */
  private catchUp(topic: string, cursor: Cursor): void {
    cursor.queue = []
    this.fill(topic, cursor)
  }

  /**
   * Redis errors become `unavailable`: the client may retry; the bus is not the client's fault.
   * Only the command connection matters here: a subscriber reconnecting catches up by itself.
   */
  private async call<T>(command: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready') throw new LiveError(ErrorCode.unavailable, 'the bus is unavailable')
    try {
      return await command()
    } catch (err) {
      throw new LiveError(ErrorCode.unavailable, `the bus is unavailable: ${(err as Error).message.slice(0, 120)}`)
    }
  }

  async close(): Promise<void> {
    this.sub.disconnect()
    await this.redis.quit().catch(() => this.redis.disconnect())
  }
}
