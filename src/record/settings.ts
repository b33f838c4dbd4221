// The record layer's settings: the recorder plugin's options (RECORD_DIR and its bounds) and the
// replay plugin's (REPLAY_DIR, its pace and loop), each a TypeBox schema giving validation,
// defaults, types and the help the README's table shows. config.ts reads them from the
// environment with the rest and hands each plugin its part.
import { type Static, Type } from '@sinclair/typebox'
import { Int } from '../shared/schema.js'

/** RECORD_DIR: where the market session is recorded and how much of it is kept (plugins/recorder.ts, the feeds process). */
export const RecorderSettings = Type.Object({
  recordDir: Type.String({
    default: '',
    description: 'directory the market session is recorded in (venue frames, REST answers, market publishes; docs/RECORDING.md); empty: no recording'
  }),
  recordMaxMb: Int(10_240, 1, 10_485_760, 'MiB all recorded segments may take together; past it the oldest segments are removed'),
  recordMaxAge: Int(0, 0, 31_536_000_000, 'milliseconds a recorded segment is kept after it was last written; 0 keeps them (RECORD_MAX_MB still bounds them)'),
  recordSegmentMb: Int(64, 1, 4096, 'MiB written to one segment file before the next is begun'),
  recordSegmentAge: Int(3_600_000, 1000, 86_400_000, 'milliseconds one segment file is written to before the next is begun')
})
export type RecorderSettings = Static<typeof RecorderSettings>

/** REPLAY_DIR: a recording served as if live (plugins/replay.ts). */
export const ReplaySettings = Type.Object({
  replayDir: Type.String({
    default: '',
    description:
      'serve a recording (a RECORD_DIR) instead of live venues: its frames through the connectors, the engine and the hooks, to clients as if live; empty: none'
  }),
  replaySpeed: Type.Number({ default: 1, minimum: 0.01, maximum: 1_000_000, description: 'pace of REPLAY_DIR: 1 as recorded, 10 ten times faster' }),
  replayLoop: Type.Boolean({ default: false, description: 'REPLAY_DIR starts again at its end, its times moved to now' })
})
export type ReplaySettings = Static<typeof ReplaySettings>
