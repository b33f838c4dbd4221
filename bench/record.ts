// Record and replay (issue #32), three measurements on one long session: the five venues' recorded
// sessions (test/venue-sessions.ts) recorded RUNS times over, one run each, by demo/make-venues.ts.
//   stores  the session's frames written to segment files (deflate levels 1, 6, 9), SQLite and LMDB
//           (those two when loadable: npm i --no-save better-sqlite3@12 lmdb, or STORES_DIR=<dir>
//           holding them): bytes per frame, write CPU per frame (thread pool included), read back.
//   live    the connectors fed the session's frames at 1,000 and 5,000 messages/s for SECONDS each,
//           without and with the recording transport: CPU of a core and the p99 of the event loop's
//           delay and of one frame's delivery.
//   replay  the long session replayed at max through the connectors and the engine (venue messages,
//           frames and REST answers, a second and per CPU second), and the JSON.parse floor: every
//           frame's text and REST answer's body parsed, in the same run (the frames' alone too);
//           REPLAY_ROUNDS rounds (default 4), the first a warm-up. Where its CPU goes: run it under
//           node --cpu-prof and sum the profile with bench/replay-profile.ts.
//   node --import=tsx bench/record.ts [stores] [live] [replay]
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { loadConfig } from '../src/config.ts'
import { loadRegistry, startFeeds, VENUE_ENDPOINTS } from '../src/market/setup.ts'
import { VirtualClock } from '../src/market/clock.ts'
import type { Exchange } from '../src/market/venues/index.ts'
import { recordingTransport } from '../src/record/capture.ts'
import { Kind } from '../src/record/format.ts'
import { readRecording } from '../src/record/reader.ts'
import { Recorder } from '../src/record/recorder.ts'
import { replay } from '../src/record/replay.ts'
import { engineOptions } from '../src/market/settings.ts'
import { APP_VERSION } from '../src/record/version.ts'
import { recordSessions } from '../demo/make-venues.ts'
import { fakeConnect, type FakeSocket } from '../test/fake-venue.ts'
import { DIR, SESSIONS } from '../test/venue-sessions.ts'

const RUNS = Number(process.env.RUNS ?? 60)
const SECONDS = Number(process.env.SECONDS ?? 4)
/** Replays of the long session at max: the first warms up, the best of the rest is reported. */
const REPLAY_ROUNDS = Number(process.env.REPLAY_ROUNDS ?? 4)
const only = process.argv.slice(2)
const want = (part: string) => only.length === 0 || only.includes(part)
const load = createRequire(process.env.STORES_DIR ? join(process.env.STORES_DIR, 'node_modules') : import.meta.url)
const bytesIn = (dir: string) =>
  readdirSync(dir, { recursive: true }).reduce((n, f) => n + (statSync(join(dir, String(f))).isFile() ? statSync(join(dir, String(f))).size : 0), 0)
const cpuMs = (since: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(since)
  return (c.user + c.system) / 1000
}

// The long session (for stores and replay).
const sessionDir = mkdtempSync(join(tmpdir(), 'record-bench-'))
const frames: { time: number; conn: number; body: Buffer }[] = []
/** The REST answers' bodies (the books' snapshots): venue messages the replay parses too. */
const answers: Buffer[] = []
if (want('stores') || want('replay')) {
  const clock = new VirtualClock()
  const recorder = new Recorder({
    dir: sessionDir,
    segmentBytes: 64 << 20,
    segmentMs: 1e12,
    maxBytes: 1 << 40,
    maxAgeMs: 0,
    app: APP_VERSION,
    now: () => clock.now()
  })
  for (let r = 0; r < RUNS; r++) await recordSessions(recorder, clock, Date.UTC(2026, 0, 1) + r * 20_000, 20_000)
  await recorder.close()
  let records = 0
  for (const r of readRecording(sessionDir, APP_VERSION, () => {})) {
    records++
    if (r.kind === Kind.frame) frames.push({ time: r.time, conn: r.conn, body: Buffer.from(r.body) })
    // A REST answer's body follows its head line: parsed by the replay as the live connector parsed it.
    else if (r.kind === Kind.rest) answers.push(Buffer.from(r.body.subarray(r.body.indexOf(10) + 1)))
  }
  const frameBytes = frames.reduce((n, f) => n + f.body.length, 0)
  console.log(
    `long session: ${RUNS} runs, ${records} records, ${frames.length} venue frames (${(frameBytes / frames.length).toFixed(0)} B each as received) and ${answers.length} REST answers (${answers.reduce((n, a) => n + a.length, 0)} B), ${bytesIn(sessionDir)} B recorded (${(bytesIn(sessionDir) / frames.length).toFixed(1)} B a frame with everything else)`
  )
}

