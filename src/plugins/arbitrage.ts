// The arbitrage engine plugin: book.>, ticker.> and venue.> events in (in process, as checked where
// they entered: plugins/market-data.ts),
// opportunities.<symbol> events out through the one publish path, so onPublish hooks (the scorer)
// see every opportunity.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { ArbitrageEngine, type BookData, type EngineCounters, type OpportunityEvent, type Tick } from '../market/arbitrage.js'
import { ArbitrageSettings, checkSettings, engineOptions } from '../market/settings.js'
import type { BusEvent } from '../core/protocol.js'
import type { VenueHealth } from '../market/events.js'

declare module 'fastify' {
  interface FastifyInstance {
    liveArbitrage: {
      readonly engine: ArbitrageEngine
      readonly counters: EngineCounters & { publishFailures: number }
      /** False in a process of a backplane deployment that does not hold the engine's lease. */
      readonly running: boolean
    }
  }
}

/** The engine's settings (market/settings.ts: MIN_NET_BPS, TAKER_FEES, ...); one left out takes its default. */
export type ArbitrageOptions = Partial<ArbitrageSettings>

/** The exchange and symbol of a book.<exchange>.<symbol> or ticker.<exchange>.<symbol> topic (the shape market/check.ts let in). */
const exchangeOf = (topic: string): string => topic.slice(topic.indexOf('.') + 1, topic.lastIndexOf('.'))
const symbolOf = (topic: string): string => topic.slice(topic.lastIndexOf('.') + 1)

const arbitragePlugin: FastifyPluginAsync<ArbitrageOptions> = async (app, options) => {
  const settings = checkSettings('arbitrage', ArbitrageSettings, options)
  const kinds = app.liveMarketData.kinds
  if (!kinds.includes('book') || !kinds.includes('ticker') || !kinds.includes('venue'))
    throw new Error('arbitrage: the engine reads book.>, ticker.> and venue.> as checked: register live-market-data with all three first')
  const makeEngine = (idPrefix?: string) => new ArbitrageEngine({ ...engineOptions(settings), idPrefix })
  let engine = makeEngine()
  let publishFailures = 0
  const counters = () => ({ ...engine.counters, publishFailures })
  // With a backplane the engine runs in the one process holding its lease (README "One engine per
  // deployment"): a new holder starts from fresh books, its ids carrying the lease's generation.
  let running = true
  const lease = app.liveLeases?.take('arbitrage', (generation) => {
    running = generation !== null
    if (generation !== null) engine = makeEngine(`${generation}.`)
  })
  if (lease !== undefined) running = false

  const failed = () => {
    publishFailures++
  }
  // Opportunities leave the delivery of the event that made them: kept while a book or tick fans
  // out, published once it has (a microtask later), never from inside another event's delivery.
  let queued: OpportunityEvent[] = []
  const flush = () => {
    const batch = queued
    queued = []
    // Past the lease's end by this process's clock nothing goes out, even before the next round notices.
    if (lease !== undefined && !lease.held) return
    // Not app.live.publish: synchronous on the in-memory bus, no promise per event.
    for (const e of batch) app.live.publishDetached(`opportunities.${e.symbol}`, e, failed)
  }
  const publish = (events: OpportunityEvent[] | null) => {
    if (events === null) return
    if (queued.length === 0) queueMicrotask(flush)
    for (const e of events) queued.push(e)
  }
  // The event's ts is when the server received the update: the engine needs no clock of its own.
  // What arrives was checked where it entered the process (plugins/market-data.ts): it is typed.
  const stops = [
    app.live.subscribe('ticker.>', (event: BusEvent) => {
      if (running) publish(engine.onTick(event.data as Tick, event.ts, exchangeOf(event.topic), symbolOf(event.topic)))
    }),
    app.live.subscribe('book.>', (event: BusEvent) => {
      if (running) publish(engine.onBook(event.data as BookData, event.ts, exchangeOf(event.topic), symbolOf(event.topic)))
    }),
    app.live.subscribe('venue.*', (event: BusEvent) => {
      if (running) publish(engine.onVenue(event.topic.slice('venue.'.length), event.data as VenueHealth, event.ts))
    })
  ]
  // Opportunities whose quotes go stale without a new tick are closed by the sweep.
  const sweep = setInterval(
    () => {
      if (running) publish(engine.sweep(Date.now()))
    },
    Math.max(50, settings.maxTickAgeMs / 2)
  ).unref()
  app.liveHooks.method({ name: 'arbitrage', handler: () => ({ ...counters(), running }) })
  app.decorate('liveArbitrage', {
    get engine() {
      return engine
    },
    get counters() {
      return counters()
    },
    get running() {
      return running
    }
  })
  app.addHook('onClose', async () => {
    clearInterval(sweep)
    for (const stop of stops) stop()
  })
}

export default fp(arbitragePlugin, { name: 'live-arbitrage', fastify: '5.x', dependencies: ['live', 'live-market-data'] })
