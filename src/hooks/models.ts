// Models as publish hooks: each model has versions (ONNX files or remote servers), one serving, at
// most one candidate taking a share of events (A/B) and one shadow scored beside them. MODELS=<dir>
// lays them out as <dir>/<name>/<version>/{model.json, model.onnx} and is rescanned for new versions.
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { Histogram } from '../core/histogram.js'
import {
  type HookRegistry,
  type ModelFigures,
  type ModelSource,
  type ModelStatus,
  type VersionFigures,
  type VersionState,
  withModelStatus
} from '../core/hooks.js'
import { ErrorCode, LiveError } from '../core/protocol.js'
import { compilePaths, type ModelCard, parseCard, readFeatures } from './model-card.js'
import { isNotReady, openOnnx, remoteRunner, type Runner } from './model-runners.js'

export type { ModelFigures, VersionFigures, VersionState } from '../core/hooks.js'

export interface ModelLogger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

/** Where a version's runner comes from: an ONNX file or the card's URL. */
type Source = { file: string } | { url: string }

const LATENCY_NONE = { p50: Number.NaN, p99: Number.NaN, max: Number.NaN }

class Version {
  state: VersionState = 'loading'
  runner: Runner | null = null
  reason: string | undefined = undefined
  calls = 0
  errors = 0
  missing = 0
  compared = 0
  diffSum = 0
  diffMax = 0
  /** Only versions in an arm keep a histogram (94 KB): a thousand old versions cost no memory. */
  latency: Histogram | null = null
  private inflight = 0
  private retiring = false
  readonly paths: string[][]
  readonly row: Float64Array

  constructor(
    readonly version: string,
    readonly card: ModelCard,
    readonly source: Source
  ) {
    this.paths = compilePaths(card.features)
    this.row = new Float64Array(card.features.length)
  }

  get number(): number {
    return Number(this.version)
  }

  /** The model's answer; `row` must hold this version's features. */
  call(topic: string, data: unknown): Promise<unknown> {
    const runner = this.runner!
    const start = performance.now()
    this.calls++
    this.inflight++
    return runner.run(this.row, topic, data).then(
      (value) => {
        this.latency?.record(performance.now() - start)
        this.settled()
        return value
      },
      (err) => {
        this.errors++
        this.settled()
        throw err
      }
    )
  }

  arm(state: 'serving' | 'candidate' | 'shadow'): void {
    this.state = state
    this.retiring = false
    this.latency ??= new Histogram()
  }

  /** Out of every arm: its runner is closed once its last call has answered. */
  retire(): void {
    this.state = 'standby'
    this.latency = null
    this.retiring = true
    if (this.inflight === 0) this.release()
  }

  release(): void {
    const runner = this.runner
    this.runner = null
    this.retiring = false
    if (runner !== null) runner.close().catch(() => undefined)
  }

  private settled(): void {
    if (--this.inflight === 0 && this.retiring) this.release()
  }

  figures(): VersionFigures {
    const { card } = this
    return {
      version: this.version,
      state: this.state,
      kind: this.runner?.kind ?? ('file' in this.source ? 'onnx' : (card.protocol ?? 'kserve')),
      mode: card.mode ?? 'serve',
      ...(card.traffic === undefined ? {} : { traffic: card.traffic }),
      ...(this.reason === undefined ? {} : { reason: this.reason }),
      calls: this.calls,
      errors: this.errors,
      missingFeatures: this.missing,
      latencyMs: this.latency === null || this.latency.count === 0 ? LATENCY_NONE : this.latency.summary(),
      ...(card.mode === 'shadow'
        ? { shadow: { compared: this.compared, meanAbsDiff: this.compared === 0 ? 0 : this.diffSum / this.compared, maxAbsDiff: this.diffMax } }
        : {})
    }
  }
}

/** A hash of the model name and the event's id, as a share in [0, 1): one id stays on one arm. */
export function armShare(model: string, id: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), 0x01000193)
  h = Math.imul(h ^ 0x3a, 0x01000193)
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  // FNV-1a leaves the high bits of ids that differ in their last characters (BTC-USD:1, :2, ...)
  // barely mixed: murmur3's finaliser spreads them, so the share holds on sequential ids.
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32
}