interface Store {
  name: string
  write(batch: typeof frames): Promise<void> | void
  read(): number
  close(): Promise<void> | void
}

async function segmentStore(dir: string, level: number): Promise<Store> {
  const recorder = new Recorder({ dir, segmentBytes: 64 << 20, segmentMs: 1e12, maxBytes: 1 << 40, maxAgeMs: 0, app: APP_VERSION, level })
  return {
    name: `segment files, deflate ${level}`,
    async write(batch) {
      for (const f of batch) recorder.add(Kind.frame, f.time, f.conn, f.body)
      await recorder.flush()
    },
    read() {
      let n = 0
      for (const r of readRecording(dir, APP_VERSION, () => {})) if (r.kind === Kind.frame) n++
      return n
    },
    close: () => recorder.close()
  }
}

async function sqliteStore(dir: string): Promise<Store> {
  const Database = load('better-sqlite3')
  const db = new Database(join(dir, 'r.db'))
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = OFF')
  db.exec('CREATE TABLE r (id INTEGER PRIMARY KEY, t REAL, conn INTEGER, kind INTEGER, body BLOB)')
  const insert = db.prepare('INSERT INTO r (t, conn, kind, body) VALUES (?, ?, ?, ?)')
  const tx = db.transaction((batch: typeof frames) => {
    for (const f of batch) insert.run(f.time, f.conn, Kind.frame, f.body)
  })
  return {
    name: 'SQLite WAL (synchronous OFF)',
    write: (batch) => tx(batch),
    read() {
      let n = 0
      for (const _row of db.prepare('SELECT t, conn, kind, body FROM r ORDER BY id').iterate()) n++
      return n
    },
    close() {
      db.pragma('wal_checkpoint(TRUNCATE)')
      db.close()
    }
  }
}

async function lmdbStore(dir: string, compression: boolean): Promise<Store> {
  const { open } = load('lmdb')
  const db = open({ path: join(dir, 'lmdb'), noSync: true, encoding: 'binary', compression })
  let id = 0
  return {
    name: `LMDB (noSync${compression ? ', LZ4' : ''})`,
    write(batch) {
      db.transactionSync(() => {
        for (const f of batch) {
          const value = Buffer.allocUnsafe(12 + f.body.length)
          value.writeDoubleLE(f.time, 0)
          value.writeUInt32LE(f.conn, 8)
          f.body.copy(value, 12)
          db.putSync(id++, value)
        }
      })
    },
    read() {
      let n = 0
      for (const _entry of db.getRange({})) n++
      return n
    },
    close: () => db.close()
  }
}

