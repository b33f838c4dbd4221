// REPLAY_DIR: a recording served over the protocol as if it were live. Its frames go through the
// connectors, its client publishes and the engine's recorded inputs to the server's own engine,
// and everything is published through the hub: clients, the SDK, the CLI and the dashboard get
// topics, seqs and recovery as live, the publish hooks and models run, and the data carries the
// recording's times (moved to now when it loops: REPLAY_LOOP, the demo).
import fp from 'fastify-plugin'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync } from 'fastify'
import { readRecording } from '../record/reader.js'
import { replay, type EngineCalls } from '../record/replay.js'
import { APP_VERSION } from '../record/version.js'
import { ReplaySettings } from '../record/settings.js'
import { checkSettings } from '../market/settings.js'

/** The shipped recording DEMO=venues loops (demo/venues: see its README). */
export const DEMO_VENUES = fileURLToPath(new URL('../../demo/venues/', import.meta.url))

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * REPLAY_DIR: its first pass, settled when it ends (realtime replay --hooks waits for it), and
     * the error that stopped the replay, if one did (a recording of another format, a span outside it).
     */
    liveReplay: { readonly firstPass: Promise<void>; readonly counters: Readonly<ReplayCounters>; readonly stopped: Error | null }
  }
}

export interface ReplayCounters {
  passes: number
  records: number
  frames: number
  opportunities: number
  damaged: number
  diverged: number
  publishFailures: number
}

/** REPLAY_DIR, its pace and loop (record/settings.ts; defaults for those not given). */
export type ReplayPluginOptions = Partial<ReplaySettings> & {
  /** realtime replay --hooks --from/--to: what comes before `from` replays unpublished, the replay stops after `to`. */
  from?: number
  to?: number
}

/** The engine's inputs now come from the replay: the arbitrage plugin's own calls do nothing. */
function takeOver(engine: EngineCalls): EngineCalls {
  const calls: EngineCalls = {
    onBook: engine.onBook.bind(engine),
    onTick: engine.onTick.bind(engine),
    onVenue: engine.onVenue.bind(engine),
    sweep: engine.sweep.bind(engine)
  }
  engine.onBook = () => null
  engine.onTick = () => null
  engine.onVenue = () => null
  engine.sweep = () => null
  return calls
}

const replayPlugin: FastifyPluginAsync<ReplayPluginOptions> = async (app, pluginOptions) => {
  const options = checkSettings('replay', ReplaySettings, pluginOptions)
  const counters: ReplayCounters = { passes: 0, records: 0, frames: 0, opportunities: 0, damaged: 0, diverged: 0, publishFailures: 0 }
  const failed = () => {
    counters.publishFailures++
  }
  const abort = new AbortController()
  let wake: (() => void) | null = null
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  let running: Promise<void> = Promise.resolve()
  let passed: () => void = () => {}
  const firstPass = new Promise<void>((resolve) => {
    passed = resolve
  })
  let stopped: Error | null = null
  app.decorate('liveReplay', {
    firstPass,
    counters,
    get stopped() {
      return stopped
    }
  })

  app.addHook('onReady', async () => {
    const engine = app.hasDecorator('liveArbitrage') ? takeOver(app.liveArbitrage.engine) : null
    app.log.info({ dir: options.replayDir, speed: options.replaySpeed, loop: options.replayLoop }, 'serving a recording as if live')
    // Where the last pass's shifted times ended: a pass at a speed over 1 runs ahead of the wall
    // clock, and the next pass starts after it, so the engine's clock never goes back.
    let lastEnd = Number.NEGATIVE_INFINITY
    // A loop's pass begins now: its first record's time moves to the moment it starts.
    const first = options.replayLoop ? firstTime(options.replayDir) : 0
    const loop = async () => {
      do {
        const result = await replay({
          dir: options.replayDir,
          app: APP_VERSION,
          speed: options.replaySpeed,
          from: pluginOptions.from,
          to: pluginOptions.to,
          engine,
          market: true,
          shift: options.replayLoop ? Math.max(Date.now(), lastEnd + 1) - first : 0,
          signal: abort.signal,
          sleep,
          onDamage: (d) => app.log.warn(d, 'replay: damaged recording skipped'),
          sink: { event: (topic, data) => app.live.publishDetached(topic, data, failed) }
        })
        if (result.last !== null) lastEnd = result.last
        counters.passes++
        counters.records += result.records
        counters.frames += result.frames
        counters.opportunities += result.opportunities
        counters.damaged += result.damage.length
        counters.diverged += result.diverged
        app.log.info({ dir: options.replayDir, ...counters }, 'replay: pass done')
        passed()
        // One real event-loop turn between passes: a pass that never slept (records that span no
        // real time at its speed) would otherwise follow the last in microtasks, and no I/O is served.
        await new Promise<void>((resolve) => setImmediate(resolve))
      } while (options.replayLoop && !abort.signal.aborted)
    }
    running = loop()
      .catch((err: Error) => {
        stopped = err
        app.log.error({ dir: options.replayDir, err: err.message }, 'replay stopped')
      })
      .finally(() => passed())
  })
  app.liveHooks.method({ name: 'replay', handler: () => ({ dir: options.replayDir, speed: options.replaySpeed, loop: options.replayLoop, ...counters }) })
  app.addHook('onClose', async () => {
    abort.abort()
    wake?.()
    await running
  })
}

/** The recording's first record time (its meta's): where a looped pass's times start. */
function firstTime(dir: string): number {
  // A record whose time is not a number is one the replay skips as unusable.
  for (const r of readRecording(dir, APP_VERSION, () => {})) if (Number.isFinite(r.time)) return r.time
  return Date.now()
}

export default fp(replayPlugin, { name: 'live-replay', fastify: '5.x', dependencies: ['live'] })
