// Counts per key (connections per address, subscriptions per pattern): a key whose count falls
// to zero is forgotten, so the map holds only keys in use.

export class Tally<K> {
  private readonly counts = new Map<K, number>()

  /** Adds `n` (negative to take away) and returns the new count. */
  add(key: K, n: number): number {
    const count = (this.counts.get(key) ?? 0) + n
    if (count > 0) this.counts.set(key, count)
    else this.counts.delete(key)
    return Math.max(count, 0)
  }

  get(key: K): number {
    return this.counts.get(key) ?? 0
  }

  has(key: K): boolean {
    return this.counts.has(key)
  }

  keys(): IterableIterator<K> {
    return this.counts.keys()
  }

  get size(): number {
    return this.counts.size
  }
}