if (want('stores')) {
  console.log('\nstores: the frames in batches of 1,000')
  const makers: [string, (dir: string) => Promise<Store>][] = [
    ['seg1', (d) => segmentStore(d, 1)],
    ['seg6', (d) => segmentStore(d, 6)],
    ['seg9', (d) => segmentStore(d, 9)],
    ['sqlite', sqliteStore],
    ['lmdb', (d) => lmdbStore(d, false)],
    ['lmdb-lz4', (d) => lmdbStore(d, true)]
  ]
  for (const [label, make] of makers) {
    const dir = mkdtempSync(join(tmpdir(), `record-store-${label}-`))
    let store: Store
    try {
      store = await make(dir)
    } catch (err) {
      console.log(`${label}: skipped (${(err as Error).message.split('\n')[0]})`)
      continue
    }
    const cpu = process.cpuUsage()
    for (let i = 0; i < frames.length; i += 1000) await store.write(frames.slice(i, i + 1000))
    await store.close()
    const writeCpu = cpuMs(cpu)
    const bytes = bytesIn(dir)
    if (label.startsWith('sqlite')) store = await sqliteStoreReopen(dir, store)
    if (label.startsWith('lmdb')) store = await lmdbStore(dir, label === 'lmdb-lz4')
    const started = performance.now()
    const read = store.read()
    const readMs = performance.now() - started
    await store.close()
    rmSync(dir, { recursive: true, force: true })
    console.log(
      `${store.name.padEnd(30)} ${(bytes / frames.length).toFixed(1).padStart(7)} B/frame  write ${((writeCpu * 1000) / frames.length).toFixed(2).padStart(6)} us CPU/frame  read ${((readMs * 1000) / read).toFixed(2).padStart(6)} us/frame (${read})`
    )
  }
}

async function sqliteStoreReopen(dir: string, _closed: Store): Promise<Store> {
  const Database = load('better-sqlite3')
  const db = new Database(join(dir, 'r.db'))
  return {
    name: 'SQLite WAL (synchronous OFF)',
    write() {},
    read() {
      let n = 0
      for (const _row of db.prepare('SELECT t, conn, kind, body FROM r ORDER BY id').iterate()) n++
      return n
    },
    close: () => db.close()
  }
}

if (want('live')) {
  console.log(`\nlive: the connectors fed the session's frames, ${SECONDS} s a run`)
  const exchanges = Object.keys(SESSIONS) as Exchange[]
  const registry = await loadRegistry(exchanges, { metadataDir: DIR, endpoints: VENUE_ENDPOINTS })
  const perVenue = exchanges.map((e) => SESSIONS[e]!.frames().map((f) => Buffer.from(f)))
  for (const rate of [1000, 5000]) {
    for (const recording of [false, true]) {
      const dir = mkdtempSync(join(tmpdir(), 'record-live-'))
      const recorder = recording ? new Recorder({ dir, segmentBytes: 64 << 20, segmentMs: 3_600_000, maxBytes: 1 << 40, maxAgeMs: 0, app: APP_VERSION }) : null
      const sockets: FakeSocket[] = []
      let published = 0
      const feeds = await startFeeds({
        feeds: new Map(exchanges.map((e) => [e, SESSIONS[e]!.symbols])),
        registry,
        bookDepth: 10,
        transport: (exchange) => {
          const fake = fakeConnect()
          const connect: typeof fake.connect = (url, events) => {
            const socket = fake.connect(url, events)
            sockets.push(socket as FakeSocket)
            return socket
          }
          const fetch: typeof globalThis.fetch = async () => new Response('{"lastUpdateId":1,"bids":[],"asks":[]}')
          return recorder ? recordingTransport(recorder, exchange, { connect, fetch }) : { connect, fetch }
        },
        sink: {
          book: () => published++,
          ticker: () => published++,
          venue: () => {}
        }
      })
      for (const s of sockets) s.accept()
      const eld = monitorEventLoopDelay({ resolution: 1 })
      const deliveries: number[] = []
      const cursor = perVenue.map(() => 0)
      let sent = 0
      const cpu = process.cpuUsage()
      const started = performance.now()
      eld.enable()
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          const due = Math.floor(((performance.now() - started) * rate) / 1000)
          while (sent < due) {
            const v = sent % perVenue.length
            const frame = perVenue[v][cursor[v]++ % perVenue[v].length]
            const t0 = performance.now()
            sockets[v].deliver(frame)
            deliveries.push(performance.now() - t0)
            sent++
          }
          if (performance.now() - started >= SECONDS * 1000) {
            clearInterval(timer)
            resolve()
          }
        }, 1)
      })
      await recorder?.flush()
      const wall = performance.now() - started
      const used = cpuMs(cpu)
      eld.disable()
      feeds.stop()
      await recorder?.close()
      deliveries.sort((a, b) => a - b)
      console.log(
        `${String(rate).padStart(5)} msg/s ${recording ? 'recording ' : 'no record '} CPU ${((used / wall) * 100).toFixed(1).padStart(5)}% of a core  loop delay p99 ${(eld.percentile(99) / 1e6).toFixed(2)} ms  delivery p99 ${(deliveries[Math.floor(deliveries.length * 0.99)] * 1000).toFixed(1)} us  (${sent} frames, ${published} published${recorder ? `, ${recorder.counters.records} recorded, ${recorder.counters.dropped} dropped, ${(recorder.counters.bytes / recorder.counters.records).toFixed(1)} B a record` : ''})`
      )
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

