// Identity and lifecycle of opportunities: a class's pairings matched to what is open (the same
// legs, then a shared venue, then in order), and the open, update and closed events with the
// figures only an event needs (the ladder, the profit of maxSize, what the desk can do).
import { parseSymbol } from '../instruments.js'
import type { MarketClass, Markets, Open, Source } from './markets.js'
import { minSize, type Pairing, tradable } from './search.js'
import { type ConversionCursor, DEFAULT_SIZE_LADDER, type LadderStep, type Leg, type OpportunityEvent, SIZE_CHANGE } from './types.js'
import { netBps, netPerUnit, walk } from './walk.js'

/** Open, update and closed events of a class against what it has open. */
export function publish(m: Markets, market: MarketClass, pairings: Pairing[], now: number, events: OpportunityEvent[] | null): OpportunityEvent[] | null {
  const open = market.open
  if (pairings.length === 0 && open.length === 0) return events
  const matched = new Array<Open | null>(pairings.length).fill(null)
  const taken = new Set<Open>()
  // Identity: the same legs first, then a shared venue (the dislocation moved), then in order.
  const rules: ((o: Open, p: Pairing) => boolean)[] = [
    (o, p) => o.last.buy.exchange === p.buy.exchange && o.last.sell.exchange === p.sell.exchange,
    (o, p) => o.last.buy.exchange === p.buy.exchange || o.last.sell.exchange === p.sell.exchange,
    () => true
  ]
  for (const rule of rules)
    for (let k = 0; k < pairings.length; k++) {
      if (matched[k] !== null) continue
      const o = open.find((x) => !taken.has(x) && rule(x, pairings[k]))
      if (o !== undefined) {
        matched[k] = o
        taken.add(o)
      }
    }
  const next: Open[] = []
  for (const o of open) {
    if (taken.has(o)) continue
    const closed: OpportunityEvent = { ...o.last, status: 'closed', detectedAt: now, lifetimeMs: now - o.openedAt, reason: reason(m, o.last, now) }
    m.counters.closed++
    events = push(events, closed)
  }
  for (let k = 0; k < pairings.length; k++) {
    const p = pairings[k]
    const o = matched[k]
    if (o === null) {
      const id = `${market.key}:${m.options.idPrefix ?? ''}${(m.nextId++).toString(36)}`
      const event = opportunity(m, market, p, id, 'open', now)
      next.push({ id, openedAt: now, last: event })
      m.counters.opened++
      events = push(events, event)
      continue
    }
    next.push(o)
    const material =
      o.last.buy.exchange !== p.buy.exchange ||
      o.last.sell.exchange !== p.sell.exchange ||
      o.last.buy.symbol !== p.buy.symbol ||
      o.last.sell.symbol !== p.sell.symbol ||
      Math.abs(netBps(p.buyTop[0], p.sellTop[0], p.buy.fee, p.sell.fee, p.rate) - o.last.netBps) >= m.options.updateBps ||
      Math.abs(p.maxSize - o.last.maxSize) > SIZE_CHANGE * o.last.maxSize
    if (!material) continue
    o.last = opportunity(m, market, p, o.id, 'update', now)
    m.counters.updated++
    events = push(events, o.last)
  }
  market.open = next
  if (next.some((o) => o.last.conversion !== null)) m.converting.add(market)
  else m.converting.delete(market)
  return events
}

/** Why an opportunity no search found again ended. */
function reason(m: Markets, last: OpportunityEvent, now: number): NonNullable<OpportunityEvent['reason']> {
  const legs = [m.instruments.get(last.buy.symbol)?.byExchange.get(last.buy.exchange), m.instruments.get(last.sell.symbol)?.byExchange.get(last.sell.exchange)]
  if (legs.some((s) => s !== undefined && m.gated(s.venue, now))) return 'venue'
  if (legs.some((s) => s !== undefined && m.bookOut(s))) return 'book'
  if (legs.some((s) => s === undefined || !s.valid)) return 'invalid'
  if (legs.some((s) => s !== undefined && !m.fresh(s, now))) return 'stale'
  return 'spread'
}

