// `realtime replay DIR`: a recording through the connectors and the engine, offline, every
// opportunity event printed (a backtest on the command line). Engine settings come from the
// environment as for the server (MIN_NET_BPS=20 realtime replay DIR: what that threshold finds).
import { writeFileSync } from 'node:fs'
import { loadConfig } from '../config.js'
import type { OpportunityEvent } from '../market/arbitrage.js'
import { replay } from './replay.js'
import { csv, Report } from './report.js'
import { engineOptions } from '../market/settings.js'
import { APP_VERSION } from './version.js'

export interface ReplayCommand {
  dir: string
  from?: string
  to?: string
  speed?: string
  json: boolean
  report?: string
  env: Record<string, string | undefined>
  out(line: string): void
  warn(line: string): void
}

export class ReplayUsageError extends Error {}

/** A time on the command line: ISO 8601 or epoch milliseconds. */
export function parseTime(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text)
  if (!Number.isFinite(ms)) throw new ReplayUsageError(`--${flag} must be an ISO 8601 time or epoch milliseconds, got "${text}"`)
  return ms
}

export function parseSpeed(text: string | undefined): number | 'max' {
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
  const result = await replay({
    dir: c.dir,
    app: APP_VERSION,
    from,
    to,
    speed,
    engine: engineOptions(config),
    onDamage: (d) => c.warn(`${d.file}: damaged at offset ${d.offset}: ${d.reason} (skipped, the rest replays)`),
    sink: {
      event(topic, data, time) {
        const e = data as OpportunityEvent
        report.add(e)
        if (c.json) c.out(JSON.stringify({ topic, data }))
        else
          c.out(
            `${new Date(time).toISOString()} ${e.status.padEnd(6)} ${e.id} buy ${e.buy.exchange}:${e.buy.symbol} @${e.buy.price} sell ${e.sell.exchange}:${e.sell.symbol} @${e.sell.price} net ${e.netBps.toFixed(2)} bps maxSize ${e.maxSize} maxProfit ${e.maxProfit.toFixed(4)} ${e.currency}${e.reason ? ` (${e.reason})` : ''}`
          )
      }
    }
  })
  if (c.report !== undefined) {
    if (c.report.endsWith('.json'))
      writeFileSync(c.report, `${JSON.stringify({ opportunities: report.opportunities(), classes: report.classes() }, null, 2)}\n`)
    else {
      writeFileSync(c.report, csv(report.opportunities()))
      writeFileSync(c.report.replace(/(\.csv)?$/, '-classes.csv'), csv(report.classes()))
    }
  }
  c.warn(
    `replayed ${result.records} records (${result.frames} venue frames), ${result.opportunities} opportunity events${result.damage.length ? `, ${result.damage.length} damaged blocks skipped` : ''}${result.diverged ? `, ${result.diverged} engine inputs not found again` : ''}`
  )
}
