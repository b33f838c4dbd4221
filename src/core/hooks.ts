// The AI/ML hook registry: stages the message handler calls (inbound, publish, subscribe, request
// methods), each hook with a time budget, a failure mode, a circuit breaker and its own figures.
import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Histogram } from './histogram.js'
import { ErrorCode, LiveError, validateFrame, type ClientFrame } from './protocol.js'
import { matches } from './topics.js'
import type { CodecName } from './codec.js'
import { isThenable, type MaybePromise } from './maybe.js'

/** Returned by a publish hook to drop the event: it gets no seq and reaches nobody. */
export const DROP: unique symbol = Symbol('live.drop')

/** What a hook learns about the client behind a frame. */
export interface ClientInfo {
  readonly id: number
  readonly codec: CodecName
  readonly remoteAddress: string | undefined
}

export type FailMode = 'open' | 'closed'

export interface HookOptions {
  /** Shown in figures, logs and errors. Unique per stage. */
  name: string
  /** Milliseconds the hook may take; past it the hook counts as failed. Default HOOK_BUDGET. */
  budgetMs?: number
  /** On failure or overrun: 'open' lets the frame or event go on unmodified, 'closed' refuses or drops it. */
  failMode?: FailMode
  /** Publish and subscribe hooks: only topics (or patterns) this pattern matches. */
  topics?: string
  /**
   * Publish hooks that enrich events for a model: an event the hook failed to enrich (it threw, was
   * late, or its breaker is open) goes on with `modelStatus[statusKey]` saying so (fail-open).
   */
  statusKey?: string
  /** Extra figures shown under `model` in GET /hooks and the `hooks` method (a model's versions). */
  details?: () => unknown
}

/** Returns new data, undefined to leave it as it is, or DROP. */
export type PublishHook = (topic: string, data: unknown) => unknown
/** Returns a replacement frame or undefined; throws a LiveError to refuse the frame with its code. */
export type InboundHook = (frame: ClientFrame, client: ClientInfo) => ClientFrame | undefined | Promise<ClientFrame | undefined>
/** Returns false (or throws a LiveError) to deny the subscription. */
export type SubscribeHook = (pattern: string, client: ClientInfo) => boolean | undefined | Promise<boolean | undefined>

export interface MethodOptions<S extends TSchema> {
  name: string
  /** Validates `params`; invalid params are a bad_request. */
  params?: S
  budgetMs?: number
  handler: (params: Static<S>, client: ClientInfo) => unknown
}

/** A request method as the connection calls it. */
export type RequestMethod = (params: unknown, client: ClientInfo) => unknown

export interface HookLimits {
  hookBudget: number
  hookFailures: number
  hookCooldown: number
}

export interface HookLogger {
  warn(obj: object, msg: string): void
}

export type HookStage = 'inbound' | 'publish' | 'subscribe' | 'method'

export interface HookFigures {
  name: string
  stage: HookStage
  budgetMs: number
  failMode: FailMode
  calls: number
  errors: number
  timeouts: number
  /** Calls not made because the breaker was open. */
  skipped: number
  breaker: 'closed' | 'open' | 'half-open'
  latencyMs: { p50: number; p99: number; max: number }
  model?: unknown
}

/** A hook that threw, ran over its budget, or was not called because its breaker is open. */
class Failure {
  constructor(readonly kind: 'threw' | 'late' | 'off') {}
}
const THREW = new Failure('threw')
const LATE = new Failure('late')
const OFF = new Failure('off')
const WARN_EVERY_MS = 10_000
const TIME_EVERY = 8 // a power of two
const MAX_CACHED_TOPICS = 10_000

/** One registered hook: calls it inside its budget and keeps its figures and breaker. */
/** Any hook function: the registry stores hooks of every stage side by side. */
type HookFunction = (...args: never[]) => unknown

class Hook<F extends HookFunction> {
  calls = 0
  errors = 0
  timeouts = 0
  skipped = 0
  readonly latency = new Histogram()
  private failuresInRow = 0
  private offUntil = 0
  private lastWarnAt = 0
  private unwarned = 0
  private readonly applies: Map<string, boolean> | null

  constructor(
    readonly stage: HookStage,
    readonly name: string,
    readonly fn: F,
    readonly budgetMs: number,
    readonly failMode: FailMode,
    readonly topics: string | null,
    private readonly limits: HookLimits,
    private readonly log: HookLogger,
    readonly statusKey: string | null = null,
    private readonly details: (() => unknown) | null = null
  ) {
    this.applies = topics === null ? null : new Map()
  }

