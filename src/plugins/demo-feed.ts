// DEMO_FEED=1: the synthetic feed published in process on ticker.<exchange>.<symbol>.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { SyntheticFeed } from '../market/synthetic.js'

export interface DemoFeedOptions {
  rate: number
  seed: number
  symbols?: number
  exchanges?: number
}

const TICK_MS = 10

const demoFeedPlugin: FastifyPluginAsync<DemoFeedOptions> = async (app, options) => {
  const feed = new SyntheticFeed({ seed: options.seed, symbols: options.symbols ?? 5, exchanges: options.exchanges ?? 5 })
  let owed = 0
  let timer: NodeJS.Timeout | null = null
  app.addHook('onListen', async () => {
    timer = setInterval(() => {
      owed += (options.rate * TICK_MS) / 1000
      const now = Date.now()
      for (; owed >= 1; owed--) {
        const tick = feed.next(now)
        app.live.publish(`ticker.${tick.exchange}.${tick.symbol}`, tick).catch(() => {})
      }
    }, TICK_MS)
    const { port } = app.server.address() as { port: number }
    app.log.info(
      { rate: options.rate, seed: options.seed, symbols: feed.symbols.map(([s]) => s), exchanges: feed.exchanges.map(([e]) => e) },
      `demo feed on: watch opportunities with {"type":"subscribe","topic":"opportunities.>"} at ws://localhost:${port}/ws/live, ` +
        `e.g. npx realtime sub 'opportunities.>' --url ws://localhost:${port}/ws/live, or open http://localhost:${port}/dashboard`
    )
  })
  app.addHook('onClose', async () => {
    if (timer !== null) clearInterval(timer)
  })
}

export default fp(demoFeedPlugin, { name: 'live-demo-feed', fastify: '5.x', dependencies: ['live'] })
