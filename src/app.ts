// buildApp: a Fastify instance with the live plugin and the HTTP routes, ready to listen (it never listens).
import Fastify, { LogController, type FastifyServerOptions } from 'fastify'
import live from './plugins/live.ts'
import healthRoutes from './routes/health.ts'
import { loadConfig, type Config } from './config.ts'
import type { Bus } from './core/bus.ts'

export interface BuildOptions {
  logger?: FastifyServerOptions['logger']
  bus?: Bus
}

export async function buildApp(overrides: Partial<Config> = {}, { logger = false, bus }: BuildOptions = {}) {
  const config = loadConfig({}, overrides)
  // Per-request lines would flood the log under load-balancer polling; the live layer logs what matters.
  const app = Fastify({ logger, logController: new LogController({ disableRequestLogging: true }) })
  const { logLevel: _hostsLogLevel, ...liveOptions } = config
  await app.register(live, { ...liveOptions, bus })
  await app.register(healthRoutes, { config })
  return app
}
