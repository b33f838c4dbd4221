// `realtime replay --report FILE`: what a backtest reads, one row per opportunity (lifetime, best
// net, max size, max profit, how it closed) and one per class, as JSON or CSV.
import type { OpportunityEvent } from '../market/arbitrage.js'

export interface OpportunityRow {
  id: string
  class: string
  buyExchange: string
  buySymbol: string
  sellExchange: string
  sellSymbol: string
  openedAt: number
  closedAt: number | null
  lifetimeMs: number | null
  updates: number
  bestNetBps: number
  maxSize: number
  maxProfit: number
  currency: string
  closeReason: string | null
}

export interface ClassRow {
  class: string
  opportunities: number
  closed: number
  meanLifetimeMs: number | null
  bestNetBps: number
  maxProfit: number
  totalMaxProfit: number
}

export class Report {
  private readonly rows = new Map<string, OpportunityRow>()

  add(e: OpportunityEvent): void {
    let row = this.rows.get(e.id)
    if (row === undefined) {
      row = {
        id: e.id,
        class: e.symbol,
        buyExchange: e.buy.exchange,
        buySymbol: e.buy.symbol,
        sellExchange: e.sell.exchange,
        sellSymbol: e.sell.symbol,
        openedAt: e.detectedAt,
        closedAt: null,
        lifetimeMs: null,
        updates: 0,
        bestNetBps: e.netBps,
        maxSize: e.maxSize,
        maxProfit: e.maxProfit,
        currency: e.currency,
        closeReason: null
      }
      this.rows.set(e.id, row)
    }
    if (e.status === 'update') row.updates++
    if (e.status === 'closed') {
      row.closedAt = e.detectedAt
      row.lifetimeMs = e.lifetimeMs ?? e.detectedAt - row.openedAt
      row.closeReason = e.reason ?? null
      return
    }
    row.bestNetBps = Math.max(row.bestNetBps, e.netBps)
    row.maxSize = Math.max(row.maxSize, e.maxSize)
    row.maxProfit = Math.max(row.maxProfit, e.maxProfit)
  }

  opportunities(): OpportunityRow[] {
    return [...this.rows.values()]
  }

  classes(): ClassRow[] {
    const out = new Map<string, ClassRow & { lifetimes: number }>()
    for (const r of this.rows.values()) {
      let c = out.get(r.class)
      if (c === undefined) {
        c = {
          class: r.class,
          opportunities: 0,
          closed: 0,
          meanLifetimeMs: null,
          bestNetBps: r.bestNetBps,
          maxProfit: r.maxProfit,
          totalMaxProfit: 0,
          lifetimes: 0
        }
        out.set(r.class, c)
      }
      c.opportunities++
      c.bestNetBps = Math.max(c.bestNetBps, r.bestNetBps)
      c.maxProfit = Math.max(c.maxProfit, r.maxProfit)
      c.totalMaxProfit += r.maxProfit
      if (r.lifetimeMs !== null) {
        c.closed++
        c.lifetimes += r.lifetimeMs
      }
    }
    return [...out.values()].map(({ lifetimes, ...c }) => ({ ...c, meanLifetimeMs: c.closed > 0 ? lifetimes / c.closed : null }))
  }
}

/** RFC 4180 CSV of rows with the same keys. */
export function csv(rows: object[]): string {
  if (rows.length === 0) return ''
  const keys = Object.keys(rows[0])
  const cell = (v: unknown) => {
    const text = v === null || v === undefined ? '' : String(v)
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
  }
  return `${[keys.join(','), ...rows.map((r) => keys.map((k) => cell((r as Record<string, unknown>)[k])).join(','))].join('\n')}\n`
}
