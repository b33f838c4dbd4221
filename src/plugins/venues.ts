// Venue health as the server sees it, wherever the feeds run: the last venue.<exchange> event of
// each venue, the `venues` request method, and (metrics.ts) one series per venue in Prometheus.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { BusEvent } from '../core/protocol.js'
import type { VenueHealth } from '../market/connection.js'

/** Venues tracked: a fixed bound on what publishers can make the server hold and Prometheus list. */
export const MAX_VENUES = 64
/** A feed publishes its health every second: after this long without one, the venue counts as down. */
export const VENUE_STALE_MS = 5000

export interface VenueView extends VenueHealth {
  /** No venue.<exchange> event for VENUE_STALE_MS: the feed (or its process) is gone. */
  stale: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    liveVenues: { list(now?: number): VenueView[] }
  }
}

const venuesPlugin: FastifyPluginAsync = async (app) => {
  const latest = new Map<string, { health: VenueHealth; at: number }>()
  const stop = app.live.subscribe('venue.*', (event: BusEvent) => {
    const exchange = event.topic.slice('venue.'.length)
    const health = event.data as VenueHealth
    if (health === null || typeof health !== 'object' || health.exchange !== exchange) return
    if (!latest.has(exchange) && latest.size >= MAX_VENUES) return
    latest.set(exchange, { health, at: Date.now() })
  })
  const list = (now = Date.now()): VenueView[] =>
    [...latest.values()].map(({ health, at }) => {
      const stale = now - at > VENUE_STALE_MS
      return { ...health, state: stale ? 'down' : health.state, stale }
    })
  app.liveHooks.method({ name: 'venues', handler: () => ({ venues: list() }) })
  app.decorate('liveVenues', { list })
  app.addHook('onClose', async () => stop())
}

export default fp(venuesPlugin, { name: 'live-venues', fastify: '5.x', dependencies: ['live'] })
