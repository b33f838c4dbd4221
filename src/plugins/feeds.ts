// FEEDS on the server itself (a single-process setup): the exchange connectors run in this process
// and publish through the hub like any publisher. The feeds process (src/feeds.ts) is the other way.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { hubOf } from '../core/hub.js'
import type { Config } from '../config.js'
import { parseEndpoints, parseFeeds, startFeeds, type Feeds } from '../market/setup.js'
import { topicSink } from '../market/events.js'
import { recordingOf } from './recorder.js'

declare module 'fastify' {
  interface FastifyInstance {
    liveFeeds: Feeds & { publishFailures: number }
  }
}

export type FeedsOptions = Pick<Config, 'feeds' | 'feedsEndpoints' | 'feedsMetadata' | 'bookDepth' | 'venueBufferMb' | 'venueMetadataMb'>

const feedsPlugin: FastifyPluginAsync<FeedsOptions> = async (app, options) => {
  const hub = hubOf(app.live)
  let publishFailures = 0
  const failed = () => {
    publishFailures++
  }
  const sink = topicSink((topic, data) => hub.publishDetached(topic, data, failed))
  const feeds = await startFeeds({
    feeds: parseFeeds(options.feeds)!,
    endpoints: parseEndpoints(options.feedsEndpoints)!,
    metadataDir: options.feedsMetadata || undefined,
    bookDepth: options.bookDepth,
    bufferBytes: options.venueBufferMb * 1024 * 1024,
    metadataBytes: options.venueMetadataMb * 1024 * 1024,
    log: app.log,
    sink,
    ...recordingOf(app)?.feeds(sink, options.bookDepth)
  })
  for (const { exchange, symbol } of feeds.unknown)
    app.log.warn({ exchange, symbol }, 'FEEDS names an instrument the venue does not list or stream (README "Market data from the venues"): skipped')
  app.log.info({ venues: feeds.feeds.map((f) => f.exchange), instruments: feeds.feeds.reduce((n, f) => n + f.health().instruments, 0) }, 'feeds started')
  app.decorate(
    'liveFeeds',
    Object.assign(feeds, {
      get publishFailures() {
        return publishFailures
      }
    })
  )
  app.addHook('onClose', async () => feeds.stop())
}

export default fp(feedsPlugin, { name: 'live-feeds', fastify: '5.x', dependencies: ['live'] })
