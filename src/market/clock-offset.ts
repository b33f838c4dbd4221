// One estimate of a venue's clock, shared by its connections' health and the engine: the smallest
// receivedAt - exchangeTime over the last 256 messages carrying exchange time (the venue's clock
// behind ours plus the fastest delivery), and the median delivery above it (docs/PROTOCOL.md).

export const CLOCK_SAMPLES = 256

export class ClockOffset {
  private readonly samples: number[] = []
  private at = 0
  /** The smallest sample in the window; null before the first. */
  offset: number | null = null

  sample(delta: number): void {
    const full = this.samples.length === CLOCK_SAMPLES
    const leaving = full ? this.samples[this.at] : null
    if (full) this.samples[this.at] = delta
    else this.samples.push(delta)
    this.at = (this.at + 1) % CLOCK_SAMPLES
    if (this.offset === null || delta <= this.offset) this.offset = delta
    // The smallest left the window: the next smallest is looked for (at most once per sample).
    else if (leaving === this.offset) this.offset = Math.min(...this.samples)
  }

  /** The median sample above the offset; null before the first. */
  latency(): number | null {
    if (this.offset === null) return null
    const sorted = this.samples.slice().sort((a, b) => a - b)
    return sorted[sorted.length >> 1] - this.offset
  }
}
