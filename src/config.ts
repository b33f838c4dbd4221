// The one configuration schema: validation, defaults, the TypeScript type and the environment variable names.
import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseApiKeys } from './core/auth.js'
import { ArbitrageSettings, FeedsSettings, MARKET_SYNTAX } from './market/settings.js'

const Int = (def: number, minimum: number, maximum: number, description: string) => Type.Integer({ default: def, minimum, maximum, description })

const Num = (def: number, minimum: number, maximum: number, description: string) => Type.Number({ default: def, minimum, maximum, description })

export const ConfigSchema = Type.Object({
  port: Int(8765, 0, 65535, 'TCP port to listen on'),
  host: Type.String({ default: '0.0.0.0', minLength: 1, description: 'address to listen on' }),
  useMsgpack: Type.Boolean({ default: true, description: 'default codec is MessagePack (false: JSON)' }),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    {
      default: 'info',
      description: 'pino log level'
    }
  ),
  logPretty: Type.Boolean({ default: false, description: 'human-readable logs (always on when stdout is a terminal)' }),
  maxPayload: Int(65536, 128, 16 * 1024 * 1024, 'largest inbound frame in bytes; larger frames close with 1009'),
  maxPublishBytes: Int(65536, 16, 16 * 1024 * 1024, 'largest publish data (encoded) in bytes'),
  bus: Type.Union([Type.Literal('memory'), Type.Literal('redis')], {
    default: 'memory',
    description: 'memory: one process; redis: processes sharing REDIS_URL share seq, history and last values'
  }),
  redisUrl: Type.String({
    default: 'redis://127.0.0.1:6379',
    minLength: 1,
    syntax: 'redisUrl',
    description: 'Redis for BUS=redis (redis://[:password@]host:port[/db]; the password is redacted in /config)'
  }),
  leaseTtl: Int(
    3000,
    300,
    600_000,
    'with BUS=redis, milliseconds a lease on the arbitrage engine or a venue of FEEDS lasts without renewal (renewed every third of it): how soon another process takes over from a dead holder'
  ),
  redisPrefix: Type.String({ default: 'live:', description: 'prefix of every Redis key and channel, so several deployments can share one Redis' }),
  historySize: Int(1000, 0, 1_000_000, 'events kept per topic for recovery'),
  historyTtl: Int(300_000, 0, 86_400_000, 'milliseconds an event stays recoverable'),
  topicTtl: Int(
    3_600_000,
    1000,
    2_592_000_000,
    'milliseconds a topic with no publish and no subscriber of its exact name is kept; then its history, last value and index entry are freed'
  ),
  maxTopics: Int(10_000, 1, 100_000_000, 'topics held at once; past it a publish to a new topic answers unavailable'),
  busMemoryMb: Int(
    64,
    1,
    1_048_576,
    'MiB the in-memory bus may hold in history and last values; past it a publish to a new topic answers unavailable and a topic that publishes keeps only its newest event'
  ),
  historyDir: Type.String({
    default: '',
    description:
      'directory where the in-memory bus journals its events, so a restart (even kill -9) keeps epochs, seqs, history and last values; empty: memory only. The server process (npm start, PM2) uses ./data unless it is set'
  }),
  historyFsync: Type.Union([Type.Literal('always'), Type.Literal('everysec'), Type.Literal('no')], {
    default: 'everysec',
    description:
      'when the journal is synced to disk: always (every group commit, before its acks), everysec (once a second: a power loss can take the last second), no (when the OS writes it)'
  }),
  maxQueuedBytes: Int(1024 * 1024, 1024, 1024 * 1024 * 1024, 'bytes held for a connection beyond what the OS accepted'),
  slowConsumer: Type.Union([Type.Literal('close'), Type.Literal('conflate')], {
    default: 'close',
    description: 'what happens past MAX_QUEUED_BYTES: close with 4008, or conflate to the latest event per topic'
  }),
  heartbeatInterval: Int(30_000, 0, 3_600_000, 'milliseconds between WebSocket pings; 0 turns them off'),
  maxSubscriptions: Int(1000, 1, 1_000_000, 'subscription patterns per connection'),
  maxTopicLength: Int(256, 8, 4096, 'characters in a topic'),
  maxTopicTokens: Int(16, 1, 256, 'dot-separated tokens in a topic'),
  auth: Type.Union([Type.Literal('loopback'), Type.Literal('required'), Type.Literal('none')], {
    default: 'loopback',
    description:
      'loopback: anyone may subscribe and loopback clients may publish, credentials grant their scopes; required: every client needs a credential; none: no checks at all, anyone may publish'
  }),
  jwtSecret: Type.String({ default: '', secret: true, description: 'HS256 secret that signs JWTs (empty: no HS256)' }),
  jwtPublicKey: Type.String({ default: '', description: 'RS256/ES256 public key for JWTs: a PEM, or the path of one' }),
  jwtIssuer: Type.String({ default: '', description: 'required JWT `iss` (empty: any)' }),
  jwtAudience: Type.String({ default: '', description: 'required JWT `aud` (empty: any)' }),
  jwtRequireExp: Type.Boolean({ default: true, description: 'JWTs without `exp` are refused (false: they never expire)' }),
  jwtMaxLifetime: Int(86_400_000, 1000, 31_536_000_000, 'milliseconds a JWT may still have to live when presented; one whose `exp` is further away is refused'),
  apiKeys: Type.String({ default: '', secret: true, syntax: 'apiKeys', description: 'static API keys and their scopes' }),
  allowedOrigins: Type.String({
    default: '',
    description: 'comma-separated Origins browsers may connect from (empty: any); clients sending no Origin are not browsers and pass'
  }),
  maxConnections: Int(20_000, 1, 10_000_000, 'open connections in all; past it upgrades get 503'),
  maxConnectionsPerIp: Int(1000, 1, 10_000_000, 'open connections per client address; past it upgrades get 503'),
  maxSubscriptionsPerIp: Int(10_000, 1, 100_000_000, 'subscriptions held by all connections of one client address; past it subscribe answers unavailable'),
  maxSubscriptionsTotal: Int(100_000, 1, 100_000_000, 'subscriptions held in all; past it subscribe answers unavailable'),
  maxFilterCost: Int(
    256,
    1,
    100_000_000,
    'field reads per event the distinct filters of one connection may cost (a comparison reads one, of a.b two); past it subscribe answers too_large'
  ),
  maxFilterCostPerIp: Int(4096, 1, 100_000_000, 'the same for all connections of one client address; past it subscribe answers unavailable'),
  maxFilterCostTotal: Int(
    16_384,
    1,
    100_000_000,
    "the same for the server's distinct filters (a filter many subscriptions share counts once): what filters may cost one publish; past it subscribe answers unavailable"
  ),
  deltaMemoryMb: Int(
    32,
    1,
    1_048_576,
    "MiB of delta state (each topic's last event per codec, the last event each delta subscriber was sent per topic); past it the oldest topics start over and their next events go whole"
  ),
  memoryLimitMb: Int(
    0,
    0,
    1_048_576,
    "resident memory (RSS, what PM2's max_memory_restart measures) in MiB past which publishes, subscribes and upgrades answer unavailable and /ready 503, until a collection brings it back under; 0: off. The server process (npm start, PM2) uses 200, ~50 MiB under pm2.config.json's 250M, unless it is set; an embedding app sets its own (its RSS is the host's)"
  ),
  rateLimit: Int(1000, 0, 10_000_000, 'frames per second a connection without publish grants may send on average (bursts of twice that); 0 turns it off'),
  publisherRateLimit: Int(100_000, 0, 10_000_000, 'the same for connections that may publish (feeds send ticks fast); 0 turns it off'),
  rateStrikes: Int(100, 0, 1_000_000, 'frames refused with rate_limited within 10 s before the connection is closed with 4029'),
  maxFrameErrors: Int(
    100,
    0,
    1_000_000,
    'malformed frames (bad_request, unknown_type, too_large) and refused credentials (unauthorized) a connection may send within 10 s before it is closed with 1008; 0: never closed'
  ),
  decodeMaxDepth: Int(32, 1, 100, 'nesting depth of an inbound frame or HTTP publish body (at most 100: the encoders refuse deeper data)'),
  decodeMaxItems: Int(10_000, 1, 10_000_000, 'elements of one array or entries of one map in an inbound frame'),
  handshakeTimeout: Int(10_000, 100, 600_000, 'milliseconds a new TCP connection has to send its HTTP request headers'),
  requestTimeout: Int(10_000, 100, 600_000, 'milliseconds an HTTP request has to deliver its body once its headers arrived; then the connection is closed'),
  tlsCert: Type.String({ default: '', description: 'path of the PEM certificate (chain) for wss:// and https:// (with TLS_KEY)' }),
  tlsKey: Type.String({ default: '', description: 'path of the PEM private key for TLS_CERT' }),
  shutdownGrace: Int(3000, 100, 60_000, 'milliseconds a graceful shutdown may take before the process exits anyway'),
  hookBudget: Int(5, 1, 60_000, 'milliseconds a hook may take unless it sets its own budget'),
  hookFailures: Int(5, 1, 1000, 'consecutive failures (throws or overruns) that switch a hook off'),
  hookCooldown: Int(10_000, 100, 3_600_000, 'milliseconds a failing hook stays off before it is tried again'),
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
  demoFeedRate: Int(200, 1, 1_000_000, 'synthetic ticks per second'),
  demoFeedSeed: Int(1, 0, 2 ** 31 - 1, 'seed of the synthetic feed (same seed, same ticks)'),
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
  recordDir: Type.String({
    default: '',
    description: 'directory the market session is recorded in (venue frames, REST answers, market publishes; docs/RECORDING.md); empty: no recording'
  }),
  recordMaxMb: Int(10_240, 1, 10_485_760, 'MiB all recorded segments may take together; past it the oldest segments are removed'),
  recordMaxAge: Int(0, 0, 31_536_000_000, 'milliseconds a recorded segment is kept after it was last written; 0 keeps them (RECORD_MAX_MB still bounds them)'),
  recordSegmentMb: Int(64, 1, 4096, 'MiB written to one segment file before the next is begun'),
  recordSegmentAge: Int(3_600_000, 1000, 86_400_000, 'milliseconds one segment file is written to before the next is begun'),
  replayDir: Type.String({
    default: '',
    description:
      'serve a recording (a RECORD_DIR) instead of live venues: its frames through the connectors, the engine and the hooks, to clients as if live; empty: none'
  }),
  replaySpeed: Num(1, 0.01, 1_000_000, 'pace of REPLAY_DIR: 1 as recorded, 10 ten times faster'),
  replayLoop: Type.Boolean({ default: false, description: 'REPLAY_DIR starts again at its end, its times moved to now' }),
  demo: Type.Union([Type.Literal(''), Type.Literal('venues')], {
    default: '',
    description: "venues: serve the shipped recording of five venues' real books in a loop, times moved to now (npm run demo); empty: none"
  })
})

