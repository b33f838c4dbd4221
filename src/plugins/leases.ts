// One engine per deployment: with BUS=redis every process of the deployment sees every event, so
// work that publishes what it derives (the arbitrage engine, the connectors of FEEDS) must run in
// one of them only. `app.liveLeases.take(name, onChange)` gives the caller a lease in Redis
// (src/core/lease.ts) and tells it when this process starts and stops holding it; with the
// in-memory bus there is one process, and it answers undefined: run always.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Redis } from 'ioredis'
import type { BusSettings, LeaseSettings } from '../core/settings.js'
import type { Lease } from '../core/lease.js'

declare module 'fastify' {
  interface FastifyInstance {
    liveLeases: { take(name: string, onChange: (generation: number | null) => void): Lease | undefined }
  }
}

/** The bus's settings (is it Redis, where, under which prefix) and LEASE_TTL. */
export type LeasesOptions = BusSettings & LeaseSettings

const leasesPlugin: FastifyPluginAsync<LeasesOptions> = async (app, config) => {
  if (config.bus !== 'redis') {
    app.decorate('liveLeases', { take: () => undefined })
    return
  }
  const { Lease } = await import('../core/lease.js')
  const { Redis } = await import('ioredis')
  let redis: Redis | undefined
  const leases: Lease[] = []
  let ready = false
  app.decorate('liveLeases', {
    take(name: string, onChange: (generation: number | null) => void): Lease {
      if (redis === undefined) {
        redis = new Redis(config.redisUrl, { connectionName: 'live-leases', enableOfflineQueue: false, maxRetriesPerRequest: 1 })
        redis.on('error', () => {}) // a lost connection shows as renewals failing: the lease runs out by the clock
      }
      const lease = new Lease(redis, `${config.redisPrefix}lease:${name}`, { ttlMs: config.leaseTtl, intervalMs: config.leaseTtl / 3 }, (generation) => {
        if (generation === null) app.log.warn({ lease: name }, 'this process no longer holds the lease: its work stops here')
        else app.log.info({ lease: name, generation }, 'this process holds the lease: its work runs here')
        onChange(generation)
      })
      leases.push(lease)
      if (ready) lease.start()
      return lease
    }
  })
  // Taken once the app is ready (its subscriptions in place), not while plugins still load.
  app.addHook('onReady', async () => {
    ready = true
    for (const lease of leases) lease.start()
  })
  // Given back before the process goes, so another takes over at its next round, not after the TTL.
  app.addHook('preClose', async () => {
    await Promise.all(leases.map((lease) => lease.stop()))
    redis?.disconnect()
  })
}

export default fp(leasesPlugin, { name: 'live-leases', fastify: '5.x' })
