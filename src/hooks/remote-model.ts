// Reference hook: a model served over HTTP, called with a keep-alive client inside the hook's budget.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { Type, type TSchema } from '@sinclair/typebox'
import { Agent, request } from 'undici'
import type { FailMode } from '../core/hooks.js'

export interface RemoteModelOptions {
  /** The model's endpoint: POST JSON in, JSON out. */
  url: string
  /** Model name and version, copied into enriched events as `model`. */
  name: string
  version?: string
  /** Milliseconds for the whole call; the HTTP request is aborted inside it. */
  budgetMs?: number
  failMode?: FailMode
  /** Enrich events of these topics with the model's answer: POST {topic, data} -> {score, ...}. */
  topics?: string
  /** Also answer `request` frames with this method: POST {params} -> result. */
  method?: string
  /** Validates the method's params. */
  params?: TSchema
  connections?: number
}

/** Calls the model and returns its JSON answer; throws on a non-2xx status or a timeout. */
export function remoteCaller(url: string, budgetMs: number, connections = 16) {
  const agent = new Agent({ connections, keepAliveTimeout: 30_000, pipelining: 1 })
  const call = async (body: unknown): Promise<unknown> => {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher: agent,
      signal: AbortSignal.timeout(budgetMs),
      headersTimeout: budgetMs,
      bodyTimeout: budgetMs
    })
    if (res.statusCode < 200 || res.statusCode > 299) {
      await res.body.dump()
      throw new Error(`model answered HTTP ${res.statusCode}`)
    }
    return res.body.json()
  }
  return { call, close: () => agent.close() }
}

const remoteModelPlugin: FastifyPluginAsync<RemoteModelOptions> = async (app, options) => {
  if (!options.topics && !options.method) throw new Error('remote model: give `topics` to enrich events, `method` to answer requests, or both')
  const budgetMs = options.budgetMs ?? 50
  // The HTTP call gets a little less than the hook's budget, so it is aborted before the hook is judged late.
  const remote = remoteCaller(options.url, Math.max(1, budgetMs - 1), options.connections)
  const model = { name: options.name, version: options.version ?? 'unversioned' }
  app.addHook('onClose', () => remote.close())

  if (options.topics) {
    app.liveHooks.onPublish({ name: `${options.name}-enrich`, topics: options.topics, budgetMs, failMode: options.failMode }, async (topic, data) => {
      const answer = (await remote.call({ topic, data })) as Record<string, unknown>
      if (data === null || typeof data !== 'object' || Array.isArray(data)) return undefined
      // Object.assign, not spread: adding fields to a spread copy takes a slow path in V8 11.
      const enriched: Record<string, unknown> = Object.assign({}, data, answer)
      enriched.model = model
      return enriched
    })
  }
  if (options.method) {
    app.liveHooks.method({ name: options.method, params: options.params ?? Type.Unknown(), budgetMs, handler: (params) => remote.call({ params }) })
  }
}

export default fp(remoteModelPlugin, { name: 'live-remote-model', fastify: '5.x', dependencies: ['live-hooks'] })
