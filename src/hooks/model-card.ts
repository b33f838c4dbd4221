// A model card (model.json): what a model reads from an event, where its answer goes, how it runs.
// Cards are files an operator drops in, so every field is checked and a bad one is named.
import type { FailMode } from '../core/hooks.js'
import { checkTopic } from '../core/topics.js'

export interface ModelCard {
  /** Topics (a pattern) whose events the model enriches. */
  topics: string
  /** Field paths into the event's data, in the order the model takes them ("buy.price"). */
  features: string[]
  /** Field of the event's data that receives the model's answer. */
  output: string
  /** The model output to read (default: its first) and the value in it (default 0): a scikit-learn
   * classifier's "probabilities" with index 1 is the probability of class 1. */
  outputTensor?: string
  outputIndex?: number
  budgetMs?: number
  failMode?: FailMode
  /** 'shadow': scored beside the serving version, never touching events. */
  mode?: 'serve' | 'shadow'
  /** Share (0..1) of events, by a hash of their `id`, sent to this version instead of the serving one. */
  traffic?: number
  /** A remote model: the server's base URL (no model.onnx in the folder). */
  url?: string
  /** kserve: the KServe v2 inference protocol (Triton, KServe, MLServer); http: POST {topic, data, features} -> JSON. */
  protocol?: 'kserve' | 'http'
  /** The model's name and version on the remote server (default: this model's name, no version). */
  remoteName?: string
  remoteVersion?: string
  /** KServe v2: the input's name and datatype (default "features", FP32). */
  input?: string
  datatype?: 'FP32' | 'FP64'
}

/** Fields a card may carry besides those above: descriptive metadata, read by people. */
const INFORMATIVE = new Set(['description', 'weights', 'metrics', 'trainedAt', 'owner', 'license'])
const FIELD = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/
const MAX_FEATURES = 4096
const RESERVED_OUTPUTS = new Set(['id', 'status', 'models', 'modelStatus', '__proto__', 'constructor', 'prototype'])

