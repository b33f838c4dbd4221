// The `liveBus` decorator: the bus the live plugin publishes through. It makes the configured one
// (in memory, or Redis: ioredis, ~9 MiB of RSS, is loaded only then) or takes one the caller
// passes, and closes only a bus it made.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { MemoryBus, type Bus, type MemoryBusOptions } from '../core/bus.js'
import type { BusSettings } from '../core/settings.js'

declare module 'fastify' {
  interface FastifyInstance {
    liveBus: Bus
  }
}

export interface BusPluginOptions {
  config: BusSettings
  /** A bus of the caller's (a test double, a backplane of its own): used as is, never closed here. */
  bus?: Bus
  /** True while the process is at its memory limit: the in-memory bus creates no topic then. */
  overMemory: () => boolean
}

const busPlugin: FastifyPluginAsync<BusPluginOptions> = async (app, { config, bus: given, overMemory }) => {
  if (app.hasDecorator('liveBus')) throw new Error('live-bus is already registered')
  if (given !== undefined) {
    app.decorate('liveBus', given)
    return
  }
  const options = { ...config, busMemoryBytes: config.busMemoryMb * 1024 * 1024, overMemory }
  const bus: Bus =
    config.bus === 'redis'
      ? new (await import('../core/redis-bus.js')).RedisBus(config, app.log)
      : config.historyDir !== ''
        ? await journaled(app, config, options)
        : new MemoryBus(options)
  app.decorate('liveBus', bus)
  app.addHook('onClose', async () => bus.close())
}

/** The in-memory bus with HISTORY_DIR's journal, loaded: what was read and what was not is logged, and damage never stops start-up. */
async function journaled(app: FastifyInstance, config: BusSettings, options: MemoryBusOptions): Promise<Bus> {
  const { Journal } = await import('../core/journal.js')
  const { JournaledBus } = await import('../core/journaled-bus.js')
  const bus = new JournaledBus(options, new Journal(config.historyDir, config.historyFsync), (err) => {
    if (err) app.log.error({ err }, 'the history journal cannot be written: publishes are refused until it can')
    else app.log.warn('the history journal is written again')
  })
  const started = performance.now()
  const report = bus.restore()
  const loaded = {
    dir: config.historyDir,
    segments: report.segments,
    records: report.records,
    topics: report.topics,
    ms: Math.round(performance.now() - started)
  }
  app.log.info(loaded, 'history journal loaded')
  for (const damage of report.damaged) app.log.error({ dir: config.historyDir }, `history journal damaged: ${damage}`)
  if (report.refused > 0) app.log.warn({ refused: report.refused }, `history journal: records of topics past MAX_TOPICS (${config.maxTopics}) not loaded`)
  if (report.uncleanReboot && config.historyFsync !== 'always') {
    app.log.warn(
      `the machine restarted without the journal being closed: what HISTORY_FSYNC=${config.historyFsync} had not synced may be lost, so every topic takes a new epoch (clients recover with recovered:false)`
    )
  }
  return bus
}

export default fp(busPlugin, { name: 'live-bus', fastify: '5.x' })
