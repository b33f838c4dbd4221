// Market data checked where it enters a process: a client's publish of book.>, ticker.> or venue.>
// (plugins/market-data.ts), an event that came over the backplane from another process, a
// recording read back. Once checked it is a BookEvent, TickerEvent or VenueHealth as far as the
// engine and the venue table know: they check nothing again. The connectors' own events are typed
// by construction (their parse is their entry) and are not checked twice (fromConnector).
// docs/PROTOCOL.md "Market data topics" is the contract.
import type { VenueReport } from './engine/types.js'
import { type MarketSink, type VenueState, topicSink } from './events.js'

/** A price or size: positive, and under 1e100 so that products of them stay finite (no real one comes near). */
export const positive = (x: unknown): x is number => typeof x === 'number' && x > 0 && x < 1e100

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)
const STATES: ReadonlySet<unknown> = new Set<VenueState>(['up', 'degraded', 'down'])

/**
 * The data of the connector event being published (synchronously, so the check hooks see it), or
 * null. The event itself, not a flag: a publish that the event's delivery makes in the same call (an
 * in-process subscriber's) is not the connector's, and is checked.
 */
let connectorData: unknown = null
let connectorTopic = ''

/** Whether this is the event a connector is publishing, on its topic (typed by construction): the check hooks let it pass. */
export const fromConnector = (topic: string, data: unknown): boolean => data !== null && data === connectorData && topic === connectorTopic

/** topicSink for the process's own connectors: their events are published as typed, not checked again. */
export function connectorSink(publish: (topic: string, data: unknown) => void): MarketSink {
  return topicSink((topic, data) => {
    const outerData = connectorData
    const outerTopic = connectorTopic
    connectorData = data
    connectorTopic = topic
    try {
      publish(topic, data)
    } finally {
      connectorData = outerData
      connectorTopic = outerTopic
    }
  })
}

export type MarketKind = 'book' | 'ticker' | 'venue'

/** The kind of a market topic (its first token), or null for any other topic. */
export function marketKind(topic: string): MarketKind | null {
  const kind = topic.slice(0, topic.indexOf('.'))
  return kind === 'book' || kind === 'ticker' || kind === 'venue' ? kind : null
}

/**
 * Why `data` is not a valid event of its market topic (book.<exchange>.<symbol>,
 * ticker.<exchange>.<symbol>, venue.<exchange>), or null when it is one or the topic is not a
 * market topic.
 */
export function marketDataError(topic: string, data: unknown): string | null {
  const kind = marketKind(topic)
  if (kind === null) return null
  const a = kind.length
  const b = topic.indexOf('.', a + 1)
  const shapeError = kind === 'venue' ? b !== -1 : b === -1 || topic.indexOf('.', b + 1) !== -1
  if (shapeError) return `"${topic}": ${kind} topics are ${kind === 'venue' ? 'venue.<exchange>' : `${kind}.<exchange>.<symbol>`}`
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return `"${topic}": data must be an object`
  const d = data as Record<string, unknown>
  const exchange = topic.slice(a + 1, kind === 'venue' ? undefined : b)
  if (kind === 'venue' ? d.exchange !== exchange : d.exchange !== undefined && d.exchange !== exchange)
    return `"${topic}": data.exchange must be "${exchange}", the topic's`
  const symbol = kind === 'venue' ? undefined : topic.slice(b + 1)
  if (d.symbol !== undefined && d.symbol !== symbol) return `"${topic}": data.symbol must be "${symbol}", the topic's`
  const error = kind === 'book' ? bookError(d) : kind === 'ticker' ? tickerError(d) : venueError(d)
  return error === null ? null : `"${topic}": ${error}`
}

function tickerError(d: Record<string, unknown>): string | null {
  for (const key of ['bid', 'ask', 'bidSize', 'askSize'] as const) if (!positive(d[key])) return `data.${key} must be a positive number under 1e100`
  if (!finite(d.ts)) return 'data.ts must be a finite number'
  return times(d)
}

