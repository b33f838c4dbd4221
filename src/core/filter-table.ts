// The distinct filters subscriptions hold (docs/PROTOCOL.md "Filters"): each compiled once and
// evaluated at most once per event, however many subscriptions share it, and what they cost per
// event charged to budgets: the connection's (checked by the connection), its address's and the
// server's. A publish then costs at most MAX_FILTER_COST_TOTAL field reads of filter evaluation.
import type { Filter } from '../shared/filter.js'
import { Tally } from './tally.js'

export interface FilterLimits {
  /** Field reads per event the distinct filters of one connection may cost. */
  maxFilterCost: number
  /** The same for all connections of one client address. */
  maxFilterCostPerIp: number
  /** The same for all distinct filters of the server. */
  maxFilterCostTotal: number
}

/** A filter as the hub holds it: shared by every subscription with its canonical text. */
export interface HeldFilter extends Filter {
  /** Connections holding it. */
  holders: number
  /** The event it was last evaluated for (FilterTable's count), and what it said. */
  evaluatedFor: number
  passed: boolean
}

export class FilterTable {
  private readonly held = new Map<string, HeldFilter>()
  private readonly perAddress = new Tally<string>()
  /** What the distinct filters cost together, in field reads per event. */
  private total = 0
  private event = 0
  /** Filter evaluations since start (for tests and benchmarks). */
  evaluations = 0

  constructor(private readonly limits: FilterLimits) {}

  /** Why a connection from `address` may not start holding `filter`, or null when it may. */
  refusal(address: string | undefined, filter: Filter): string | null {
    const { maxFilterCostPerIp, maxFilterCostTotal } = this.limits
    if (!this.held.has(filter.key) && this.total + filter.cost > maxFilterCostTotal) {
      return `the server's filters cost their maximum of ${maxFilterCostTotal} field reads per event`
    }
    if (this.perAddress.get(address ?? '') + filter.cost > maxFilterCostPerIp) {
      return `this address's filters cost their maximum of ${maxFilterCostPerIp} field reads per event`
    }
    return null
  }

  /** A connection from `address` starts holding `filter`: the shared, compiled one is returned. */
  hold(address: string | undefined, filter: Filter): HeldFilter {
    let held = this.held.get(filter.key)
    if (held === undefined) {
      held = { key: filter.key, test: filter.test, cost: filter.cost, holders: 0, evaluatedFor: 0, passed: false }
      this.held.set(filter.key, held)
      this.total += filter.cost
    }
    held.holders++
    this.perAddress.add(address ?? '', filter.cost)
    return held
  }

  release(address: string | undefined, filter: HeldFilter): void {
    this.perAddress.add(address ?? '', -filter.cost)
    if (--filter.holders > 0) return
    this.held.delete(filter.key)
    this.total -= filter.cost
  }

  /** A new event is being delivered: every filter is evaluated for it again. */
  nextEvent(): void {
    this.event++
  }

  /** Whether the current event's data passes `filter`, evaluated once per event. */
  passes(filter: HeldFilter, data: unknown): boolean {
    if (filter.evaluatedFor !== this.event) {
      filter.evaluatedFor = this.event
      filter.passed = filter.test(data)
      this.evaluations++
    }
    return filter.passed
  }

  /** Distinct filters held and their cost per event (for tests and /metrics). */
  get size(): { filters: number; cost: number } {
    return { filters: this.held.size, cost: this.total }
  }
}
