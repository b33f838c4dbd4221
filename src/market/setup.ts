// FEEDS as configured: which instruments of which venues, where the venues are, and the registry
// their metadata makes; then one group of connections per venue. Used by the feeds process (feeds-process.ts)
// and, for a single-process setup, by the server's feeds plugin.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { InstrumentRegistry, type Instrument } from './instruments.js'
import { type FeedsSettings, parseEndpoints, parseFeeds } from './settings.js'
import type { ConnectionOptions, Endpoints } from './connection.js'
import { type Clock, liveClock, timeoutSignal } from './clock.js'
import type { MarketSink, VenueHealth } from './events.js'
import { VenueGroup } from './group.js'
import { EXCHANGES, type Exchange, VENUES } from './venues/index.js'
import { readJson } from './rest.js'

/** Where each venue is, as its room says (FEEDS_ENDPOINTS points elsewhere). */
export const VENUE_ENDPOINTS = Object.fromEntries(EXCHANGES.map((e) => [e, VENUES[e].endpoints])) as Record<Exchange, Endpoints>

/** An instrument list's request, answer read in full. */
const METADATA_TIMEOUT_MS = 30_000

/** Bytes of one instrument-list answer read at start-up (VENUE_METADATA_MB). */
export const DEFAULT_METADATA_BYTES = 32 * 1024 * 1024

/**
 * The registry for these venues: from `<metadataDir>/<exchange>/*.json` (the venues' own answers,
 * saved; what tests and offline runs use) or, without a directory, from each venue's REST API.
 */
export async function loadRegistry(
  exchanges: Exchange[],
  {
    metadataDir,
    endpoints,
    fetchImpl = fetch,
    metadataBytes = DEFAULT_METADATA_BYTES,
    clock = liveClock
  }: {
    metadataDir?: string
    endpoints: Record<Exchange, Endpoints>
    fetchImpl?: typeof fetch
    metadataBytes?: number
    /** Whose time the requests' 30 s deadline runs on (the connectors'). */
    clock?: Clock
  }
): Promise<InstrumentRegistry> {
  const registry = new InstrumentRegistry()
  for (const exchange of exchanges) {
    const { paths, parse: parser } = VENUES[exchange].metadata
    let answers: unknown[]
    if (metadataDir) {
      const dir = join(metadataDir, exchange)
      let files: string[]
      try {
        files = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('depth-'))
      } catch {
        throw new Error(`FEEDS_METADATA: no metadata for ${exchange} in ${dir}`)
      }
      answers = files.map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')))
    } else {
      answers = await Promise.all(
        paths.map(async (path) => {
          const url = `${endpoints[exchange].rest}${path}`
          // The answer read in full within 30 s of the connectors' clock.
          const deadline = timeoutSignal(clock, METADATA_TIMEOUT_MS)
          try {
            const res = await fetchImpl(url, { signal: deadline.signal }).catch((err: Error) => {
              throw new Error(`${exchange}: cannot read instruments from ${url}: ${err.message}`)
            })
            if (!res.ok) throw new Error(`${exchange}: ${url} answered HTTP ${res.status}`)
            return await readJson(res, metadataBytes, 'VENUE_METADATA_MB').catch((err: Error) => {
              throw new Error(`${exchange}: cannot read instruments from ${url}: ${err.message}`)
            })
          } finally {
            deadline.cancel()
          }
        })
      )
    }
    // A venue's several answers (product lists, instrument types) each parse on their own.
    for (const answer of answers) registry.add(exchange, parser(answer))
  }
  return registry
}

export interface Feeds {
  /** One per venue: its sockets (README "Market data from the venues"). */
  readonly feeds: VenueGroup[]
  readonly registry: InstrumentRegistry
  /** FEEDS entries no venue lists: skipped, never guessed. */
  readonly unknown: { exchange: Exchange; symbol: string }[]
  health(): VenueHealth[]
  stop(): void
}

