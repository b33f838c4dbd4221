// The journal of the in-memory bus (HISTORY_DIR): append-only segment files of checksummed event
// records, written once per event-loop turn (a group commit) before that turn's publishes are
// acked or delivered, so a restart, even kill -9, finds every acked event (README "Running under
// PM2" says what a power loss can still take, per HISTORY_FSYNC).
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  ftruncateSync,
  writeFileSync,
  writeSync
} from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'

export type FsyncPolicy = 'always' | 'everysec' | 'no'

/** One event as the journal holds it: `data` is its MessagePack encoding. */
export interface JournalRecord {
  topic: string
  epoch: string
  seq: number
  ts: number
  data: Uint8Array
}

/** What loading found: records read, and every part that could not be read, said for the log. */
export interface LoadReport {
  segments: number
  records: number
  bytes: number
  damaged: string[]
  /** The machine restarted since the journal was last closed cleanly: its unsynced tail may be gone. */
  uncleanReboot: boolean
}

// Record: u32 body length, u32 CRC-32 of the body; body: u16 topic length, topic, u8 epoch
// length, epoch, f64 seq, f64 ts, data (the rest).
const HEADER = 8
const FIXED = 2 + 1 + 8 + 8
const MAX_RECORD = 64 * 1024 * 1024
const SEGMENT = /^(\d{8})\.log$/
const READ_CHUNK = 1024 * 1024
const CLEAN = 'clean'

/** This boot of the machine (Linux); '' where the system does not say. */
function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return ''
  }
}

export class Journal {
  private fd = -1
  private segment = 0
  /** Bytes appended since the last compaction: past the live size (and a floor) the journal compacts. */
  private appended = 0
  private pending = Buffer.allocUnsafe(64 * 1024)
  private pendingLength = 0
  /** Bytes of `pending` already written: a failed write goes on from there. */
  private written = 0
  private syncer: NodeJS.Timeout | undefined
  private syncing = false
  private dirty = false

  constructor(
    readonly dir: string,
    readonly fsync: FsyncPolicy,
    private readonly compactFloor = 64 * 1024 * 1024
  ) {}

  /**
   * Reads every segment in order, calling `apply` for each good record, and opens the last for
   * appending (its damaged tail cut off first, so new records follow good ones). Damage never
   * throws: a bad record ends its segment's reading, and the report says what was skipped.
   */
  open(apply: (record: JournalRecord) => void): LoadReport {
    mkdirSync(this.dir, { recursive: true })
    const names = readdirSync(this.dir)
      .filter((n) => SEGMENT.test(n))
      .sort()
    const report: LoadReport = { segments: names.length, records: 0, bytes: 0, damaged: [], uncleanReboot: false }
    const marker = join(this.dir, CLEAN)
    let closedCleanly = false
    let bootOfLastRun = ''
    try {
      bootOfLastRun = readFileSync(join(this.dir, 'boot'), 'utf8').trim()
      closedCleanly = readFileSync(marker, 'utf8').trim() === 'yes'
    } catch {}
    report.uncleanReboot = names.length > 0 && !closedCleanly && bootOfLastRun !== '' && bootOfLastRun !== bootId()
    let goodLength = 0
    for (const name of names) {
      const path = join(this.dir, name)
      const result = readSegment(path, apply)
      report.records += result.records
      report.bytes += result.good
      if (result.damage) report.damaged.push(`${name}: ${result.size - result.good} bytes from offset ${result.good} skipped (${result.damage})`)
      goodLength = result.good
    }
    this.segment = names.length > 0 ? Number(SEGMENT.exec(names[names.length - 1])![1]) : 1
    this.fd = openSync(join(this.dir, segmentName(this.segment)), 'a+')
    // A damaged tail would hide every record appended after it: it is moved aside (<segment>.damaged).
    const last = join(this.dir, segmentName(this.segment))
    if (names.length > 0 && statSync(last).size > goodLength) {
      writeFileSync(`${last}.damaged`, readFileSync(last).subarray(goodLength))
      ftruncateSync(this.fd, goodLength)
    }
    this.appended = report.bytes
    writeFileSync(join(this.dir, 'boot'), bootId())
    writeFileSync(marker, 'no')
    if (this.fsync === 'everysec') this.syncer = setInterval(() => this.syncSoon(), 1000).unref()
    return report
  }

  /** Queues one record; it reaches the file at the next flush. */
  append(topic: string, epoch: string, seq: number, ts: number, data: Uint8Array): void {
    const topicBytes = Buffer.byteLength(topic)
    const epochBytes = epoch.length // hex: one byte a character
    const body = FIXED + topicBytes + epochBytes + data.length
    if (body > MAX_RECORD) throw new RangeError(`a journal record holds at most ${MAX_RECORD} bytes`)
    this.reserve(HEADER + body)
    const b = this.pending
    const start = this.pendingLength
    let at = start + HEADER
    at = b.writeUInt16LE(topicBytes, at)
    at += b.write(topic, at)
    at = b.writeUInt8(epochBytes, at)
    at += b.write(epoch, at, 'latin1')
    at = b.writeDoubleLE(seq, at)
    at = b.writeDoubleLE(ts, at)
    b.set(data, at)
    at += data.length
    b.writeUInt32LE(body, start)
    b.writeUInt32LE(crc32(b.subarray(start + HEADER, at)), start + 4)
    this.pendingLength = at
  }

