// The one configuration schema: validation, defaults, the TypeScript type and the environment variable names.
import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox'
import { Int } from './shared/schema.js'
import { Value } from '@sinclair/typebox/value'
import { parseApiKeys } from './core/auth.js'
import { ArbitrageSettings, DemoFeedSettings, FeedsSettings, MARKET_SYNTAX } from './market/settings.js'
import { LeaseSettings, LiveSettings } from './core/settings.js'
import { RecorderSettings, ReplaySettings } from './record/settings.js'

/**
 * A plugin's settings from `first` to `last`, in its schema's order: the configuration keeps the
 * order the README's table has always had while each plugin declares its own.
 */
function span<T extends TObject>(schema: T, first: string, last: string): T['properties'] {
  const keys = Object.keys(schema.properties)
  return Object.fromEntries(keys.slice(keys.indexOf(first), keys.indexOf(last) + 1).map((key) => [key, schema.properties[key]]))
}

export const ConfigSchema = Type.Object({
  port: Int(8765, 0, 65535, 'TCP port to listen on'),
  host: Type.String({ default: '0.0.0.0', minLength: 1, description: 'address to listen on' }),
  ...span(LiveSettings, 'useMsgpack', 'useMsgpack'),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    {
      default: 'info',
      description: 'pino log level'
    }
  ),
  logPretty: Type.Boolean({ default: false, description: 'human-readable logs (always on when stdout is a terminal)' }),
  ...span(LiveSettings, 'maxPayload', 'redisUrl'),
  ...LeaseSettings.properties,
  ...span(LiveSettings, 'redisPrefix', 'requestTimeout'),
  tlsCert: Type.String({ default: '', description: 'path of the PEM certificate (chain) for wss:// and https:// (with TLS_KEY)' }),
  tlsKey: Type.String({ default: '', description: 'path of the PEM private key for TLS_CERT' }),
  shutdownGrace: Int(3000, 100, 60_000, 'milliseconds a graceful shutdown may take before the process exits anyway'),
  ...span(LiveSettings, 'hookBudget', 'hookCooldown'),
  hooks: Type.String({ default: '', description: 'comma-separated paths of modules whose default export is a Fastify plugin registering hooks' }),
  models: Type.String({
    default: '',
    description:
      'directory of model folders NAME/VERSION/ holding a card model.json and a model.onnx, or a card naming a KServe v2 or HTTP "url" (README "AI/ML hooks"); empty: the shipped models/ (the reference opportunity scorer) when ARBITRAGE is on'
  }),
  modelsReloadMs: Int(1000, 0, 3_600_000, 'milliseconds between scans of MODELS for new, changed or removed versions; 0: read once at start'),
  arbitrage: Type.Boolean({ default: true, description: 'run the arbitrage engine on ticker.> events' }),
  ...ArbitrageSettings.properties,
  demoFeed: Type.Boolean({ default: false, description: 'publish a synthetic ticker feed in process' }),
  ...DemoFeedSettings.properties,
  ...FeedsSettings.properties,
  feedsServerUrl: Type.String({
    default: 'ws://127.0.0.1:8765/ws/live',
    minLength: 1,
    description: 'the feeds process (npm run feeds): live endpoint it publishes to'
  }),
  feedsToken: Type.String({
    default: '',
    secret: true,
    description:
      'the feeds process: credential with publish grants for ticker.>, book.> and venue.> (empty: none, enough for a loopback server under AUTH=loopback)'
  }),
  ...RecorderSettings.properties,
  ...ReplaySettings.properties,
  demo: Type.Union([Type.Literal(''), Type.Literal('venues')], {
    default: '',
    description: "venues: serve the shipped recording of five venues' real books in a loop, times moved to now (npm run demo); empty: none"
  })
})

export type Config = Static<typeof ConfigSchema>

// Every setting of the live plugin is one of the configuration's (the spans above leave none out).
for (const key of Object.keys(LiveSettings.properties))
  if (!(key in ConfigSchema.properties)) throw new Error(`config.ts: LiveSettings.${key} is not in ConfigSchema`)
export type ConfigKey = keyof Config

/** portNumber -> PORT_NUMBER: the environment name of each key. */
export const envName = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()