export const VERSION = /^\d{1,9}$/
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/

/** One model: its versions, the arms they serve in, and the publish hook that runs them. */
export class Model {
  readonly versions = new Map<string, Version>()
  serving: Version | null = null
  candidate: Version | null = null
  shadow: Version | null = null
  refused = 0
  lastRefused: { version: string; reason: string } | null = null
  /** The first accepted card: topics, output, budget and fail mode belong to the model, not a version. */
  private card: ModelCard | null = null

  constructor(
    readonly name: string,
    private readonly hooks: HookRegistry,
    private readonly log: ModelLogger,
    private readonly defaultBudgetMs: number
  ) {}

  /** Loads (or reloads) one version; a refused one is logged once and counted, and the arms stay as they were. */
  async load(version: string, card: ModelCard, source: Source): Promise<boolean> {
    const v = new Version(version, card, source)
    const old = this.versions.get(version)
    this.versions.set(version, v)
    try {
      this.checkCompatible(card)
      // The first valid card registers the hook, loaded or not: until a version serves, the events
      // it was meant for say `unavailable`.
      if (this.card === null) this.register(card)
      v.runner = await open(this.name, card, source, this.budgetOf(card))
    } catch (err) {
      const reason = (err as Error).message
      if (isNotReady(err)) {
        v.state = 'unready'
        v.reason = reason
        if (old?.state !== 'unready' || old.reason !== reason) this.log.warn({ model: this.name, version }, `model ${this.name} version ${version}: ${reason}`)
      } else this.refuse(v, reason)
      if (old !== undefined && old.runner !== null)
        this.versions.set(version, old) // a broken rewrite of a version: keep what works
      else if (old === undefined) this.versions.set(version, v)
      this.choose()
      return false
    }
    if (old !== undefined && old.runner !== null) old.retire()
    v.state = 'standby'
    this.choose()
    return true
  }

  /** A version whose card cannot be read: refused like a model that cannot load. */
  reject(version: string, reason: string): void {
    const v = new Version(version, { topics: '', features: [], output: '' }, { file: '' })
    this.refuse(v, reason)
    const old = this.versions.get(version)
    if (old === undefined || old.runner === null) this.versions.set(version, v)
    this.choose()
  }

  /** A version whose folder is gone. */
  async remove(version: string): Promise<void> {
    const v = this.versions.get(version)
    if (v === undefined) return
    this.versions.delete(version)
    // The version to serve next is loaded before this one stops: a rollback drops no event.
    const next = this.nextServing()
    if (next !== null && next.runner === null) await this.load(next.version, next.card, next.source)
    v.retire()
    this.choose()
  }

  figures(): ModelFigures {
    return {
      name: this.name,
      topics: this.card?.topics ?? '',
      output: this.card?.output ?? '',
      serving: this.serving?.version ?? null,
      candidate: this.candidate?.version ?? null,
      shadow: this.shadow?.version ?? null,
      refused: this.refused,
      lastRefused: this.lastRefused,
      versions: [...this.versions.values()].sort((a, b) => b.number - a.number).map((v) => v.figures())
    }
  }

  close(): void {
    for (const v of this.versions.values()) v.release()
  }

  private refuse(v: Version, reason: string): void {
    v.state = 'refused'
    v.reason = reason
    this.refused++
    this.lastRefused = { version: v.version, reason }
    const keeps = this.serving === null ? 'no version serves' : `version ${this.serving.version} keeps serving`
    this.log.warn({ model: this.name, version: v.version, reason }, `model ${this.name} version ${v.version} refused: ${reason}; ${keeps}`)
  }

  private budgetOf(card: ModelCard): number {
    return card.budgetMs ?? this.defaultBudgetMs
  }

