// What runs one model version: an ONNX file in process (onnxruntime-node), or a remote server
// speaking the KServe v2 inference protocol or plain JSON over HTTP (undici, keep-alive).
import { Agent, request, type Dispatcher } from 'undici'
import type { ModelCard } from './model-card.js'

export interface Runner {
  readonly kind: 'onnx' | 'kserve' | 'http'
  /** The model's answer for one event. `features` is read before the first await: callers reuse it. */
  run(features: Float64Array, topic: string, data: unknown): Promise<unknown>
  close(): Promise<void>
}

type Ort = typeof import('onnxruntime-node')
let ort: Promise<Ort> | null = null
// Loaded on first use: a server without in-process models never maps the native library. It is an
// optional dependency: its install script fetches CUDA libraries unless told to skip them, which
// fails offline, and an app that runs no ONNX model should not fail to install for it.
const loadOrt = (): Promise<Ort> =>
  (ort ??= import('onnxruntime-node').then(
    (m) => ((m as { default?: Ort }).default ?? m) as Ort,
    () => {
      ort = null
      throw new Error('onnxruntime-node is not installed: npm install onnxruntime-node --onnxruntime-node-install-cuda=skip')
    }
  ))

/** An ONNX model in process. Throws when the file is not a model or does not take `featureCount` numbers. */
export async function openOnnx(file: string, card: ModelCard): Promise<Runner> {
  const featureCount = card.features.length
  const { InferenceSession, Tensor } = await loadOrt()
  // One thread each: the event loop's own core runs the small models hooks use fastest, without
  // a thread pool competing with the server for the machine.
  const session = await InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' })
  try {
    if (session.inputMetadata.length !== 1) throw new Error(`the model takes ${session.inputMetadata.length} inputs; a hook model takes one tensor of features`)
    const input = session.inputMetadata[0]
    if (!input.isTensor || (input.type !== 'float32' && input.type !== 'float64')) throw new Error(`input "${input.name}" is not a float32 or float64 tensor`)
    const shape = input.shape
    const width = shape.length === 2 ? shape[1] : shape.length === 1 ? shape[0] : undefined
    if (
      width === undefined ||
      (typeof width === 'number' && width !== featureCount) ||
      (shape.length === 2 && typeof shape[0] === 'number' && shape[0] !== 1)
    ) {
      throw new Error(`input "${input.name}" has shape [${shape.join(', ')}]; the card names ${featureCount} features, so it must take [N, ${featureCount}]`)
    }
    const output = card.outputTensor === undefined ? session.outputMetadata[0] : session.outputMetadata.find((o) => o.name === card.outputTensor)
    if (output === undefined) throw new Error(`the model has no output "${card.outputTensor}" (it has ${session.outputNames.join(', ')})`)
    if (!output.isTensor) throw new Error(`output "${output.name}" is not a tensor (a scikit-learn classifier exported with zipmap: export it with zipmap off)`)
    const index = card.outputIndex ?? 0
    const inputName = input.name
    const outputName = output.name
    const type = input.type
    const Rows = type === 'float32' ? Float32Array : Float64Array
    // Events scored in one turn go to the model as one batch of rows, where its batch dimension
    // is free: one call's overhead instead of one per event.
    const batches = shape.length === 2 && typeof shape[0] !== 'number'
    let waiting: { row: Float64Array; resolve(value: unknown): void; reject(err: unknown): void }[] = []
    const runBatch = async (rows: Float64Array[]): Promise<unknown[]> => {
      const data = new Rows(rows.length * featureCount)
      for (let i = 0; i < rows.length; i++) data.set(rows[i], i * featureCount)
      const dims = shape.length === 2 ? [rows.length, featureCount] : [featureCount]
      const result = await session.run({ [inputName]: new Tensor(type as 'float32', data as Float32Array, dims) })
      const out = result[outputName].data
      const stride = out.length / rows.length
      return rows.map((_, i) => {
        const value = out[i * stride + index]
        return typeof value === 'bigint' ? Number(value) : value
      })
    }
    const flush = () => {
      const batch = waiting.length > MAX_BATCH ? waiting.splice(0, MAX_BATCH) : waiting
      if (batch === waiting) waiting = []
      else queueMicrotask(flush)
      runBatch(batch.map((w) => w.row)).then(
        (values) => {
          for (let i = 0; i < batch.length; i++) batch[i].resolve(values[i])
        },
        (err) => {
          for (const w of batch) w.reject(err)
        }
      )
    }
    const runner: Runner = {
      kind: 'onnx',
      run(features) {
        if (!batches) return runBatch([features.slice()]).then((values) => values[0])
        return new Promise((resolve, reject) => {
          if (waiting.push({ row: features.slice(), resolve, reject }) === 1) queueMicrotask(flush)
        })
      },
      close: () => session.release()
    }
    // One run on zeros: a model whose graph cannot take the card's row fails here, not on an event.
    const trial = await runner.run(new Float64Array(featureCount), '', null)
    if (typeof trial !== 'number') throw new Error(`output "${outputName}" has no number at index ${index}`)
    return runner
  } catch (err) {
    await session.release()
    throw err
  }
}