/** SIZE_LADDER: net bps and profit of buying each notional (buy quote currency) and selling it across. */
function ladder(m: Markets, p: Pairing): LadderStep[] {
  const steps: LadderStep[] = []
  const minimum = minSize(p)
  for (const notional of m.options.sizeLadder ?? DEFAULT_SIZE_LADDER) {
    const w = walk(p, { ...p.start }, conversionAtStart(p), { minNetBps: Number.NEGATIVE_INFINITY, size: Number.POSITIVE_INFINITY, notional, dust: 1e-12 })
    const netBps = w.spent > 0 ? (w.profit / w.spent) * 1e4 : 0
    steps.push({ notional, filled: w.spent, size: w.size, netBps, profit: w.profit, belowMinSize: w.size < minimum })
  }
  return steps
}

/** The pairing's conversion ladder where it stood when the pairing's walk began (a copy: the figures walk from there). */
function conversionAtStart(p: Pairing): ConversionCursor | null {
  const c = p.conversion
  return c === null ? null : { levels: c.cursor.levels, mid: c.cursor.mid, k: c.k, left: c.left }
}

function leg(s: Source, top: [number, number], now: number): Leg {
  const offset = s.venue.clock.offset
  return {
    exchange: s.exchange,
    symbol: s.symbol,
    price: top[0],
    size: top[1],
    ts: s.exchangeTime,
    receivedAt: s.receivedAt,
    receiveAgeMs: now - s.receivedAt,
    exchangeAgeMs: s.exchangeTime === null ? null : now - s.exchangeTime - (offset ?? 0),
    clockOffsetMs: offset,
    fee: s.fee
  }
}

function opportunity(m: Markets, market: MarketClass, p: Pairing, id: string, status: OpportunityEvent['status'], now: number): OpportunityEvent {
  const [a, aSize] = p.buyTop
  const [b, bSize] = p.sellTop
  const size = Math.min(aSize, bSize)
  const unit = netPerUnit(a, b, p.buy.fee, p.sell.fee, p.rate)
  // Figures only an event needs, computed for it alone (most evaluations publish nothing): maxSize's
  // profit and what its proceeds convert at, walked from the pairing's start.
  const max = walk(p, { ...p.start }, conversionAtStart(p), {
    minNetBps: Number.NEGATIVE_INFINITY,
    size: p.maxSize,
    notional: Number.POSITIVE_INFINITY,
    dust: 0
  })
  const event: OpportunityEvent = {
    id,
    status,
    symbol: market.key,
    buy: leg(p.buy, p.buyTop, now),
    sell: leg(p.sell, p.sellTop, now),
    currency: p.buy.quote || market.key,
    size,
    grossBps: ((b * p.midRate - a) / a) * 1e4,
    netBps: (unit / a) * 1e4,
    profit: size * unit,
    maxSize: p.maxSize,
    maxProfit: max.profit,
    ladder: ladder(m, p),
    conversion:
      p.conversion === null
        ? null
        : {
            rate: max.converted > 0 ? max.convertedTo / max.converted : p.rate,
            midRate: p.midRate,
            levels: max.conversionLevels,
            via: p.conversion.cursor.levels[p.conversion.k].via
          },
    detectedAt: now,
    maxTickAgeMs: Math.max(now - p.buy.receivedAt, now - p.sell.receivedAt)
  }
  const balances = m.options.balances
  if (balances) {
    // What the quote held on the buy exchange buys on the buy leg's levels, fees in (a notional of
    // held / (1 + fee)), capped by maxSize and the base held on the sell exchange.
    const base = parseSymbol(p.sell.symbol)?.base ?? ''
    const quoteHeld = balances[p.buy.exchange]?.[p.buy.quote] ?? 0
    const baseHeld = balances[p.sell.exchange]?.[base] ?? 0
    const limits = { minNetBps: Number.NEGATIVE_INFINITY, size: Math.min(p.maxSize, baseHeld), notional: quoteHeld / (1 + p.buy.fee), dust: 0 }
    const lots = tradable(p, walk(p, { ...p.start }, conversionAtStart(p), limits).size)
    event.actionable = lots > 0
    event.actionableSize = lots
  }
  return event
}

const push = (events: OpportunityEvent[] | null, e: OpportunityEvent) => {
  if (events === null) return [e]
  events.push(e)
  return events
}