  /** Writes what is queued (to the OS; to the disk too with HISTORY_FSYNC=always). Throws when the write fails: call again to go on. */
  flush(): void {
    while (this.written < this.pendingLength) this.written += writeSync(this.fd, this.pending, this.written, this.pendingLength - this.written)
    this.appended += this.pendingLength
    this.pendingLength = 0
    this.written = 0
    if (this.pending.length > 1024 * 1024) this.pending = Buffer.allocUnsafe(64 * 1024)
    if (this.fsync === 'always') fdatasyncSync(this.fd)
    else this.dirty = true
  }

  /** True when the journal has grown past twice what is live (and the floor): time to compact. */
  due(liveBytes: number): boolean {
    return this.appended > Math.max(this.compactFloor, 2 * liveBytes)
  }

  /**
   * Starts a new segment holding `records` (everything live), then removes the older segments.
   * Records already queued are written first; a crash in between leaves both, and loading skips
   * what it already has.
   */
  compact(records: Iterable<JournalRecord>): void {
    this.flush()
    const next = this.segment + 1
    const fd = openSync(join(this.dir, segmentName(next)), 'a+')
    const old = this.fd
    this.fd = fd
    this.segment = next
    for (const r of records) {
      this.append(r.topic, r.epoch, r.seq, r.ts, r.data)
      if (this.pendingLength > 1024 * 1024) this.flush()
    }
    this.flush()
    fdatasyncSync(fd) // the copy is on disk before the originals go
    closeSync(old)
    this.appended = statSync(join(this.dir, segmentName(next))).size
    for (const name of readdirSync(this.dir)) {
      const m = SEGMENT.exec(name)
      if (m && Number(m[1]) < next) rmSync(join(this.dir, name), { force: true })
    }
  }

  /** Flushes, syncs and marks the journal closed cleanly. */
  close(): void {
    if (this.fd === -1) return
    clearInterval(this.syncer)
    try {
      this.flush()
      fdatasyncSync(this.fd)
      writeFileSync(join(this.dir, CLEAN), 'yes')
    } finally {
      closeSync(this.fd)
      this.fd = -1
    }
  }

  private syncSoon(): void {
    if (!this.dirty || this.syncing || this.fd === -1) return
    this.dirty = false
    this.syncing = true
    fdatasync(this.fd, () => {
      this.syncing = false
    })
  }

  private reserve(bytes: number): void {
    if (this.pendingLength + bytes <= this.pending.length) return
    let size = this.pending.length * 2
    while (size < this.pendingLength + bytes) size *= 2
    const grown = Buffer.allocUnsafe(size)
    this.pending.copy(grown, 0, 0, this.pendingLength)
    this.pending = grown
  }
}

const segmentName = (n: number) => `${String(n).padStart(8, '0')}.log`

/** Reads a segment's records in order, in chunks; stops at the first damaged one. */
function readSegment(path: string, apply: (record: JournalRecord) => void): { records: number; good: number; size: number; damage?: string } {
  const fd = openSync(path, 'r')
  const size = statSync(path).size
  let chunk = Buffer.allocUnsafe(READ_CHUNK)
  let filled = 0 // bytes of chunk holding file data
  let base = 0 // file offset of chunk[0]
  let at = 0 // read position in chunk
  let records = 0
  try {
    for (;;) {
      // Refill when the next header or body is not whole in the chunk.
      const need = filled - at >= HEADER ? HEADER + chunk.readUInt32LE(at) : HEADER
      if (need > HEADER + MAX_RECORD) return { records, good: base + at, size, damage: `a record claims ${need - HEADER} bytes` }
      if (filled - at < need) {
        if (base + filled >= size) {
          const left = size - (base + at)
          return left === 0 ? { records, good: size, size } : { records, good: base + at, size, damage: `a record cut short (${left} of ${need} bytes)` }
        }
        if (need > chunk.length) {
          const bigger = Buffer.allocUnsafe(need)
          chunk.copy(bigger, 0, at, filled)
          chunk = bigger
        } else chunk.copy(chunk, 0, at, filled)
        base += at
        filled -= at
        at = 0
        const read = readSync(fd, chunk, filled, chunk.length - filled, base + filled)
        if (read === 0) return { records, good: base + at, size, damage: 'the file ended early' }
        filled += read
        continue
      }
      const bodyLength = chunk.readUInt32LE(at)
      const body = chunk.subarray(at + HEADER, at + HEADER + bodyLength)
      const record = bodyLength >= FIXED && crc32(body) === chunk.readUInt32LE(at + 4) ? parse(body) : undefined
      if (record === undefined) return { records, good: base + at, size, damage: 'a record fails its checksum' }
      apply(record)
      records++
      at += HEADER + bodyLength
    }
  } finally {
    closeSync(fd)
  }
}

function parse(body: Buffer): JournalRecord | undefined {
  const topicLength = body.readUInt16LE(0)
  const epochAt = 2 + topicLength
  if (epochAt + 1 > body.length) return undefined
  const epochLength = body.readUInt8(epochAt)
  const seqAt = epochAt + 1 + epochLength
  if (seqAt + 16 > body.length) return undefined
  const seq = body.readDoubleLE(seqAt)
  if (!Number.isSafeInteger(seq) || seq < 1) return undefined
  return {
    topic: body.toString('utf8', 2, epochAt),
    epoch: body.toString('latin1', epochAt + 1, seqAt),
    seq,
    ts: body.readDoubleLE(seqAt + 8),
    data: body.subarray(seqAt + 16)
  }
}
