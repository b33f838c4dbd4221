// The arbitrage engine plugin: book.>, ticker.> and venue.> events in (in process),
// opportunities.<symbol> events out through the one publish path, so onPublish hooks (the scorer)
// see every opportunity.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { ArbitrageEngine, type BookData, type EngineCounters, type OpportunityEvent, type Tick } from '../market/arbitrage.js'
import { ArbitrageSettings, checkSettings, engineOptions } from '../market/settings.js'
import { ErrorCode, LiveError, type BusEvent } from '../core/protocol.js'

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

/** Token 1 (exchange) or 2 (symbol) of <kind>.<exchange>.<symbol>; null for any other shape. */
function tickerToken(topic: string, token: 1 | 2): string | null {
  const a = topic.indexOf('.')
  const b = topic.indexOf('.', a + 1)
  if (a === -1 || b === -1 || topic.indexOf('.', b + 1) !== -1) return null
  return token === 1 ? topic.slice(a + 1, b) : topic.slice(b + 1)
}

const arbitragePlugin: FastifyPluginAsync<ArbitrageOptions> = async (app, options) => {
  const settings = checkSettings('arbitrage', ArbitrageSettings, options)
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
  // A tick speaks for the exchange and symbol of its topic, which the publisher's grant covers:
  // data naming others is refused before it gets a seq (a feed scoped to ticker.binance.> cannot
  // quote coinbase, nor make opportunities.<anything>).
  app.liveHooks.onPublish({ name: 'ticker-topic', topics: 'ticker.>' }, (topic, data) => {
    const exchange = tickerToken(topic, 1)
    const symbol = tickerToken(topic, 2)
    if (exchange === null || symbol === null) throw new LiveError(ErrorCode.badRequest, `"${topic}": ticker topics are ticker.<exchange>.<symbol>`)
    if (data !== null && typeof data === 'object') {
      const tick = data as Partial<Record<'exchange' | 'symbol', unknown>>
      if (tick.exchange !== undefined && tick.exchange !== exchange)
        throw new LiveError(ErrorCode.badRequest, `"${topic}": data.exchange must be "${exchange}", the topic's`)
      if (tick.symbol !== undefined && tick.symbol !== symbol)
        throw new LiveError(ErrorCode.badRequest, `"${topic}": data.symbol must be "${symbol}", the topic's`)
    }
    return undefined
  })
  // The event's ts is when the server received the update: the engine needs no clock of its own.
  const stops = [
    app.live.subscribe('ticker.>', (event: BusEvent) => {
      if (running) publish(engine.onTick(event.data as Tick, event.ts, tickerToken(event.topic, 1), tickerToken(event.topic, 2)))
    }),
    app.live.subscribe('book.>', (event: BusEvent) => {
      if (running) publish(engine.onBook(event.data as BookData, event.ts, tickerToken(event.topic, 1), tickerToken(event.topic, 2)))
    }),
    app.live.subscribe('venue.*', (event: BusEvent) => {
      if (!running) return
      const exchange = event.topic.slice('venue.'.length)
      const data = event.data as { exchange?: unknown; state?: unknown } | null
      if (data !== null && typeof data === 'object' && data.exchange === exchange) publish(engine.onVenue(exchange, data, event.ts))
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

export default fp(arbitragePlugin, { name: 'live-arbitrage', fastify: '5.x', dependencies: ['live'] })
