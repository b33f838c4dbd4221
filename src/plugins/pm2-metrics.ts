// Custom metrics in `pm2 monit` and `pm2 show` (through @pm2/io), registered by src/server.ts
// when PM2 runs the process: connections, messages in and out per second, publish-to-send p99.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Histogram } from '../core/histogram.js'

const WINDOW_MS = 10_000 // the p99 shown is over the last 10 s, rates over the last second

const pm2Metrics: FastifyPluginAsync = async (app) => {
  // Imported only here: @pm2/io initialises itself on import. Re-initialised without its
  // exception handler (close-with-grace owns shutdown) and without patching http.
  const { default: io } = await import('@pm2/io')
  io.init({ catchExceptions: false, profiling: false, metrics: { v8: true, eventLoop: true, http: false, network: false, runtime: false } })
  const live = app.live.figures
  const framesIn = () => sum(live.framesIn)
  const framesOut = () => sum(live.framesOut)

  let rates = { in: 0, out: 0 }
  let last = { in: framesIn(), out: framesOut(), at: performance.now() }
  let windowStart: Histogram = live.publishToSend.copy()
  let p99 = 0
  const sampler = setInterval(() => {
    const now = { in: framesIn(), out: framesOut(), at: performance.now() }
    const seconds = (now.at - last.at) / 1000
    rates = { in: (now.in - last.in) / seconds, out: (now.out - last.out) / seconds }
    last = now
  }, 1000).unref()
  const windower = setInterval(() => {
    const recent = live.publishToSend.since(windowStart)
    p99 = recent.count === 0 ? 0 : recent.percentile(99)
    windowStart = live.publishToSend.copy()
  }, WINDOW_MS).unref()

  io.metric({ name: 'Connections', value: () => app.live.connections })
  io.metric({ name: 'Messages in/s', unit: 'msg/s', value: () => Math.round(rates.in) })
  io.metric({ name: 'Messages out/s', unit: 'msg/s', value: () => Math.round(rates.out) })
  io.metric({ name: 'Publish to send p99', unit: 'ms', value: () => Math.round(p99 * 1000) / 1000 })
  io.metric({ name: 'Subscriptions', value: () => live.subscriptions })

  app.addHook('onClose', async () => {
    clearInterval(sampler)
    clearInterval(windower)
    io.destroy()
  })
}

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0)

export default fp(pm2Metrics, { name: 'live-pm2-metrics', fastify: '5.x', dependencies: ['live'] })