  /** Does this hook apply to a topic? Cached per topic: the pattern is matched once. */
  appliesTo(topic: string): boolean {
    if (this.applies === null) return true
    let yes = this.applies.get(topic)
    if (yes === undefined) {
      yes = matches(this.topics!, topic)
      if (this.applies.size >= MAX_CACHED_TOPICS) this.applies.clear()
      this.applies.set(topic, yes)
    }
    return yes
  }

  get breaker(): HookFigures['breaker'] {
    if (this.offUntil === 0) return 'closed'
    return Date.now() < this.offUntil ? 'open' : 'half-open'
  }

  /** The hook's result, or a Failure. Synchronous hooks cost no promise; async ones race their budget. */
  invoke(a: Parameters<F>[0], b: Parameters<F>[1]): unknown {
    if (this.offUntil !== 0 && Date.now() < this.offUntil) {
      this.skipped++
      return OFF
    }
    // Two clock reads are most of a no-op hook's cost, so a synchronous hook is timed on one call in
    // TIME_EVERY (and on every call while its breaker decides): a hook that is always late is still
    // caught within TIME_EVERY calls. Asynchronous hooks are always timed.
    const timed = (++this.calls & (TIME_EVERY - 1)) === 0 || this.offUntil !== 0
    const start = timed ? performance.now() : 0
    let result: unknown
    try {
      result = this.fn(a, b)
    } catch (err) {
      if (err instanceof LiveError) throw err // a deliberate refusal, not a fault
      return this.failed(err)
    }
    if (typeof (result as Promise<unknown> | null)?.then === 'function') {
      return this.race(result as Promise<unknown>, timed ? start : performance.now())
    }
    if (timed) {
      const elapsed = performance.now() - start
      if (elapsed > this.budgetMs) return this.overran(elapsed)
      this.succeeded(elapsed)
    } else {
      this.failuresInRow = 0
    }
    return result
  }

  private race(result: Promise<unknown>, start: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let settled = false
      const timer = setTimeout(() => {
        settled = true
        resolve(this.overran(performance.now() - start))
      }, this.budgetMs)
      result.then(
        (value) => {
          if (settled) return // too late: the budget already decided
          clearTimeout(timer)
          const elapsed = performance.now() - start
          if (elapsed > this.budgetMs) return resolve(this.overran(elapsed))
          this.succeeded(elapsed)
          resolve(value)
        },
        (err) => {
          if (settled) return
          clearTimeout(timer)
          if (err instanceof LiveError) return reject(err)
          // A failure that arrives past the budget (an HTTP call aborted late) was a late answer first.
          const elapsed = performance.now() - start
          resolve(elapsed > this.budgetMs ? this.overran(elapsed) : this.failed(err))
        }
      )
    })
  }

  private succeeded(elapsed: number): void {
    this.latency.record(elapsed)
    this.failuresInRow = 0
    this.offUntil = 0
  }

  private failed(err: unknown): Failure {
    this.errors++
    return this.failure(THREW, `threw: ${(err as Error)?.message ?? String(err)}`)
  }

  private overran(elapsed: number): Failure {
    this.timeouts++
    this.latency.record(elapsed)
    return this.failure(LATE, `ran ${elapsed.toFixed(1)} ms, over its ${this.budgetMs} ms budget`)
  }

  private failure(failure: Failure, what: string): Failure {
    if (++this.failuresInRow >= this.limits.hookFailures || this.offUntil !== 0) {
      this.offUntil = Date.now() + this.limits.hookCooldown
      this.failuresInRow = 0
      this.log.warn({ hook: this.name, stage: this.stage, cooldownMs: this.limits.hookCooldown }, `hook ${this.name} switched off after failing: ${what}`)
      return failure
    }
    // At most one warning per hook per interval, counting the ones it stands for.
    const now = Date.now()
    this.unwarned++
    if (now - this.lastWarnAt >= WARN_EVERY_MS) {
      this.log.warn({ hook: this.name, stage: this.stage, failures: this.unwarned }, `hook ${this.name} ${what}`)
      this.lastWarnAt = now
      this.unwarned = 0
    }
    return failure
  }

  figures(): HookFigures {
    const { p50, p99, max } = this.latency.summary()
    return {
      name: this.name,
      stage: this.stage,
      budgetMs: this.budgetMs,
      failMode: this.failMode,
      calls: this.calls,
      errors: this.errors,
      timeouts: this.timeouts,
      skipped: this.skipped,
      breaker: this.breaker,
      latencyMs: { p50, p99, max },
      ...(this.details === null ? {} : { model: this.details() })
    }
  }
}

const failedError = (hook: Hook<HookFunction>) => new LiveError(ErrorCode.unavailable, `hook "${hook.name}" failed and refuses what it cannot check`)

/**
 * The hooks of one live plugin. Empty stages cost one length check. Hooks of a stage run in
 * registration order, each seeing the previous one's output.
 */
