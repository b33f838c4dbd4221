// The live socket route: codec negotiation at the upgrade, then the hub owns the connection.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { negotiateCodec } from '../core/codec.ts'
import type { Hub } from '../core/hub.ts'
import type { LiveSocket } from '../core/connection.ts'

const Query = Type.Object({
  codec: Type.Optional(Type.Union([Type.Literal('msgpack'), Type.Literal('json')]))
})

export interface LiveRouteOptions {
  hub: Hub
  paths: string[]
  useMsgpack: boolean
}

const liveRoute: FastifyPluginAsync<LiveRouteOptions> = async (app, { hub, paths, useMsgpack }) => {
  for (const url of paths) {
    app.route<{ Querystring: Static<typeof Query> }>({
      method: 'GET',
      url,
      websocket: true,
      schema: { querystring: Query },
      // Refused upgrades are plain HTTP answers: no socket is ever opened for them.
      onRequest: async (_request, reply) => {
        if (hub.draining) return reply.code(503).send({ statusCode: 503, code: 'unavailable', error: 'Service Unavailable', message: 'server is shutting down' })
      },
      handler: (socket, request) => {
        const codec = negotiateCodec(socket.protocol, request.query.codec, useMsgpack)
        hub.accept(socket as unknown as LiveSocket, codec, request.socket.remoteAddress)
      }
    })
  }
}

export default liveRoute
