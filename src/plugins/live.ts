// The embeddable live plugin: the /ws/live socket, POST /publish/:topic and the `live` decorator.
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { FastifyInstance, FastifyPluginAsync, onRequestAsyncHookHandler } from 'fastify'
import { loadLiveSettings } from '../config.js'
import type { LiveSettings } from '../core/settings.js'
import { pickSubprotocol } from '../core/codec.js'
import type { Bus } from '../core/bus.js'
import busPlugin from './bus.js'
import { attachHub, Hub, type EventListener } from '../core/hub.js'
import { isThenable } from '../core/maybe.js'
import type { DeltaFigures, FilterFigures, LiveFigures } from '../core/figures.js'
import liveRoute from '../routes/live.js'
import publishRoute from '../routes/publish.js'
import hooksPlugin from './hooks.js'
// The liveHooks decorator's type, for embedders that import only this package's entry.
import './hooks.js'
import { isLoopback, originList } from '../core/auth.js'
import { operatorOnly } from '../http/auth.js'
import { Server as TlsServer } from 'node:tls'
import type { Server, IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'

/** The live plugin's settings (README "Configuration"; defaults for those not given), plus what only code can pass. */
export interface LiveOptions extends Partial<Omit<LiveSettings, 'bus'>> {
  /** 'memory' (default), 'redis' (REDIS_URL), or a bus instance (a test double, a backplane of your own). */
  bus?: LiveSettings['bus'] | Bus
  /** Paths that upgrade to the live socket. Drop '/' when the host app serves GET / itself. */
  paths?: string[]
  /** Where a plain browser GET of `/` is sent (the dashboard); default, and for other paths: 426 Upgrade Required. */
  httpRedirect?: string
}

/** What an embedding app uses: publish and listen in process, figures, readiness, drain. */
export interface LiveApi {
  /** The plugin's settings, as checked, with the defaults of those not given. */
  readonly config: LiveSettings
  /** Publishes from inside the process; resolves once the bus has assigned the seq. */
  publish(topic: string, data: unknown): Promise<{ seq: number; epoch: string }>
  /**
   * Publishes without a promise per event, for in-process feeds (market connectors, the engine)
   * whose next event supersedes this one: a refusal calls `refused` and is not retried.
   */
  publishDetached(topic: string, data: unknown, refused: () => void): void
  /** An onRequest hook for operator routes (/metrics, /config): a credential under AUTH=required, 401 without. */
  readonly operatorOnly: onRequestAsyncHookHandler
  /** Calls `listener` with every event matching `pattern` (wildcards allowed); returns the unsubscribe function. */
  subscribe(pattern: string, listener: EventListener): () => void
  /** Open WebSocket connections. */
  readonly connections: number
  /** WebSocket connections whose subscriptions match a concrete topic. */
  subscribers(topic: string): number
  /** The live layer's counters (frames, bytes, subscriptions, slow consumers, publish-to-send times). */
  readonly figures: LiveFigures
  /** Subscription filters: held, their cost per event, evaluations (read when asked). */
  readonly filterFigures: FilterFigures
  /** Delta frames made and the delta state held (read when asked). */
  readonly deltaFigures: DeltaFigures
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
  }
}