const MAX_ANSWER_BYTES = 1024 * 1024
const MAX_BATCH = 256

/** A JSON answer read with a size cap: a broken or hostile server cannot make the process hold more. */
async function json(res: Dispatcher.ResponseData, what: string): Promise<unknown> {
  if (res.statusCode < 200 || res.statusCode > 299) {
    await res.body.dump()
    throw new Error(`${what} answered HTTP ${res.statusCode}`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length
    if (size > MAX_ANSWER_BYTES) {
      res.body.destroy()
      throw new Error(`${what} answered more than ${MAX_ANSWER_BYTES} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

export interface RemoteOptions {
  /** The remote model's name, when the card names none. */
  name: string
  budgetMs: number
  connections?: number
}

/**
 * A keep-alive JSON client for one budget. Calls are aborted a second after the budget, never
 * before it: the hook's budget decides a late answer (a timeout), the abort only frees the connection.
 */
export function jsonClient(budgetMs: number, connections = 16) {
  const agent = new Agent({ connections, keepAliveTimeout: 30_000, pipelining: 1 })
  const abortAfter = budgetMs + 1000
  const post = async (url: string, body: unknown, what: string) =>
    json(
      await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        dispatcher: agent,
        signal: AbortSignal.timeout(abortAfter),
        headersTimeout: abortAfter,
        bodyTimeout: abortAfter
      }),
      what
    )
  const get = async (url: string, what: string) =>
    json(await request(url, { dispatcher: agent, signal: AbortSignal.timeout(Math.max(abortAfter, 2000)) }), what)
  return { post, get, close: () => agent.close() }
}

/** A remote model over the KServe v2 inference protocol or plain JSON. */
export function remoteRunner(card: ModelCard, options: RemoteOptions): Runner & { ready(featureCount: number): Promise<void> } {
  const { post, get, close } = jsonClient(options.budgetMs, options.connections)
  const base = card.url!

  if (card.protocol === 'http') {
    return {
      kind: 'http',
      // POST {topic, data, features} -> any JSON: the answer is the model's output.
      run: (features, topic, data) => post(base, { topic, data, features: Array.from(features) }, 'the model'),
      close,
      ready: async () => undefined
    }
  }
  const remoteName = encodeURIComponent(card.remoteName ?? options.name)
  const modelPath = `${base}/v2/models/${remoteName}${card.remoteVersion ? `/versions/${encodeURIComponent(card.remoteVersion)}` : ''}`
  const inferUrl = `${modelPath}/infer`
  const inputName = card.input ?? 'features'
  const datatype = card.datatype ?? 'FP32'
  const { outputTensor, outputIndex = 0 } = card
  return {
    kind: 'kserve',
    async run(features) {
      const body = { inputs: [{ name: inputName, shape: [1, features.length], datatype, data: Array.from(features) }] }
      const answer = (await post(inferUrl, body, 'the KServe v2 model')) as { outputs?: { name?: unknown; data?: unknown[] }[] }
      const outputs = Array.isArray(answer?.outputs) ? answer.outputs : []
      const output = outputTensor === undefined ? outputs[0] : outputs.find((o) => o?.name === outputTensor)
      const data = output?.data
      // Flat in row-major order, or nested by shape as some servers send it.
      const value = Array.isArray(data) ? (Array.isArray(data[0]) ? (data as unknown[]).flat(Infinity) : data)[outputIndex] : undefined
      if (typeof value !== 'number') throw new Error(`the KServe v2 answer has no number at output ${outputTensor ?? 0}, index ${outputIndex}`)
      return value
    },
    close,
    /** The server and the model answer ready (/v2/health/ready, /v2/models/{name}/ready), and the model takes the card's features. */
    async ready(featureCount) {
      await get(`${base}/v2/health/ready`, `${base}/v2/health/ready`).catch(notReady)
      await get(`${modelPath}/ready`, `${modelPath}/ready`).catch(notReady)
      const metadata = (await get(modelPath, `${modelPath} (metadata)`).catch(() => null)) as { inputs?: { name?: unknown; shape?: unknown }[] } | null
      const declared = metadata?.inputs?.find((i) => i.name === inputName)
      if (metadata?.inputs !== undefined && declared === undefined) throw new Error(`the model has no input "${inputName}" (card field "input")`)
      const shape = declared?.shape
      const width = Array.isArray(shape) ? shape[shape.length - 1] : -1
      if (typeof width === 'number' && width > 0 && width !== featureCount) {
        throw new Error(`input "${inputName}" has shape [${(shape as unknown[]).join(', ')}]; the card names ${featureCount} features`)
      }
    }
  }
}

class NotReady extends Error {}
const notReady = (err: Error): never => {
  throw new NotReady(`not ready: ${err.message}`)
}
export const isNotReady = (err: unknown): boolean => err instanceof NotReady
