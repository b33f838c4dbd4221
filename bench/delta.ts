// Delta frames, the decision (#20, npm run bench:delta): a structural patch of changed keys
// against a Fossil delta of the encoded bytes (what Centrifugo uses), on the two kinds of topic
// the issue names: tickers (the demo feed's) and books (the recorded OKX session through the real
// connector, top 20 a side). For each event after a topic's first: bytes of the full data, of a
// structural patch and of a Fossil delta, in MessagePack and in JSON; and the CPU to make and to
// apply each. Nothing here is on the wire yet: this is the measurement that picks one.
import { readFileSync } from 'node:fs'
import { Encoder, decode } from '@msgpack/msgpack'
import { applyDelta, applyStringDelta, createDelta, createStringDelta } from 'fossil-delta'
import * as parse from '../src/market/instruments.ts'
import { InstrumentRegistry } from '../src/market/instruments.ts'
import { createFeed } from '../src/market/venues.ts'
import { SyntheticFeed } from '../src/market/synthetic.ts'

const encoder = new Encoder()
const msgpack = (v: unknown) => encoder.encode(v)

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** Changed and added keys with their new values, `$del` for removed ones, nested objects patched; arrays whole. */
function patch(prev: Json, cur: Json): Json {
  if (!isObject(prev) || !isObject(cur)) return cur
  const out: Record<string, Json> = {}
  for (const key of Object.keys(cur)) {
    const a = prev[key]
    const b = cur[key]
    if (same(a, b)) continue
    out[key] = isObject(a) && isObject(b) ? patch(a, b) : b
  }
  const removed = Object.keys(prev).filter((k) => !(k in cur))
  if (removed.length > 0) out.$del = removed
  return out
}

function applyPatch(prev: Json, p: Json): Json {
  if (!isObject(prev) || !isObject(p)) return p
  const out: Record<string, Json> = { ...prev }
  for (const [key, value] of Object.entries(p)) {
    if (key === '$del') for (const k of value as string[]) delete out[k]
    else out[key] = isObject(out[key]) && isObject(value) ? applyPatch(out[key], value) : value
  }
  return out
}

const isObject = (v: unknown): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v)
function same(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]))
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => same(a[k], b[k]))
  }
  return false
}

/** Consecutive data per topic. */
function tickers(): Map<string, Json[]> {
  const feed = new SyntheticFeed({ seed: 3, symbols: 5, exchanges: 5, dislocationRate: 0.001 })
  const out = new Map<string, Json[]>()
  let at = 1_700_000_000_000
  for (let i = 0; i < 20_000; i++) {
    at += 5
    const tick = feed.next(at)
    const topic = `ticker.${tick.exchange}.${tick.symbol}`
    out.set(topic, [...(out.get(topic) ?? []), { ...tick } as unknown as Json])
  }
  return out
}

function books(): Map<string, Json[]> {
  const dir = new URL('../test/fixtures/venues/okx/', import.meta.url)
  const registry = new InstrumentRegistry().add(
    'okx',
    parse.okx(...['SPOT', 'SWAP', 'FUTURES'].map((t) => JSON.parse(readFileSync(new URL(`instruments-${t}.json`, dir), 'utf8'))))
  )
  const out = new Map<string, Json[]>()
  let now = 1_652_459_000_000
  const feed = createFeed('okx', {
    instruments: ['BTC-USDT', 'UNI-USD-INVPERP', 'BTC-USD-INV20220527'].map((s) => registry.topic('okx', s)!),
    endpoints: { ws: 'ws://unused', rest: 'http://unused' },
    bookDepth: 20,
    now: () => now,
    publish: (topic, data) => {
      if (topic.startsWith('book.')) out.set(topic, [...(out.get(topic) ?? []), structuredClone(data) as Json])
    }
  })
  const receive = (feed as unknown as { receive(d: Buffer, binary: boolean): void }).receive.bind(feed)
  // One message per turn, as they came: one book event per update.
  for (const line of readFileSync(new URL('stream.jsonl', dir), 'utf8').trim().split('\n')) {
    now += 10
    receive(Buffer.from(line), false)
    ;(feed as unknown as { flush(): void }).flush()
  }
  return out
}