  private checkCompatible(card: ModelCard): void {
    const first = this.card
    if (first === null) return
    for (const key of ['topics', 'output', 'budgetMs', 'failMode'] as const) {
      if (card[key] !== first[key]) {
        throw new Error(
          `"${key}" is ${JSON.stringify(card[key])} where the model's first version has ${JSON.stringify(first[key])}: they belong to the model (give a new model name to change them)`
        )
      }
    }
  }

  /** The highest usable version that is neither shadow nor candidate, loaded or on standby. */
  private nextServing(): Version | null {
    let serving: Version | null = null
    for (const v of this.versions.values()) {
      if (v.state === 'refused' || v.state === 'unready' || v.state === 'loading') continue
      if (v.runner === null && v.state !== 'standby') continue
      if (v.card.mode !== 'shadow' && v.card.traffic === undefined && (serving === null || v.number > serving.number)) serving = v
    }
    return serving
  }

  /** Arms: the serving version is the highest that is neither shadow nor candidate; a candidate or shadow counts only above it. */
  private choose(): void {
    let serving = this.nextServing()
    let candidate: Version | null = null
    let shadow: Version | null = null
    const floor = serving?.number ?? -1
    for (const v of this.versions.values()) {
      if (v.runner === null || v.number <= floor) continue
      if (v.card.traffic !== undefined && (candidate === null || v.number > candidate.number)) candidate = v
      if (v.card.mode === 'shadow' && (shadow === null || v.number > shadow.number)) shadow = v
    }
    const before = this.serving
    if (serving !== null && serving.runner === null) {
      // A standby version is to serve again (the one above it went away): reopened first, and until
      // then the version serving now goes on if it still can.
      this.reopen(serving)
      serving = before !== null && before.runner !== null && this.versions.get(before.version) === before ? before : null
    }
    this.serving = serving
    this.candidate = candidate
    this.shadow = shadow
    for (const v of this.versions.values()) {
      if (v === serving) v.arm('serving')
      else if (v === candidate) v.arm('candidate')
      else if (v === shadow) v.arm('shadow')
      else if (v.state === 'serving' || v.state === 'candidate' || v.state === 'shadow' || (v.state === 'standby' && v.runner !== null)) v.retire()
    }
    if (serving !== before) {
      this.log.info(
        { model: this.name, version: serving?.version ?? null },
        `model ${this.name}: ${serving === null ? 'no version serves' : `version ${serving.version} serves`}`
      )
    }
  }

  private reopen(v: Version): void {
    v.state = 'loading'
    this.load(v.version, v.card, v.source).catch(() => undefined)
  }

  private register(card: ModelCard): void {
    this.card = card
    const name = this.name
    const output = card.output
    const closed = card.failMode === 'closed'
    const notEnriched = (data: unknown, status: ModelStatus): unknown => {
      if (closed) throw new LiveError(ErrorCode.unavailable, `model "${name}" could not score the event (${status}) and fails closed`)
      return withModelStatus(data, name, status)
    }
    const features = (v: Version, data: unknown): boolean => {
      if (readFeatures(v.paths, data, v.row) === null) return true
      v.missing++
      return false
    }
    this.hooks.onPublish(
      { name, topics: card.topics, budgetMs: card.budgetMs, failMode: card.failMode, statusKey: name, details: () => this.figures() },
      (topic, data) => {
        if (data === null || typeof data !== 'object' || Array.isArray(data)) return undefined
        const candidate = this.candidate
        const id = (data as { id?: unknown }).id
        const onCandidate = candidate !== null && typeof id === 'string' && armShare(name, id) < candidate.card.traffic!
        const v = onCandidate ? candidate : this.serving
        if (v === null) return notEnriched(data, 'unavailable')
        if (!features(v, data)) return notEnriched(data, 'missing-feature')
        const answer = v.call(topic, data)
        const shadow = this.shadow
        if (shadow !== null && features(shadow, data)) compare(shadow, shadow.call(topic, data), answer)
        const model = { version: v.version, arm: onCandidate ? 'candidate' : 'serving' }
        return answer.then((value) => {
          // Object.assign, not spread: adding fields to a spread copy takes a slow path in V8.
          const out = Object.assign({}, data) as Record<string, unknown>
          out[output] = value
          const models = out.models
          out.models = Object.assign(models !== null && typeof models === 'object' && !Array.isArray(models) ? Object.assign({}, models) : {}, {
            [name]: model
          })
          return out
        })
      }
    )
  }
}

