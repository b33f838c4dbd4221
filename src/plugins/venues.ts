// Venue health as the server sees it, wherever the feeds run: the last venue.<exchange> event of
// each venue, the `venues` request method, and (metrics.ts) one series per venue in Prometheus.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { BusEvent } from '../core/protocol.js'
import { HEALTH_FORGET_MS, type VenueHealth, VENUE_STALE_MS } from '../market/events.js'

export { VENUE_STALE_MS }

/** Venues tracked: a fixed bound on what publishers can make the server hold and Prometheus list. */
export const MAX_VENUES = 64
/** A venue not heard from for this long is forgotten (gone from `venues` and /metrics). */
export const VENUE_FORGET_MS = 3_600_000

export interface VenueView extends VenueHealth {
  /** No venue.<exchange> event for VENUE_STALE_MS: the feed (or its process) is gone. */
  stale: boolean
  /**
   * Whether this health decides if quotes of the exchange's name take part in opportunities. False
   * after HEALTH_FORGET_MS without an event: the arbitrage engine forgot it, and ticks and books
   * other publishers send under the name count by their own freshness.
   */
  gatesQuotes: boolean
}

/**
 * The last health of each venue, kept in the order they were last heard from. Full, a new venue
 * takes the place of the one heard from longest ago if that one is stale: names that stopped
 * reporting (a feed gone, or fakes published once) never keep a live venue out.
 */
export class VenueTable {
  private readonly latest = new Map<string, { health: VenueHealth; at: number }>()

  update(health: VenueHealth, now: number): boolean {
    const exchange = health.exchange
    if (!this.latest.delete(exchange) && this.latest.size >= MAX_VENUES) {
      const [oldest, { at }] = this.latest.entries().next().value!
      if (now - at <= VENUE_STALE_MS) return false
      this.latest.delete(oldest)
    }
    this.latest.set(exchange, { health, at: now })
    return true
  }

  list(now: number): VenueView[] {
    for (const [exchange, { at }] of this.latest) {
      if (now - at <= VENUE_FORGET_MS) break // the rest were heard from later
      this.latest.delete(exchange)
    }
    return [...this.latest.values()].map(({ health, at }) => {
      const stale = now - at > VENUE_STALE_MS
      return { ...health, state: stale ? 'down' : health.state, stale, gatesQuotes: now - at <= HEALTH_FORGET_MS }
    })
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    liveVenues: { list(now?: number): VenueView[] }
  }
}

const venuesPlugin: FastifyPluginAsync = async (app) => {
  const table = new VenueTable()
  // Checked where it entered the process (plugins/market-data.ts): a health of the topic's venue.
  const stop = app.live.subscribe('venue.*', (event: BusEvent) => {
    table.update(event.data as VenueHealth, Date.now())
  })
  const list = (now = Date.now()): VenueView[] => table.list(now)
  app.liveHooks.method({ name: 'venues', handler: () => ({ venues: list() }) })
  app.decorate('liveVenues', { list })
  app.addHook('onClose', async () => stop())
}

export default fp(venuesPlugin, { name: 'live-venues', fastify: '5.x', dependencies: ['live', 'live-market-data'] })
