// buildApp: a Fastify instance with the live plugin and the HTTP routes, ready to listen (it never listens).
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import live from './plugins/live.js'
import healthRoutes from './routes/health.js'
import metrics from './plugins/metrics.js'
import dashboard from './plugins/dashboard.js'
import arbitrage from './plugins/arbitrage.js'
import demoFeed from './plugins/demo-feed.js'
import venues from './plugins/venues.js'
import marketData from './plugins/market-data.js'
import feeds from './plugins/venue-feeds.js'
import recorder from './plugins/recorder.js'
import leases from './plugins/leases.js'
import replay, { DEMO_VENUES } from './plugins/replay.js'
import scorer from './hooks/scorer.js'
import { models } from './hooks/models.js'
import { loadConfig, settingsOf, type Config } from './config.js'
import { ArbitrageSettings, DemoFeedSettings, FeedsSettings } from './market/settings.js'
import type { Bus } from './core/bus.js'
import { BusSettings, LeaseSettings, LiveSettings } from './core/settings.js'
import type { SegmentFiles } from './record/recorder.js'
import { RecorderSettings, ReplaySettings } from './record/settings.js'

export interface BuildOptions {
  logger?: FastifyServerOptions['logger']
  bus?: Bus
  /** Where RECORD_DIR's segments are written (tests: a disk that fills up). */
  recordFiles?: SegmentFiles
  /** realtime replay --hooks --from/--to: the span of REPLAY_DIR that is published. */
  replaySpan?: { from?: number; to?: number }
}

export async function buildApp(overrides: Partial<Config> = {}, { logger = false, bus, recordFiles, replaySpan }: BuildOptions = {}) {
  const config = loadConfig({}, overrides)
  // Per-request lines would flood the log under load-balancer polling; the live layer logs what matters.
  const app = Fastify({
    logger: withRedaction(logger),
    logController: new LogController({ disableRequestLogging: true }),
    // wss:// and https:// directly; behind a TLS terminator leave TLS_CERT and TLS_KEY empty (README).
    ...(config.tlsCert
      ? { https: { cert: readTlsFile('TLS_CERT', config.tlsCert), key: readTlsFile('TLS_KEY', config.tlsKey), handshakeTimeout: config.handshakeTimeout } }
      : {})
  }) as unknown as FastifyInstance
  await app.register(live, { ...settingsOf(config, LiveSettings), bus: bus ?? config.bus, httpRedirect: '/dashboard/' })
  // Before any other publish hook and every reader of market data: venue.> (the venue table) and,
  // where the engine runs, book.> and ticker.> are checked once, here.
  await app.register(marketData, { kinds: config.arbitrage ? ['book', 'ticker', 'venue'] : ['venue'] })
  await app.register(healthRoutes, { config })
  await app.register(leases, { ...settingsOf(config, BusSettings), ...settingsOf(config, LeaseSettings) })
  await app.register(venues)
  await app.register(metrics)
  await app.register(dashboard)
  // Before the engine: a client's publish is recorded before the engine's marker for it.
  if (config.recordDir) {
    await app.register(recorder, { ...settingsOf(config, RecorderSettings), files: recordFiles })
  }
  if (config.arbitrage) {
    // The engine first: its check that a tick speaks for its topic's exchange runs before the
    // scorer observes the tick.
    await app.register(arbitrage, settingsOf(config, ArbitrageSettings))
    await app.register(scorer, { config })
  }
  // After the scorer, whose volatility feature a model may read.
  if (config.models) await app.register(models, { dir: config.models, reloadMs: config.modelsReloadMs })
  if (config.feeds) await app.register(feeds, settingsOf(config, FeedsSettings))
  if (config.replayDir || config.demo === 'venues') {
    const settings = settingsOf(config, ReplaySettings)
    await app.register(replay, config.demo === 'venues' ? { ...settings, replayDir: DEMO_VENUES, replayLoop: true } : { ...settings, ...replaySpan })
  }
  if (config.demoFeed) await app.register(demoFeed, settingsOf(config, DemoFeedSettings))
  for (const path of config.hooks
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean))
    await app.register(await loadHookModule(path), { config })
  return app
}

function readTlsFile(variable: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new Error(`${variable}: cannot read "${path}": ${(err as Error).message}`)
  }
}

/** Logged requests never carry a `?token=` credential (Authorization headers are not logged at all). */
function withRedaction(logger: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (logger === false || logger === undefined) return logger
  const options = logger === true ? {} : logger
  return {
    ...options,
    serializers: {
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: redactToken(request.url),
        host: request.host,
        remoteAddress: request.ip,
        remotePort: request.socket?.remotePort
      }),
      ...(options as { serializers?: object }).serializers
    }
  }
}

export const redactToken = (url: string): string => url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]')

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
