// The recording's bytes (docs/RECORDING.md): a segment file is a header line, then blocks; a block
// is one batch of records, deflated, framed with its length and CRC so a torn or damaged block is
// found, reported with its offset, and skipped to the next block's magic.
import { promisify } from 'node:util'
import { crc32, deflateRawSync, inflateRaw, inflateRawSync } from 'node:zlib'

/** Bumped whenever a reader of the previous format could misread this one. */
export const FORMAT_VERSION = 1
export const SEGMENT_MAGIC = 'realtime-recording'
export const SEGMENT_SUFFIX = '.rec'
/** "RBLK": where each block starts. */
export const BLOCK_MAGIC = 0x524b4c42
/** magic, compressed length, raw length, crc32 of the compressed bytes. */
export const BLOCK_HEADER = 16
/** A block larger than this is damage, not data (a batch is at most a few MiB). */
export const MAX_BLOCK = 64 * 1024 * 1024

/** What a record is. Times are ms (with fractions where the clock has them). */
export const Kind = {
  /** JSON: the instruments of each venue as the registry had them, and the book depth. */
  meta: 1,
  /** JSON {venue, url}: a venue socket opened; conn numbers it for the frames that follow. */
  open: 2,
  /** A venue's text frame, its bytes as received. */
  frame: 3,
  /** A venue's binary frame. */
  binary: 4,
  close: 5,
  /** A ping or pong from the venue. */
  alive: 6,
  /** The socket's error message. */
  error: 7,
  /** JSON {venue, url, status, headers} + "\n" + the body as received: a REST answer. */
  rest: 8,
  /** JSON {topic, data}: a market event a client published, at the time it reached the bus. */
  publish: 9,
  /** The end of an event-loop turn that had records: connectors publish what the turn changed. */
  turn: 10,
  /** Engine input markers: the topic the engine was given, at the time it was given it. */
  engineBook: 11,
  engineTicker: 12,
  /** JSON {exchange, state}: the venue health the engine was given. */
  engineVenue: 13,
  /** The engine's sweep for stale opportunities ran at this time. */
  sweep: 14,
  /** The venue accepted the socket `conn`. */
  accept: 15
} as const
export type KindCode = (typeof Kind)[keyof typeof Kind]

/** kind u8, time f64, conn u32, length u32. */
export const RECORD_HEADER = 17

export interface SegmentHeader {
  format: string
  version: number
  /** The realtime release that wrote it. */
  app: string
  startedAt: number
}

export function headerLine(app: string, startedAt: number): Buffer {
  const header: SegmentHeader = { format: SEGMENT_MAGIC, version: FORMAT_VERSION, app, startedAt }
  return Buffer.from(`${JSON.stringify(header)}\n`)
}

/** One block's bytes from a batch of encoded records. */
export function encodeBlock(raw: Buffer, level: number): Buffer {
  const body = deflateRawSync(raw, { level })
  return frameBlock(body, raw.length)
}

export function frameBlock(body: Buffer, rawLength: number): Buffer {
  const header = Buffer.allocUnsafe(BLOCK_HEADER)
  header.writeUInt32LE(BLOCK_MAGIC, 0)
  header.writeUInt32LE(body.length, 4)
  header.writeUInt32LE(rawLength, 8)
  header.writeUInt32LE(crc32(body), 12)
  return Buffer.concat([header, body])
}

export type BlockResult = { ok: true; raw: Buffer; next: number } | { ok: false; reason: string; truncated: boolean }

type Framed = { ok: true; body: Buffer; rawLength: number; next: number } | { ok: false; reason: string; truncated: boolean }

