// Reading a recording back: its segments in order, each checked (header, version, every block's
// frame and CRC). Damage is reported with the file and offset and skipped; the rest is read.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  BlockRecords,
  type BlockResult,
  decodeBlock,
  decodeBlockAsync,
  FORMAT_VERSION,
  nextBlock,
  SEGMENT_MAGIC,
  SEGMENT_SUFFIX,
  type RawRecord,
  type SegmentHeader
} from './format.js'

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
function readHeader(file: string, buf: Buffer, app: string): { header: SegmentHeader; body: number } {
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

const EMPTY = Buffer.alloc(0)

/**
 * The recording's records in order, one at a time and without an object each (a replay reads a
 * hundred thousand a second): next() steps to the following record, reading the segments as it
 * comes to them; kind, time and conn are the record's, body() and text() read its bytes, file and
 * offset say where its block is. Damage goes to `onDamage` and reading goes on.
 *
 * Reading ahead (`ahead`), next() stops at the end of each block and more() takes the next one,
 * which libuv's thread pool inflated while this one's records were used (a replay at max spent
 * a tenth of its thread inflating): `while (r.next() || (await r.more()))`.
 */
export class RecordCursor {
  kind = 0
  time = 0
  conn = 0
  /** The segment and the offset of the block the record was read from. */
  file = ''
  offset = 0
  private readonly files: string[]
  private segment = -1
  private buf: Buffer = EMPTY
  /** Where the segment's next block starts. */
  private blockAt = 0
  private block = new BlockRecords(EMPTY)
  /** The block at `blockAt`, being inflated (reading ahead). */
  private coming: { buf: Buffer; at: number; block: Promise<BlockResult> } | null = null

  constructor(
    dir: string,
    private readonly app: string,
    private readonly onDamage: (d: Damage) => void,
    private readonly ahead = false
  ) {
    this.files = segmentFiles(dir)
  }

  /** Steps to the next record: false after the recording's last (reading ahead: after the block's last). */
  next(): boolean {
    for (;;) {
      try {
        if (this.block.next()) {
          const block = this.block
          this.kind = block.kind
          this.time = block.time
          this.conn = block.conn
          return true
        }
      } catch (err) {
        this.onDamage({ file: this.file, offset: this.offset, reason: (err as Error).message })
      }
      if (this.ahead || !this.nextBlock()) return false
    }
  }

  /** Reading ahead: steps to the first record of the blocks that follow; false after the recording's last. */
  async more(): Promise<boolean> {
    for (;;) {
      if (this.blockAt >= this.buf.length && !this.nextSegment()) return false
      const at = this.blockAt
      const coming = this.coming
      this.coming = null
      const block = coming !== null && coming.buf === this.buf && coming.at === at ? await coming.block : decodeBlock(this.buf, at)
      if (!this.use(block, at)) continue
      if (this.blockAt < this.buf.length) this.coming = { buf: this.buf, at: this.blockAt, block: decodeBlockAsync(this.buf, this.blockAt) }
      if (this.next()) return true
    }
  }

  /** The record's bytes: a view of its block, not a copy. */
  body(): Buffer {
    return this.block.body()
  }

  /** The record's bytes as UTF-8 text. */
  text(): string {
    return this.block.text()
  }

  /** Reads the next sound block (of this segment or the next ones): false when there is none. */
  private nextBlock(): boolean {
    for (;;) {
      if (this.blockAt >= this.buf.length && !this.nextSegment()) return false
      if (this.use(decodeBlock(this.buf, this.blockAt), this.blockAt)) return true
    }
  }

  /** Makes the block read at `at` the current one; damage is reported and skipped (false). */
  private use(block: BlockResult, at: number): boolean {
    if (!block.ok) {
      this.onDamage({ file: this.files[this.segment], offset: at, reason: block.reason })
      this.blockAt = block.truncated ? this.buf.length : nextBlock(this.buf, at + 1)
      return false
    }
    this.block = new BlockRecords(block.raw)
    this.file = this.files[this.segment]
    this.offset = at
    this.blockAt = block.next
    return true
  }

  /** Opens the next segment past its header: false after the last. */
  private nextSegment(): boolean {
    for (;;) {
      if (++this.segment >= this.files.length) {
        this.buf = EMPTY
        return false
      }
      const file = this.files[this.segment]
      const buf = readFileSync(file)
      let at: number
      try {
        at = readHeader(file, buf, this.app).body
      } catch (err) {
        if (buf.length === 0) continue // created and never written (a crash at rotation)
        throw err
      }
      this.buf = buf
      this.blockAt = at
      return true
    }
  }
}

/** Every record of the recording as an object, in order; damage goes to `onDamage` and reading goes on. */
export function* readRecording(dir: string, app: string, onDamage: (d: Damage) => void): Generator<RawRecord> {
  const cursor = new RecordCursor(dir, app, onDamage)
  while (cursor.next()) yield { kind: cursor.kind, time: cursor.time, conn: cursor.conn, body: cursor.body(), file: cursor.file, offset: cursor.offset }
}
