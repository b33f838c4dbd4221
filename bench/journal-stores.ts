// How the journal was chosen: the same group-committed workload written to append-only segment
// files (src/core/journal.ts), to SQLite (better-sqlite3, WAL) and to LMDB (lmdb), then read back
// as a restart would. Neither store is a dependency of the project: install them beside it to
// run this (npm i --no-save better-sqlite3@12 lmdb, or into another directory named by
// STORES_DIR); a store that does not load is skipped.
//   node --import=tsx bench/journal-stores.ts [events] [perCommit]
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Journal, type FsyncPolicy } from '../src/core/journal.ts'
import { encodeDataShared } from '../src/core/codec.ts'

const load = createRequire(process.env.STORES_DIR ? join(process.env.STORES_DIR, 'node_modules') : import.meta.url)
const EVENTS = Number(process.argv[2] ?? 200_000)
const PER_COMMIT = Number(process.argv[3] ?? 100) // publishes in one event-loop turn
const TOPICS = 1000
const epoch = 'a1b2c3d4e5f6'
const data = Buffer.from(encodeDataShared({ bid: 64123.5, ask: 64124, bidSize: 1.25, askSize: 0.5, ts: 1_796_000_000_000 }))
const topic = (i: number) => `ticker.venue.SYM${i % TOPICS}`

interface Store {
  name: string
  /** Writes one turn's events, synced to disk when `sync`. */
  commit(from: number, to: number): void
  /** Reads everything back, as start-up does; returns the events read. */
  load(): number
  close(): void
}

async function segments(dir: string, fsync: FsyncPolicy): Promise<Store> {
  let journal = new Journal(dir, fsync)
  journal.open(() => {})
  return {
    name: `segment files (fsync ${fsync})`,
    commit(from, to) {
      for (let i = from; i < to; i++) journal.append(topic(i), epoch, Math.floor(i / TOPICS) + 1, i, data)
      journal.flush()
    },
    load() {
      journal.close()
      journal = new Journal(dir, fsync)
      let n = 0
      journal.open(() => n++)
      return n
    },
    close: () => journal.close()
  }
}

async function sqlite(dir: string, sync: boolean): Promise<Store> {
  const Database = load('better-sqlite3')
  const db = new Database(join(dir, 'j.db'))
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${sync ? 'FULL' : 'OFF'}`)
  db.exec('CREATE TABLE e (topic TEXT, seq INTEGER, epoch TEXT, ts REAL, data BLOB, PRIMARY KEY (topic, seq)) WITHOUT ROWID')
  const insert = db.prepare('INSERT OR REPLACE INTO e VALUES (?, ?, ?, ?, ?)')
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) insert.run(topic(i), Math.floor(i / TOPICS) + 1, epoch, i, data)
  })
  return {
    name: `SQLite WAL (synchronous ${sync ? 'FULL' : 'OFF'})`,
    commit: (from, to) => batch(from, to),
    load() {
      let n = 0
      for (const _row of db.prepare('SELECT topic, seq, epoch, ts, data FROM e ORDER BY topic, seq').iterate()) n++
      return n
    },
    close: () => db.close()
  }
}

async function lmdb(dir: string, sync: boolean): Promise<Store> {
  const { open } = load('lmdb')
  const db = open({ path: join(dir, 'lmdb'), noSync: !sync, encoding: 'binary', keyEncoding: 'ordered-binary' })
  return {
    name: `LMDB (${sync ? 'synced' : 'noSync'})`,
    commit(from, to) {
      db.transactionSync(() => {
        for (let i = from; i < to; i++) db.putSync([topic(i), Math.floor(i / TOPICS) + 1], data)
      })
    },
    load() {
      let n = 0
      for (const _entry of db.getRange({})) n++
      return n
    },
    close: () => db.close()
  }
}

const makers: [string, (dir: string, sync: boolean) => Promise<Store>][] = [
  ['segments', (dir, sync) => segments(dir, sync ? 'always' : 'no')],
  ['sqlite', sqlite],
  ['lmdb', lmdb]
]

console.log(`${EVENTS} events of ${data.length} B over ${TOPICS} topics, ${PER_COMMIT} a commit (one event-loop turn)`)
for (const sync of [false, true]) {
  const events = sync ? Math.min(EVENTS, 20_000) : EVENTS // a synced commit costs a disk flush each
  for (const [label, make] of makers) {
    const dir = mkdtempSync(join(tmpdir(), `journal-${label}-`))
    let store: Store
    try {
      store = await make(dir, sync)
    } catch (err) {
      console.log(`${label}: skipped (${(err as Error).message.split('\n')[0]})`)
      continue
    }
    const started = performance.now()
    for (let i = 0; i < events; i += PER_COMMIT) store.commit(i, Math.min(events, i + PER_COMMIT))
    const wrote = performance.now() - started
    const loadStarted = performance.now()
    const read = store.load()
    const loaded = performance.now() - loadStarted
    store.close()
    rmSync(dir, { recursive: true, force: true })
    console.log(
      `${store.name.padEnd(34)} write ${((wrote * 1000) / events).toFixed(2).padStart(7)} us/event  ${Math.round(events / (wrote / 1000))
        .toString()
        .padStart(8)} events/s   load ${loaded.toFixed(0).padStart(5)} ms (${read} events)`
    )
  }
}
