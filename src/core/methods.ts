// The built-in request methods (docs/PROTOCOL.md, "Client to server"), registered like any hook
// method: time, topics, snapshot, hooks, and auth (credential renewal).
import { UNRESTRICTED, maySubscribe, type Authenticator, type Grants } from './auth.js'
import type { Bus } from './bus.js'
import type { ClientInfo, HookRegistry } from './hooks.js'
import { mapMaybe } from './maybe.js'
import { ErrorCode, LiveError } from './protocol.js'

/** A caller as the built-in methods see it: a live connection has grants and can renew them. */
interface Caller extends ClientInfo {
  readonly grants?: Grants
  renew?(grants: Grants): void
}

export interface MethodContext {
  readonly bus: Bus
  readonly hooks: HookRegistry
  readonly auth: Authenticator
  checkTopic(topic: string, wildcards: boolean): void
  /** Connections whose patterns match a topic. */
  subscribers(topic: string): number
}

/** The grants of a method's caller: a live connection's, or everything for in-process callers. */
const grantsOf = (client: ClientInfo): Grants => (client as Caller).grants ?? UNRESTRICTED

export function registerBuiltInMethods(context: MethodContext): void {
  const { bus, hooks, auth } = context
  const { methods } = hooks
  methods.set('time', () => ({ serverTime: Date.now() }))
  methods.set('topics', (_params, client) =>
    mapMaybe(bus.topics(), (topics) =>
      topics
        .filter((t) => maySubscribe(grantsOf(client), t.topic))
        .map((t) => ({ topic: t.topic, seq: t.seq, epoch: t.epoch, subscribers: context.subscribers(t.topic) }))
    )
  )
  methods.set('hooks', () => hooks.figures())
  methods.set('snapshot', (params, client) => {
    const topic = (params as { topic?: unknown } | null)?.topic
    if (typeof topic !== 'string') throw new LiveError(ErrorCode.badRequest, 'snapshot: params.topic must be a string')
    context.checkTopic(topic, false)
    if (!maySubscribe(grantsOf(client), topic)) throw new LiveError(ErrorCode.forbidden, `no grant to read "${topic}"`)
    return mapMaybe(bus.last(topic), (e) => {
      if (e === undefined) throw new LiveError(ErrorCode.notFound, `topic "${topic}" has no value`)
      return { topic: e.topic, seq: e.seq, epoch: e.epoch, ts: e.ts, data: e.data }
    })
  })
  // Renews a connection's credential before it expires: its grants become the new token's.
  methods.set('auth', (params, client) => {
    const token = (params as { token?: unknown } | null)?.token
    if (typeof token !== 'string' || token === '') throw new LiveError(ErrorCode.badRequest, 'auth: params.token must be a non-empty string')
    const caller = client as Caller
    if (caller.renew === undefined) throw new LiveError(ErrorCode.badRequest, 'auth: only a connection can renew its credential')
    const grants = auth.verify(token)
    caller.renew(grants)
    return { subject: grants.subject, expiresAt: grants.expiresAt, subscribe: grants.subscribe, publish: grants.publish }
  })
}
