// GET /metrics in Prometheus text format (prom-client). The live layer counts in plain numbers
// (core/live.ts); they are read and labelled here, at scrape time, so the hot path never calls
// prom-client. No label carries a topic: cardinality stays fixed however many topics there are.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { VersionFigures } from '../core/hooks.js'
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import type { Histogram } from '../core/histogram.js'

// Seconds. Fan-out is measured in microseconds; hooks and backplane stalls in milliseconds.
const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
const BUCKETS_MS = BUCKETS.map((s) => s * 1000)

type Labels = Record<string, string>

// Process metrics (CPU, memory, event loop lag, GC) once per process: they install monitors, and
// every app in the process would report the same figures.
let processRegistry: Registry | null = null

const metrics: FastifyPluginAsync = async (app) => {
  processRegistry ??= defaultMetrics()
  const registry = new Registry()
  const live = app.live.figures
  const bus = app.liveBus
  const registers = [registry]

  const gauge = (name: string, help: string, read: () => number | Promise<number | undefined>) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const value = await read()
        if (value !== undefined) this.set(value)
      }
    })
  // A counter whose totals are kept elsewhere: each scrape copies them in.
  const counter = (name: string, help: string, labelNames: string[], read: () => Iterable<[Labels, number]>) =>
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset()
        for (const [labels, value] of read()) this.inc(labels, value)
      }
    })
  const byKey = (label: string, values: Record<string, number> | Map<number | string, number>) =>
    function* (): Iterable<[Labels, number]> {
      const entries = values instanceof Map ? values.entries() : Object.entries(values)
      for (const [key, value] of entries) yield [{ [label]: String(key) }, value]
    }
  const total = (read: () => number) =>
    function* (): Iterable<[Labels, number]> {
      yield [{}, read()]
    }

  gauge('realtime_connections', 'Open WebSocket connections.', () => app.live.connections)
  counter(
    'realtime_connects_total',
    'WebSocket connections accepted.',
    [],
    total(() => live.connects)
  )
  counter(
    'realtime_disconnects_total',
    'WebSocket connections closed, by close code ("other": codes a client chose).',
    ['code'],
    byKey('code', live.disconnects)
  )
  counter('realtime_frames_in_total', 'Frames received, by type ("invalid": did not decode or validate).', ['type'], byKey('type', live.framesIn))
  counter('realtime_frames_out_total', 'Frames sent, by type; an event counts once per subscriber.', ['type'], byKey('type', live.framesOut))
  counter(
    'realtime_bytes_in_total',
    'WebSocket message bytes received.',
    [],
    total(() => live.bytesIn)
  )
  counter(
    'realtime_bytes_out_total',
    'Frame bytes written to client sockets.',
    [],
    total(() => live.bytesOut)
  )
  gauge('realtime_subscriptions', 'Subscriptions held by open connections (one per connection and pattern).', () => live.subscriptions)
  gauge('realtime_topics', 'Topics that hold a value on the bus.', async () => {
    try {
      return (await bus.topics()).length
    } catch {
      return undefined // the backplane is away: realtime_backplane_up says so
    }
  })
  counter('realtime_slow_consumer_actions_total', 'Slow-consumer policy actions: "close" (4008), "conflate" (congestion episodes).', ['action'], function* () {
    yield [{ action: 'close' }, live.slowClosed]
    yield [{ action: 'conflate' }, live.slowConflated]
  })
  counter(
    'realtime_conflated_events_total',
    'Events held back while their connection was congested; only the latest per topic is sent.',
    [],
    total(() => live.conflatedEvents)
  )
  gauge('realtime_filter_cost', 'Field reads one event costs the distinct filters held (at most MAX_FILTER_COST_TOTAL).', () => app.live.filterFigures.cost)
  counter(
    'realtime_filter_evaluations_total',
    'Filter evaluations: at most one per distinct filter and event.',
    [],
    total(() => app.live.filterFigures.evaluations)
  )
  gauge('realtime_delta_state_bytes', 'Bytes of delta state held (at most DELTA_MEMORY_MB).', () => app.live.deltaFigures.stateBytes)
  counter(
    'realtime_deltas_total',
    'Delta frames made: at most one per event and codec.',
    [],
    total(() => app.live.deltaFigures.made)
  )
  registry.registerMetric(
    histogram('realtime_publish_to_send_seconds', 'From the bus handing an event to delivery to the write of its frames to every subscriber.', () => [
      [{}, live.publishToSend]
    ])
  )

  const hookLabels = ['hook', 'stage']
  const perHook = (pick: (f: ReturnType<typeof app.liveHooks.figures>[number]) => number) =>
    function* (): Iterable<[Labels, number]> {
      for (const f of app.liveHooks.figures()) yield [{ hook: f.name, stage: f.stage }, pick(f)]
    }
  counter(
    'realtime_hook_calls_total',
    'Hook calls.',
    hookLabels,
    perHook((f) => f.calls)
  )
  counter(
    'realtime_hook_errors_total',
    'Hook calls that threw or rejected.',
    hookLabels,
    perHook((f) => f.errors)
  )
  counter(
    'realtime_hook_timeouts_total',
    'Hook calls that ran over their budget.',
    hookLabels,
    perHook((f) => f.timeouts)
  )
  counter(
    'realtime_hook_skipped_total',
    'Hook calls not made because the breaker was open.',
    hookLabels,
    perHook((f) => f.skipped)
  )
  new Gauge({
    name: 'realtime_hook_breaker_open',
    help: 'Hook circuit breaker: 1 open or half-open, 0 closed.',
    labelNames: hookLabels,
    registers,
    collect() {
      this.reset()
      for (const f of app.liveHooks.figures()) this.set({ hook: f.name, stage: f.stage }, f.breaker === 'closed' ? 0 : 1)
    }
  })
  registry.registerMetric(
    histogram('realtime_hook_latency_seconds', 'Latency of hook calls that succeeded: every asynchronous call, one synchronous call in eight.', () =>
      app.liveHooks.latencies().map(({ figures, latency }) => [{ hook: figures.name, stage: figures.stage }, latency])
    )
  )

  // Models (MODELS, onnxModel, remoteModel): per version serving, candidate or shadow, read when scraped.
  const perVersion = (pick: (v: VersionFigures) => number | undefined) =>
    function* (): Iterable<[Labels, number]> {
      if (!app.hasDecorator('liveModels')) return
      for (const directory of app.liveModels) {
        for (const m of directory.figures()) {
          for (const v of m.versions) {
            // Versions in an arm only: a thousand retired versions make no thousand series.
            if (v.state !== 'serving' && v.state !== 'candidate' && v.state !== 'shadow') continue
            const value = pick(v)
            if (value !== undefined) yield [{ model: m.name, version: v.version, arm: v.state }, value]
          }
        }
      }
    }
  const versionLabels = ['model', 'version', 'arm']
  counter(
    'realtime_model_calls_total',
    'Calls of a model version.',
    versionLabels,
    perVersion((v) => v.calls)
  )
  counter(
    'realtime_model_errors_total',
    'Calls of a model version that failed.',
    versionLabels,
    perVersion((v) => v.errors)
  )
  counter(
    'realtime_model_missing_features_total',
    'Events a model version was to score that lacked a feature or had a non-numeric one.',
    versionLabels,
    perVersion((v) => v.missingFeatures)
  )
  counter(
    'realtime_model_shadow_compared_total',
    "A shadow version's answers compared with the served ones.",
    versionLabels,
    perVersion((v) => v.shadow?.compared)
  )
  new Gauge({
    name: 'realtime_model_shadow_abs_diff',
    help: "A shadow version's absolute difference from the served answers: mean and max.",
    labelNames: [...versionLabels, 'stat'],
    registers,
    collect() {
      this.reset()
      for (const [labels, mean] of perVersion((v) => v.shadow?.meanAbsDiff)()) this.set({ ...labels, stat: 'mean' }, mean)
      for (const [labels, max] of perVersion((v) => v.shadow?.maxAbsDiff)()) this.set({ ...labels, stat: 'max' }, max)
    }
  })
  counter('realtime_model_refused_total', 'Versions of a model refused (bad bytes, an incompatible shape or card).', ['model'], function* () {
    if (!app.hasDecorator('liveModels')) return
    for (const directory of app.liveModels) for (const m of directory.figures()) yield [{ model: m.name }, m.refused]
  })

  gauge('realtime_ready', '1 when /ready answers 200 (not draining, bus connected, under the memory limit).', () => (app.live.ready ? 1 : 0))
  gauge('realtime_backplane_up', '1 while the bus is connected (always 1 for the in-memory bus).', () => (bus.ready ? 1 : 0))
  const backplane = bus.backplane
  if (backplane !== undefined) {
    counter(
      'realtime_backplane_reconnects_total',
      'Times the backplane subscriber connection came back and caught up from history.',
      [],
      total(() => backplane.reconnects)
    )
    counter(
      'realtime_backplane_gaps_total',
      'Seq gaps seen on the backplane stream (messages it dropped).',
      [],
      total(() => backplane.gaps)
    )
    counter(
      'realtime_backplane_refetched_events_total',
      'Events fetched from history to fill backplane gaps.',
      [],
      total(() => backplane.refetched)
    )
    counter(
      'realtime_backplane_unfilled_gaps_total',
      'Backplane gaps history could not fill: clients saw a seq jump.',
      [],
      total(() => backplane.unfilled)
    )
    counter(
      'realtime_backplane_refused_total',
      "Backplane messages Redis never published (another epoch, a seq beyond the topic's): dropped.",
      [],
      total(() => backplane.refused)
    )
    counter(
      'realtime_backplane_rejected_total',
      "Events of other processes this process's admission refused (market data that is not a valid event of its topic): dropped.",
      [],
      total(() => backplane.rejected)
    )
  }

  // One series per venue (label exchange only; at most MAX_VENUES), from its last venue.<exchange> event.
  // The venues plugin is optional for embedders: without it there are no venue series.
  const venues = () => (app.hasDecorator('liveVenues') ? app.liveVenues.list() : [])
  // Venue events come from publishers: a field that is not a finite number gives no sample
  // (prom-client throws on one, and /metrics would answer 500 for every scrape).
  const perVenue = (read: (v: ReturnType<typeof venues>[number]) => number | null) =>
    function* (): Iterable<[Labels, number]> {
      for (const v of venues()) {
        const value: unknown = read(v)
        if (typeof value === 'number' && Number.isFinite(value)) yield [{ exchange: v.exchange }, value]
      }
    }
  const venueGauge = (name: string, help: string, read: Parameters<typeof perVenue>[0]) =>
    new Gauge({
      name,
      help,
      labelNames: ['exchange'],
      registers,
      collect() {
        this.reset()
        for (const [labels, value] of perVenue(read)()) this.set(labels, value)
      }
    })
  venueGauge('realtime_venue_state', 'Venue health: 2 up, 1 degraded, 0 down.', (v) => (v.state === 'up' ? 2 : v.state === 'degraded' ? 1 : 0))
  venueGauge('realtime_venue_books_live', 'Books in sequence (not resyncing).', (v) => v.booksLive)
  venueGauge('realtime_venue_last_message_age_seconds', 'Seconds since the venue last sent anything.', (v) =>
    v.lastMessageAgeMs === null ? null : v.lastMessageAgeMs / 1000
  )
  venueGauge('realtime_venue_clock_offset_seconds', 'Smallest receive time minus exchange time over recent messages.', (v) =>
    v.clockOffsetMs === null ? null : v.clockOffsetMs / 1000
  )
  venueGauge('realtime_venue_held_bytes', 'Bytes held for books waiting for their snapshot (at most VENUE_BUFFER_MB per connection).', (v) => v.heldBytes)
  venueGauge('realtime_venue_latency_seconds', 'Median feed latency above that offset.', (v) => (v.latencyMs === null ? null : v.latencyMs / 1000))
  for (const [name, key] of [
    ['gaps', 'gaps'],
    ['resyncs', 'resyncs'],
    ['checksum_failures', 'checksumFailures'],
    ['reconnects', 'reconnects'],
    ['silences', 'silences'],
    ['rotations', 'rotations'],
    ['invalid_messages', 'invalid'],
    ['overflows', 'overflows']
  ] as const)
    counter(
      `realtime_venue_${name}_total`,
      `Venue ${name.replace('_', ' ')} since its feed started.`,
      ['exchange'],
      perVenue((v) => v[key])
    )

  const processMetrics = processRegistry
  app.get('/metrics', { logLevel: 'warn', onRequest: app.live.operatorOnly }, async (_request, reply) => {
    const text = (await processMetrics.metrics()) + (await registry.metrics())
    return reply.type(registry.contentType).send(text)
  })
}

function defaultMetrics(): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  return registry
}

/** A Prometheus histogram read from our allocation-free Histograms (in ms) at scrape time. */
function histogram(name: string, help: string, read: () => [Labels, Histogram][]): Metric {
  const get = () => {
    const values: { metricName: string; labels: Labels; value: number }[] = []
    for (const [labels, h] of read()) {
      const counts = h.countsUpTo(BUCKETS_MS)
      for (let i = 0; i < BUCKETS.length; i++) values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(BUCKETS[i]) }, value: counts[i] })
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count })
      values.push({ metricName: `${name}_sum`, labels, value: h.sum / 1000 })
      values.push({ metricName: `${name}_count`, labels, value: h.count })
    }
    return { name, help, type: 'histogram', values, aggregator: 'sum' }
  }
  return { name, help, get, reset() {} } as unknown as Metric
}

export default fp(metrics, { name: 'live-metrics', fastify: '5.x', dependencies: ['live'] })