function bookError(d: Record<string, unknown>): string | null {
  const error = sideError(d.bids, true, 'bids') ?? sideError(d.asks, false, 'asks')
  if (error !== null) return error
  if (d.exchangeTime !== null && !finite(d.exchangeTime)) return 'data.exchangeTime must be a finite number or null'
  for (const key of ['lotSize', 'minSize', 'minNotional'] as const) {
    const x = d[key]
    if (x !== undefined && !(typeof x === 'number' && x >= 0 && x < 1e100)) return `data.${key} must be a number from 0 to under 1e100`
  }
  if (d.ts !== undefined && !finite(d.ts)) return 'data.ts must be a finite number'
  return times(d)
}

/** A side best first: [price, size] levels, both positive, prices strictly falling (bids) or rising (asks). */
function sideError(levels: unknown, descending: boolean, name: string): string | null {
  if (!Array.isArray(levels)) return `data.${name} must be an array of [price, size] levels`
  let previous = descending ? Number.POSITIVE_INFINITY : 0
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i] as unknown
    if (!Array.isArray(l) || !positive(l[0]) || !positive(l[1])) return `data.${name}[${i}] must be [price, size], both positive numbers under 1e100`
    if (descending ? l[0] >= previous : l[0] <= previous) return `data.${name} must be best first, each price ${descending ? 'below' : 'above'} the one before`
    previous = l[0]
  }
  return null
}

/** exchangeTime and receivedAt, which the connectors add and other publishers may leave out. */
function times(d: Record<string, unknown>): string | null {
  if (d.exchangeTime !== undefined && d.exchangeTime !== null && !finite(d.exchangeTime)) return 'data.exchangeTime must be a finite number or null'
  if (d.receivedAt !== undefined && !finite(d.receivedAt)) return 'data.receivedAt must be a finite number'
  return null
}

const VENUE_COUNTS = [
  'instruments',
  'booksLive',
  'messages',
  'ignored',
  'invalid',
  'gaps',
  'checksumFailures',
  'resyncs',
  'reconnects',
  'silences',
  'errors',
  'overflows',
  'rotations',
  'heldBytes'
] as const

/** The fields the engine reads (VENUE_REPORT_FIELDS): `state` needed, the others, when present, of their type. */
function reportError(d: Record<string, unknown>): string | null {
  if (!STATES.has(d.state)) return 'data.state must be "up", "degraded" or "down"'
  const notLive = d.notLive
  if (notLive !== undefined && !(Array.isArray(notLive) && notLive.every((s) => typeof s === 'string'))) return 'data.notLive must be an array of topic symbols'
  const age = d.lastMessageAgeMs
  if (age !== undefined && age !== null && !(finite(age) && age >= 0)) return 'data.lastMessageAgeMs must be a number from 0, or null'
  return null
}

/** `exchange` and `state` are needed (a publisher's health may be that alone); every other field, when present, has its type. */
function venueError(d: Record<string, unknown>): string | null {
  const error = reportError(d)
  if (error !== null) return error
  for (const key of VENUE_COUNTS) {
    const x = d[key]
    if (x !== undefined && !(finite(x) && x >= 0)) return `data.${key} must be a number from 0`
  }
  for (const key of ['clockOffsetMs', 'latencyMs'] as const)
    if (d[key] !== undefined && d[key] !== null && !finite(d[key])) return `data.${key} must be a finite number or null`
  if (d.connected !== undefined && typeof d.connected !== 'boolean') return 'data.connected must be true or false'
  if (d.ts !== undefined && !finite(d.ts)) return 'data.ts must be a finite number'
  return null
}

/**
 * A recorded venue marker's health as the engine takes it (a state alone, or a venue.<exchange>
 * event of its exchange), checked in the fields the engine reads: a recording keeps only those (and
 * `exchange`), an older one the whole event, whose other fields the engine never reads. null when
 * it is neither.
 */
export function healthOf(exchange: unknown, health: unknown): VenueState | VenueReport | null {
  if (typeof exchange !== 'string' || exchange.includes('.')) return null
  if (typeof health === 'string') return STATES.has(health) ? (health as VenueState) : null
  if (health === null || typeof health !== 'object' || Array.isArray(health)) return null
  const d = health as Record<string, unknown>
  return d.exchange === exchange && reportError(d) === null ? (health as VenueReport) : null
}
