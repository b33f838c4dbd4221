// Our server for the benchmark: the compiled app (npm run build), on loopback, heartbeats off like the baseline.
// HOOK=noop adds a synchronous no-op publish hook; HOOK=scorer the reference opportunity scorer.
import { buildApp } from '../dist/app.js'
import scorer from '../dist/hooks/scorer.js'

// ARBITRAGE=false leaves out the engine and its scorer hooks (the hook benchmark's 'none').
// BUS=redis with REDIS_URL: one node of the backplane benchmark.
const app = await buildApp({
  heartbeatInterval: 0,
  slowConsumer: process.env.SLOW_CONSUMER ?? 'close',
  arbitrage: process.env.ARBITRAGE !== 'false',
  bus: process.env.BUS ?? 'memory',
  redisUrl: process.env.REDIS_URL || undefined,
  // HISTORY_DIR and HISTORY_FSYNC: the journal benchmark's (bench/journal.ts).
  historyDir: process.env.HISTORY_DIR || undefined,
  historyFsync: process.env.HISTORY_FSYNC || undefined,
  // Every benchmark client comes from 127.0.0.1, and RSS is what is measured: admission limits off.
  maxConnectionsPerIp: 1_000_000,
  maxConnections: 1_000_000,
  maxSubscriptionsPerIp: 100_000_000,
  maxSubscriptionsTotal: 100_000_000,
  maxFilterCostPerIp: 100_000_000,
  maxFilterCostTotal: 100_000_000,
  memoryLimitMb: 0
})
if (process.env.HOOK === 'noop') app.liveHooks.onPublish({ name: 'noop' }, () => undefined)
if (process.env.HOOK === 'scorer') await app.register(scorer)
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
process.stdout.write(`listening ${app.server.address().port}\n`)