function measure(kind: string, topics: Map<string, Json[]>) {
  const pairs: [Json, Json][] = []
  for (const events of topics.values()) for (let i = 1; i < events.length; i++) pairs.push([events[i - 1], events[i]])
  const sum = { full: 0, patch: 0, fossil: 0, fullJson: 0, patchJson: 0, fossilJson: 0 }
  for (const [prev, cur] of pairs) {
    sum.full += msgpack(cur).length
    sum.patch += msgpack(patch(prev, cur)).length
    sum.fossil += createDelta(msgpack(prev), msgpack(cur)).length
    sum.fullJson += JSON.stringify(cur).length
    sum.patchJson += JSON.stringify(patch(prev, cur)).length
    sum.fossilJson += JSON.stringify(createStringDelta(JSON.stringify(prev), JSON.stringify(cur))).length // as a JSON string field
  }
  // Correctness before speed: every delta applied gives the event back.
  for (const [prev, cur] of pairs) {
    if (!same(applyPatch(prev, patch(prev, cur)), cur)) throw new Error(`${kind}: a patch did not round-trip`)
    const bytes = applyDelta(msgpack(prev), createDelta(msgpack(prev), msgpack(cur)))
    if (!same(decode(bytes) as Json, cur)) throw new Error(`${kind}: a Fossil delta did not round-trip`)
    if (applyStringDelta(JSON.stringify(prev), createStringDelta(JSON.stringify(prev), JSON.stringify(cur))) !== JSON.stringify(cur))
      throw new Error(`${kind}: a Fossil string delta did not round-trip`)
  }
  const time = (fn: () => void) => {
    for (let r = 0; r < 2; r++) fn() // warm
    const t0 = process.cpuUsage()
    fn()
    const c = process.cpuUsage(t0)
    return +((c.user + c.system) / pairs.length).toFixed(2)
  }
  const encodedPairs = pairs.map(([a, b]) => [msgpack(a), msgpack(b)] as const)
  const patches = pairs.map(([a, b]) => patch(a, b))
  const deltas = encodedPairs.map(([a, b]) => createDelta(a, b))
  const n = pairs.length
  return {
    kind,
    events: n,
    bytesPerEvent: {
      msgpack: { full: Math.round(sum.full / n), patch: Math.round(sum.patch / n), fossil: Math.round(sum.fossil / n) },
      json: { full: Math.round(sum.fullJson / n), patch: Math.round(sum.patchJson / n), fossil: Math.round(sum.fossilJson / n) }
    },
    usPerEvent: {
      // Made once per event (per topic and filter group), applied by every receiver.
      patchMake: time(() => {
        for (const [a, b] of pairs) patch(a, b)
      }),
      fossilMake: time(() => {
        for (const [a, b] of encodedPairs) createDelta(a, b)
      }),
      patchApply: time(() => {
        for (let i = 0; i < n; i++) applyPatch(pairs[i][0], patches[i])
      }),
      fossilApply: time(() => {
        for (let i = 0; i < n; i++) applyDelta(encodedPairs[i][0], deltas[i])
      })
    }
  }
}

const rows = [measure('ticker (demo feed)', tickers()), measure('book (recorded OKX, top 20)', books())]
for (const r of rows) console.log(JSON.stringify(r))
console.log(
  '\n| topic | events | MessagePack full / patch / Fossil bytes | JSON full / patch / Fossil bytes | µs to make: patch / Fossil | µs to apply: patch / Fossil |\n|---|---|---|---|---|---|'
)
for (const r of rows) {
  const b = r.bytesPerEvent
  const u = r.usPerEvent
  console.log(
    `| ${r.kind} | ${r.events} | ${b.msgpack.full} / ${b.msgpack.patch} / ${b.msgpack.fossil} | ${b.json.full} / ${b.json.patch} / ${b.json.fossil} | ${u.patchMake} / ${u.fossilMake} | ${u.patchApply} / ${u.fossilApply} |`
  )
}
