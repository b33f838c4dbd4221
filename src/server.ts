// The process: environment -> config, logger, listen, and a graceful shutdown on SIGINT/SIGTERM.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import pm2Metrics from './plugins/pm2-metrics.js'

let config: Config
try {
  // The server process journals its history by default, so a restart keeps it, and keeps its RSS
  // under PM2's max_memory_restart (README "Running under PM2").
  config = loadConfig({ HISTORY_DIR: './data', MEMORY_LIMIT_MB: '200', ...process.env })
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`${err.message}\n`)
  process.exit(1)
}

const pretty = config.logPretty || process.stdout.isTTY
const app = await buildApp(config, {
  logger: {
    level: config.logLevel,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {})
  }
}).catch((err: Error) => {
  process.stderr.write(`Cannot start: ${err.message}\n`)
  process.exit(1)
})

// Under PM2 (it sets pm_id): connections, message rates and latency in `pm2 monit` and `pm2 show`.
if (process.env.pm_id !== undefined) await app.register(pm2Metrics)

// PM2 sends SIGINT and kills after kill_timeout: the grace delay stays below it (pm2.config.json).
closeWithGrace({ delay: config.shutdownGrace, logger: app.log }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'shutting down after an error')
  else app.log.info({ signal }, 'shutting down')
  await app.close() // its preClose drains: 1001 to every client first
  app.log.info('closed')
})

try {
  await app.listen({ port: config.port, host: config.host })
} catch (err) {
  app.log.fatal({ err }, 'could not listen')
  process.exit(1)
}
// Where to point a client and a browser, said once (a wildcard address is reached as localhost).
const { port } = app.server.address() as { port: number }
const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host
const scheme = config.tlsCert ? 's' : ''
app.log.info(
  { websocket: `ws${scheme}://${host}:${port}/ws/live`, dashboard: `http${scheme}://${host}:${port}/dashboard/` },
  'serving the live stream and the dashboard'
)
if (!config.demoFeed && config.feeds === '' && !config.replayDir && !config.demo) {
  app.log.info(
    'no feed runs in this process: publish ticks on ticker.<exchange>.<symbol>, or start with FEEDS=<exchange>:<symbols>, DEMO_FEED=true, or npm run demo (five venues recorded)'
  )
}
// PM2's wait_ready: the process counts as online only once it listens.
process.send?.('ready')
