// The `liveBus` decorator: the bus the live plugin publishes through. It makes the configured one
// (in memory, or Redis: ioredis, ~9 MiB of RSS, is loaded only then) or takes one the caller
// passes, and closes only a bus it made.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { MemoryBus, type Bus } from '../core/bus.js'
import type { Config } from '../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    liveBus: Bus
  }
}

export interface BusPluginOptions {
  config: Config
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
  const bus: Bus =
    config.bus === 'redis'
      ? new (await import('../core/redis-bus.js')).RedisBus(config, app.log)
      : new MemoryBus({ ...config, busMemoryBytes: config.busMemoryMb * 1024 * 1024, overMemory })
  app.decorate('liveBus', bus)
  app.addHook('onClose', async () => bus.close())
}

export default fp(busPlugin, { name: 'live-bus', fastify: '5.x' })