export class HookRegistry {
  readonly methods = new Map<string, RequestMethod>()
  private readonly inbound: Hook<InboundHook>[] = []
  private readonly publish: Hook<PublishHook>[] = []
  private readonly subscribe: Hook<SubscribeHook>[] = []
  private readonly methodHooks: Hook<RequestMethod>[] = []

  constructor(
    private readonly limits: HookLimits,
    private readonly log: HookLogger
  ) {}

  onInbound(options: HookOptions, fn: InboundHook): void {
    this.inbound.push(this.hook('inbound', this.inbound, options, fn))
  }

  onPublish(options: HookOptions, fn: PublishHook): void {
    this.publish.push(this.hook('publish', this.publish, options, fn))
  }

  onSubscribe(options: HookOptions, fn: SubscribeHook): void {
    this.subscribe.push(this.hook('subscribe', this.subscribe, options, fn))
  }

  /** A method clients call with `{type:"request", method: name, params}`. */
  method<S extends TSchema>(options: MethodOptions<S>): void {
    if (this.methods.has(options.name)) throw new Error(`request method "${options.name}" is already registered`)
    const check = options.params === undefined ? null : TypeCompiler.Compile(options.params)
    const hook = this.hook('method', this.methodHooks, { name: options.name, budgetMs: options.budgetMs, failMode: 'closed' }, options.handler as RequestMethod)
    this.methodHooks.push(hook)
    this.methods.set(options.name, (params, client) => {
      if (check !== null && !check.Check(params)) {
        const first = check.Errors(params).First()
        throw new LiveError(ErrorCode.badRequest, `${options.name}: params${first?.path.replaceAll('/', '.') ?? ''}: ${first?.message ?? 'invalid'}`)
      }
      const result = hook.invoke(params, client)
      // What the client is told is what happened: it threw (internal), it was late (timeout), or it
      // is switched off after failing (unavailable). A LiveError it threw went out with its own code.
      const settle = (value: unknown) => {
        if (!(value instanceof Failure)) return value
        if (value === THREW) throw new LiveError(ErrorCode.internal, `method "${options.name}" failed`)
        if (value === LATE) throw new LiveError(ErrorCode.timeout, `method "${options.name}" ran over its ${hook.budgetMs} ms budget`)
        throw new LiveError(
          ErrorCode.unavailable,
          `method "${options.name}" is switched off after failing; it is tried again after ${this.limits.hookCooldown} ms`
        )
      }
      return isThenable(result) ? result.then(settle) : settle(result)
    })
  }

  /** HOOK_BUDGET: the budget of a hook that sets none. */
  get defaultBudgetMs(): number {
    return this.limits.hookBudget
  }

  get hasInbound(): boolean {
    return this.inbound.length !== 0
  }

  get hasPublish(): boolean {
    return this.publish.length !== 0
  }

  get hasSubscribe(): boolean {
    return this.subscribe.length !== 0
  }

  /** The data to publish after every publish hook; throws (or rejects with) a LiveError when dropped. */
  runPublish(topic: string, data: unknown, from = 0): MaybePromise<unknown> {
    const hooks = this.publish
    for (let i = from; i < hooks.length; i++) {
      const hook = hooks[i]
      if (!hook.appliesTo(topic)) continue
      const out = hook.invoke(topic, data)
      if (isThenable(out)) {
        const before = data
        return out.then((value) => this.runPublish(topic, publishOutcome(hook, value, before), i + 1))
      }
      data = publishOutcome(hook, out, data)
    }
    return data
  }

  /** The frame after every inbound hook; throws (or rejects with) a LiveError when refused. */
  runInbound(frame: ClientFrame, client: ClientInfo, from = 0): MaybePromise<ClientFrame> {
    const hooks = this.inbound
    for (let i = from; i < hooks.length; i++) {
      const hook = hooks[i]
      const out = hook.invoke(frame, client)
      if (isThenable(out)) {
        const before = frame
        return out.then((value) => this.runInbound(inboundOutcome(hook, value, before), client, i + 1))
      }
      frame = inboundOutcome(hook, out, frame)
    }
    return frame
  }

  /** Resolves when every subscribe hook allows every pattern; throws (or rejects with) forbidden otherwise. */
  runSubscribe(patterns: string[], client: ClientInfo): MaybePromise<void> {
    let waits: Promise<unknown>[] | null = null
    for (const hook of this.subscribe) {
      for (const pattern of patterns) {
        if (!hook.appliesTo(pattern)) continue
        const out = hook.invoke(pattern, client)
        // biome-ignore lint/suspicious/noAssignInExpressions: the list exists only once a hook went async
        if (isThenable(out)) (waits ??= []).push(out.then((value) => subscribeOutcome(hook, value, pattern)))
        else subscribeOutcome(hook, out, pattern)
      }
    }
    if (waits !== null) return Promise.all(waits).then(() => undefined)
  }

