// The live socket route: codec negotiation at the upgrade, then the hub owns the connection.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { negotiateCodec } from '../core/codec.js'
import { ErrorCode } from '../core/protocol.js'
import { liveErrorHandler, sendError } from '../http/errors.js'
import { authenticate } from '../http/auth.js'
import type { Hub } from '../core/hub.js'
import type { LiveSocket } from '../core/connection.js'
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import type { ServerResponse } from 'node:http'

const Query = Type.Object({
  codec: Type.Optional(Type.Union([Type.Literal('msgpack'), Type.Literal('json')])),
  token: Type.Optional(Type.String({ maxLength: 8192 }))
})

export interface LiveRouteOptions {
  hub: Hub
  paths: string[]
  useMsgpack: boolean
  /** Origins browsers may connect from; empty: any. */
  allowedOrigins: string[]
  /** Where a plain GET of `/` (a browser, not an upgrade) is redirected; other plain GETs get 426 Upgrade Required. */
  httpRedirect?: string
}

const liveRoute: FastifyPluginAsync<LiveRouteOptions> = async (app, { hub, paths, useMsgpack, allowedOrigins, httpRedirect }) => {
  app.setErrorHandler(liveErrorHandler)
  const origins = new Set(allowedOrigins)
  for (const url of paths) {
    app.route<{ Querystring: Static<typeof Query> }>({
      method: 'GET',
      url,
      schema: { querystring: Query },
      // Refused upgrades are plain HTTP answers: no socket is ever opened for them.
      // Browsers always send Origin; other clients may not, and are not what the allowlist is for.
      onRequest: async (request, reply) => {
        if (hub.draining) return sendError(reply, 503, ErrorCode.unavailable, 'server is shutting down')
        const origin = request.headers.origin
        if (origins.size > 0 && origin !== undefined && !origins.has(origin)) {
          return sendError(reply, 403, ErrorCode.forbidden, 'this Origin may not connect')
        }
        const refusal = hub.admission.refusal(request.socket.remoteAddress)
        if (refusal !== null) return sendError(reply, 503, ErrorCode.unavailable, refusal)
      },
      // After the querystring is validated: ?token= is read from it.
      preHandler: async (request) => {
        authenticate(hub, request)
      },
      handler: (_request, reply) => {
        if (url === '/' && httpRedirect !== undefined) return reply.redirect(httpRedirect)
        return sendError(reply.header('upgrade', 'websocket'), 426, ErrorCode.badRequest, 'this path is a WebSocket endpoint: connect with an upgrade')
      },
      wsHandler: (socket, request) => {
        const codec = negotiateCodec(socket.protocol, request.query.codec, useMsgpack)
        const remoteAddress = request.socket.remoteAddress
        releaseUpgrade(socket)
        hub.accept(socket as unknown as LiveSocket, codec, remoteAddress, request.liveGrants!)
      }
    })
  }
}

/**
 * @fastify/websocket keeps the upgrade's request and reply reachable for the socket's whole life:
 * its error listener closes over them, and the ServerResponse stays attached to the TCP socket.
 * That is kilobytes per idle connection; the connection installs its own error listener instead.
 */
function releaseUpgrade(socket: WebSocket): void {
  const raw = (socket as unknown as LiveSocket)._socket as (Socket & { _httpMessage?: ServerResponse | null }) | null | undefined
  raw?._httpMessage?.detachSocket(raw)
  socket.removeAllListeners('error')
}

export default liveRoute
