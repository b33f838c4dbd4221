// GET /health, /ready, /config and /hooks: what load balancers, orchestrators and operators poll.
import type { FastifyPluginAsync } from 'fastify'
import { createRequire } from 'node:module'
import { Type } from '@sinclair/typebox'
import { redactConfig, type Config } from '../config.js'

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string }

const Health = Type.Object({
  status: Type.Literal('ok'),
  uptime: Type.Number({ description: 'seconds since the process started' }),
  connections: Type.Integer(),
  version: Type.String()
})
const Ready = Type.Object({ ready: Type.Boolean(), reason: Type.Optional(Type.String()) })
const ConfigReply = Type.Record(Type.String(), Type.Unknown())

const healthRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  app.get('/health', { schema: { response: { 200: Health } } }, async () => ({
    status: 'ok' as const,
    uptime: process.uptime(),
    connections: app.live.connections,
    version
  }))

  app.get('/ready', { schema: { response: { 200: Ready, 503: Ready } } }, async (_request, reply) => {
    const reason = app.live.notReadyReason
    if (reason === null) return { ready: true }
    return reply.code(503).send({ ready: false, reason })
  })

  const onRequest = app.live.operatorOnly
  app.get('/config', { onRequest, schema: { response: { 200: ConfigReply } } }, async () => redactConfig(config))

  // Per-hook figures: calls, errors, timeouts, breaker state and latency (also the `hooks` request method).
  app.get('/hooks', { onRequest }, async () => app.liveHooks.figures())
}

export default healthRoutes
