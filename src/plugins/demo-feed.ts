// DEMO_FEED=1: the synthetic feed published in process on ticker.<exchange>.<symbol>.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { SyntheticFeed } from '../market/synthetic.js'
import { checkSettings, DemoFeedSettings } from '../market/settings.js'

/** DEMO_FEED_RATE and DEMO_FEED_SEED (defaults for those not given), and the feed's size. */
export interface DemoFeedOptions extends Partial<DemoFeedSettings> {
  symbols?: number
  exchanges?: number
}

const TICK_MS = 10

const demoFeedPlugin: FastifyPluginAsync<DemoFeedOptions> = async (app, options) => {
  const { demoFeedRate: rate, demoFeedSeed: seed } = checkSettings('demo-feed', DemoFeedSettings, options)
  const feed = new SyntheticFeed({ seed, symbols: options.symbols ?? 5, exchanges: options.exchanges ?? 5 })
  let owed = 0
  let timer: NodeJS.Timeout | null = null
  app.addHook('onListen', async () => {
    timer = setInterval(() => {
      owed += (rate * TICK_MS) / 1000
      const now = Date.now()
      for (; owed >= 1; owed--) {
        const tick = feed.next(now)
        app.live.publish(`ticker.${tick.exchange}.${tick.symbol}`, tick).catch(() => {})
      }
    }, TICK_MS)
    const { port } = app.server.address() as { port: number }
    app.log.info(
      { rate, seed, symbols: feed.symbols.map(([s]) => s), exchanges: feed.exchanges.map(([e]) => e) },
      `demo feed on: watch opportunities with {"type":"subscribe","topic":"opportunities.>"} at ws://localhost:${port}/ws/live, ` +
        `e.g. npx realtime sub 'opportunities.>' --url ws://localhost:${port}/ws/live, or open http://localhost:${port}/dashboard`
    )
  })
  app.addHook('onClose', async () => {
    if (timer !== null) clearInterval(timer)
  })
}

export default fp(demoFeedPlugin, { name: 'live-demo-feed', fastify: '5.x', dependencies: ['live'] })
