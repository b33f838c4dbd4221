// POST /publish/:topic: the HTTP entry to the one publish path, with JSON or MessagePack bodies.
import type { FastifyError, FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Hub } from '../core/hub.js'
import { ErrorCode, LiveError } from '../core/protocol.js'
import { liveErrorHandler, sendError } from '../http/errors.js'
import { authenticate } from '../http/auth.js'
import { checkPublish } from '../core/auth.js'

const MSGPACK_TYPES = ['application/msgpack', 'application/x-msgpack', 'application/vnd.msgpack']

const Params = Type.Object({ topic: Type.String() })
const Query = Type.Object({ token: Type.Optional(Type.String({ maxLength: 8192 })) })
const Published = Type.Object({ seq: Type.Integer(), epoch: Type.String() })

export interface PublishRouteOptions {
  hub: Hub
  maxPublishBytes: number
}

// Registered without fastify-plugin: the MessagePack parser and error handler stay inside this scope.
const publishRoute: FastifyPluginAsync<PublishRouteOptions> = async (app, { hub, maxPublishBytes }) => {
  // Bodies are decoded like socket frames, within the same depth and size limits: data that
  // decodes here can be encoded for every subscriber (the encoders refuse deep nesting).
  const parser = (isBinary: boolean) => (_request: unknown, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) => {
    try {
      done(null, hub.decoder.decode(body as Buffer, isBinary))
    } catch (err) {
      done(err as Error, undefined)
    }
  }
  // Only JSON and MessagePack: Fastify's text/plain parser would let a page's no-cors fetch
  // (text/plain needs no CORS preflight) publish a string.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: maxPublishBytes }, parser(false))
  app.addContentTypeParser(MSGPACK_TYPES, { parseAs: 'buffer', bodyLimit: maxPublishBytes }, parser(true))
  app.setErrorHandler((err: FastifyError | LiveError, request, reply) => {
    // Say which body types are taken, rather than Fastify's bare "Unsupported Media Type".
    if ((err as FastifyError).statusCode === 415) {
      return sendError(reply, 415, ErrorCode.badRequest, `a publish body is application/json or MessagePack (${MSGPACK_TYPES.join(', ')})`)
    }
    return liveErrorHandler(err, request, reply)
  })

  app.post<{ Params: Static<typeof Params>; Querystring: Static<typeof Query> }>(
    '/publish/:topic',
    {
      bodyLimit: maxPublishBytes,
      schema: { params: Params, querystring: Query, response: { 200: Published } },
      // Before the body is read: a client without the grant never gets to hold a body in memory.
      onRequest: async (request) => {
        checkPublish(authenticate(hub, request), request.params.topic)
      }
    },
    async (request) => {
      if (request.body === undefined) throw new LiveError(ErrorCode.badRequest, 'the body is the data to publish; it is missing')
      const event = await hub.publish(request.params.topic, request.body)
      return { seq: event.seq, epoch: event.epoch }
    }
  )
}

export default publishRoute
