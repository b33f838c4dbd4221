// `realtime replay DIR`: a recording through the connectors and the engine, offline, every
// opportunity event printed (a backtest on the command line). Engine settings come from the
// environment as for the server (MIN_NET_BPS=20 realtime replay DIR: what that threshold finds).
import { writeFileSync } from 'node:fs'
import { loadConfig, type Config } from './config.js'
import type { OpportunityEvent } from './market/arbitrage.js'
import { replay, type ReplaySink } from './record/replay.js'
import type { Damage } from './record/reader.js'
import type { BusEvent } from './core/protocol.js'
import { csv, Report } from './record/report.js'
import { engineOptions } from './market/settings.js'
import { APP_VERSION } from './record/version.js'

export interface ReplayCommand {
  dir: string
  from?: string
  to?: string
  speed?: string
  json: boolean
  report?: string
  /** Through the server's own plugins (publish hooks, models, the scorer), as REPLAY_DIR serves it, without listening. */
  hooks?: boolean
  env: Record<string, string | undefined>
  out(line: string): void
  warn(line: string): void
}

export class ReplayUsageError extends Error {}

/** A time on the command line: ISO 8601 or epoch milliseconds. */
function parseTime(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text)
  if (!Number.isFinite(ms)) throw new ReplayUsageError(`--${flag} must be an ISO 8601 time or epoch milliseconds, got "${text}"`)
  return ms
}

function parseSpeed(text: string | undefined): number | 'max' {
  if (text === undefined || text === 'max') return 'max'
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0) throw new ReplayUsageError(`--speed must be max or a positive number, got "${text}"`)
  return n
}

export async function replayCommand(c: ReplayCommand): Promise<void> {
  const speed = parseSpeed(c.speed)
  const from = parseTime('from', c.from)
  const to = parseTime('to', c.to)
  const config = loadConfig(c.env)
  const report = new Report()
  const sink = {
    event(topic: string, data: unknown, time: number) {
      const e = data as OpportunityEvent
      report.add(e)
      if (c.json) c.out(JSON.stringify({ topic, data }))
      else
        c.out(
          `${new Date(time).toISOString()} ${e.status.padEnd(6)} ${e.id} buy ${e.buy.exchange}:${e.buy.symbol} @${e.buy.price} sell ${e.sell.exchange}:${e.sell.symbol} @${e.sell.price} net ${e.netBps.toFixed(2)} bps maxSize ${e.maxSize} maxProfit ${e.maxProfit.toFixed(4)} ${e.currency}${e.reason ? ` (${e.reason})` : ''}`
        )
    }
  }
  const onDamage = (d: Damage) => c.warn(`${d.file}: damaged at offset ${d.offset}: ${d.reason} (skipped, the rest replays)`)
  let result: { records: number; frames: number; opportunities: number; damage: unknown[]; diverged: number }
  if (c.hooks) result = await throughServer(c.dir, { speed, from, to }, config, sink)
  else result = await replay({ dir: c.dir, app: APP_VERSION, from, to, speed, engine: engineOptions(config), onDamage, sink })
  if (c.report !== undefined) {
    if (c.report.endsWith('.json'))
      writeFileSync(c.report, `${JSON.stringify({ opportunities: report.opportunities(), classes: report.classes() }, null, 2)}\n`)
    else {
      writeFileSync(c.report, csv(report.opportunities()))
      writeFileSync(c.report.replace(/(\.csv)?$/, '-classes.csv'), csv(report.classes()))
    }
  }
  c.warn(
    `replayed ${c.hooks ? '' : `${result.records} records (${result.frames} venue frames), `}${result.opportunities} opportunity events${result.damage.length ? `, ${result.damage.length} damaged blocks skipped` : ''}${result.diverged ? `, ${result.diverged} engine inputs not found again` : ''}`
  )
}

/** REPLAY_SPEED's largest: as fast as it goes. */
const MAX_SPEED = 1_000_000

/**
 * The recording served by the server's own plugins (REPLAY_DIR, not listening), so the publish hooks
 * and models it is configured with (HOOKS, MODELS, the scorer) add their fields, as live.
 */
async function throughServer(dir: string, span: { speed: number | 'max'; from?: number; to?: number }, config: Config, sink: ReplaySink) {
  const { buildApp } = await import('./app.js')
  const { speed, from, to } = span
  const app = await buildApp(
    { ...config, replayDir: dir, replaySpeed: speed === 'max' ? MAX_SPEED : speed, replayLoop: false, demo: '' },
    { replaySpan: { from, to } }
  )
  let opportunities = 0
  app.live.subscribe('opportunities.>', (e: BusEvent) => {
    opportunities++
    sink.event(e.topic, e.data, (e.data as OpportunityEvent).detectedAt)
  })
  await app.ready()
  await app.liveReplay.firstPass
  const stopped = app.liveReplay.stopped
  if (stopped !== null) {
    await app.close()
    throw stopped // as offline: a recording of another format, a span outside the recording
  }
  // Opportunities still in the publish hooks (a model's answer) are waited for, while they come.
  const { records, frames, damaged, diverged } = app.liveReplay.counters
  const expected = () => app.liveReplay.counters.opportunities - app.liveReplay.counters.publishFailures
  for (let seen = opportunities, since = Date.now(); opportunities < expected() && Date.now() - since <= config.hookBudget + 1000; ) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    if (opportunities !== seen) {
      seen = opportunities
      since = Date.now()
    }
  }
  await app.close()
  return { records, frames, opportunities, damage: Array.from({ length: damaged }), diverged }
}
