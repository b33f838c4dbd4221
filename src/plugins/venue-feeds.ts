// FEEDS on the server itself (a single-process setup): the exchange connectors run in this process
// and publish through the hub like any publisher. The feeds process (src/feeds-process.ts) is the other way.
// With a backplane (BUS=redis) several processes may be started with the same FEEDS: each venue's
// connectors then run in the one process holding that venue's lease (README "One engine per
// deployment"), and move to another within seconds when it dies.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Lease } from '../core/lease.js'
import { checkSettings, FeedsSettings } from '../market/settings.js'
import { configuredFeeds, startFeeds, type Feeds } from '../market/setup.js'
import { connectorSink } from '../market/check.js'
import { recordingOf } from './recorder.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The connectors this process runs now: all of FEEDS, or with a backplane the venues whose
     * lease it holds (`running`), their health and the FEEDS entries they skipped.
     */
    liveFeeds: { readonly running: Feeds[]; readonly unknown: Feeds['unknown']; health(): ReturnType<Feeds['health']>; readonly publishFailures: number }
  }
}

/** FEEDS's settings (market/settings.ts); one left out takes its default. */
export type FeedsOptions = Partial<FeedsSettings>

const always = () => true

const feedsPlugin: FastifyPluginAsync<FeedsOptions> = async (app, options) => {
  const settings = checkSettings('feeds', FeedsSettings, options)
  const configured = configuredFeeds(settings)
  let publishFailures = 0
  const failed = () => {
    publishFailures++
  }
  const running = new Map<string, Feeds>()
  const start = async (key: string, feeds: typeof configured.feeds, held: () => boolean) => {
    // A venue's lease ran out by this process's clock: nothing more goes out until it is taken again.
    const sink = connectorSink((topic, data) => {
      if (held()) app.live.publishDetached(topic, data, failed)
    })
    const started = await startFeeds({ ...configured, feeds, log: app.log, sink, ...recordingOf(app)?.feeds(sink, settings.bookDepth) })
    for (const { exchange, symbol } of started.unknown)
      app.log.warn({ exchange, symbol }, 'FEEDS names an instrument the venue does not list or stream (README "Market data from the venues"): skipped')
    app.log.info({ venues: started.feeds.map((f) => f.exchange), instruments: started.feeds.reduce((n, f) => n + f.health().instruments, 0) }, 'feeds started')
    running.set(key, started)
  }

  const all = configured.feeds
  const leases = new Map<string, Lease>()
  // One venue's switches in order: a start still loading metadata finishes before its stop.
  const switching = new Map<string, Promise<void>>()
  for (const [exchange, symbols] of all) {
    const lease = app.liveLeases?.take(`feeds.${exchange}`, (generation) => {
      const next = (switching.get(exchange) ?? Promise.resolve())
        .then(async () => {
          const current = running.get(exchange)
          if (generation !== null && current === undefined) await start(exchange, new Map([[exchange, symbols]]), () => lease!.held)
          else if (generation === null && current !== undefined) {
            current.stop()
            running.delete(exchange)
            app.log.info({ venue: exchange }, 'feeds stopped: another process runs them')
          }
        })
        .catch((err: Error) => {
          app.log.error({ venue: exchange, err: err.message }, 'feeds could not start: the lease is given back for another process to try')
          void lease!.stop()
        })
      switching.set(exchange, next)
    })
    if (lease === undefined) break // no backplane: this process is the deployment
    leases.set(exchange, lease)
  }
  if (leases.size === 0) await start('*', all, always)

  app.decorate('liveFeeds', {
    get running() {
      return [...running.values()]
    },
    get unknown() {
      return [...running.values()].flatMap((f) => f.unknown)
    },
    health: () => [...running.values()].flatMap((f) => f.health()),
    get publishFailures() {
      return publishFailures
    }
  })
  app.addHook('onClose', async () => {
    await Promise.all(switching.values())
    for (const feeds of running.values()) feeds.stop()
  })
}

export default fp(feedsPlugin, { name: 'live-feeds', fastify: '5.x', dependencies: ['live'] })
