// RECORD_DIR: what the engine's world is made of, kept as it arrived (docs/RECORDING.md). The hot
// path only copies a record into a batch; batches are deflated on libuv's thread pool and appended
// to the current segment one write at a time. A disk that is slow or full costs the recording
// (dropped records, counted, logged once per interval), never the live path.
import { mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { deflateRaw } from 'node:zlib'
import { encodeBlock, frameBlock, headerLine, Kind, RECORD_HEADER, SEGMENT_SUFFIX, type KindCode } from './format.js'

const deflate = promisify(deflateRaw)

/** Where segments go: the file system by default; tests hand in one that fails. */
export interface SegmentFiles {
  open(path: string): Promise<{ write(data: Buffer): Promise<void>; close(): Promise<void> }>
  list(dir: string): { name: string; bytes: number; modifiedAt: number }[]
  remove(path: string): void
}

export const diskFiles: SegmentFiles = {
  async open(path) {
    const handle: FileHandle = await open(path, 'a')
    return {
      write: async (data) => {
        await handle.write(data)
      },
      close: () => handle.close()
    }
  },
  list(dir) {
    return readdirSync(dir)
      .filter((name) => name.endsWith(SEGMENT_SUFFIX))
      .map((name) => {
        const s = statSync(join(dir, name))
        return { name, bytes: s.size, modifiedAt: s.mtimeMs }
      })
  },
  remove: (path) => unlinkSync(path)
}

export interface RecorderOptions {
  dir: string
  /** A segment is closed and a new one begun past this many bytes written (RECORD_SEGMENT_MB). */
  segmentBytes: number
  /** ... or once it is this old (RECORD_SEGMENT_AGE). */
  segmentMs: number
  /** All segments together; the oldest go first (RECORD_MAX_MB). */
  maxBytes: number
  /** Segments last written longer ago than this go (RECORD_MAX_AGE; 0 keeps them). */
  maxAgeMs: number
  /** Records waiting to be written past which new ones are dropped (a slow or full disk). */
  bufferBytes?: number
  /** How often a batch is written. */
  flushMs?: number
  /** deflate level: docs/RECORDING.md has the measurements behind the default. */
  level?: number
  /** The release writing it (refused by another format's reader, named in the message). */
  app: string
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
  files?: SegmentFiles
  now?: () => number
}

export interface RecorderCounters {
  records: number
  /** Records lost to a slow or full disk. */
  dropped: number
  /** Bytes written to segments (compressed). */
  bytes: number
  /** Bytes of records before compression. */
  rawBytes: number
  segments: number
  writeErrors: number
  /** Segments removed by RECORD_MAX_MB or RECORD_MAX_AGE. */
  removed: number
}

const CHUNK = 1024 * 1024
const DROP_LOG_MS = 10_000

export class Recorder {
  readonly counters: RecorderCounters = { records: 0, dropped: 0, bytes: 0, rawBytes: 0, segments: 0, writeErrors: 0, removed: 0 }
  private chunk = Buffer.allocUnsafe(CHUNK)
  private used = 0
  private sealed: Buffer[] = []
  private sealedRecords = 0
  private chunkRecords = 0
  /** Bytes taken from the hot path and not yet written. */
  private pending = 0
  private writing: Promise<void> = Promise.resolve()
  private flushTimer: NodeJS.Timeout | null = null
  private turnOpen = false
  private segment: { write(data: Buffer): Promise<void>; close(): Promise<void> } | null = null
  private segmentStartedAt = 0
  private segmentWritten = 0
  private segmentSeq = 0
  private meta: Buffer | null = null
  private metaAt = 0
  private lastDropLog = Number.NEGATIVE_INFINITY
  private droppedSinceLog = 0
  private closed = false
  private readonly files: SegmentFiles
  private readonly now: () => number
  private readonly bufferBytes: number
  private readonly flushMs: number
  private readonly level: number
  /** Connection numbers of this run: unique within it (a restart writes a new meta record). */
  private nextConn = 1

  constructor(private readonly options: RecorderOptions) {
    this.files = options.files ?? diskFiles
    this.now = options.now ?? Date.now
    this.bufferBytes = options.bufferBytes ?? 32 * 1024 * 1024
    this.flushMs = options.flushMs ?? 200
    this.level = options.level ?? 1
    mkdirSync(options.dir, { recursive: true })
  }

  newConnection(): number {
    return this.nextConn++
  }

  /** What every segment begins with (written again at each rotation so a segment stands alone). */
  setMeta(meta: object): void {
    this.meta = Buffer.from(JSON.stringify(meta))
    this.metaAt = this.now()
    this.add(Kind.meta, this.metaAt, 0, this.meta)
  }

  /** One record; never throws, never waits. */
  add(kind: KindCode, time: number, conn: number, body: Buffer | string | null): void {
    if (this.closed) return
    const length = body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length
    if (this.pending + this.used + length > this.bufferBytes) {
      this.drop(1)
      return
    }
    const size = RECORD_HEADER + length
    if (this.chunk.length - this.used < size) this.seal(size)
    const c = this.chunk
    let at = this.used
    c[at] = kind
    c.writeDoubleLE(time, at + 1)
    c.writeUInt32LE(conn, at + 9)
    c.writeUInt32LE(length, at + 13)
    at += RECORD_HEADER
    if (typeof body === 'string') at += c.write(body, at)
    else if (body !== null) at += body.copy(c, at)
    this.used = at
    this.chunkRecords++
    this.counters.records++
    if (kind !== Kind.turn && !this.turnOpen) {
      // The turn's end, before the connectors' own end-of-turn publishing (scheduled after this).
      this.turnOpen = true
      setImmediate(() => {
        this.turnOpen = false
        this.add(Kind.turn, this.now(), 0, null)
      })
    }
    if (this.flushTimer === null) {
      this.flushTimer = setTimeout(() => this.flush(), this.flushMs)
      this.flushTimer.unref()
    }
  }

  private seal(atLeast: number): void {
    if (this.used > 0) {
      this.sealed.push(this.chunk.subarray(0, this.used))
      this.sealedRecords += this.chunkRecords
      this.pending += this.used
    }
    this.chunk = Buffer.allocUnsafe(Math.max(CHUNK, atLeast))
    this.used = 0
    this.chunkRecords = 0
  }

  /** Hands the batch to the writer; resolves when it is on disk (or dropped). */
  flush(): Promise<void> {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer)
    this.flushTimer = null
    this.seal(0)
    if (this.sealed.length === 0) return this.writing
    const batch = this.sealed
    const count = this.sealedRecords
    this.sealed = []
    this.sealedRecords = 0
    const raw = batch.length === 1 ? batch[0] : Buffer.concat(batch)
    this.writing = this.writing.then(async () => {
      try {
        const body = await deflate(raw, { level: this.level })
        const block = frameBlock(body, raw.length)
        await this.write(block)
        this.counters.rawBytes += raw.length
      } catch (err) {
        this.counters.writeErrors++
        this.drop(count, (err as Error).message)
      } finally {
        this.pending -= raw.length
      }
    })
    return this.writing
  }

  private async write(block: Buffer): Promise<void> {
    const now = this.now()
    if (this.segment !== null && (this.segmentWritten >= this.options.segmentBytes || now - this.segmentStartedAt >= this.options.segmentMs)) {
      const old = this.segment
      this.segment = null
      await old.close()
    }
    if (this.segment === null) {
      this.segmentStartedAt = now
      const name = `${String(Math.floor(now)).padStart(15, '0')}-${String(this.segmentSeq++).padStart(4, '0')}${SEGMENT_SUFFIX}`
      this.segment = await this.files.open(join(this.options.dir, name))
      this.counters.segments++
      let head = headerLine(this.options.app, now)
      // A segment stands alone: it says which instruments its frames are about.
      if (this.meta !== null) head = Buffer.concat([head, this.metaBlock()])
      await this.segment.write(head)
      this.segmentWritten = head.length
      this.counters.bytes += head.length
      this.bound(name)
    }
    await this.segment.write(block)
    this.segmentWritten += block.length
    this.counters.bytes += block.length
  }

  /** The run's meta record, its time the run's start (a replay paces from the first frame). */
  private metaBlock(): Buffer {
    const meta = this.meta as Buffer
    const raw = Buffer.allocUnsafe(RECORD_HEADER + meta.length)
    raw[0] = Kind.meta
    raw.writeDoubleLE(this.metaAt, 1)
    raw.writeUInt32LE(0, 9)
    raw.writeUInt32LE(meta.length, 13)
    meta.copy(raw, RECORD_HEADER)
    return encodeBlock(raw, this.level)
  }

  /** RECORD_MAX_MB and RECORD_MAX_AGE: the oldest segments go, never the one being written. */
  private bound(current: string): void {
    try {
      const segments = this.files.list(this.options.dir).sort((a, b) => (a.name < b.name ? -1 : 1))
      let total = segments.reduce((n, s) => n + s.bytes, 0)
      const cutoff = this.options.maxAgeMs > 0 ? this.now() - this.options.maxAgeMs : Number.NEGATIVE_INFINITY
      for (const s of segments) {
        if (s.name === current) break
        if (total <= this.options.maxBytes && s.modifiedAt >= cutoff) continue
        this.files.remove(join(this.options.dir, s.name))
        total -= s.bytes
        this.counters.removed++
      }
    } catch (err) {
      this.options.log?.warn({ dir: this.options.dir, err: (err as Error).message }, 'recording: cannot bound the segments')
    }
  }

  private drop(records: number, reason?: string): void {
    this.counters.dropped += records
    this.droppedSinceLog += records
    const now = Date.now()
    if (now - this.lastDropLog < DROP_LOG_MS) return
    this.lastDropLog = now
    this.options.log?.warn(
      { dir: this.options.dir, dropped: this.droppedSinceLog, total: this.counters.dropped, err: reason },
      'recording behind or failing: records dropped (live delivery goes on)'
    )
    this.droppedSinceLog = 0
  }

  /** Writes what is held and closes the segment. */
  async close(): Promise<void> {
    await this.flush()
    this.closed = true
    if (this.flushTimer !== null) clearTimeout(this.flushTimer)
    const segment = this.segment
    this.segment = null
    await segment?.close().catch(() => {})
  }
}