/** The card in `json`, checked; throws an Error whose message names the field and what it accepts. */
export function parseCard(json: unknown): ModelCard {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('the card must be a JSON object')
  const c = json as Record<string, unknown>
  for (const key of Object.keys(c)) {
    if (!(key in TEMPLATE) && !INFORMATIVE.has(key)) throw new Error(`unknown field "${key}" (known: ${Object.keys(TEMPLATE).join(', ')})`)
  }
  const card: ModelCard = { topics: '', features: [], output: '' }
  if (typeof c.topics !== 'string' || !validPattern(c.topics)) throw new Error('"topics" must be a topic or pattern such as "opportunities.>"')
  card.topics = c.topics
  // A plain HTTP model gets the whole event and may need no features; every other model takes at least one.
  const least = c.protocol === 'http' ? 0 : 1
  if (!Array.isArray(c.features) || c.features.length < least || c.features.length > MAX_FEATURES) {
    throw new Error(`"features" must be a list of ${least} to ${MAX_FEATURES} field paths`)
  }
  for (const f of c.features) {
    if (typeof f !== 'string' || !f.split('.').every((k) => FIELD.test(k)))
      throw new Error(`"features": ${JSON.stringify(f)} is not a field path such as "buy.price"`)
  }
  card.features = c.features as string[]
  if (typeof c.output !== 'string' || !FIELD.test(c.output) || RESERVED_OUTPUTS.has(c.output)) {
    throw new Error(`"output" must be a field name (letters, digits, _), not one of ${[...RESERVED_OUTPUTS].join(', ')}`)
  }
  card.output = c.output
  if (c.budgetMs !== undefined) {
    if (typeof c.budgetMs !== 'number' || !(c.budgetMs > 0 && c.budgetMs <= 60_000))
      throw new Error('"budgetMs" must be a number of milliseconds from 0 (excluded) to 60000')
    card.budgetMs = c.budgetMs
  }
  if (c.failMode !== undefined) {
    if (c.failMode !== 'open' && c.failMode !== 'closed') throw new Error('"failMode" must be "open" or "closed"')
    card.failMode = c.failMode
  }
  if (c.mode !== undefined) {
    if (c.mode !== 'serve' && c.mode !== 'shadow') throw new Error('"mode" must be "serve" or "shadow"')
    card.mode = c.mode
  }
  if (c.traffic !== undefined) {
    if (typeof c.traffic !== 'number' || !(c.traffic > 0 && c.traffic < 1)) throw new Error('"traffic" must be a share between 0 and 1, both excluded')
    if (card.mode === 'shadow') throw new Error('"traffic" and "mode": "shadow" exclude each other: a shadow touches no event')
    card.traffic = c.traffic
  }
  if (c.url !== undefined) {
    if (typeof c.url !== 'string' || !/^https?:\/\/[^/?#\s]+(\/[^?#\s]*)?$/.test(c.url)) throw new Error('"url" must be an http(s):// base URL')
    card.url = c.url.replace(/\/+$/, '')
  }
  if (c.protocol !== undefined) {
    if (c.protocol !== 'kserve' && c.protocol !== 'http') throw new Error('"protocol" must be "kserve" or "http"')
    card.protocol = c.protocol
  }
  if (c.outputIndex !== undefined) {
    if (!Number.isInteger(c.outputIndex) || (c.outputIndex as number) < 0 || (c.outputIndex as number) > 65_535)
      throw new Error('"outputIndex" must be an integer from 0 to 65535')
    card.outputIndex = c.outputIndex as number
  }
  for (const key of ['remoteName', 'remoteVersion', 'input', 'outputTensor'] as const) {
    const v = c[key]
    if (v === undefined) continue
    if (typeof v !== 'string' || !/^[A-Za-z0-9_.-]{1,128}$/.test(v)) throw new Error(`"${key}" must be 1 to 128 letters, digits, '_', '.' or '-'`)
    card[key] = v
  }
  if (c.datatype !== undefined) {
    if (c.datatype !== 'FP32' && c.datatype !== 'FP64') throw new Error('"datatype" must be "FP32" or "FP64"')
    card.datatype = c.datatype
  }
  if (card.url === undefined && (card.protocol ?? card.remoteName ?? card.remoteVersion ?? card.input ?? card.datatype) !== undefined) {
    throw new Error('"protocol", "remoteName", "remoteVersion", "input" and "datatype" describe a remote model: give "url" too')
  }
  return card
}

const TEMPLATE: Record<keyof ModelCard, true> = {
  topics: true,
  features: true,
  output: true,
  outputTensor: true,
  outputIndex: true,
  budgetMs: true,
  failMode: true,
  mode: true,
  traffic: true,
  url: true,
  protocol: true,
  remoteName: true,
  remoteVersion: true,
  input: true,
  datatype: true
}

/** Reads the features of one event into `into`; returns the first missing or non-numeric path, or null. */
export function readFeatures(paths: readonly (readonly string[])[], data: unknown, into: Float64Array): string | null {
  for (let i = 0; i < paths.length; i++) {
    const path = paths[i]
    let v: unknown = data
    for (let k = 0; k < path.length && v !== null && typeof v === 'object'; k++)
      v = Object.hasOwn(v, path[k]) ? (v as Record<string, unknown>)[path[k]] : undefined
    if (typeof v !== 'number' || !Number.isFinite(v)) return path.join('.')
    into[i] = v
  }
  return null
}

/** "buy.price" -> ["buy", "price"], once per card. */
export const compilePaths = (features: readonly string[]): string[][] => features.map((f) => f.split('.'))

function validPattern(pattern: string): boolean {
  try {
    checkTopic(pattern, { maxTopicLength: 256, maxTopicTokens: 16 }, true)
    return true
  } catch {
    return false
  }
}