const live: FastifyPluginAsync<LiveOptions> = async (app, options) => {
  if (app.hasDecorator('live')) throw new Error('the live plugin is already registered')
  const { bus: busOption, paths = ['/ws/live', '/'], httpRedirect, ...overrides } = options
  const config = loadLiveSettings({ ...overrides, bus: typeof busOption === 'string' ? busOption : undefined })
  // The hub is made after the bus, which asks its admission only once events flow.
  await app.register(busPlugin, { config, bus: typeof busOption === 'object' ? busOption : undefined, overMemory: () => hub.admission.overMemory() })
  const bus = app.liveBus
  if (!app.hasDecorator('liveHooks')) {
    await app.register(hooksPlugin, { hookBudget: config.hookBudget, hookFailures: config.hookFailures, hookCooldown: config.hookCooldown })
  }
  const hub: Hub = new Hub(bus, config, app.log, app.liveHooks)

  // Drain (1001 to every client, no new upgrade) happens once, before the ws server shuts: in the
  // ws server's own preClose when this plugin registers it, else in a preClose hook of ours.
  if (!app.hasDecorator('websocketServer')) {
    await app.register(websocket, {
      options: { maxPayload: config.maxPayload, handleProtocols: (offered) => pickSubprotocol(offered) },
      preClose(done) {
        hub.drain()
        this.websocketServer.close(() => done())
      }
    })
  } else app.addHook('preClose', async () => hub.drain())

  const api: LiveApi = {
    config,
    figures: hub.figures,
    get filterFigures() {
      const { filters, cost } = hub.filters.size
      return { held: filters, cost, evaluations: hub.filters.evaluations }
    },
    get deltaFigures() {
      return { made: hub.deltas.made, stateBytes: hub.deltas.used }
    },
    async publish(topic, data) {
      const result = hub.publish(topic, data)
      const event = isThenable(result) ? await result : result
      return { seq: event.seq, epoch: event.epoch }
    },
    publishDetached: (topic, data, refused) => hub.publishDetached(topic, data, refused),
    operatorOnly: operatorOnly(hub),
    subscribe: (pattern, listener) => hub.listen(pattern, listener),
    get connections() {
      return hub.connections.size
    },
    subscribers: (topic) => hub.subscribers(topic),
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
  attachHub(api, hub)

  app.decorateRequest('liveGrants', null) // set by routes/auth.ts on the upgrade and on POST /publish
  const allowedOrigins = originList(config.allowedOrigins)
  await app.register(liveRoute, { hub, paths, useMsgpack: config.useMsgpack, allowedOrigins, httpRedirect })
  await app.register(publishRoute, { hub, maxPublishBytes: config.maxPublishBytes })

  limitHttp(app.server, config.handshakeTimeout, config.requestTimeout)
  app.addHook('onListen', async () => {
    const address = app.server.address()
    if (config.auth === 'none' && !(typeof address === 'object' && address !== null && isLoopback(address.address))) {
      app.log.warn({ auth: 'none', address }, 'AUTH=none on a non-loopback address: ANYONE who can reach this port may publish prices')
    }
  })

  // Memory is looked at every second even without traffic, so a process over MEMORY_LIMIT_MB asks
  // for its collection and comes back under by itself; the log says so once per interval.
  const watchMemory = config.memoryLimitMb === 0 ? undefined : memoryWatch(app, hub, config.memoryLimitMb)

  // The hub stops its heartbeat and lets go of the bus; the bus plugin closes the bus if it made it.
  app.addHook('onClose', async () => {
    clearInterval(watchMemory)
    hub.close()
  })
}

/** Over MEMORY_LIMIT_MB, warned at most this often while it lasts. */
const MEMORY_WARN_EVERY_MS = 10_000

function memoryWatch(app: FastifyInstance, hub: Hub, limitMb: number): NodeJS.Timeout {
  let over = false
  let warnedAt = -Infinity
  return setInterval(() => {
    const now = Date.now()
    const rssMb = Math.round(process.memoryUsage.rss() / 1024 / 1024)
    if (hub.admission.overMemory()) {
      if (now - warnedAt >= MEMORY_WARN_EVERY_MS) {
        warnedAt = now
        app.log.warn({ rssMb, limitMb }, 'over MEMORY_LIMIT_MB: publishes, subscribes and new connections are refused (unavailable), /ready answers 503')
      }
      over = true
    } else if (over) {
      over = false
      warnedAt = -Infinity
      app.log.info({ rssMb, limitMb }, 'back under MEMORY_LIMIT_MB: admitting again')
    }
  }, 1000).unref()
}

const httpTimer = Symbol('httpTimer')
type TimedSocket = Socket & { [httpTimer]?: NodeJS.Timeout }

/**
 * A TCP (or TLS) connection has `headersMs` to deliver its request headers and then `bodyMs` to
 * deliver the body, however slowly it trickles bytes; past either it is destroyed, and what it
 * sent is freed. Node's own headersTimeout and requestTimeout are checked only every 30 s.
 */
function limitHttp(server: Server, headersMs: number, bodyMs: number): void {
  const arm = (socket: TimedSocket, ms: number) => {
    clearTimeout(socket[httpTimer])
    socket[httpTimer] = setTimeout(() => socket.destroy(), ms).unref()
  }
  const disarm = (socket: TimedSocket) => clearTimeout(socket[httpTimer])
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: TimedSocket) => {
    arm(socket, headersMs)
    socket.once('close', () => disarm(socket))
  })
  server.on('request', (request: IncomingMessage) => {
    const socket = request.socket as TimedSocket
    if (request.complete) return disarm(socket)
    arm(socket, bodyMs)
    request.once('end', () => disarm(socket))
  })
  server.on('upgrade', (request: IncomingMessage) => disarm(request.socket as TimedSocket))
}

export default fp(live, { name: 'live', fastify: '5.x' })
