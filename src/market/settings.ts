// The market's settings: the options of the arbitrage plugin, the demo feed and FEEDS, each a TypeBox schema
// (validation, defaults, types and the help the README's table shows), and the parsers of the
// settings with a syntax of their own. config.ts reads them from the environment with the rest
// and hands each plugin its part.
import { type Static, type TObject, type TSchema, Type } from '@sinclair/typebox'
import { Int, Num } from '../shared/schema.js'
import { Value } from '@sinclair/typebox/value'
import type { Endpoints } from './connection.js'
import { DEFAULT_QUOTE_GROUPS, DEFAULT_SIZE_LADDER, type EngineOptions } from './engine/types.js'
import { EXCHANGES, type Exchange } from './venues/index.js'

/** The arbitrage plugin's options (ARBITRAGE itself says whether it runs). */
export const ArbitrageSettings = Type.Object({
  minNetBps: Num(5, -10_000, 10_000, 'net spread in bps at which an opportunity opens'),
  maxTickAgeMs: Int(1000, 1, 3_600_000, 'quotes older than this (by exchange time) never make an opportunity'),
  opportunityUpdateBps: Num(1, 0, 10_000, 'net bps change that makes an open opportunity worth an update (or a 25% size change)'),
  takerFees: Type.String({
    default: '',
    syntax: 'fees',
    description: 'taker fee per exchange, or per exchange and instrument kind, as a fraction, e.g. binance:spot=0.001,binance:perp=0.0004,coinbase=0.006'
  }),
  sizeLadder: Type.String({
    default: DEFAULT_SIZE_LADDER.join(','),
    syntax: 'ladder',
    description: "buy notionals (in the buy leg's quote currency) at which every opportunity gives net bps and profit from the books"
  }),
  quoteGroups: Type.String({
    default: DEFAULT_QUOTE_GROUPS.map((group) => group.join(',')).join(';'),
    syntax: 'quoteGroups',
    description:
      'quote currencies whose spot books of one base are compared through live conversion books; the first of a group is its reference; none: every symbol alone'
  }),
  balances: Type.String({
    default: '',
    syntax: 'balances',
    description:
      'what the desk holds per exchange and currency, e.g. binance:USDT=50000,BTC=1;coinbase:USD=20000: marks opportunities actionable; empty: not marked'
  }),
  defaultTakerFee: Num(0.001, 0, 0.1, 'taker fee (fraction) for exchanges not in TAKER_FEES')
})
export type ArbitrageSettings = Static<typeof ArbitrageSettings>

/** The synthetic feed published in process (DEMO_FEED itself says whether it runs). */
export const DemoFeedSettings = Type.Object({
  demoFeedRate: Int(200, 1, 1_000_000, 'synthetic ticks per second'),
  demoFeedSeed: Int(1, 0, 2 ** 31 - 1, 'seed of the synthetic feed (same seed, same ticks)')
})
export type DemoFeedSettings = Static<typeof DemoFeedSettings>

/** FEEDS: the venues' connectors, in the server or the feeds process. */
export const FeedsSettings = Type.Object({
  feeds: Type.String({
    default: '',
    syntax: 'feeds',
    description: 'exchange connectors and their instruments, e.g. binance:BTC-USDT,ETH-USDT;okx:BTC-USDT-PERP (README "Market data"); empty: none'
  }),
  feedsEndpoints: Type.String({
    default: '',
    syntax: 'endpoints',
    description: 'where venues are, when not at their public addresses: exchange=wsURL,restURL;... (a mock, a proxy, a testnet)'
  }),
  feedsMetadata: Type.String({
    default: '',
    description: "directory of saved instrument metadata, <dir>/<exchange>/*.json (the venues' own answers); empty: read it from each venue at start-up"
  }),
  bookDepth: Int(20, 1, 1000, 'levels per side in book.<exchange>.<symbol> events'),
  venueBufferMb: Int(
    16,
    1,
    1024,
    "MiB one venue connection may hold in diffs kept for books waiting for their snapshot, and the largest depth snapshot read; past it the book resyncs (or the snapshot is refused), counted in the venue's overflows"
  ),
  venueMetadataMb: Int(32, 1, 4096, "MiB of one venue's instrument list read at start-up; a larger one stops start-up naming the venue")
})
export type FeedsSettings = Static<typeof FeedsSettings>

/**
 * A plugin's options checked against its schema, an option left out at its default: what the
 * plugin runs with (and nothing else). Throws naming the first bad option and what it accepts.
 */
export function checkSettings<T extends TObject>(plugin: string, schema: T, options: object): Static<T> {
  const out: Record<string, unknown> = {}
  for (const [key, property] of Object.entries(schema.properties) as [string, TSchema][]) {
    const value = (options as Record<string, unknown>)[key] ?? property.default
    const syntax = property.syntax === undefined ? undefined : MARKET_SYNTAX[property.syntax as keyof typeof MARKET_SYNTAX]
    if (!Value.Check(property, value) || (syntax !== undefined && syntax.parse(value as string) === null))
      throw new Error(
        `${plugin}: option ${key} ${JSON.stringify(value)} is not valid; expected ${syntax?.accepts ?? JSON.stringify(property)} (README "Configuration")`
      )
    out[key] = value
  }
  return out as Static<T>
}

