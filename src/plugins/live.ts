// The embeddable live plugin: the /ws/live socket, POST /publish/:topic and the `live` decorator.
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { FastifyPluginAsync } from 'fastify'
import { loadConfig, type Config } from '../config.ts'
import { pickSubprotocol } from '../core/codec.ts'
import { MemoryBus, type Bus } from '../core/bus.ts'
import { Hub, isThenable, type EventListener } from '../core/hub.ts'
import liveRoute from '../routes/live.ts'
import publishRoute from '../routes/publish.ts'
import hooksPlugin from './hooks.ts'
import { isLoopback } from '../core/auth.ts'
import { Server as TlsServer } from 'node:tls'
import type { Server, IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'

/** Config values (logLevel is the host's: Fastify reads it on register), plus what only code can pass. */
export interface LiveOptions extends Partial<Omit<Config, 'logLevel' | 'bus'>> {
  /** 'memory' (default), 'redis' (REDIS_URL), or a bus instance (a test double, a backplane of your own). */
  bus?: Config['bus'] | Bus
  /** Paths that upgrade to the live socket. Drop '/' when the host app serves GET / itself. */
  paths?: string[]
  /** Where a plain browser GET of `/` is sent (the dashboard); default, and for other paths: 426 Upgrade Required. */
  httpRedirect?: string
}

export interface LiveApi {
  readonly config: Config
  readonly hub: Hub
  /** Publishes from inside the process; resolves once the bus has assigned the seq. */
  publish(topic: string, data: unknown): Promise<{ seq: number; epoch: string }>
  /** Calls `listener` with every event matching `pattern` (wildcards allowed); returns the unsubscribe function. */
  subscribe(pattern: string, listener: EventListener): () => void
  /** Open WebSocket connections. */
  readonly connections: number
  /** Accepting connections: not draining, connected to its bus, under its memory limit. */
  readonly ready: boolean
  /** Why it is not ready, or null. */
  readonly notReadyReason: 'draining' | 'bus unavailable' | 'memory limit' | null
  /** Refuses new upgrades and closes every open connection with 1001. */
  drain(): void
}

declare module 'fastify' {
  interface FastifyInstance {
    live: LiveApi
    liveBus: Bus
  }
}

const live: FastifyPluginAsync<LiveOptions> = async (app, options) => {
  if (app.hasDecorator('live')) throw new Error('the live plugin is already registered')
  const { bus: busOption, paths = ['/ws/live', '/'], httpRedirect, ...overrides } = options
  const config = loadConfig({}, { ...overrides, bus: typeof busOption === 'string' ? busOption : undefined })
  // ioredis adds ~9 MiB of RSS to a process: it is loaded only when the Redis bus is configured.
  const bus = typeof busOption === 'object' ? busOption
    : config.bus === 'redis' ? new (await import('../core/redis-bus.ts')).RedisBus(config, app.log) : new MemoryBus(config)
  if (!app.hasDecorator('liveHooks')) {
    await app.register(hooksPlugin, { hookBudget: config.hookBudget, hookFailures: config.hookFailures, hookCooldown: config.hookCooldown })
  }
  const hub = new Hub(bus, config, app.log, app.liveHooks)

  if (!app.hasDecorator('websocketServer')) {
    await app.register(websocket, {
      options: { maxPayload: config.maxPayload, handleProtocols: (offered) => pickSubprotocol(offered) },
      // Close our clients with 1001 before the ws server shuts; the default closes them without a code.
      preClose(done) {
        hub.drain()
        this.websocketServer.close(() => done())
      }
    })
  }

  const api: LiveApi = {
    config,
    hub,
    async publish(topic, data) {
      const result = hub.publish(topic, data)
      const event = isThenable(result) ? await result : result
      return { seq: event.seq, epoch: event.epoch }
    },
    subscribe: (pattern, listener) => hub.listen(pattern, listener),
    get connections() {
      return hub.connections.size
    },
    get ready() {
      return this.notReadyReason === null
    },
    get notReadyReason() {
      if (hub.draining) return 'draining'
      if (!bus.ready) return 'bus unavailable'
      if (hub.admission.overMemory()) return 'memory limit'
      return null
    },
    drain: () => hub.drain()
  }
  app.decorate('live', api)
  app.decorate('liveBus', bus)

  app.decorateRequest('liveGrants', null) // set by routes/auth.ts on the upgrade and on POST /publish
  const allowedOrigins = config.allowedOrigins.split(',').map((o) => o.trim()).filter(Boolean)
  await app.register(liveRoute, { hub, paths, useMsgpack: config.useMsgpack, allowedOrigins, httpRedirect })
  await app.register(publishRoute, { hub, maxPublishBytes: config.maxPublishBytes })

  limitHandshake(app.server, config.handshakeTimeout)
  app.addHook('onListen', async () => {
    const address = app.server.address()
    if (config.auth === 'none' && !(typeof address === 'object' && address !== null && isLoopback(address.address))) {
      app.log.warn({ auth: 'none', address }, 'AUTH=none on a non-loopback address: ANYONE who can reach this port may publish prices')
    }
  })

  app.addHook('preClose', async () => hub.drain())
  app.addHook('onClose', async () => {
    hub.close()
    await bus.close()
  })
}

const handshakeTimer = Symbol('handshakeTimer')
type PendingSocket = Socket & { [handshakeTimer]?: NodeJS.Timeout }

/**
 * A TCP (or TLS) connection has `ms` to deliver its request headers, however slowly it trickles
 * bytes; past that it is destroyed. Node's own headersTimeout is checked only every 30 s.
 */
function limitHandshake(server: Server, ms: number): void {
  const arm = (socket: PendingSocket) => {
    socket[handshakeTimer] = setTimeout(() => socket.destroy(), ms).unref()
    socket.once('close', () => clearTimeout(socket[handshakeTimer]))
  }
  const disarm = (request: IncomingMessage) => clearTimeout((request.socket as PendingSocket)[handshakeTimer])
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', arm)
  server.on('request', disarm)
  server.on('upgrade', disarm)
}

export default fp(live, { name: 'live', fastify: '5.x' })