if (want('replay')) {
  // The floor is the JSON.parse of every venue message the replay must parse as live did: the frames'
  // texts and the REST answers' bodies. The frames' alone is printed too (the floor of earlier runs).
  const parseAll = (list: Buffer[]) => {
    let parsed = 0
    for (const body of list) if (JSON.parse(body.toString()) !== null) parsed++
    return parsed
  }
  const frameBodies = frames.map((f) => f.body)
  const messages = frames.length + answers.length
  console.log(
    `\nreplay at max through the connectors and the engine (${messages} venue messages: ${frames.length} frames, ${answers.length} REST answers), against the JSON.parse floor of the same messages (the first round warms up)`
  )
  const best = { replay: 0, cpu: 0, floor: 0, ratio: Number.POSITIVE_INFINITY, frameRatio: Number.POSITIVE_INFINITY }
  for (let round = 0; round < REPLAY_ROUNDS; round++) {
    const framesStarted = performance.now()
    parseAll(frameBodies)
    const framesMs = performance.now() - framesStarted
    parseAll(answers)
    const floorMs = performance.now() - framesStarted
    const cpu = process.cpuUsage()
    const started = performance.now()
    const result = await replay({ dir: sessionDir, app: APP_VERSION, speed: 'max', engine: engineOptions(loadConfig({})), sink: { event() {} } })
    const replayMs = performance.now() - started
    const replayCpuMs = cpuMs(cpu)
    const rate = messages / (replayMs / 1000)
    const cpuRate = messages / (replayCpuMs / 1000)
    const floorRate = messages / (floorMs / 1000)
    if (round > 0) {
      best.replay = Math.max(best.replay, rate)
      best.cpu = Math.max(best.cpu, cpuRate)
      best.floor = Math.max(best.floor, floorRate)
      best.ratio = Math.min(best.ratio, replayMs / floorMs)
      best.frameRatio = Math.min(best.frameRatio, replayMs / framesMs)
    }
    console.log(
      `${round === 0 ? 'warm-up' : `round ${round}`}  replay ${Math.round(rate)} messages/s, ${Math.round(cpuRate)} per CPU s (${result.frames} frames, ${result.records} records in ${replayMs.toFixed(0)} ms, ${result.opportunities} opportunity events, ${result.diverged} diverged)  floor ${Math.round(floorRate)} messages/s (${floorMs.toFixed(0)} ms, the frames alone ${framesMs.toFixed(0)} ms)  ratio ${(replayMs / floorMs).toFixed(2)}x (to the frames alone ${(replayMs / framesMs).toFixed(2)}x)`
    )
  }
  if (REPLAY_ROUNDS > 1)
    console.log(
      `best of ${REPLAY_ROUNDS - 1}: replay ${Math.round(best.replay)} messages/s, ${Math.round(best.cpu)} per CPU s; floor ${Math.round(best.floor)} messages/s; lowest ratio ${best.ratio.toFixed(2)}x (to the frames alone ${best.frameRatio.toFixed(2)}x)`
    )
}
rmSync(sessionDir, { recursive: true, force: true })