export interface StartOptions {
  feeds: Map<Exchange, string[]>
  endpoints?: Partial<Record<Exchange, Endpoints>>
  metadataDir?: string
  bookDepth: number
  sink: MarketSink
  log?: ConnectionOptions['log']
  fetchImpl?: typeof fetch
  /** Opens the venues' sockets (default ws; tests and replays hand in their own). */
  connect?: ConnectionOptions['connect']
  /** Override of every venue's silence limit (tests). */
  silenceMs?: number
  /** The connectors' time and timers (default the live clock; benchmarks read a sub-millisecond one, replays a virtual one). */
  clock?: Clock
  /** False where nobody reads venue.<exchange> (ConnectionOptions.venueHealth). */
  venueHealth?: boolean
  /** Overrides of the venues' connection limits (tests): instruments per socket, socket age at rotation. */
  perConnection?: number
  rotateAfterMs?: number
  /** VENUE_BUFFER_MB and VENUE_METADATA_MB in bytes. */
  bufferBytes?: number
  metadataBytes?: number
  /** The registry to use instead of loading one (a replay rebuilds it from the recording). */
  registry?: InstrumentRegistry
  /** Per venue: its socket, REST access and clock instead of the ones above (recording, replay). */
  transport?: (exchange: Exchange) => { connect?: ConnectionOptions['connect']; fetch?: typeof fetch; clock?: Clock }
  /** Called with each venue's instruments before any socket opens (the recording's metadata). */
  beforeStart?: (instruments: Map<Exchange, Instrument[]>) => void
}

const MiB = 1024 * 1024

/** What FEEDS's settings (checked) say to start: the one reading of them, for the server's plugin and the feeds process. */
export function configuredFeeds(
  settings: FeedsSettings
): Pick<StartOptions, 'feeds' | 'endpoints' | 'metadataDir' | 'bookDepth' | 'bufferBytes' | 'metadataBytes'> {
  return {
    feeds: parseFeeds(settings.feeds) as Map<Exchange, string[]>,
    endpoints: parseEndpoints(settings.feedsEndpoints) as Partial<Record<Exchange, Endpoints>>,
    metadataDir: settings.feedsMetadata || undefined,
    bookDepth: settings.bookDepth,
    bufferBytes: settings.venueBufferMb * MiB,
    metadataBytes: settings.venueMetadataMb * MiB
  }
}

export async function startFeeds(options: StartOptions): Promise<Feeds> {
  const endpoints = { ...VENUE_ENDPOINTS, ...options.endpoints }
  const exchanges = [...options.feeds.keys()]
  const registry =
    options.registry ??
    (await loadRegistry(exchanges, {
      metadataDir: options.metadataDir,
      endpoints,
      fetchImpl: options.fetchImpl,
      metadataBytes: options.metadataBytes,
      clock: options.clock
    }))
  const unknown: Feeds['unknown'] = []
  const feeds: VenueGroup[] = []
  const streamed = new Map<Exchange, Instrument[]>()
  for (const [exchange, symbols] of options.feeds) {
    const instruments: Instrument[] = []
    for (const symbol of symbols) {
      const instrument = registry.topic(exchange, symbol)
      if (instrument === undefined) unknown.push({ exchange, symbol })
      else instruments.push(instrument)
    }
    if (instruments.length === 0) continue
    streamed.set(exchange, instruments)
    feeds.push(
      new VenueGroup(exchange, {
        instruments,
        endpoints: endpoints[exchange],
        bookDepth: options.bookDepth,
        sink: options.sink,
        log: options.log,
        fetch: options.fetchImpl,
        connect: options.connect,
        silenceMs: options.silenceMs,
        clock: options.clock,
        perConnection: options.perConnection,
        rotateAfterMs: options.rotateAfterMs,
        bufferBytes: options.bufferBytes,
        venueHealth: options.venueHealth,
        ...options.transport?.(exchange)
      })
    )
  }
  options.beforeStart?.(streamed)
  for (const feed of feeds) feed.start()
  return {
    feeds,
    registry,
    unknown,
    health: () => feeds.map((f) => f.health()),
    stop: () => {
      for (const feed of feeds) feed.stop()
    }
  }
}
