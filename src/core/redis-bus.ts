// The Redis backplane: several server processes share seq, epoch, history and last values in Redis.
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { Redis } from 'ioredis'
import { encodeData, scanMsgpack, StoredEvent } from './codec.js'
import { type Admission, HistoryOverrun, Listeners, PageRead, type BackplaneCounters, type Bus, type BusListener, type Replay, type TopicInfo } from './bus.js'
import { ErrorCode, LiveError, type BusEvent, type Position } from './protocol.js'
import { isPattern, TopicTree, Work } from './topics.js'
import { Tally } from './tally.js'

export interface RedisBusOptions {
  redisUrl: string
  redisPrefix: string
  historySize: number
  historyTtl: number
  /** Milliseconds a topic's keys live after its last publish (refreshed while subscribed by name). */
  topicTtl: number
  /** Topics in Redis at once; a publish to a new one past this answers `unavailable`. */
  maxTopics: number
}

export interface RedisBusLogger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

/**
 * Atomic publishes, a batch per call: for each event the next seq (and the epoch, created when the
 * topic has none: a Redis that lost its data, or freed an idle topic, starts a new epoch), the
 * capped history, the last value, the topic index, and the PUBLISH to every node. Entries are
 * `epoch|seq|ts|<MessagePack data>`; the channel is the topic's first token and its message
 * `<topic>\n<entry>`. Keys expire TOPIC_TTL after the last publish; the topic index is a sorted
 * set scored by that time, trimmed here. KEYS: the topic index, then each event's meta hash and
 * history list. ARGV: history size, history TTL, the epoch for topics that have none, topic TTL,
 * the oldest live score, the topic cap, then per event: ts, data, channel, topic. Returns
 * {seq, epoch} per event, or {0, ''} for a new topic past the cap.
 */
const PUBLISH_SCRIPT = `
local size, topicTtl, maxTopics = tonumber(ARGV[1]), ARGV[4], tonumber(ARGV[6])
if redis.call('TYPE', KEYS[1]).ok == 'set' then redis.call('DEL', KEYS[1]) end -- the index of earlier versions
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5])
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  local meta, hist, a = KEYS[2 * i], KEYS[2 * i + 1], 7 + (i - 1) * 4
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch and redis.call('ZCARD', KEYS[1]) >= maxTopics and not redis.call('ZSCORE', KEYS[1], ARGV[a + 3]) then
    out[i] = {0, ''}
  else
    if not epoch then
      epoch = ARGV[3]
      redis.call('HSET', meta, 'epoch', epoch)
    end
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    local entry = epoch .. '|' .. seq .. '|' .. ARGV[a] .. '|' .. ARGV[a + 1]
    redis.call('HSET', meta, 'last', entry)
    redis.call('PEXPIRE', meta, topicTtl)
    if size > 0 then
      redis.call('RPUSH', hist, entry)
      redis.call('LTRIM', hist, -size, -1)
      redis.call('PEXPIRE', hist, ARGV[2])
    end
    redis.call('ZADD', KEYS[1], ARGV[a], ARGV[a + 3])
    redis.call('PUBLISH', ARGV[a + 2], ARGV[a + 3] .. '\\n' .. entry)
    out[i] = {seq, epoch}
  end
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

/**
 * What this node has delivered of one topic; `queue` holds events that wait while Redis is asked
 * about them (a gap, a new epoch, a topic new to this node). An empty epoch: nothing delivered yet.
 */
interface Cursor {
  epoch: string
  seq: number
  queue: BusEvent[] | null
  /** When its last event arrived (ms): cursors of topics gone quiet are forgotten. */
  seenAt: number
}

/**
 * One page of a topic's history, read atomically: `count` entries from seq `from` of the topic's
 * current epoch (from the oldest held when `from` was trimmed), located from the end of the list
 * (its last entry is always the newest seq).
 * KEYS: meta hash, history list. ARGV: epoch, from, count. Returns {newest seq, entries...}, or {}
 * when the topic is gone or has another epoch.
 */
const PAGE_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if meta[1] ~= ARGV[1] or not meta[2] then return {} end
local top, from = tonumber(meta[2]), tonumber(ARGV[2])
local out = {}
if from <= top then
  local first = math.max(from - top - 1, -redis.call('LLEN', KEYS[2])) -- trimmed: from the oldest held
  out = redis.call('LRANGE', KEYS[2], first, math.min(first + tonumber(ARGV[3]) - 1, -1))
end
table.insert(out, 1, tostring(top))
return out
`