/** A shadow's answer against the one that went out: their difference goes to the shadow's figures. */
function compare(shadow: Version, theirs: Promise<unknown>, ours: Promise<unknown>): void {
  Promise.all([theirs, ours]).then(
    ([a, b]) => {
      if (typeof a !== 'number' || typeof b !== 'number') return
      const diff = Math.abs(a - b)
      shadow.compared++
      shadow.diffSum += diff
      if (diff > shadow.diffMax) shadow.diffMax = diff
    },
    () => undefined // counted in the version's errors or the hook's figures
  )
}

async function open(name: string, card: ModelCard, source: Source, budgetMs: number): Promise<Runner> {
  if ('file' in source) return openOnnx(source.file, card)
  const runner = remoteRunner(card, { name, budgetMs })
  try {
    await runner.ready(card.features.length)
  } catch (err) {
    await runner.close()
    throw err
  }
  return runner
}

const MAX_CARD_BYTES = 64 * 1024

/** The models of one MODELS directory, rescanned every `reloadMs`. */
export class ModelDirectory {
  readonly models = new Map<string, Model>()
  private timer: NodeJS.Timeout | null = null
  /** What each version's files looked like when read (`name/version` -> mtimes and sizes): a change reloads it. */
  private readonly seen = new Map<string, string>()
  private scanning: Promise<void> | null = null

  constructor(
    readonly dir: string,
    private readonly hooks: HookRegistry,
    private readonly log: ModelLogger,
    private readonly defaultBudgetMs: number
  ) {}

  start(reloadMs: number): void {
    if (reloadMs > 0) this.timer = setInterval(() => void this.scan(), reloadMs).unref()
  }

  /** One pass over the directory; concurrent calls share it. */
  scan(): Promise<void> {
    // biome-ignore lint/suspicious/noAssignInExpressions: one pass at a time
    return (this.scanning ??= this.pass().finally(() => {
      this.scanning = null
    }))
  }

  figures(): ModelFigures[] {
    return [...this.models.values()].map((m) => m.figures())
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer)
    for (const m of this.models.values()) m.close()
  }

  private async pass(): Promise<void> {
    if (this.dir === '') {
      // Versions given in code (onnxModel, remoteModel): only a remote one not ready yet is tried again.
      for (const model of this.models.values()) {
        for (const v of [...model.versions.values()]) if (v.state === 'unready') await model.load(v.version, v.card, v.source)
      }
      return
    }
    for (const name of await subfolders(this.dir)) {
      if (!MODEL_NAME.test(name)) continue
      let model = this.models.get(name)
      if (model === undefined) {
        model = new Model(name, this.hooks, this.log, this.defaultBudgetMs)
        this.models.set(name, model)
      }
      const found = new Set<string>()
      // Lowest first: the model's first version fixes its topics and output.
      const versions = (await subfolders(join(this.dir, name))).filter((v) => VERSION.test(v)).sort((a, b) => Number(a) - Number(b))
      for (const version of versions) {
        found.add(version)
        await this.visit(model, version)
      }
      for (const version of [...model.versions.keys()]) {
        if (found.has(version)) continue
        await model.remove(version)
        this.seen.delete(`${name}/${version}`)
      }
    }
  }

  /** Loads a version that is new, changed on disk, or not ready last time. */
  private async visit(model: Model, version: string): Promise<void> {
    const folder = join(this.dir, model.name, version)
    const cardFile = join(folder, 'model.json')
    const onnxFile = join(folder, 'model.onnx')
    const [cardStat, onnxStat] = await Promise.all([stat(cardFile).catch(() => null), stat(onnxFile).catch(() => null)])
    const signature = `${cardStat?.mtimeMs}:${cardStat?.size}:${onnxStat?.mtimeMs}:${onnxStat?.size}`
    const key = `${model.name}/${version}`
    if (this.seen.get(key) === signature && model.versions.get(version)?.state !== 'unready') return
    this.seen.set(key, signature)
    let card: ModelCard
    try {
      if (cardStat === null) throw new Error('no model.json')
      if (cardStat.size > MAX_CARD_BYTES) throw new Error(`model.json is over ${MAX_CARD_BYTES} bytes`)
      card = parseCard(JSON.parse(await readFile(cardFile, 'utf8')))
      if (card.url === undefined && onnxStat === null) throw new Error('no model.onnx, and the card names no "url"')
    } catch (err) {
      return model.reject(version, `model.json: ${(err as Error).message}`)
    }
    await model.load(version, card, card.url === undefined ? { file: onnxFile } : { url: card.url })
  }
}

