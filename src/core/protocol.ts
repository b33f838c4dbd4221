// The wire contract of docs/PROTOCOL.md: frame schemas (compiled once), error codes and close codes.
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'

export const ErrorCode = {
  badRequest: 'bad_request',
  unknownType: 'unknown_type',
  unauthorized: 'unauthorized',
  forbidden: 'forbidden',
  notFound: 'not_found',
  tooLarge: 'too_large',
  rateLimited: 'rate_limited',
  timeout: 'timeout',
  unavailable: 'unavailable',
  internal: 'internal'
} as const
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode]

export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  tooLarge: 1009,
  internalError: 1011,
  overloaded: 1013,
  slowConsumer: 4008,
  rateLimited: 4029
} as const

/** An error that carries a protocol error code; thrown by core code, turned into an `error` frame or HTTP status. */
export class LiveError extends Error {
  constructor(
    readonly code: ErrorCodeValue,
    message: string
  ) {
    // An answer to a client, not a bug: no stack trace (capturing one costs more than the rest of the reply).
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = limit
  }
}

const Id = Type.Union([Type.Integer(), Type.String({ maxLength: 256 })])
const Position = Type.Object({ epoch: Type.String({ maxLength: 128 }), seq: Type.Integer({ minimum: 0 }) })
const TopicList = Type.Array(Type.String(), { minItems: 1 })

export const RequestFrame = Type.Object({
  type: Type.Literal('request'),
  id: Type.Optional(Id),
  timestamp: Type.Optional(Type.Unknown()),
  method: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  params: Type.Optional(Type.Unknown())
})
export const SubscribeFrame = Type.Object({
  type: Type.Literal('subscribe'),
  id: Type.Optional(Id),
  topic: Type.Optional(Type.String()),
  topics: Type.Optional(TopicList),
  since: Type.Optional(Type.Union([Position, Type.Record(Type.String(), Position)])),
  snapshot: Type.Optional(Type.Boolean()),
  filter: Type.Optional(Type.String()),
  delta: Type.Optional(Type.Boolean())
})
export const UnsubscribeFrame = Type.Object({
  type: Type.Literal('unsubscribe'),
  id: Type.Optional(Id),
  topic: Type.Optional(Type.String()),
  topics: Type.Optional(TopicList)
})
export const PublishFrame = Type.Object({
  type: Type.Literal('publish'),
  id: Type.Optional(Id),
  topic: Type.String(),
  data: Type.Unknown()
})
export const PingFrame = Type.Object({ type: Type.Literal('ping'), id: Type.Optional(Id) })

export type RequestFrame = Static<typeof RequestFrame>
export type SubscribeFrame = Static<typeof SubscribeFrame>
export type UnsubscribeFrame = Static<typeof UnsubscribeFrame>
export type PublishFrame = Static<typeof PublishFrame>
export type PingFrame = Static<typeof PingFrame>
export type ClientFrame = RequestFrame | SubscribeFrame | UnsubscribeFrame | PublishFrame | PingFrame
export type Position = Static<typeof Position>
export type FrameId = Static<typeof Id>

const checks: Record<string, TypeCheck<TSchema>> = {
  request: TypeCompiler.Compile(RequestFrame),
  subscribe: TypeCompiler.Compile(SubscribeFrame),
  unsubscribe: TypeCompiler.Compile(UnsubscribeFrame),
  publish: TypeCompiler.Compile(PublishFrame),
  ping: TypeCompiler.Compile(PingFrame)
}

const isId = (id: unknown): id is FrameId => (typeof id === 'string' && id.length <= 256) || Number.isInteger(id)

/**
 * Checks a decoded value against the frame schemas. Throws LiveError with the
 * frame's id (when it has a usable one) so the error reply can carry it.
 */
export function validateFrame(value: unknown): ClientFrame {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FrameError(undefined, ErrorCode.badRequest, 'a frame must be a map with a string "type"')
  }
  const { type, id } = value as { type?: unknown; id?: unknown }
  const replyId = isId(id) ? id : undefined
  if (typeof type !== 'string') throw new FrameError(replyId, ErrorCode.badRequest, 'a frame must have a string "type"')
  const check = Object.hasOwn(checks, type) ? checks[type] : undefined
  if (check === undefined) throw new FrameError(replyId, ErrorCode.unknownType, `unknown frame type "${type.slice(0, 64)}"`)
  if (!check.Check(value)) {
    const first = check.Errors(value).First()
    const where = first?.path ? first.path.slice(1).replaceAll('/', '.') : 'frame'
    throw new FrameError(replyId, ErrorCode.badRequest, `${type}: ${where}: ${first?.message ?? 'invalid'}`)
  }
  return value as ClientFrame
}

export class FrameError extends LiveError {
  constructor(
    readonly id: FrameId | undefined,
    code: ErrorCodeValue,
    message: string
  ) {
    super(code, message)
  }
}

export interface BusEvent {
  topic: string
  seq: number
  epoch: string
  ts: number
  data: unknown
  /** The data as MessagePack, when the bus received it so (Redis): binary frames splice these bytes. */
  readonly encoded?: Uint8Array
}

/** The server-to-client frames. Field order is the order on the wire. */
export const errorFrame = (id: FrameId | undefined, code: string, message: string) =>
  id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message }

/** An event or snapshot frame without its data, which goes last (see eventFrame). */
export const eventHead = (type: 'event' | 'snapshot', e: BusEvent) => ({
  type,
  topic: e.topic,
  seq: e.seq,
  epoch: e.epoch,
  ts: e.ts
})

export const eventFrame = (type: 'event' | 'snapshot', e: BusEvent) => ({ ...eventHead(type, e), data: e.data })