export type Config = Static<typeof ConfigSchema>
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
  const config: Record<string, unknown> = {}
  for (const [key, schema] of Object.entries(ConfigSchema.properties) as [string, TSchema][]) {
    const name = envName(key)
    let value: unknown = schema.default
    let source = name
    if (env[name] !== undefined && env[name] !== '') value = fromEnv(schema, env[name]!)
    if ((overrides as Record<string, unknown>)[key] !== undefined) {
      value = (overrides as Record<string, unknown>)[key]
      source = `option ${key}`
    }
    const syntax = schema.syntax ? SYNTAX[schema.syntax as keyof typeof SYNTAX] : undefined
    if (!Value.Check(schema, value) || (syntax && syntax.parse(value as string) === null)) {
      throw new ConfigError(source, redactValue(schema, value), accepts(schema))
    }
    config[key] = value
  }
  for (const key of Object.keys(overrides)) {
    if (!(key in ConfigSchema.properties)) throw new ConfigError(`option ${key}`, (overrides as Record<string, unknown>)[key], 'a known option')
  }
  checkTogether(config as Config)
  return config as Config
}

/** A plugin's part of the configuration: the settings its schema declares, and nothing else. */
export function settingsOf<T extends TObject>(config: Config, schema: T): Static<T> {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(schema.properties)) out[key] = (config as Record<string, unknown>)[key]
  return out as Static<T>
}

/** Options that are valid alone but not in combination. */
function checkTogether(config: Config): void {
  if (config.auth === 'required' && !config.jwtSecret && !config.jwtPublicKey && !config.apiKeys) {
    throw new ConfigError('AUTH', config.auth, 'loopback or none unless JWT_SECRET, JWT_PUBLIC_KEY or API_KEYS is set')
  }
  if (config.jwtSecret && config.jwtPublicKey) {
    throw new ConfigError('JWT_PUBLIC_KEY', '[set]', 'empty when JWT_SECRET is set (one JWT algorithm family at a time)')
  }
  if (config.jwtSecret && config.jwtSecret.length < 32) {
    throw new ConfigError('JWT_SECRET', '[redacted]', 'at least 32 characters')
  }
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
