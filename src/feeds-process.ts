// The feeds process (PM2 app `feeds`, `npm run feeds`): exchange connectors in a process of their
// own, publishing ticker.>, book.> and venue.> into the server over the WebSocket protocol, so a
// venue's misbehaviour never reaches the server's memory or event loop.
import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { ConfigError, loadConfig, settingsOf, type Config } from './config.js'
import { LiveClient } from './client/index.js'
import { configuredFeeds, startFeeds } from './market/setup.js'
import { FeedsSettings } from './market/settings.js'
import { recordFeeds, recorderFor } from './record/capture.js'
import { RecorderSettings } from './record/settings.js'
import { topicSink } from './market/events.js'

let config: Config
try {
  config = loadConfig(process.env)
  if (config.feeds === '') throw new ConfigError('FEEDS', '', 'the venues and instruments to stream, e.g. binance:BTC-USDT;okx:BTC-USDT')
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`${err.message}\n`)
  process.exit(1)
}

const log = pino({ level: config.logLevel, ...(config.logPretty || process.stdout.isTTY ? { transport: { target: 'pino-pretty' } } : {}) })
const client = new LiveClient({ url: config.feedsServerUrl, token: config.feedsToken || undefined, reconnect: { minDelayMs: 250, maxDelayMs: 5000 } })
client.on('close', ({ code, reason }) => log.warn({ code, reason }, 'server connection closed: reconnecting'))
client.on('open', () => log.info({ url: config.feedsServerUrl }, 'publishing to the server'))

let failures = 0
// RECORD_DIR: the venues' frames and REST answers (the server records what this process publishes).
const recorder = config.recordDir ? recorderFor(settingsOf(config, RecorderSettings), log) : null
const feeds = await startFeeds({
  ...configuredFeeds(settingsOf(config, FeedsSettings)),
  log,
  sink: topicSink((topic, data) => {
    // Fire and count: a book or ticker is superseded by the next one, so a refusal is not retried.
    client.publish(topic, data).catch((err: Error) => {
      if (failures++ % 1000 === 0) log.warn({ topic, err: err.message, failures }, 'publish refused')
    })
  }),
  ...(recorder ? recordFeeds(recorder, config.bookDepth, false) : {})
}).catch((err: Error) => {
  log.fatal({ err: err.message }, 'cannot start the feeds')
  process.exit(1)
})
for (const { exchange, symbol } of feeds.unknown)
  log.warn({ exchange, symbol }, 'FEEDS names an instrument the venue does not list or stream (README "Market data from the venues"): skipped')
log.info({ venues: feeds.feeds.map((f) => f.exchange) }, 'feeds started')

closeWithGrace({ delay: config.shutdownGrace }, async ({ signal }) => {
  log.info({ signal }, 'stopping the feeds')
  feeds.stop()
  client.close()
  await recorder?.close()
})
process.send?.('ready')
