// The credential check shared by the socket upgrade and POST /publish.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ErrorCode, LiveError } from '../core/protocol.js'
import { sendError } from './errors.js'
import { tokenOf, type Grants } from '../core/auth.js'
import type { Hub } from '../core/hub.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** What the request's credential (or its absence) allows; set by `authenticate`. */
    liveGrants: Grants | null
  }
}

/** Grants from `Authorization: Bearer` or `?token=`; throws an `unauthorized` LiveError for a bad or missing one. */
export function authenticate(hub: Hub, request: FastifyRequest): Grants {
  const query = request.query as { token?: unknown } | undefined
  const { authorization, origin } = request.headers
  const grants = hub.auth.authenticate(tokenOf(authorization, typeof query?.token === 'string' ? query.token : undefined), {
    remoteAddress: request.socket.remoteAddress,
    origin,
    forwarded: FORWARDING_HEADERS.some((name) => request.headers[name] !== undefined)
  })
  request.liveGrants = grants
  return grants
}

// Set by reverse proxies (nginx, HAProxy, Envoy, cloud load balancers) on what they pass on.
const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip']

/**
 * onRequest of the operator routes (/config, /metrics, /hooks): under AUTH=required they need a
 * valid credential like everything else. /health and /ready stay open for load balancers.
 */
export function operatorOnly(hub: Hub) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (hub.auth.mode !== 'required') return
    try {
      authenticate(hub, request)
    } catch (err) {
      if (!(err instanceof LiveError)) throw err
      return sendError(reply, 401, ErrorCode.unauthorized, err.message)
    }
  }
}
