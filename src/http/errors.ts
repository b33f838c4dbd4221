// HTTP answers for protocol error codes, so REST and socket clients see the same codes.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { ErrorCode, LiveError, type ErrorCodeValue } from '../core/protocol.js'
import { STATUS_CODES } from 'node:http'

const STATUS: Record<ErrorCodeValue, number> = {
  bad_request: 400,
  unknown_type: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  too_large: 413,
  rate_limited: 429,
  timeout: 504,
  unavailable: 503,
  internal: 500
}

const CODE_OF_STATUS: Record<number, ErrorCodeValue> = {
  400: ErrorCode.badRequest,
  401: ErrorCode.unauthorized,
  403: ErrorCode.forbidden,
  404: ErrorCode.notFound,
  413: ErrorCode.tooLarge,
  415: ErrorCode.badRequest,
  429: ErrorCode.rateLimited,
  503: ErrorCode.unavailable
}

/** `{statusCode, code, error, message}` with `code` from PROTOCOL.md. */
export function sendError(reply: FastifyReply, statusCode: number, code: ErrorCodeValue, message: string) {
  return reply.code(statusCode).send({ statusCode, code, error: STATUS_CODES[statusCode], message })
}

export function liveErrorHandler(err: FastifyError | LiveError, request: FastifyRequest, reply: FastifyReply) {
  if (err instanceof LiveError) return sendError(reply, STATUS[err.code], err.code, err.message)
  const statusCode = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500
  if (statusCode >= 500) {
    request.log.error({ err }, 'request failed')
    return sendError(reply, statusCode, CODE_OF_STATUS[statusCode] ?? ErrorCode.internal, 'internal error')
  }
  return sendError(reply, statusCode, CODE_OF_STATUS[statusCode] ?? ErrorCode.badRequest, err.message)
}
