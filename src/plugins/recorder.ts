// RECORD_DIR on the server: the in-process connectors' sockets and REST answers, the market events
// clients publish (ticker.>, book.>, venue.>) and the engine's inputs go to the recording
// (docs/RECORDING.md). Registered before the engine, so a publish is recorded before the engine's
// marker for it.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { Config } from '../config.js'
import type { BusEvent } from '../core/protocol.js'
import type { MarketSink } from '../market/events.js'
import type { Instrument } from '../market/instruments.js'
import type { StartOptions } from '../market/setup.js'
import { recordEngine, recordingTransport, type RecordingMeta } from '../record/capture.js'
import { Kind } from '../record/format.js'
import { Recorder } from '../record/recorder.js'
import { APP_VERSION } from '../record/version.js'

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

export type RecorderPluginOptions = Pick<Config, 'recordDir' | 'recordMaxMb' | 'recordMaxAge' | 'recordSegmentMb' | 'recordSegmentAge'> & {
  /** Tests: where segments are written (a disk that fills up). */
  files?: ConstructorParameters<typeof Recorder>[0]['files']
  bufferBytes?: number
}

/** The recorder's hooks for the feeds plugin, when RECORD_DIR is set. */
export const recordingOf = (app: FastifyInstance): LiveRecorder | undefined => (app.hasDecorator('liveRecorder') ? app.liveRecorder : undefined)

const recorderPlugin: FastifyPluginAsync<RecorderPluginOptions> = async (app, options) => {
  const recorder = new Recorder({
    dir: options.recordDir,
    segmentBytes: options.recordSegmentMb * 1024 * 1024,
    segmentMs: options.recordSegmentAge,
    maxBytes: options.recordMaxMb * 1024 * 1024,
    maxAgeMs: options.recordMaxAge,
    app: APP_VERSION,
    log: app.log,
    files: options.files,
    bufferBytes: options.bufferBytes
  })
  const run = Date.now()
  let metaWritten = false
  const writeMeta = (instruments: Map<string, Instrument[]>, bookDepth: number) => {
    const meta: RecordingMeta = { run, app: APP_VERSION, bookDepth, instruments: Object.fromEntries(instruments) }
    recorder.setMeta(meta)
    metaWritten = true
  }
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
  app.decorate('liveRecorder', {
    recorder,
    feeds: (sink, bookDepth) => ({
      sink: {
        book: (e) => sink.book(mark(e)),
        ticker: (e) => sink.ticker(mark(e)),
        venue: (h) => sink.venue(mark(h))
      },
      transport: (exchange) => recordingTransport(recorder, exchange),
      beforeStart: (instruments) => writeMeta(instruments, bookDepth)
    })
  } satisfies LiveRecorder)
  app.addHook('onReady', async () => {
    if (!metaWritten) writeMeta(new Map(), 0)
    if (app.hasDecorator('liveArbitrage')) recordEngine(recorder, app.liveArbitrage.engine)
    app.log.info({ dir: options.recordDir }, 'recording the market session')
  })
  app.addHook('onClose', async () => {
    for (const stop of stops) stop()
    await recorder.close()
  })
}

export default fp(recorderPlugin, { name: 'live-recorder', fastify: '5.x', dependencies: ['live'] })
