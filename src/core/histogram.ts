// A fixed-bucket latency histogram: recording allocates nothing. Used by hook figures and the benchmark.

/** Microsecond resolution below 1 ms, 10 µs to 10 ms, 100 µs to 1 s; larger values land in the last bucket. */
export class Histogram {
  private readonly counts = new Float64Array(1000 + 900 + 9900 + 1)
  count = 0
  sum = 0
  max = 0

  record(ms: number): void {
    const us = ms * 1000
    let i: number
    if (us < 1000) i = Math.floor(us)
    else if (us < 10_000) i = 1000 + Math.floor((us - 1000) / 10)
    else if (us < 1_000_000) i = 1900 + Math.floor((us - 10_000) / 100)
    else i = this.counts.length - 1
    this.counts[i]++
    this.count++
    this.sum += ms
    if (ms > this.max) this.max = ms
  }

  private upper(i: number): number {
    if (i < 1000) return (i + 1) / 1000
    if (i < 1900) return (1000 + (i - 999) * 10) / 1000
    return (10_000 + (i - 1899) * 100) / 1000
  }

  /** The value at or below which `p` percent of samples fall (the bucket's upper edge), in ms. */
  percentile(p: number): number {
    if (this.count === 0) return NaN
    const rank = Math.ceil((p / 100) * this.count)
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]
      if (seen >= rank) return Math.min(this.upper(i), this.max)
    }
    return this.max
  }

  /** Samples at or below each bound (ascending, in ms): Prometheus's cumulative buckets, in one pass. */
  countsUpTo(boundsMs: readonly number[]): number[] {
    const out: number[] = []
    let seen = 0
    for (let i = 0; i < this.counts.length && out.length < boundsMs.length; i++) {
      while (out.length < boundsMs.length && this.upper(i) > boundsMs[out.length] + 1e-9) out.push(seen)
      seen += this.counts[i]
    }
    while (out.length < boundsMs.length) out.push(seen)
    return out
  }

  /** What was recorded since `earlier` (a copy of this histogram taken before). */
  since(earlier: Histogram): Histogram {
    const recent = new Histogram()
    for (let i = 0; i < this.counts.length; i++) recent.counts[i] = this.counts[i] - earlier.counts[i]
    recent.count = this.count - earlier.count
    recent.sum = this.sum - earlier.sum
    recent.max = this.max // an upper bound: the window's own maximum is not kept
    return recent
  }

  copy(): Histogram {
    return this.since(EMPTY)
  }

  summary() {
    const r = (x: number) => Math.round(x * 1000) / 1000
    return { samples: this.count, p50: r(this.percentile(50)), p99: r(this.percentile(99)), p999: r(this.percentile(99.9)), max: r(this.max) }
  }
}

const EMPTY = new Histogram()
