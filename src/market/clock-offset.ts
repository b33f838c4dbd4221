// One estimate of a venue's clock, shared by its connections' health and the engine: a low
// percentile of receivedAt - exchangeTime over the last 256 messages carrying exchange time (the
// venue's clock behind ours plus the fastest deliveries), and the median delivery above it
// (docs/PROTOCOL.md "Time"). One sample far below the rest (a quote stamped seconds ahead) cannot
// move it: it is rejected and counted, and the percentile is taken over the samples near the median.

export const CLOCK_SAMPLES = 256
/** The estimate is this percentile of the window's samples (those not outliers). */
export const CLOCK_PERCENTILE = 0.05
/** A sample more than this below the window's median is an outlier: not learned from, counted. */
export const CLOCK_OUTLIER_MS = 1000
/** Outliers in a row past this mean the venue's clock moved: the window starts again from them. */
const CLOCK_RESTART_AFTER = 32
/**
 * Once the window holds this many, the estimate is recomputed every this many samples (the window
 * is kept sorted as it moves, so a recompute only reads it).
 */
const CLOCK_RECOMPUTE_EVERY = 64

export class ClockOffset {
  /** The window in arrival order (a ring once full), and the same samples sorted. */
  private readonly samples: number[] = []
  private readonly sorted = new Float64Array(CLOCK_SAMPLES)
  private at = 0
  private sinceRecompute = 0
  private outliersInARow = 0
  private median: number | null = null
  /** The estimate; null before the first sample. */
  offset: number | null = null
  /** Samples rejected as outliers. */
  outliers = 0

  /** Learns from one receivedAt - exchangeTime; false when it is rejected as an outlier (counted) or not a finite number. */
  sample(delta: number): boolean {
    if (!Number.isFinite(delta)) return false // the connectors and the entry check let none through
    if (this.median !== null && delta < this.median - CLOCK_OUTLIER_MS) {
      this.outliers++
      if (++this.outliersInARow < CLOCK_RESTART_AFTER) return false
      this.samples.length = 0
      this.at = 0
    }
    this.outliersInARow = 0
    const n = this.samples.length
    if (n < CLOCK_SAMPLES) {
      this.samples.push(delta)
      this.insertSorted(delta, n)
    } else {
      this.removeSorted(this.samples[this.at], n)
      this.samples[this.at] = delta
      this.insertSorted(delta, n - 1)
    }
    this.at = (this.at + 1) % CLOCK_SAMPLES
    if (this.samples.length <= CLOCK_RECOMPUTE_EVERY || ++this.sinceRecompute >= CLOCK_RECOMPUTE_EVERY) this.recompute()
    return true
  }

  /** Puts `value` into the first `n` sorted samples, after any equal to it. */
  private insertSorted(value: number, n: number): void {
    const sorted = this.sorted
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (sorted[mid] <= value) lo = mid + 1
      else hi = mid
    }
    sorted.copyWithin(lo + 1, lo, n)
    sorted[lo] = value
  }

  /** Takes one `value` (the sample leaving the window) out of the first `n` sorted samples. */
  private removeSorted(value: number, n: number): void {
    const sorted = this.sorted
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (sorted[mid] < value) lo = mid + 1
      else hi = mid
    }
    sorted.copyWithin(lo, lo + 1, n)
  }

  private recompute(): void {
    this.sinceRecompute = 0
    const n = this.samples.length
    const sorted = this.sorted
    const median = sorted[n >> 1]
    // Samples far below the median (one kept from before the window had a median) take no part.
    let first = 0
    while (sorted[first] < median - CLOCK_OUTLIER_MS) first++
    this.median = median
    this.offset = sorted[first + Math.floor((n - 1 - first) * CLOCK_PERCENTILE)]
  }

  /** The median sample above the offset; null before the first. */
  latency(): number | null {
    if (this.offset === null || this.median === null) return null
    return this.median - this.offset
  }
}