async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name)
}

/** The `models` request method and the decorator listing every model source, created once. */
function modelList(app: import('fastify').FastifyInstance): ModelSource[] {
  if (!app.hasDecorator('liveModels')) {
    const list: ModelSource[] = []
    app.decorate('liveModels', list)
    app.liveHooks.method({ name: 'models', handler: () => list.flatMap((d) => d.figures()) })
    app.addHook('onClose', () => {
      for (const d of list) d.close()
    })
  }
  return app.liveModels
}

export interface ModelsOptions {
  /** The directory of <name>/<version>/{model.json, model.onnx} folders. */
  dir: string
  /** Milliseconds between scans for new, changed or removed versions; 0: read once at start. */
  reloadMs?: number
}

/** MODELS=<dir>: every model folder as a publish hook, rescanned for new versions. */
const modelsPlugin: FastifyPluginAsync<ModelsOptions> = async (app, options) => {
  const info = await stat(options.dir).catch(() => null)
  if (!info?.isDirectory()) throw new Error(`MODELS: "${options.dir}" is not a directory`)
  const directory = new ModelDirectory(options.dir, app.liveHooks, app.log, app.liveHooks.defaultBudgetMs)
  modelList(app).push(directory)
  await directory.scan()
  directory.start(options.reloadMs ?? 1000)
  for (const m of directory.figures()) app.log.info({ model: m.name, serving: m.serving, versions: m.versions.length }, `model ${m.name} loaded`)
}

export const models = fp(modelsPlugin, { name: 'live-models', fastify: '5.x', dependencies: ['live-hooks'] })

export type OnnxModelOptions = Omit<ModelCard, 'url' | 'protocol' | 'remoteName' | 'remoteVersion' | 'input' | 'datatype'> & {
  /** The model's name: its hook's name and its key in `models` and `modelStatus`. */
  name: string
  /** Path of the .onnx file. */
  file: string
  /** Shown in `models` (default "1"). */
  version?: string
}

/** A model whose versions are given in code, tried again every `reloadMs` while a remote one is not ready. */
export function addModel(app: import('fastify').FastifyInstance, name: string, reloadMs = 1000): Model {
  if (!MODEL_NAME.test(name)) throw new Error(`model name "${name}" must be 1 to 64 letters, digits, '_' or '-'`)
  const directory = new ModelDirectory('', app.liveHooks, app.log, app.liveHooks.defaultBudgetMs)
  const model = new Model(name, app.liveHooks, app.log, app.liveHooks.defaultBudgetMs)
  directory.models.set(name, model)
  modelList(app).push(directory)
  directory.start(reloadMs)
  return model
}

/** One ONNX model file as a publish hook, for an embedding app: `app.register(onnxModel({...}))`. */
export function onnxModel(options: OnnxModelOptions): FastifyPluginAsync {
  const { name, file, version = '1', ...fields } = options
  if (!VERSION.test(version)) throw new Error(`onnxModel: version "${version}" must be a number`)
  const card = parseCard(fields)
  const plugin: FastifyPluginAsync = async (app) => {
    const model = addModel(app, name, 0)
    if (!(await model.load(version, card, { file }))) throw new Error(`onnxModel ${name}: ${model.lastRefused?.reason}`)
  }
  return fp(plugin, { name: `live-onnx-model-${name}`, fastify: '5.x', dependencies: ['live-hooks'] })
}
