// The engine of a replay, configured as the arbitrage plugin configures the live one, from the
// same settings (the environment, then a replay's own overrides: "what would this threshold have
// found").
import type { EngineOptions } from '../market/arbitrage.js'
import { parseBalances, parseFees, parseLadder, parseQuoteGroups, type Config } from '../config.js'

export function engineOptions(config: Config): EngineOptions {
  return {
    minNetBps: config.minNetBps,
    maxTickAgeMs: config.maxTickAgeMs,
    updateBps: config.opportunityUpdateBps,
    // loadConfig has checked each of these against its parser.
    fees: parseFees(config.takerFees) as Record<string, number>,
    defaultFee: config.defaultTakerFee,
    sizeLadder: parseLadder(config.sizeLadder) ?? undefined,
    quoteGroups: parseQuoteGroups(config.quoteGroups) ?? undefined,
    balances: config.balances ? parseBalances(config.balances) : null
  }
}