  figures(): HookFigures[] {
    return this.all().map((h) => h.figures())
  }

  /** Each hook's figures with its latency histogram (sampled like the figures' latency), for /metrics. */
  latencies(): { figures: HookFigures; latency: Histogram }[] {
    return this.all().map((h) => ({ figures: h.figures(), latency: h.latency }))
  }

  private all(): Hook<HookFunction>[] {
    return [...this.inbound, ...this.publish, ...this.subscribe, ...this.methodHooks]
  }

  private hook<F extends HookFunction>(stage: HookStage, list: Hook<F>[], options: HookOptions, fn: F): Hook<F> {
    if (typeof fn !== 'function') throw new TypeError(`hook "${options.name}" needs a function`)
    if (list.some((h) => h.name === options.name)) throw new Error(`a ${stage} hook named "${options.name}" is already registered`)
    const budgetMs = options.budgetMs ?? this.limits.hookBudget
    if (!(budgetMs > 0)) throw new RangeError(`hook "${options.name}": budgetMs must be positive`)
    return new Hook(
      stage,
      options.name,
      fn,
      budgetMs,
      options.failMode ?? 'open',
      options.topics ?? null,
      this.limits,
      this.log,
      options.statusKey ?? null,
      options.details ?? null
    )
  }
}

function publishOutcome(hook: Hook<PublishHook>, out: unknown, data: unknown): unknown {
  if (out === undefined) return data
  if (out === DROP) throw new LiveError(ErrorCode.forbidden, `dropped by hook "${hook.name}"`)
  if (out instanceof Failure) {
    if (hook.failMode === 'closed') throw failedError(hook)
    return hook.statusKey === null ? data : withModelStatus(data, hook.statusKey, STATUS[out.kind])
  }
  return out
}

const STATUS = { threw: 'error', late: 'timeout', off: 'off' } as const

/** Why a model did not enrich an event */
export type ModelStatus = 'error' | 'timeout' | 'off' | 'unavailable' | 'missing-feature'

/** A model version's place: in an arm (serving, candidate, shadow), waiting, or out. */
export type VersionState = 'loading' | 'serving' | 'candidate' | 'shadow' | 'standby' | 'refused' | 'unready'

export interface VersionFigures {
  version: string
  state: VersionState
  kind: 'onnx' | 'kserve' | 'http' | null
  mode: 'serve' | 'shadow'
  traffic?: number
  /** Why the version was refused or is not ready. */
  reason?: string
  calls: number
  errors: number
  /** Events that lacked a feature (or had a non-numeric one) when this version was to score them. */
  missingFeatures: number
  latencyMs: { p50: number; p99: number; max: number }
  /** A shadow's answers against the serving version's on the same events. */
  shadow?: { compared: number; meanAbsDiff: number; maxAbsDiff: number }
}

export interface ModelFigures {
  name: string
  topics: string
  output: string
  serving: string | null
  candidate: string | null
  shadow: string | null
  /** Versions refused since start (bad bytes, wrong shape, a bad card), and the last one. */
  refused: number
  lastRefused: { version: string; reason: string } | null
  versions: VersionFigures[]
}

/**
 * A source of models (a MODELS directory, or models added in code): what the `models` method and
 * /metrics read. Declared here so the metrics plugin reads models without importing them.
 */
export interface ModelSource {
  figures(): ModelFigures[]
  /** Looks for new, changed or removed versions now, not at the next reload. */
  scan(): Promise<void>
  close(): void
}

/** A copy of an event's data whose `modelStatus[model]` says why the model did not enrich it. */
export function withModelStatus(data: unknown, model: string, status: ModelStatus): unknown {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return data
  const out = Object.assign({}, data) as Record<string, unknown>
  const before = out.modelStatus
  out.modelStatus = Object.assign(before !== null && typeof before === 'object' && !Array.isArray(before) ? Object.assign({}, before) : {}, { [model]: status })
  return out
}

function inboundOutcome(hook: Hook<InboundHook>, out: unknown, frame: ClientFrame): ClientFrame {
  if (out === undefined || out === frame) return frame
  if (out instanceof Failure) {
    if (hook.failMode === 'open') return frame
    throw failedError(hook)
  }
  return validateFrame(out) // a replacement must still be a valid frame
}

function subscribeOutcome(hook: Hook<SubscribeHook>, out: unknown, pattern: string): void {
  if (out === false) throw new LiveError(ErrorCode.forbidden, `subscription to "${pattern}" denied by hook "${hook.name}"`)
  if (out instanceof Failure && hook.failMode === 'closed') throw failedError(hook)
}
