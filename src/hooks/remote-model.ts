// Reference hook: a model served over HTTP (KServe v2 inference protocol, or plain JSON), called with a
// keep-alive client inside the hook's budget. A model card with "url" in MODELS does the same without code.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { Type, type TSchema } from '@sinclair/typebox'
import type { FailMode } from '../core/hooks.js'
import { parseCard } from './model-card.js'
import { addModel, VERSION } from './models.js'
import { jsonClient } from './model-runners.js'

export interface RemoteModelOptions {
  /** The model server: a KServe v2 base URL (Triton, KServe, MLServer, realtime_client.models.serve), or for protocol 'http' the endpoint. */
  url: string
  /** The model's name: its hook's name, its key in `models` and `modelStatus`, and (unless remoteName) its name on a KServe v2 server. */
  name: string
  /** A version number, shown in `models` (default "1"). */
  version?: string
  /** kserve (default): POST /v2/models/{name}[/versions/{v}]/infer with the features; http: POST {topic, data, features} -> any JSON. */
  protocol?: 'kserve' | 'http'
  remoteName?: string
  remoteVersion?: string
  /** KServe v2 input name and datatype (default "features", FP32). */
  input?: string
  datatype?: 'FP32' | 'FP64'
  /** Milliseconds for the whole call; a later answer counts as a timeout. */
  budgetMs?: number
  failMode?: FailMode
  /** Enrich events of these topics: the answer goes to `output` (default: the name), and `models[name]` says which version. */
  topics?: string
  /** Field paths into the event's data sent as the model's input row. */
  features?: string[]
  output?: string
  /** Also answer `request` frames with this method: POST {params} to `url` -> result (plain JSON). */
  method?: string
  /** Validates the method's params. */
  params?: TSchema
  connections?: number
}

const remoteModelPlugin: FastifyPluginAsync<RemoteModelOptions> = async (app, options) => {
  if (!options.topics && !options.method) throw new Error('remote model: give `topics` to enrich events, `method` to answer requests, or both')
  const budgetMs = options.budgetMs ?? 50
  const version = options.version ?? '1'
  if (!VERSION.test(version)) throw new Error(`remote model ${options.name}: version "${version}" must be a number`)

  if (options.topics) {
    const { url, protocol = 'kserve', remoteName, remoteVersion, input, datatype, failMode, topics, features = [], output = options.name } = options
    const card = parseCard({ url, protocol, remoteName, remoteVersion, input, datatype, budgetMs, failMode, topics, features, output })
    const model = addModel(app, options.name)
    // A server not ready yet is no reason to stop: the model is tried again every second, and until
    // then its events say `modelStatus: {name: "unavailable"}`.
    if (!(await model.load(version, card, { url: card.url! })) && model.lastRefused !== null) {
      throw new Error(`remote model ${options.name}: ${model.lastRefused.reason}`)
    }
  }
  if (options.method) {
    // POST {params} -> the result, plain JSON whatever the enrichment's protocol.
    const remote = jsonClient(budgetMs, options.connections)
    app.addHook('onClose', () => remote.close())
    app.liveHooks.method({
      name: options.method,
      params: options.params ?? Type.Unknown(),
      budgetMs,
      handler: (params) => remote.post(options.url, { params }, 'the model')
    })
  }
}

export default fp(remoteModelPlugin, { name: 'live-remote-model', fastify: '5.x', dependencies: ['live-hooks'] })
