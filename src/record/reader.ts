// Reading a recording back: its segments in order, each checked (header, version, every block's
// frame and CRC). Damage is reported with the file and offset and skipped; the rest is read.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodeBlock, FORMAT_VERSION, nextBlock, records, SEGMENT_MAGIC, SEGMENT_SUFFIX, type RawRecord, type SegmentHeader } from './format.js'

export interface Damage {
  file: string
  offset: number
  reason: string
}

export class RecordingError extends Error {}

/** The segment files of a recording directory, oldest first. */
export function segmentFiles(dir: string): string[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    throw new RecordingError(`${dir}: cannot read the recording: ${(err as Error).message}`)
  }
  const segments = names.filter((n) => n.endsWith(SEGMENT_SUFFIX)).sort()
  if (segments.length === 0) throw new RecordingError(`${dir}: no recording here (no *${SEGMENT_SUFFIX} segment files)`)
  return segments.map((n) => join(dir, n))
}

/** A segment's header; another format's recording is refused naming both versions. */
export function readHeader(file: string, buf: Buffer, app: string): { header: SegmentHeader; body: number } {
  const end = buf.indexOf(10)
  let header: SegmentHeader | null = null
  if (end > 0 && end < 4096) {
    try {
      header = JSON.parse(buf.subarray(0, end).toString()) as SegmentHeader
    } catch {
      header = null
    }
  }
  if (header === null || header.format !== SEGMENT_MAGIC) throw new RecordingError(`${file}: not a realtime recording segment (no header at offset 0)`)
  if (header.version !== FORMAT_VERSION)
    throw new RecordingError(
      `${file}: recorded in format ${header.version} by realtime ${header.app}; this is realtime ${app}, which reads format ${FORMAT_VERSION} only`
    )
  return { header, body: end + 1 }
}

/** Every record of the recording, in order; damage goes to `onDamage` and reading goes on. */
export function* readRecording(dir: string, app: string, onDamage: (d: Damage) => void): Generator<RawRecord> {
  for (const file of segmentFiles(dir)) {
    const buf = readFileSync(file)
    let at: number
    try {
      at = readHeader(file, buf, app).body
    } catch (err) {
      if (buf.length === 0) continue // created and never written (a crash at rotation)
      throw err
    }
    while (at < buf.length) {
      const block = decodeBlock(buf, at)
      if (!block.ok) {
        onDamage({ file, offset: at, reason: block.reason })
        if (block.truncated) break
        at = nextBlock(buf, at + 1)
        continue
      }
      try {
        yield* records(block.raw, file, at)
      } catch (err) {
        onDamage({ file, offset: at, reason: (err as Error).message })
      }
      at = block.next
    }
  }
}
