// buildApp: a Fastify instance with the live plugin and the HTTP routes, ready to listen (it never listens).
import Fastify, { LogController, type FastifyPluginAsync, type FastifyServerOptions } from 'fastify'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import live from './plugins/live.ts'
import healthRoutes from './routes/health.ts'
import arbitrage from './plugins/arbitrage.ts'
import demoFeed from './plugins/demo-feed.ts'
import scorer from './hooks/scorer.ts'
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
  if (config.arbitrage) {
    await app.register(scorer, { config })
    const { minNetBps, maxTickAgeMs, opportunityUpdateBps, takerFees, defaultTakerFee } = config
    await app.register(arbitrage, { minNetBps, maxTickAgeMs, opportunityUpdateBps, takerFees, defaultTakerFee })
  }
  if (config.demoFeed) await app.register(demoFeed, { rate: config.demoFeedRate, seed: config.demoFeedSeed })
  for (const path of config.hooks.split(',').map((p) => p.trim()).filter(Boolean)) await app.register(await loadHookModule(path), { config })
  return app
}

/** HOOKS=./a.js,./b.js: each module's default export is a Fastify plugin that registers hooks on app.liveHooks. */
async function loadHookModule(path: string): Promise<FastifyPluginAsync<{ config: Config }>> {
  let module: { default?: unknown }
  try {
    module = await import(pathToFileURL(resolve(path)).href)
  } catch (err) {
    throw new Error(`HOOKS: cannot load "${path}": ${(err as Error).message}`)
  }
  if (typeof module.default !== 'function') throw new Error(`HOOKS: "${path}" has no default export that is a Fastify plugin`)
  return module.default as FastifyPluginAsync<{ config: Config }>
}
