// The transport's settings: the live plugin's options (and within them the bus's and the hooks'),
// each a TypeBox schema giving validation, defaults, types and the help the README's table shows.
// config.ts reads them from the environment with the rest and hands the live plugin its part;
// an embedder passes them as the plugin's options.
import { type Static, Type } from '@sinclair/typebox'
import { Int } from '../shared/schema.js'

/** The bus the live plugin publishes through (plugins/bus.ts). */
export const BusSettings = Type.Object({
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
  })
})
export type BusSettings = Static<typeof BusSettings>

/** The leases that keep one engine per deployment on a Redis bus (plugins/leases.ts, with the bus's settings). */
export const LeaseSettings = Type.Object({
  leaseTtl: Int(
    3000,
    300,
    600_000,
    'with BUS=redis, milliseconds a lease on the arbitrage engine or a venue of FEEDS lasts without renewal (renewed every third of it): how soon another process takes over from a dead holder'
  )
})
export type LeaseSettings = Static<typeof LeaseSettings>

/** The hook registry's limits (plugins/hooks.ts). */
export const HookSettings = Type.Object({
  hookBudget: Int(5, 1, 60_000, 'milliseconds a hook may take unless it sets its own budget'),
  hookFailures: Int(5, 1, 1000, 'consecutive failures (throws or overruns) that switch a hook off'),
  hookCooldown: Int(10_000, 100, 3_600_000, 'milliseconds a failing hook stays off before it is tried again')
})
export type HookSettings = Static<typeof HookSettings>

/** The live plugin's options: the socket and publish limits, auth, and its bus's and hooks' settings. */
export const LiveSettings = Type.Object({
  useMsgpack: Type.Boolean({ default: true, description: 'default codec is MessagePack (false: JSON)' }),
  maxPayload: Int(65536, 128, 16 * 1024 * 1024, 'largest inbound frame in bytes; larger frames close with 1009'),
  maxPublishBytes: Int(65536, 16, 16 * 1024 * 1024, 'largest publish data (encoded) in bytes'),
  ...BusSettings.properties,
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
  ...HookSettings.properties
})
export type LiveSettings = Static<typeof LiveSettings>
