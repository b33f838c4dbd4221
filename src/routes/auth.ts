// The credential check shared by the socket upgrade and POST /publish.
import type { FastifyRequest } from 'fastify'
import { tokenOf, type Grants } from '../core/auth.ts'
import type { Hub } from '../core/hub.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** What the request's credential (or its absence) allows; set by `authenticate`. */
    liveGrants: Grants | null
  }
}

/** Grants from `Authorization: Bearer` or `?token=`; throws an `unauthorized` LiveError for a bad or missing one. */
export function authenticate(hub: Hub, request: FastifyRequest): Grants {
  const query = request.query as { token?: string } | undefined
  const grants = hub.auth.authenticate(tokenOf(request.headers.authorization, query?.token), request.socket.remoteAddress)
  request.liveGrants = grants
  return grants
}
