// Market data's door into this process (market/check.ts): a publish of book.>, ticker.> or venue.>
// that is not a valid event of its topic is refused with bad_request before it gets a seq, and an
// event of those topics that another process put on the backplane is dropped (counted in
// realtime_backplane_rejected_total). What gets in is typed: the engine, the venue table and the
// recorder check nothing again. This process's connectors' events are typed by construction.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { fromConnector, type MarketKind, marketDataError, marketKind } from '../market/check.js'
import { ErrorCode, LiveError } from '../core/protocol.js'

// A check that cannot be switched off: it refuses what fails it ('closed'), and its budget is one
// a synchronous check never reaches, so no breaker opens and lets data through unchecked.
const CHECK = { failMode: 'closed', budgetMs: 60_000 } as const

const check = (topic: string, data: unknown): undefined => {
  if (fromConnector(topic, data)) return undefined
  const error = marketDataError(topic, data)
  if (error !== null) throw new LiveError(ErrorCode.badRequest, error)
  return undefined
}

export interface MarketDataOptions {
  /**
   * The topics checked: those something in this process reads as typed. venue.> always (the venue
   * table); book.> and ticker.> where the engine runs. Without it they are topics like any other.
   */
  kinds: readonly MarketKind[]
}

const marketDataPlugin: FastifyPluginAsync<MarketDataOptions> = async (app, { kinds }) => {
  if (app.hasDecorator('liveMarketData')) throw new Error('live-market-data is already registered')
  app.decorate('liveMarketData', { kinds })
  // First among publish hooks: whatever runs after it (the scorer, models, HOOKS) sees checked data.
  for (const kind of kinds) app.liveHooks.onPublish({ name: `${kind}-data`, topics: `${kind}.>`, ...CHECK }, check)
  const checked = new Set<MarketKind | null>(kinds)
  app.liveBus.admit?.((event) => !checked.has(marketKind(event.topic)) || marketDataError(event.topic, event.data) === null)
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The market topics whose data this process checks where it enters. */
    liveMarketData: { readonly kinds: readonly MarketKind[] }
  }
}

export default fp(marketDataPlugin, { name: 'live-market-data', fastify: '5.x', dependencies: ['live'] })