/** What a value must look like, said for a person reading an error line. */
function accepts(schema: TSchema): string {
  if (schema.anyOf) return `one of ${schema.anyOf.map((s: TSchema) => s.const).join(', ')}`
  if (schema.type === 'integer') return `an integer from ${schema.minimum} to ${schema.maximum}`
  if (schema.type === 'number') return `a number from ${schema.minimum} to ${schema.maximum}`
  if (schema.syntax) return SYNTAX[schema.syntax as keyof typeof SYNTAX].accepts
  if (schema.type === 'boolean') return 'true or false (also 1/0, yes/no)'
  return schema.minLength ? 'a non-empty string' : 'a string'
}

function fromEnv(schema: TSchema, raw: string): unknown {
  const text = raw.trim()
  if (schema.type === 'integer') return /^-?\d+$/.test(text) ? Number(text) : raw
  if (schema.type === 'number') return /^-?\d+(\.\d+)?(e-?\d+)?$/i.test(text) ? Number(text) : raw
  if (schema.type === 'boolean') {
    const lower = text.toLowerCase()
    if (['true', '1', 'yes', 'on'].includes(lower)) return true
    if (['false', '0', 'no', 'off'].includes(lower)) return false
    return raw
  }
  return text
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    value: unknown,
    readonly accepted: string
  ) {
    super(`Invalid configuration: ${variable}=${JSON.stringify(value)} is not valid; expected ${accepted}`)
  }
}

/** Values from the environment, then overrides, then defaults; throws ConfigError naming the first bad value. */
export function loadConfig(env: Record<string, string | undefined> = {}, overrides: Partial<Config> = {}): Config {
  const config = readSettings(ConfigSchema, env, overrides)
  checkAuth(config)
  checkTogether(config)
  return config
}

/**
 * The live plugin's settings from an embedder's options, defaults for the rest, checked as
 * loadConfig checks them (ConfigError naming the option).
 */
export function loadLiveSettings(options: Partial<LiveSettings>): LiveSettings {
  const settings = loadSettings(LiveSettings, options)
  checkAuth(settings)
  return settings
}

/** A plugin's settings from an embedder's options, defaults for the rest (ConfigError naming a bad or unknown option). */
export function loadSettings<T extends TObject>(schema: T, options: Partial<Static<T>>): Static<T> {
  // Fastify's own register options reach the plugin too: they are not its settings.
  const { prefix: _prefix, logLevel: _logLevel, logSerializers: _logSerializers, ...settings } = options as Record<string, unknown>
  return readSettings(schema, {}, settings as Partial<Static<T>>)
}

function readSettings<T extends TObject>(schema: T, env: Record<string, string | undefined>, overrides: Partial<Static<T>>): Static<T> {
  const config: Record<string, unknown> = {}
  for (const [key, property] of Object.entries(schema.properties) as [string, TSchema][]) {
    const name = envName(key)
    let value: unknown = property.default
    let source = name
    if (env[name] !== undefined && env[name] !== '') value = fromEnv(property, env[name]!)
    if ((overrides as Record<string, unknown>)[key] !== undefined) {
      value = (overrides as Record<string, unknown>)[key]
      source = `option ${key}`
    }
    const syntax = property.syntax ? SYNTAX[property.syntax as keyof typeof SYNTAX] : undefined
    if (!Value.Check(property, value) || (syntax && syntax.parse(value as string) === null)) {
      throw new ConfigError(source, redactValue(property, value), accepts(property))
    }
    config[key] = value
  }
  for (const key of Object.keys(overrides)) {
    if (!(key in schema.properties)) throw new ConfigError(`option ${key}`, (overrides as Record<string, unknown>)[key], 'a known option')
  }
  return config as Static<T>
}

/** A plugin's part of the configuration: the settings its schema declares, and nothing else. */
export function settingsOf<T extends TObject>(config: Config, schema: T): Static<T> {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(schema.properties)) out[key] = (config as Record<string, unknown>)[key]
  return out as Static<T>
}

