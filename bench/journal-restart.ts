// bench/journal.ts's restart measurement, each half in its own process.
//   fill <dir> <topics> <events>: journals topics x events through the bus (1,000 publishes a turn).
//   load <dir> <topics> <events> <spawnedAt>: loads the journal and answers a `since` of the oldest
//   event held; prints the time from spawnedAt (the parent's clock, before the process started).
import { Journal } from '../src/core/journal.ts'
import { JournaledBus } from '../src/core/journaled-bus.ts'

const [mode, dir, topicsArg, eventsArg, spawnedAt] = process.argv.slice(2)
const topics = Number(topicsArg)
const events = Number(eventsArg)
// Everything held: history of every event, and room for it in memory.
const options = { historySize: events, historyTtl: 86_400_000, maxTopics: topics, busMemoryBytes: 4096 * 1024 * 1024 }
const bus = new JournaledBus(options, new Journal(dir, 'no'))

if (mode === 'fill') {
  bus.restore()
  const started = performance.now()
  let pending: Promise<unknown> = Promise.resolve()
  for (let e = 1; e <= events; e++) {
    for (let t = 0; t < topics; t++) {
      pending = bus.publish(`ticker.venue.SYM${t}`, { bid: 64123.5 + e, ask: 64124 + e, ts: 1_796_000_000_000 + e })
      if (t % 1000 === 999) await pending
    }
  }
  await pending
  bus.close()
  console.log(`filled ${topics} topics x ${events} events in ${((performance.now() - started) / 1000).toFixed(1)} s`)
} else {
  const loadStarted = performance.now()
  const report = bus.restore()
  const loaded = performance.now() - loadStarted
  const last = bus.last('ticker.venue.SYM0')!
  const replay = bus.since('ticker.venue.SYM0', { epoch: last.epoch, seq: 0 })
  if (replay === null || [...replay].length !== events) throw new Error('not recovered')
  const total = Date.now() - Number(spawnedAt)
  console.log(
    `restart of ${report.topics} topics x ${events} events (${report.records} records): loaded in ${(loaded / 1000).toFixed(1)} s, process start to a recovered since in ${(total / 1000).toFixed(1)} s`
  )
  bus.close()
}