/** The engine's options from the arbitrage settings (checked: their syntaxes parse). */
export function engineOptions(settings: ArbitrageSettings): EngineOptions {
  return {
    minNetBps: settings.minNetBps,
    maxTickAgeMs: settings.maxTickAgeMs,
    updateBps: settings.opportunityUpdateBps,
    fees: parseFees(settings.takerFees) as Record<string, number>,
    defaultFee: settings.defaultTakerFee,
    sizeLadder: parseLadder(settings.sizeLadder) as number[],
    quoteGroups: parseQuoteGroups(settings.quoteGroups) as string[][],
    balances: settings.balances ? parseBalances(settings.balances) : null
  }
}

/** The market settings with a syntax of their own: their parser (null when malformed) and what they accept. */
export const MARKET_SYNTAX = {
  feeds: {
    parse: parseFeeds,
    accepts: `exchange:SYMBOL,SYMBOL;... with exchanges ${EXCHANGES.join(', ')} and topic symbols such as BTC-USDT or BTC-USDT-PERP`
  },
  endpoints: { parse: parseEndpoints, accepts: 'exchange=ws(s)://...,http(s)://... separated by semicolons' },
  fees: { parse: parseFees, accepts: 'exchange=fraction or exchange:kind=fraction (kind spot, perp, future) separated by commas' },
  ladder: { parse: parseLadder, accepts: 'up to 10 positive numbers separated by commas' },
  quoteGroups: { parse: parseQuoteGroups, accepts: 'none, or currency codes separated by commas, groups separated by semicolons, each currency in one group' },
  balances: { parse: parseBalances, accepts: 'exchange:CURRENCY=amount,CURRENCY=amount;... with amounts of 0 or more' }
}

const SYMBOL = /^[A-Z0-9]+(-[A-Z0-9]+){1,3}$/

/** The non-empty parts of a list setting, trimmed. */
const list = (text: string, separator: string) =>
  text
    .split(separator)
    .map((p) => p.trim())
    .filter(Boolean)

/** FEEDS: `binance:BTC-USDT,ETH-USDT;okx:BTC-USDT-PERP`; null when malformed. */
export function parseFeeds(text: string): Map<Exchange, string[]> | null {
  const feeds = new Map<Exchange, string[]>()
  for (const part of list(text, ';')) {
    const [exchange, symbolList, extra] = part.split(':')
    if (extra !== undefined || !(EXCHANGES as readonly string[]).includes(exchange.trim())) return null
    const symbols = list(symbolList ?? '', ',')
    if (symbols.length === 0 || !symbols.every((s) => SYMBOL.test(s))) return null
    const known = feeds.get(exchange.trim() as Exchange) ?? []
    feeds.set(exchange.trim() as Exchange, [...new Set([...known, ...symbols])])
  }
  return feeds
}

/** FEEDS_ENDPOINTS: `binance=wss://host,https://host;okx=...`; null when malformed. */
export function parseEndpoints(text: string): Partial<Record<Exchange, Endpoints>> | null {
  const out: Partial<Record<Exchange, Endpoints>> = {}
  for (const part of list(text, ';')) {
    const m = /^([a-z]+)=(wss?:\/\/[^,\s]+),(https?:\/\/[^,\s]+)$/.exec(part)
    if (m === null || !(EXCHANGES as readonly string[]).includes(m[1])) return null
    out[m[1] as Exchange] = { ws: m[2].replace(/\/$/, ''), rest: m[3].replace(/\/$/, '') }
  }
  return out
}

/** TAKER_FEES: `exchange=fraction` or `exchange:kind=fraction`, comma-separated; null when malformed or a fee is outside 0..0.1. */
export function parseFees(text: string): Record<string, number> | null {
  const fees: Record<string, number> = {}
  for (const part of list(text, ',')) {
    const m = /^([A-Za-z0-9_-]+(:(spot|perp|future))?)=(\d+(\.\d+)?)$/.exec(part)
    if (m === null || Number(m[4]) > 0.1) return null
    fees[m[1]] = Number(m[4])
  }
  return fees
}

/** SIZE_LADDER: up to 10 positive notionals, ascending. */
export function parseLadder(text: string): number[] | null {
  const steps = list(text, ',').map(Number)
  if (steps.length > 10 || !steps.every((n) => Number.isFinite(n) && n > 0)) return null
  return steps.sort((a, b) => a - b)
}

/** QUOTE_GROUPS: `USD,USDT,USDC;EUR,EURC`, each currency in one group of two or more; `none`. */
export function parseQuoteGroups(text: string): string[][] | null {
  if (text.trim() === 'none') return []
  const groups = list(text, ';').map((g) => list(g, ','))
  const all = groups.flat()
  if (new Set(all).size !== all.length || !groups.every((g) => g.length >= 2 && g.every((c) => /^[A-Z0-9]{1,20}$/.test(c)))) return null
  return groups
}

/** BALANCES: `binance:USDT=50000,BTC=1;coinbase:USD=20000` as exchange → currency → amount. */
export function parseBalances(text: string): Record<string, Record<string, number>> | null {
  const balances: Record<string, Record<string, number>> = {}
  for (const part of list(text, ';')) {
    const [exchange, holdings, extra] = part.split(':')
    if (extra !== undefined || !/^[A-Za-z0-9_-]+$/.test(exchange.trim()) || holdings === undefined) return null
    const held: Record<string, number> = {}
    for (const h of list(holdings, ',')) {
      const m = /^([A-Z0-9]{1,20})=(\d+(\.\d+)?)$/.exec(h)
      if (m === null) return null
      held[m[1]] = Number(m[2])
    }
    balances[exchange.trim()] = held
  }
  return balances
}
