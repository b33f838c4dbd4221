// RECORD_DIR on the server: the in-process connectors' sockets and REST answers, the market events
// clients publish (ticker.>, book.>, venue.>) and the engine's inputs go to the recording
// (docs/RECORDING.md). Registered before the engine, so a publish is recorded before the engine's
// marker for it.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { BusEvent } from '../core/protocol.js'
import type { MarketSink } from '../market/events.js'
import type { StartOptions } from '../market/setup.js'
import { recordEngine, recordFeeds, recorderFor } from '../record/capture.js'
import { Kind } from '../record/format.js'
import type { Recorder, SegmentFiles } from '../record/recorder.js'
import { RecorderSettings } from '../record/settings.js'
import { checkSettings } from '../market/settings.js'

export interface LiveRecorder {
  readonly recorder: Recorder
  /** What the feeds plugin hands startFeeds so its connectors are recorded. */
  feeds(sink: MarketSink, bookDepth: number): Pick<StartOptions, 'sink' | 'transport' | 'beforeStart'>
}

declare module 'fastify' {
  interface FastifyInstance {
    liveRecorder: LiveRecorder
  }
}

/** RECORD_DIR and its bounds (record/settings.ts; defaults for those not given). */
export type RecorderPluginOptions = Partial<RecorderSettings> & {
  /** Tests: where segments are written (a disk that fills up). */
  files?: SegmentFiles
}

/** The recorder's hooks for the feeds plugin, when RECORD_DIR is set. */
export const recordingOf = (app: FastifyInstance): LiveRecorder | undefined => (app.hasDecorator('liveRecorder') ? app.liveRecorder : undefined)

const recorderPlugin: FastifyPluginAsync<RecorderPluginOptions> = async (app, options) => {
  const settings = checkSettings('recorder', RecorderSettings, options)
  const recorder = recorderFor(settings, app.log, options.files)
  let metaWritten = false
  /** Data the in-process connectors published: recorded as their frames, not again as publishes. */
  const fromConnectors = new WeakSet<object>()
  const mark = <T extends object>(data: T): T => {
    fromConnectors.add(data)
    return data
  }
  const record = (event: BusEvent) => {
    if (typeof event.data === 'object' && event.data !== null && fromConnectors.has(event.data)) return
    recorder.add(Kind.publish, event.ts, 0, JSON.stringify({ topic: event.topic, data: event.data }))
  }
  const stops = ['ticker.>', 'book.>', 'venue.>'].map((pattern) => app.live.subscribe(pattern, record))
  app.liveHooks.method({ name: 'recording', handler: () => ({ dir: settings.recordDir, ...recorder.counters }) })
  app.decorate('liveRecorder', {
    recorder,
    feeds: (sink, bookDepth) => {
      const { transport, beforeStart } = recordFeeds(recorder, bookDepth, app.hasDecorator('liveArbitrage'))
      return {
        sink: {
          book: (e) => sink.book(mark(e)),
          ticker: (e) => sink.ticker(mark(e)),
          venue: (h) => sink.venue(mark(h))
        },
        transport,
        beforeStart: (instruments) => {
          metaWritten = true
          beforeStart?.(instruments)
        }
      }
    }
  } satisfies LiveRecorder)
  app.addHook('onReady', async () => {
    if (!metaWritten) recordFeeds(recorder, 0, app.hasDecorator('liveArbitrage')).beforeStart?.(new Map())
    if (app.hasDecorator('liveArbitrage')) recordEngine(recorder, app.liveArbitrage.engine)
    app.log.info({ dir: settings.recordDir }, 'recording the market session')
  })
  app.addHook('onClose', async () => {
    for (const stop of stops) stop()
    await recorder.close()
  })
}

export default fp(recorderPlugin, { name: 'live-recorder', fastify: '5.x', dependencies: ['live'] })