/** The live plugin's options that are valid alone but not in combination. */
function checkAuth(config: LiveSettings): void {
  if (config.auth === 'required' && !config.jwtSecret && !config.jwtPublicKey && !config.apiKeys) {
    throw new ConfigError('AUTH', config.auth, 'loopback or none unless JWT_SECRET, JWT_PUBLIC_KEY or API_KEYS is set')
  }
  if (config.jwtSecret && config.jwtPublicKey) {
    throw new ConfigError('JWT_PUBLIC_KEY', '[set]', 'empty when JWT_SECRET is set (one JWT algorithm family at a time)')
  }
  if (config.jwtSecret && config.jwtSecret.length < 32) {
    throw new ConfigError('JWT_SECRET', '[redacted]', 'at least 32 characters')
  }
}

/** The other options that are valid alone but not in combination. */
function checkTogether(config: Config): void {
  if ((config.replayDir || config.demo) && config.feeds)
    throw new ConfigError(
      config.replayDir ? 'REPLAY_DIR' : 'DEMO',
      config.replayDir || config.demo,
      'empty when FEEDS is set (a replay serves recorded venues instead of live ones)'
    )
  if (!config.tlsCert !== !config.tlsKey) throw new ConfigError(config.tlsCert ? 'TLS_KEY' : 'TLS_CERT', '', 'a path, given together with the other')
}

/** Options marked `secret: true` in the schema never leave the process; URLs in the others lose their credentials. */
export function redactConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const properties = ConfigSchema.properties as Record<string, TSchema>
  for (const [key, value] of Object.entries(config)) out[key] = properties[key] ? redactValue(properties[key], value) : value
  return out
}

/**
 * `secret: true`: the whole value. Any other string: the credentials of every URL in it (one
 * setting may hold several, as FEEDS_ENDPOINTS does). An empty secret shows as empty.
 */
function redactValue(schema: TSchema, value: unknown): unknown {
  if (value === '') return value
  if (schema.secret === true) return '[redacted]'
  return typeof value === 'string' ? redactUrls(value) : value
}

// A URL inside a setting: a scheme, then up to the next separator of lists (, ;) or space.
const URL_IN_TEXT = /[a-z][a-z0-9+.-]*:\/\/[^\s,;]+/gi
// Query parameters that carry credentials by name: token=, access_token=, password=, apiKey=, sig=...
const SECRET_PARAM = /([?&][a-z0-9_.-]*(?:token|password|passwd|secret|key|auth|signature|sig|credential)[a-z0-9_.-]*=)[^&#]*/gi

/** Every URL in a text with its credentials replaced (redactUrlPassword). */
export function redactUrls(text: string): string {
  return text.replace(URL_IN_TEXT, redactUrlPassword)
}

/**
 * A URL with its secrets replaced: the password of `user:password@` (which may itself hold `@`:
 * the host follows the last one), a user part alone (clients take it as the password), and
 * query parameters named for credentials (`password=`, as ioredis reads it; `token=`, ...).
 */
export function redactUrlPassword(url: string): string {
  const scheme = url.indexOf('://')
  const start = scheme === -1 ? 0 : scheme + 3
  const queryAt = url.search(/[?#]/)
  const at = url.lastIndexOf('@', queryAt === -1 ? url.length : queryAt)
  let out = url
  if (at >= start) {
    const colon = url.indexOf(':', start)
    const keep = colon !== -1 && colon < at ? colon + 1 : start
    out = `${url.slice(0, keep)}[redacted]${url.slice(at)}`
  }
  return out.replace(SECRET_PARAM, '$1[redacted]')
}

/** The README's configuration table rows, generated so docs and schema cannot drift. */
export function describeConfig(): { variable: string; default: unknown; accepts: string; description: string }[] {
  return Object.entries(ConfigSchema.properties).map(([key, schema]) => ({
    variable: envName(key),
    default: (schema as TSchema).default,
    accepts: accepts(schema as TSchema),
    description: (schema as TSchema).description ?? ''
  }))
}

/** String options with a syntax of their own: their parser (null when malformed) and what they accept. */
const SYNTAX = {
  redisUrl: {
    parse: (text: string) => (/^rediss?:\/\/[^/?#]+/.test(text) ? text : null),
    accepts: 'a URL redis://[:password@]host[:port][/db] or rediss://...'
  },
  ...MARKET_SYNTAX,
  apiKeys: {
    parse: parseApiKeys,
    accepts: 'key=scope scope;key=scope, keys of 16 or more characters, scopes subscribe:<pattern> or publish:<pattern>'
  }
}