/** The block at `offset` of `buf`, its frame and CRC checked, not yet inflated. */
function framed(buf: Buffer, offset: number): Framed {
  if (buf.length - offset < BLOCK_HEADER) return { ok: false, reason: 'truncated block header', truncated: true }
  if (buf.readUInt32LE(offset) !== BLOCK_MAGIC) return { ok: false, reason: 'no block starts here', truncated: false }
  const length = buf.readUInt32LE(offset + 4)
  const rawLength = buf.readUInt32LE(offset + 8)
  if (length > MAX_BLOCK || rawLength > MAX_BLOCK) return { ok: false, reason: `block of ${length}/${rawLength} bytes is past ${MAX_BLOCK}`, truncated: false }
  const start = offset + BLOCK_HEADER
  if (buf.length - start < length) return { ok: false, reason: `truncated block (${buf.length - start} of ${length} bytes)`, truncated: true }
  const body = buf.subarray(start, start + length)
  if (crc32(body) !== buf.readUInt32LE(offset + 12)) return { ok: false, reason: 'block checksum mismatch', truncated: false }
  return { ok: true, body, rawLength, next: start + length }
}

function inflated(block: Framed & { ok: true }, raw: Buffer): BlockResult {
  if (raw.length !== block.rawLength) return { ok: false, reason: `block inflates to ${raw.length} bytes, not ${block.rawLength}`, truncated: false }
  return { ok: true, raw, next: block.next }
}

const notInflating = (err: unknown): BlockResult => ({ ok: false, reason: `block does not inflate: ${(err as Error).message}`, truncated: false })

/** Reads the block at `offset` of `buf`, checking its frame, CRC and inflated size. */
export function decodeBlock(buf: Buffer, offset: number): BlockResult {
  const block = framed(buf, offset)
  if (!block.ok) return block
  try {
    return inflated(block, inflateRawSync(block.body, { maxOutputLength: block.rawLength }))
  } catch (err) {
    return notInflating(err)
  }
}

const inflateRawAsync = promisify(inflateRaw)

/** decodeBlock inflating on libuv's thread pool: the caller's thread goes on meanwhile. Never rejects. */
export function decodeBlockAsync(buf: Buffer, offset: number): Promise<BlockResult> {
  const block = framed(buf, offset)
  if (!block.ok) return Promise.resolve(block)
  // One output chunk for a usual block (the default 16 KiB is a round trip to the thread pool per
  // 16 KiB), up to 4 MiB: a hostile header's raw length does not size the buffer past that.
  const options = { maxOutputLength: block.rawLength, chunkSize: Math.min(Math.max(block.rawLength, 64), 4 << 20) }
  return inflateRawAsync(block.body, options).then((raw) => inflated(block, raw), notInflating)
}

/** Where the next block's magic is after a damaged one (or the end). */
export function nextBlock(buf: Buffer, from: number): number {
  const magic = Buffer.allocUnsafe(4)
  magic.writeUInt32LE(BLOCK_MAGIC, 0)
  const at = buf.indexOf(magic, from)
  return at === -1 ? buf.length : at
}

export interface RawRecord {
  kind: number
  time: number
  conn: number
  body: Buffer
  /** Where it was read from (the segment and its block's offset): what a replay names when it cannot use it. */
  file?: string
  offset?: number
}

/**
 * The records of one inflated block, one at a time and without an object each: next() steps to the
 * following record and sets kind, time, conn and where its body lies (body() or text() read it).
 * A record running past the block, or bytes after its last record, is damage: next() throws.
 */
export class BlockRecords {
  kind = 0
  time = 0
  conn = 0
  private start = 0
  private end = 0
  private readonly view: DataView

  constructor(readonly raw: Buffer) {
    this.view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  }

  /** Steps to the next record: false after the last one. */
  next(): boolean {
    const at = this.end
    const size = this.raw.length
    if (size - at < RECORD_HEADER) {
      if (at !== size) throw new Error('trailing bytes after the last record of a block')
      return false
    }
    const view = this.view
    const length = view.getUint32(at + 13, true)
    const start = at + RECORD_HEADER
    if (size - start < length) throw new Error(`record of ${length} bytes runs past its block`)
    this.kind = view.getUint8(at)
    this.time = view.getFloat64(at + 1, true)
    this.conn = view.getUint32(at + 9, true)
    this.start = start
    this.end = start + length
    return true
  }

  /** The record's bytes: a view of the block, not a copy. */
  body(): Buffer {
    return this.raw.subarray(this.start, this.end)
  }

  /** The record's bytes as UTF-8 text. */
  text(): string {
    return this.raw.toString('utf8', this.start, this.end)
  }
}