// Events a replay reads from Redis at a time, as the socket takes them: what a recovering client
// that does not read can make the node hold per topic (with 500 B events, 16 KiB).
export const REPLAY_PAGE = 32

type RedisWithPublish = Redis & {
  livePublish(numberOfKeys: number, ...keysAndArgs: (string | Buffer | number)[]): Promise<[number, string][]>
  livePageBuffer(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<Buffer[]>
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

const NEWLINE = 0x0a

/**
 * What a node subscribes to in Redis for a pattern: the channel of its first token, or, for a
 * pattern that starts with a wildcard, every channel (one PSUBSCRIBE per node, however many such
 * patterns its clients hold). Redis matches every PUBLISH against every pattern subscription, so
 * one per client pattern made each publish cost as much as all of them; channels are a hash lookup.
 * Delivery filters exactly.
 */
export function channelOf(pattern: string): string {
  const first = pattern.slice(0, pattern.indexOf('.') >>> 0)
  return first === '*' || first === '>' ? '*' : first
}

/**
 * Events `from`..`to` of a topic in Redis, read a page at a time as the replay is written. Those
 * this process's door refuses are skipped, as live delivery skipped them: the client sees the same
 * seq jump (`length` counts them: at most that many).
 */
class RedisReplay implements Replay {
  constructor(
    private readonly bus: RedisBus,
    private readonly topic: string,
    private readonly epoch: string,
    private readonly from: number,
    private readonly to: number,
    private first: BusEvent[]
  ) {}

  get length(): number {
    return this.to - this.from + 1
  }

  *[Symbol.iterator](): Iterator<BusEvent | PageRead> {
    let page = this.first
    this.first = []
    let seq = this.from
    for (;;) {
      for (const event of page) {
        if (event.seq !== seq) break
        if (this.bus.admitted(event)) yield event
        if (++seq > this.to) return
      }
      let next: BusEvent[] = []
      yield new PageRead(
        this.bus.page(this.topic, this.epoch, seq).then(
          (read) => {
            next = read?.events ?? []
          },
          () => {}
        )
      )
      // Trimmed by newer events, expired, or Redis away: the events this replay promised are gone.
      if (next[0]?.seq !== seq) throw new HistoryOverrun(`history of "${this.topic}" moved past seq ${seq}`)
      page = next
    }
  }
}

export class RedisBus implements Bus {
  private readonly listeners = new Listeners()
  private readonly redis: RedisWithPublish
  private readonly sub: Redis
  private readonly channelPrefix: string
  /** The sorted set of topics, scored by their last publish. */
  private readonly topicsKey: string
  /** Local interest: refcount per channel (a first token, or '*' for all), each subscribed once. */
  private readonly watched = new Tally<string>()
  /** Local subscriptions by exact topic name: their keys are kept alive. */
  private readonly pinned = new Tally<string>()
  /** The topic index read from Redis, shared by the snapshot reads of one event-loop turn. */
  private topicIndex: Promise<TopicTree> | null = null
  private readonly sweeper: NodeJS.Timeout
  private readonly cursors = new Map<string, Cursor>()
  private subscriberReadyBefore = false
  /** Epochs this node proposes for topics Redis has none for: unique per node and per batch. */
  private readonly epochPrefix = randomBytes(4).toString('hex')
  private epochsProposed = 0
  /** The subscriber connection is up and every watched pattern is subscribed again. */
  private subscribed = false
  /** Publishes waiting for the end of this turn's microtasks, when they leave as one script call. */
  private batch: PendingPublish[] | null = null
  readonly backplane: BackplaneCounters = { reconnects: 0, gaps: 0, refetched: 0, unfilled: 0, refused: 0, rejected: 0 }
  private admission: Admission | null = null

  /** Names this node's Redis connections (`live-<name>`, `live-sub-<name>`) in CLIENT LIST. */
  readonly name = `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`

  constructor(
    private readonly options: RedisBusOptions,
    private readonly log: RedisBusLogger
  ) {
    const common = { lazyConnect: false, connectionName: `live-${this.name}` }
    // Commands fail at once while Redis is away: a publish answers `unavailable` rather than waiting.
    // Auto-pipelining: the reads of one event-loop turn (history, last values) leave in one write.
    // Publishes batch themselves (flushPublishes) and bypass it: each auto-pipeline is an ioredis
    // Pipeline whose objects outlived young-generation GCs, so at 10,000 publishes/s the old
    // generation grew ~9 MB/s and mark-compacts set the latency tail.
    this.redis = new Redis(options.redisUrl, {
      ...common,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      enableAutoPipelining: true,
      autoPipeliningIgnoredCommands: ['livePublish']
    }) as RedisWithPublish
    this.sub = new Redis(options.redisUrl, { ...common, connectionName: `live-sub-${this.name}`, maxRetriesPerRequest: null, autoResubscribe: false })
    this.flushPublishes = this.flushPublishes.bind(this)
    this.redis.defineCommand('livePublish', { lua: PUBLISH_SCRIPT })
    this.redis.defineCommand('livePage', { lua: PAGE_SCRIPT })
    this.channelPrefix = `${options.redisPrefix}ev:`
    this.topicsKey = `${options.redisPrefix}topics`
    for (const connection of [this.redis, this.sub]) {
      connection.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'))
    }
    this.sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.receive(message))
    this.sub.on('pmessageBuffer', (_pattern: Buffer, _channel: Buffer, message: Buffer) => this.receive(message))
    // After a reconnect: subscribe again, and once Redis confirmed it, fetch what was published meanwhile.
    this.sub.on('ready', () => {
      const channels = [...this.watched.keys()]
      Promise.all(channels.map((c) => this.subscribeChannel(c)))
        .then(() => {
          this.subscribed = true
          if (!this.subscriberReadyBefore) return
          this.backplane.reconnects++
          log.info({}, 'redis subscriber reconnected: catching up from history')
          for (const [topic, cursor] of this.cursors) {
            if (cursor.epoch === '')
              this.cursors.delete(topic) // nothing delivered yet: nothing to catch up
            else if (cursor.queue === null) this.catchUp(topic, cursor)
          }
        })
        .catch((err: Error) => log.warn({ err: err.message }, 'redis resubscribe failed; the next reconnect retries'))
        .finally(() => {
          this.subscriberReadyBefore = true
        })
    })
    this.sub.on('close', () => {
      this.subscribed = false
    })
    const every = Math.max(1000, Math.min(60_000, options.topicTtl / 4))
    this.sweeper = setInterval(() => this.sweep(Date.now()), every).unref()
  }

  private subscribeChannel(channel: string): Promise<unknown> {
    return channel === '*' ? this.sub.psubscribe(`${this.channelPrefix}*`) : this.sub.subscribe(this.channelPrefix + channel)
  }

  private unsubscribeChannel(channel: string): Promise<unknown> {
    return channel === '*' ? this.sub.punsubscribe(`${this.channelPrefix}*`) : this.sub.unsubscribe(this.channelPrefix + channel)
  }

  /**
   * Keeps the keys of topics subscribed here by name alive past TOPIC_TTL, and forgets cursors of
   * topics that went quiet (they start again from the next event, or from history on a gap).
   */
  private sweep(now: number): void {
    for (const [topic, cursor] of this.cursors) {
      if (cursor.queue === null && cursor.seenAt < now - this.options.topicTtl) this.cursors.delete(topic)
    }
    if (this.pinned.size === 0 || this.redis.status !== 'ready') return
    const pipeline = this.redis.pipeline()
    for (const topic of this.pinned.keys()) {
      pipeline.pexpire(this.key('m', topic), this.options.topicTtl)
      pipeline.zadd(this.topicsKey, 'XX', now, topic)
    }
    pipeline.exec().catch((err: Error) => this.log.warn({ err: err.message }, 'cannot refresh subscribed topics'))
  }

  subscribe(listener: BusListener): () => void {
    return this.listeners.add(listener)
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
    const keys: string[] = [this.topicsKey]
    const epoch = this.epochPrefix + (++this.epochsProposed).toString(36)
    const { historySize, historyTtl, topicTtl, maxTopics } = this.options
    const args: (string | number | Buffer)[] = [historySize, Math.max(historyTtl, 1), epoch, topicTtl, Date.now() - topicTtl, maxTopics]
    for (const { topic, ts, encoded } of batch) {
      keys.push(this.key('m', topic), this.key('h', topic))
      args.push(ts, encoded, this.channelPrefix + channelOf(topic), topic)
    }
    this.call(() => this.redis.livePublish(keys.length, ...keys, ...args)).then(
      (results) => {
        for (let i = 0; i < batch.length; i++) {
          const { topic, ts, data, resolve, reject } = batch[i]
          const [seq, epoch] = results[i]
          if (seq === 0) reject(new LiveError(ErrorCode.unavailable, `the backplane holds its maximum of ${maxTopics} topics`))
          else resolve({ topic, seq, epoch, ts, data })
        }
      },
      (err) => {
        for (const { reject } of batch) reject(err)
      }
    )
  }

  async last(topic: string): Promise<BusEvent | undefined> {
    const entry = await this.call(() => this.redis.hgetBuffer(this.key('m', topic), 'last'))
    const event = entry && parseEntry(topic, entry)
    return event && this.admitted(event) ? event : undefined
  }

  /** Topics published to within TOPIC_TTL, from the index the publish script keeps. */
  private liveTopicNames(): Promise<string[]> {
    return this.call(() => this.redis.zrangebyscore(this.topicsKey, Date.now() - this.options.topicTtl, '+inf'))
  }

  /**
   * The topic index, read once for all the snapshot reads of this event-loop turn (the patterns of
   * one subscribe frame): a pattern walks it instead of testing every topic.
   */
  private liveTopics(): Promise<TopicTree> {
    if (this.topicIndex !== null) return this.topicIndex
    const index = this.liveTopicNames().then((topics) => {
      const tree = new TopicTree()
      for (const topic of topics) tree.add(topic)
      return tree
    })
    this.topicIndex = index
    setImmediate(() => {
      this.topicIndex = null
    })
    return index
  }

  async lastMatching(pattern: string, work = Work.unlimited()): Promise<BusEvent[]> {
    const topics = (await this.liveTopics()).matching(pattern, work)
    if (topics.length === 0) return []
    const pipeline = this.redis.pipeline()
    for (const topic of topics) pipeline.hgetBuffer(this.key('m', topic), 'last')
    const results = (await this.call(() => pipeline.exec())) ?? []
    const events: BusEvent[] = []
    results.forEach(([err, entry], i) => {
      const event = err === null && entry !== null ? parseEntry(topics[i], entry as Buffer) : null
      if (event !== null && this.admitted(event)) events.push(event)
    })
    return events
  }

  /**
   * A replay read from Redis a page at a time as it is written (a client recovering without
   * reading holds one page per topic, not the history); null when some of it is gone.
   */
  async since(topic: string, position: Position): Promise<Replay | null> {
    if (!Number.isSafeInteger(position.seq) || position.seq < 0) return null
    const from = position.seq + 1
    const page = await this.page(topic, position.epoch, from)
    if (page === null || position.seq > page.top) return null
    if (position.seq === page.top) return []
    const first = page.events[0]
    if (first === undefined || first.seq !== from || first.ts < Date.now() - this.options.historyTtl) return null
    return new RedisReplay(this, topic, position.epoch, from, page.top, page.events)
  }

  /**
   * Up to `count` consecutive events of a topic's `epoch` from seq `from` (or from the oldest
   * history still holds, when `from` was trimmed), with its newest seq; null when the topic is
   * gone or has another epoch.
   */
  async page(topic: string, epoch: string, from: number, count = REPLAY_PAGE): Promise<{ epoch: string; top: number; events: BusEvent[] } | null> {
    const reply = await this.call(() => this.redis.livePageBuffer(2, this.key('m', topic), this.key('h', topic), epoch, from, count))
    if (reply.length === 0) return null
    const events: BusEvent[] = []
    for (let i = 1; i < reply.length; i++) {
      const event = parseEntry(topic, reply[i])
      const fits = event !== null && event.epoch === epoch && event.seq >= from && (events.length === 0 || event.seq === events[events.length - 1].seq + 1)
      if (fits) events.push(event)
      else if (events.length > 0) break // entries of an earlier epoch may lead the list: skipped
    }
    return { epoch, top: Number(reply[0].toString()), events }
  }

  /** The topic's epoch and newest seq ('' and 0 when Redis has none). */
  private async head(topic: string): Promise<{ epoch: string; top: number; events: BusEvent[] }> {
    const [epoch, top] = await this.call(() => this.redis.hmget(this.key('m', topic), 'epoch', 'seq'))
    return { epoch: epoch ?? '', top: Number(top ?? 0), events: [] }
  }

  async topics(): Promise<TopicInfo[]> {
    const topics = await this.liveTopicNames()
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
    if (!isPattern(pattern)) this.pinned.add(pattern, 1)
    const channel = channelOf(pattern)
    const count = this.watched.add(channel, 1)
    if (!this.subscribed) throw new LiveError(ErrorCode.unavailable, 'the bus is unavailable')
    if (count === 1) await this.subscribeChannel(channel)
  }

  unwatch(pattern: string): void {
    if (!isPattern(pattern)) this.pinned.add(pattern, -1)
    const channel = channelOf(pattern)
    if (this.watched.add(channel, -1) > 0) return
    this.unsubscribeChannel(channel).catch(() => {})
    // Events of topics no channel brings any more would leave a stale cursor behind.
    if (this.watched.has('*')) return
    for (const topic of this.cursors.keys()) if (!this.watched.has(channelOf(topic))) this.cursors.delete(topic)
  }

  /**
   * Every event passes here in the order Redis sent it. Pub/sub is at-most-once: a seq gap means
   * messages were lost between Redis and this node, and they are fetched from history before
   * anything later of that topic is delivered. Duplicates (overlapping patterns) are dropped.
   * Anyone who can PUBLISH on the channel can send a message: a gap, another epoch or a topic new
   * to this node is checked with Redis before it is delivered (see check()).
   */
  private receive(message: Buffer): void {
    const newline = message.indexOf(NEWLINE)
    const topic = newline > 0 ? message.toString('utf8', 0, newline) : ''
    const event = newline > 0 ? parseEntry(topic, message.subarray(newline + 1)) : null
    if (event === null) {
      this.log.warn({ topic: topic.slice(0, 256) }, 'malformed backplane message dropped')
      return
    }
    let cursor = this.cursors.get(topic)
    if (cursor === undefined) {
      cursor = { epoch: '', seq: 0, queue: null, seenAt: 0 }
      this.cursors.set(topic, cursor)
    }
    cursor.seenAt = Date.now()
    if (cursor.queue !== null) cursor.queue.push(event)
    else this.advance(topic, cursor, event)
  }

  private advance(topic: string, cursor: Cursor, event: BusEvent): void {
    if (event.epoch === cursor.epoch) {
      if (event.seq <= cursor.seq) return
      if (event.seq === cursor.seq + 1) {
        cursor.seq = event.seq
        this.emit(event)
        return
      }
      this.backplane.gaps++
    }
    cursor.queue = [event]
    this.check(topic, cursor, event.epoch === cursor.epoch)
  }

  /** The bus's subscriber connection, for the tests that cut it and bring it back: the one test-only way to it, not part of the API. */
  static subscriberOf(bus: RedisBus): Redis {
    return bus.sub
  }

  admit(check: Admission): void {
    this.admission = check
  }

  /** Every event from Redis (this process's own come back the same way) passes the admission check, once. */
  private emit(event: BusEvent): void {
    if (!this.admitted(event)) {
      this.backplane.rejected++
      return
    }
    this.listeners.emit(event)
  }

  /**
   * Whether an event read from Redis passes this process's door: delivered live, handed to a client
   * as its snapshot (a topic whose last event is refused has none), or replayed to a recovering one.
   */
  admitted(event: BusEvent): boolean {
    return this.admission === null || this.admission(event)
  }

  /** After the subscriber connection came back: deliver what was published while it was away. */
  private catchUp(topic: string, cursor: Cursor): void {
    cursor.queue = []
    this.check(topic, cursor, true)
  }

  /**
   * Asks Redis for the topic's epoch and newest seq, and its history when `gap`, then delivers what
   * they confirm. A queued event that was there before the question was sent is real only if Redis
   * has its epoch and seq: others are foreign, refused and counted. Events that came while the
   * question travelled go through advance() again afterwards (one more question at most).
   */
  private check(topic: string, cursor: Cursor, gap: boolean): void {
    const asked = cursor.queue!.length
    // A gap reads what history holds after the cursor (all of it at most), not the whole list.
    const read = gap ? this.page(topic, cursor.epoch, cursor.seq + 1, this.options.historySize).then((page) => page ?? this.head(topic)) : this.head(topic)
    read.then(
      ({ epoch, top, events }) => this.settle(topic, cursor, asked, epoch, top, events),
      (err: Error) => {
        // Nothing can be confirmed: what waited is dropped (the next event asks again, and finds it in history).
        this.backplane.unfilled++
        this.log.warn({ topic, err: err.message }, 'cannot check the backplane with Redis: events wait for the next one')
        const queued = cursor.queue!
        cursor.queue = null
        this.redo(topic, cursor, queued.slice(asked))
      }
    )
  }

  private settle(topic: string, cursor: Cursor, asked: number, epoch: string, top: number, history: BusEvent[]): void {
    const queued = cursor.queue!
    cursor.queue = null
    const confirmed = history.filter((e) => e.epoch === epoch)
    const held = new Set(confirmed.map((e) => e.seq))
    let refused = 0
    const later: BusEvent[] = []
    for (let i = 0; i < queued.length; i++) {
      const event = queued[i]
      if (event.epoch === epoch && event.seq <= top) {
        if (!held.has(event.seq)) confirmed.push(event) // older than history keeps, or none is kept
      } else if (i >= asked) later.push(event)
      else refused++
    }
    if (refused > 0) {
      this.backplane.refused += refused
      this.log.warn({ topic, refused }, 'backplane messages that Redis never published refused')
    }
    confirmed.sort((x, y) => x.seq - y.seq)
    if (epoch !== cursor.epoch && confirmed.length > 0) {
      // A topic new to this node, or a new epoch (Redis lost the topic): it starts at the first confirmed event.
      cursor.epoch = epoch
      cursor.seq = confirmed[0].seq - 1
    }
    if (epoch === cursor.epoch) {
      const missing = confirmed.filter((e) => e.seq > cursor.seq)
      for (const event of missing) if (held.has(event.seq)) this.backplane.refetched++
      if (missing.length > 0 && missing[0].seq !== cursor.seq + 1) {
        this.backplane.unfilled++
        this.log.warn({ topic, from: cursor.seq + 1, to: missing[0].seq - 1 }, 'backplane gap older than the history: clients see a seq jump')
      }
      // Delivered in order, over any seq Redis no longer has: a jump, never another question.
      for (const event of missing) {
        if (event.seq <= cursor.seq) continue
        cursor.seq = event.seq
        this.emit(event)
      }
    }
    this.redo(topic, cursor, later)
  }

  /** Events that came while Redis was asked, in order, as if they came now. */
  private redo(topic: string, cursor: Cursor, events: BusEvent[]): void {
    for (const event of events) {
      if (cursor.queue !== null) cursor.queue.push(event)
      else this.advance(topic, cursor, event)
    }
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
    clearInterval(this.sweeper)
    this.sub.disconnect()
    await this.redis.quit().catch(() => this.redis.disconnect())
  }
}
