// The book and ticker events a replay holds for the engine's recorded markers (replay.ts): the live
// engine was given them in this order, each when its marker says, and a marker names only its topic.

export interface WaitingInput {
  topic: string
  data: unknown
}

/**
 * Inputs oldest first, found by topic without a scan: a marker takes the oldest input of its topic,
 * and every input older than that one (of any topic) is one the live engine never got: dropped and
 * counted as divergence. At most `limit` wait; past it the oldest goes, counted too. Each input is
 * put in, taken or dropped once, whatever a recording holds.
 */
export class WaitingInputs {
  /** Every input held, oldest first. */
  private readonly order: WaitingInput[] = []
  /** The same inputs by topic, each list oldest first: the oldest of all is first in its topic's. */
  private readonly byTopic = new Map<string, WaitingInput[]>()
  /** Times inputs were dropped: one for each that went past `limit`, one for each take that skipped older ones. */
  diverged = 0

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.order.length
  }

  push(topic: string, data: unknown): void {
    const input = { topic, data }
    this.order.push(input)
    const list = this.byTopic.get(topic)
    if (list === undefined) this.byTopic.set(topic, [input])
    else list.push(input)
    if (this.order.length > this.limit) {
      this.dropOldest()
      this.diverged++
    }
  }

  /** The oldest input of `topic`, the older ones of other topics dropped; undefined when none of it waits. */
  take(topic: string): WaitingInput | undefined {
    const list = this.byTopic.get(topic)
    if (list === undefined || list.length === 0) return undefined
    const input = list[0]
    if (this.order[0] !== input) {
      while (this.order[0] !== input) this.dropOldest()
      this.diverged++
    }
    this.dropOldest()
    return input
  }

  private dropOldest(): void {
    const oldest = this.order.shift() as WaitingInput
    const list = this.byTopic.get(oldest.topic) as WaitingInput[]
    list.shift()
    // A topic's empty list stays for its next input (most are taken at once), up to `limit` topics.
    if (list.length === 0 && this.byTopic.size > this.limit) this.byTopic.delete(oldest.topic)
  }
}
